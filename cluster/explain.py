"""HEALTH EXPLAIN: the evidence behind the model's liveness verdict on a node, and behind
`cluster_state`, with each datum's age and source and what would change the verdict.

Anchors: Elasticsearch's health report (a `symptom`, then a `diagnosis`: cause and action)
and Sentinel's `#quorum n/m`. Nothing here judges: the verdicts are merge.py's
(docs/merge-rules.md rule 5); this module reads the same records and the same rules
(cluster/failure.py) and says which one holds and why, at `now_ms`.

A node's explanation names the rule that decided its state:

    state   decided_by  meaning
    ok      heard       a message arrived within the node timeout (and, under Redis's
                        rule, fewer than a quorum of masters report it)
    fail?   silence     no message for the node timeout; no quorum (yet)
    fail    quorum      a majority of the slot-serving masters reported it within the
                        validity window (2 x node timeout); counted as merge.py counts
    fail    timer       the timer rule: fail? for `fail_after`
    fail    history     `fail` outlives its quorum (Redis's FAIL flag); the reports that
                        made it fail have expired or been withdrawn

Every report kept about the node is listed with its reporter, its source (`failing`: the
reporter's heartbeat list; `fail_report`: a message), its age, when it expires, and whether
it counts (and if not, why: not a slot-serving master, or itself reported by a quorum).

Bounds: at most `limit` reports and `limit` nodes per list are shown, each list with its
full count beside it; a node's explanation costs O(reporters^2) set lookups (the quorum
exclusion), the cluster's one pass over the slot-serving masters.
"""

from __future__ import annotations

import heapq
from typing import Any, Final

from clusterwatch.cluster.failure import quorum, reporters_of
from clusterwatch.cluster.merge import MergeState, Node
from clusterwatch.cluster.records import NodeState
from clusterwatch.cluster.slots import NUM_SLOTS

__all__ = ["LIMIT", "explain_cluster", "explain_node", "state_word"]

LIMIT: Final = 32

_WORDS: Final = {NodeState.OK: "ok", NodeState.PFAIL: "fail?", NodeState.FAIL: "fail"}


def state_word(state: NodeState) -> str:
    """The node's state as CLUSTER NODES writes it: ok, fail?, fail."""
    return _WORDS[state]


def _age(at_ms: int | None, now_ms: int) -> dict[str, int] | None:
    return None if at_ms is None else {"at_ms": at_ms, "age_ms": max(0, now_ms - at_ms)}


def _reports(state: MergeState, target: str, now_ms: int, limit: int
             ) -> tuple[list[dict[str, Any]], int, int]:
    """Every valid report about `target`, newest first (at most `limit`), the number of
    reports, and how many reporters count toward the quorum."""
    validity = state.config.report_validity_ms
    oldest = now_ms - validity
    owned = state.table.owned
    needed = quorum(len(owned))
    found: list[tuple[int, str, str]] = []  # (-time, reporter, source): newest first
    listed_at = state.failing.listed_at
    for reporter in state.failing.listers(target, oldest):
        at = listed_at(reporter)
        if at is not None:
            found.append((-at, reporter, "failing"))
    for reporter in state.reports.reporters(target, oldest):
        at = state.reports.reported_at(target, reporter)
        if at is not None:
            found.append((-at, reporter, "fail_report"))
    verdicts = {reporter: _counts(state, reporter, target, oldest, needed)
                for reporter in {item[1] for item in found}}
    counted = [reporter for reporter, verdict in verdicts.items() if verdict[0]]
    rows: list[dict[str, Any]] = []
    for negative_at, reporter, source in heapq.nsmallest(limit, found):
        at = -negative_at
        verdict = verdicts[reporter]
        rows.append({"reporter": reporter, "source": source, "at_ms": at,
                     "age_ms": max(0, now_ms - at),
                     "expires_in_ms": max(0, at + validity + 1 - now_ms),
                     "counts": verdict[0], "why": verdict[1]})
    return rows, len(found), len(counted)


def _counts(state: MergeState, reporter: str, target: str, oldest: int,
            needed: int) -> tuple[bool, str]:
    owned = state.table.owned
    if reporter == target:
        return False, "a node's report about itself"
    if reporter not in owned:
        known = state.nodes.get(reporter)
        what = "unknown node" if known is None else "not a slot-serving master"
        return False, what
    if reporter not in state.reports and reporter not in state.failing.targets():
        return True, "slot-serving master"  # nobody reports it: the common case, O(1)
    against = reporters_of(reporter, oldest, state.reports, state.failing, owned)
    if len(against) >= needed:
        return False, (f"itself reported by {len(against)} masters (quorum {needed}): the "
                       "minority side of a partition")
    return True, "slot-serving master"


def explain_node(state: MergeState, node_id: str, now_ms: int,
                 limit: int = LIMIT) -> dict[str, Any] | None:
    """The evidence behind `node_id`'s state at `now_ms` (None: not known). The caller has
    run `state.refresh(now_ms)`."""
    node = state.nodes.get(node_id)
    if node is None:
        return None
    config = state.config
    timeout = config.node_timeout_ms
    owned = state.table.owned
    size = len(owned)
    needed = quorum(size)
    rows, total, counted = _reports(state, node_id, now_ms, limit)
    decided_by, symptom = _decision(state, node, now_ms, counted, needed)
    hello = node.hello
    replicas = _replicas_of(state, node_id, limit)
    doc: dict[str, Any] = {
        "node": node_id,
        "state": state_word(node.state),
        "decided_by": decided_by,
        "symptom": symptom,
        "fail_rule": state.fail_rule,
        "fail_rule_setting": state.fail_rule_setting,
        "node_timeout_ms": timeout,
        "report_validity_ms": config.report_validity_ms,
        "role": "master" if hello is None or node_id in owned else hello.role,
        "replicaof": None if hello is None else hello.replicaof,
        "slots": owned.get(node_id, 0),
        "config_epoch": node.epoch,
        "last_message": _age(node.last_seen_ms, now_ms),
        "last_heartbeat": _age(node.heartbeat_ms, now_ms),
        "pfail_since_ms": node.pfail_since_ms if node.state is not NodeState.OK else None,
        "fail_since_ms": node.fail_since_ms if node.state is NodeState.FAIL else None,
        "quorum": {"masters": size, "needed": needed, "reporters_counted": counted,
                   "sentinel": f"#quorum {counted}/{needed}"},
        "reports": rows,
        "reports_total": total,
        "replicas": replicas,
        "would_change": _would_change(state, node, now_ms, counted, needed),
    }
    return doc


def _decision(state: MergeState, node: Node, now_ms: int, counted: int,
              needed: int) -> tuple[str, str]:
    timeout = state.config.node_timeout_ms
    silent = now_ms - node.last_seen_ms
    if node.state is NodeState.OK:
        return "heard", (f"last message {silent} ms ago, within the node timeout of "
                         f"{timeout} ms; {counted} of the {needed} reporters a quorum "
                         "needs report it")
    if node.state is NodeState.PFAIL:
        return "silence", (f"no message for {silent} ms (node timeout {timeout} ms); "
                           f"#quorum {counted}/{needed}: not enough reporters to fail it")
    if counted >= needed:
        return "quorum", (f"{counted} slot-serving masters report it within "
                          f"{state.config.report_validity_ms} ms; a quorum is {needed} "
                          f"(#quorum {counted}/{needed})")
    if state.timer_rule and node.fail_since_ms >= node.pfail_since_ms + state.config.fail_after:
        return "timer", (f"fail? since {node.pfail_since_ms}, fail after "
                         f"{state.config.fail_after} ms more (timer rule: no reports seen)")
    return "history", (f"fail since {node.fail_since_ms}; the reports that made it fail "
                       f"no longer form a quorum (#quorum {counted}/{needed}), and fail "
                       "outlives its quorum until the node speaks again")


def _would_change(state: MergeState, node: Node, now_ms: int, counted: int,
                  needed: int) -> list[str]:
    config = state.config
    timeout = config.node_timeout_ms
    serves = node.id in state.table.owned
    redis_rule = not state.timer_rule
    out: list[str] = []
    if node.state is NodeState.OK:
        due = node.last_seen_ms + timeout
        out.append(f"no message for {max(0, due - now_ms)} ms more makes it fail?")
        if redis_rule:
            out.append(f"{needed - counted} more slot-serving masters reporting it within "
                       f"{config.report_validity_ms} ms make it fail, even while it speaks")
        return out
    if node.state is NodeState.PFAIL:
        out.append("any message from it clears fail?")
        if state.timer_rule:
            fail_at = node.pfail_since_ms + config.fail_after
            out.append(f"silence for {max(0, fail_at - now_ms)} ms more makes it fail "
                       f"(timer rule, fail after {config.fail_after} ms)")
            out.append(f"{needed - counted} more valid reporters make it fail now")
        else:
            out.append(f"{needed - counted} more slot-serving masters reporting it within "
                       f"{config.report_validity_ms} ms make it fail")
        return out
    if state.timer_rule:
        out.append("any message from it clears fail (timer rule)")
        return out
    if counted >= needed:
        out.append(f"the quorum holds while {needed} reporters renew their reports; fail is "
                   "kept after it expires, until the node speaks")
    if not serves:
        out.append("a message from it clears fail once fewer than a quorum report it (it "
                   "serves no slots)")
    else:
        undo_at = node.fail_since_ms + config.fail_undo_ms
        left = max(0, undo_at - now_ms + 1)
        out.append(f"a message from it clears fail after the undo time ({left} ms more) if "
                   "fewer than a quorum report it then")
        out.append("a replica promoted to take its slots ends its claim; then a message "
                   "from it clears fail")
    return out


def _replicas_of(state: MergeState, master: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if master not in state.table.owned:
        return found
    for node in state.nodes.values():
        hello = node.hello
        if hello is not None and hello.replicaof == master and node.id not in state.table.owned:
            found.append({"node": node.id, "state": state_word(node.state)})
            if len(found) >= limit:
                break
    found.sort(key=lambda item: str(item["node"]))
    return found


def explain_cluster(state: MergeState, now_ms: int, limit: int = LIMIT) -> dict[str, Any]:
    """The evidence behind `cluster_state` at `now_ms` (docs/merge-rules.md rule 5): coverage
    of the slots and the majority of the slot-serving masters. The caller has run `refresh`."""
    config = state.config
    owned = state.table.owned
    size = len(owned)
    needed = quorum(size)
    nodes = state.nodes
    down = sorted(m for m in owned if nodes[m].state is not NodeState.OK)
    failed = [m for m in down if nodes[m].state is NodeState.FAIL]
    unreachable = [_master(state, m, now_ms) for m in down[:limit]]
    uncovered = [_master(state, m, now_ms) for m in failed[:limit]]
    unreachable_total, uncovered_total = len(down), len(failed)
    reachable = size - unreachable_total
    assigned = state.table.assigned
    fail_slots = state.slots_in_state[NodeState.FAIL]
    coverage_ok = not config.require_full_coverage or (assigned == NUM_SLOTS
                                                       and fail_slots == 0)
    majority_ok = reachable >= needed
    symptom: list[str] = []
    would_change: list[str] = []
    if not majority_ok:
        symptom.append(f"{reachable} of {size} slot-serving masters reachable; a majority "
                       f"is {needed}")
        would_change.append(f"{needed - reachable} more slot-serving masters reachable")
    if not coverage_ok:
        if assigned < NUM_SLOTS:
            symptom.append(f"{NUM_SLOTS - assigned} slots have no owner")
            would_change.append("a node claiming the unassigned slots")
        if fail_slots:
            symptom.append(f"{fail_slots} slots are served by fail masters")
            would_change.append("a replica of each fail master promoted (it claims the "
                                "slots at a higher epoch), or the master speaking again "
                                "after the undo time")
    if not symptom:
        symptom.append(f"every slot served by a node that is not fail, {reachable} of {size} "
                       f"slot-serving masters reachable (a majority is {needed})")
        would_change.append(f"{reachable - needed + 1} of the reachable slot-serving masters "
                            "going fail? or fail")
        if fail_slots == 0 and config.require_full_coverage:
            would_change.append("a master going fail with no replica promoted")
    return {
        "cluster_state": "ok" if state.cluster_ok else "fail",
        "symptom": "; ".join(symptom),
        "fail_rule": state.fail_rule,
        "fail_rule_setting": state.fail_rule_setting,
        "node_timeout_ms": config.node_timeout_ms,
        "coverage": {"required": config.require_full_coverage, "ok": coverage_ok,
                     "slots_assigned": assigned, "slots_fail": fail_slots,
                     "slots_pfail": state.slots_in_state[NodeState.PFAIL],
                     "fail_masters": uncovered, "fail_masters_total": uncovered_total},
        "majority": {"ok": majority_ok, "masters": size, "needed": needed,
                     "reachable": reachable, "unreachable": unreachable,
                     "unreachable_total": unreachable_total},
        "known_nodes": len(nodes),
        "current_epoch": state.current_epoch,
        "would_change": would_change,
    }


def _master(state: MergeState, master: str, now_ms: int) -> dict[str, Any]:
    node = state.nodes[master]
    return {"node": master, "state": state_word(node.state),
            "slots": state.table.owned[master], "last_message": _age(node.last_seen_ms, now_ms)}
