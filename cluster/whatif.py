"""HEALTH SAFE-TO-STOP: would the cluster stay ok if these nodes stopped now?

A what-if over the model at `now_ms`, answered rule by rule, each finding `safe`, `unsafe`
or `unknown` with its reason. The answer is `unsafe` if any finding is, else `unknown` if
any is (what the model cannot know it says it cannot know: a gate must not pass on a
guess), else `safe`.

Redis Cluster's rules (docs/merge-rules.md rule 5, cluster/failure.py):

    state      the cluster is ok now; stopping nodes of a failed cluster helps nothing
    majority   the slot-serving masters left reachable (ok, not stopping) are a majority of
               the slot-serving masters: they must agree to fail a stopped master and
               vote its replica's promotion (Redis: `size / 2 + 1`)
    coverage   each stopping master's slots go to a replica that is ok, not stopping, and
               in sync, from its latest heartbeat (younger than the node timeout): the
               agent's redis source sends `services.redis.status.info.master_link_status`
               (`up` is in sync) and `master_last_io_seconds_ago` (older than
               node_timeout x 10, Redis's replica validity factor, may not be promoted).
               A replica whose heartbeats carry neither is `unknown`. Without full
               coverage required (`require_full_coverage` off) uncovered slots are only
               noted. A promotion takes about the node timeout plus an election, during
               which the stopped master's slots are not served: noted, and avoided by a
               manual CLUSTER FAILOVER on the replica first.

The seed systems' rules, where the heartbeats carry what they need:

    partitions (Zeebe) each partition a stopping node holds keeps a raft majority of its
               replicas (the nodes whose heartbeats list it) on nodes that are ok, not
               stopping and do not report it dead
    services (Puppet)  each service `running` on a stopping node stays `running` on some
               node that is ok and not stopping

Arguments: at most `MAX_IDS` ids (a rolling restart stops few nodes at a time), each known
and given once; anything else is an `ApiError` naming the id, before any work. Cost: one
pass over the nodes (replicas, partitions and services of the stopping nodes), so about
1 ms per 10000 nodes; the lists in the answer are capped at `LIMIT` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

from clusterwatch.cluster.apierror import ApiError, bad_argument, echo
from clusterwatch.cluster.explain import LIMIT, state_word
from clusterwatch.cluster.failure import quorum
from clusterwatch.cluster.merge import MergeState, Node
from clusterwatch.cluster.records import NodeState

__all__ = ["MAX_IDS", "safe_to_stop", "validate_ids"]

MAX_IDS: Final = 64
REPLICA_VALIDITY_FACTOR: Final = 10

Verdict = Literal["safe", "unsafe", "unknown"]


def validate_ids(ids: Sequence[str], known: MergeState) -> list[str]:
    """The ids to stop, checked: 1..MAX_IDS, known, none twice."""
    if not ids:
        raise bad_argument("no node given")
    if len(ids) > MAX_IDS:
        raise bad_argument(f"too many nodes: at most {MAX_IDS} at a time, got {len(ids)}")
    seen: set[str] = set()
    for node_id in ids:
        if node_id in seen:
            raise bad_argument(f"Node {echo(node_id)} specified multiple times")
        seen.add(node_id)
        if node_id not in known.nodes:
            raise ApiError(f"Unknown node {echo(node_id)}", kind="node-not-found")
    return list(ids)


def _finding(rule: str, verdict: Verdict, reason: str) -> dict[str, str]:
    return {"rule": rule, "verdict": verdict, "reason": reason}


def safe_to_stop(state: MergeState, ids: Sequence[str], now_ms: int) -> dict[str, Any]:
    """The answer for stopping `ids` (checked by `validate_ids`) at `now_ms`; the caller has
    run `state.refresh(now_ms)`."""
    stopping = set(validate_ids(ids, state))
    findings: list[dict[str, str]] = []
    notes: list[str] = []
    if not state.cluster_ok:
        findings.append(_finding("state", "unsafe", "cluster_state is fail already"))
    findings.append(_majority(state, stopping))
    scan = _Scan(state, stopping)
    findings.extend(_coverage(state, stopping, scan, now_ms, notes))
    findings.extend(_partitions(state, stopping, scan, now_ms))
    findings.extend(_services(stopping, scan))
    for node_id in sorted(stopping):
        node = state.nodes[node_id]
        if node.state is not NodeState.OK:
            notes.append(f"{node_id} is {state_word(node.state)} already")
    verdicts = {f["verdict"] for f in findings}
    verdict: Verdict = ("unsafe" if "unsafe" in verdicts else
                        "unknown" if "unknown" in verdicts else "safe")
    return {
        "safe": verdict == "safe",
        "verdict": verdict,
        "nodes": list(ids),
        "cluster_state": "ok" if state.cluster_ok else "fail",
        "findings": findings[:LIMIT],
        "findings_total": len(findings),
        "notes": notes[:LIMIT],
    }


def _majority(state: MergeState, stopping: set[str]) -> dict[str, str]:
    owned = state.table.owned
    size = len(owned)
    if size == 0:
        return _finding("majority", "unknown", "no node serves slots: no majority to judge")
    needed = quorum(size)
    reachable = state.masters_in_state[NodeState.OK]
    leaving = sum(1 for n in stopping if n in owned and state.nodes[n].state is NodeState.OK)
    left = reachable - leaving
    text = (f"{left} of {size} slot-serving masters would be left reachable; a majority "
            f"is {needed}")
    if left < needed:
        return _finding("majority", "unsafe", text + ": none could be failed over and "
                        "cluster_state goes fail")
    return _finding("majority", "safe", text)


class _Scan:
    """One pass over the nodes: the replicas of the stopping masters, and the partitions
    and running services of the stopping nodes with the nodes that hold them."""

    def __init__(self, state: MergeState, stopping: set[str]) -> None:
        owned = state.table.owned
        self.replicas: dict[str, list[Node]] = {m: [] for m in stopping if m in owned}
        wanted_parts: set[int] = set()
        wanted_services: set[str] = set()
        for node_id in stopping:
            beat = state.nodes[node_id].heartbeat
            if beat is None:
                continue
            wanted_parts.update(p.id for p in beat.partitions or ())
            wanted_services.update(name for name, s in (beat.services or {}).items()
                                   if s.state == "running")
        self.partitions: dict[int, list[tuple[Node, str]]] = {p: [] for p in wanted_parts}
        self.services: dict[str, list[Node]] = {s: [] for s in wanted_services}
        replicas = self.replicas
        for node in state.nodes.values():
            hello = node.hello
            if hello is not None and hello.replicaof in replicas and node.id not in owned:
                replicas[hello.replicaof].append(node)
            beat = node.heartbeat
            if beat is None or not (wanted_parts or wanted_services):
                continue
            if wanted_parts and beat.partitions:
                for part in beat.partitions:
                    holders = self.partitions.get(part.id)
                    if holders is not None:
                        holders.append((node, part.health))
            if wanted_services and beat.services:
                for name, service in beat.services.items():
                    runners = self.services.get(name)
                    if runners is not None and service.state == "running":
                        runners.append(node)


def _coverage(state: MergeState, stopping: set[str], scan: _Scan, now_ms: int,
              notes: list[str]) -> list[dict[str, str]]:
    owned = state.table.owned
    required = state.config.require_full_coverage
    timeout = state.config.node_timeout_ms
    out: list[dict[str, str]] = []
    for master in sorted(scan.replicas):
        slots = owned[master]
        ready: list[str] = []
        unknown: list[str] = []
        refused: list[str] = []
        for replica in sorted(scan.replicas[master], key=lambda n: n.id):
            if replica.id in stopping:
                refused.append(f"{replica.id} stops too")
                continue
            if replica.state is not NodeState.OK:
                refused.append(f"{replica.id} is {state_word(replica.state)}")
                continue
            verdict, why = _in_sync(replica, now_ms, timeout)
            if verdict == "safe":
                ready.append(f"{replica.id} ({why})")
            elif verdict == "unknown":
                unknown.append(f"{replica.id}: {why}")
            else:
                refused.append(f"{replica.id}: {why}")
        head = f"{master} serves {slots} slots"
        if ready:
            out.append(_finding("coverage", "safe", f"{head}; in-sync replica to promote: "
                                f"{', '.join(ready[:4])}"))
            notes.append(f"{master}'s slots are not served from its stop until a replica "
                         f"is promoted (about the node timeout, {timeout} ms, plus an "
                         "election); CLUSTER FAILOVER on the replica first avoids that")
            continue
        verdict_if_lost: Verdict = "unsafe" if required else "safe"
        tail = "" if required else " (full coverage not required)"
        if unknown:
            out.append(_finding("coverage", "unknown", f"{head}; no replica known to be in "
                                f"sync: {'; '.join(unknown[:4])}"
                                + (f"; {'; '.join(refused[:4])}" if refused else "")))
        elif refused:
            out.append(_finding("coverage", verdict_if_lost, f"{head} that would be "
                                f"uncovered: no replica to promote ({'; '.join(refused[:4])})"
                                + tail))
        else:
            out.append(_finding("coverage", verdict_if_lost, f"{head} that would be "
                                "uncovered: it has no replica" + tail))
    return out


def _in_sync(replica: Node, now_ms: int, timeout_ms: int) -> tuple[Verdict, str]:
    """Whether the replica's latest heartbeat shows its link to its master up."""
    beat = replica.heartbeat
    if beat is None or replica.heartbeat_ms is None:
        return "unknown", "no heartbeat received"
    age = now_ms - replica.heartbeat_ms
    if age > timeout_ms:
        return "unknown", f"its last heartbeat is {age} ms old"
    service = (beat.services or {}).get("redis")
    info = None if service is None else service.status.get("info")
    link = info.get("master_link_status") if isinstance(info, dict) else None
    if link is None:
        return "unknown", ("its heartbeat carries no replication link state "
                           "(master_link_status): cannot know whether it is in sync")
    if link != "up":
        return "unsafe", f"link to its master {link}"
    assert isinstance(info, dict)
    last_io = info.get("master_last_io_seconds_ago")
    if isinstance(last_io, int) and last_io * 1000 > timeout_ms * REPLICA_VALIDITY_FACTOR:
        return "unsafe", (f"no data from its master for {last_io} s: too old to be promoted "
                          f"(node timeout x {REPLICA_VALIDITY_FACTOR})")
    lag = info.get("replication_lag")
    shown = f", {lag} bytes behind" if isinstance(lag, int) else ""
    return "safe", f"link up, heartbeat {age} ms old{shown}"


def _partitions(state: MergeState, stopping: set[str], scan: _Scan,
                now_ms: int) -> list[dict[str, str]]:
    timeout = state.config.node_timeout_ms
    out: list[dict[str, str]] = []
    for part_id in sorted(scan.partitions):
        holders = scan.partitions[part_id]
        total = len(holders)
        needed = quorum(total)
        left = [n.id for n, health in holders
                if n.id not in stopping and n.state is NodeState.OK and health != "dead"]
        stale = [n.id for n, _health in holders if n.id not in stopping and (
            n.heartbeat_ms is None or now_ms - n.heartbeat_ms > timeout)]
        text = (f"partition {part_id}: {len(left)} of its {total} replicas would be left "
                f"on nodes that are ok; a raft majority is {needed}")
        if len(left) - len(stale) >= needed:
            out.append(_finding("partitions", "safe", text))
        elif len(left) >= needed:
            out.append(_finding("partitions", "unknown", text + "; heartbeats older than "
                                f"the node timeout from: {', '.join(stale[:4])}"))
        else:
            out.append(_finding("partitions", "unsafe", text))
        if len(out) >= LIMIT:
            break
    return out


def _services(stopping: set[str], scan: _Scan) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name in sorted(scan.services):
        runners = scan.services[name]
        left = [n.id for n in runners if n.id not in stopping and n.state is NodeState.OK]
        if left:
            out.append(_finding("services", "safe", f"service {name} stays running on "
                                f"{len(left)} node(s)"))
        else:
            out.append(_finding("services", "unsafe", f"service {name} would be running "
                                "on no reachable node"))
        if len(out) >= LIMIT:
            break
    return out
