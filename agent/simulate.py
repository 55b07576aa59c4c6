"""``clusterwatch simulate``: a realistic cluster, published as node messages.

N masters with R replicas each; the 16384 slots split evenly over the masters; every node
sends its ``hello``, the masters their ``slots``, then every node a ``heartbeat`` at ``rate``
per second carrying status fields (services, partitions, thread pool, requests, ksqlDB
queries and store lags) for the status commands to show.

Scripted faults, each at a time in seconds from the start (``5``, ``5s``, ``500ms``):

    stop <node> at <t>                      the node goes silent
    resume <node> at <t>                    a silent node speaks again (full state)
    partition <node>[,<node>...] at <t> for <d>
                                            those nodes are silent for d, then resume
    failover <master> at <t>                its first live replica takes its slots with
                                            epoch = current epoch + 1; the old master and
                                            the other replicas follow the new master
    migrate <slots> from <a> to <b> at <t>  b claims the slots (a-b[,c-d]) at a bumped
                                            epoch, a releases them
    leave <node> at <t>                     the node leaves on purpose

Nodes are named ``m1..mN`` (masters) and ``m1r1..mNrR`` (replicas); a full node id works too.
Ids are ``sha1("<scope>:<host>:<port>")``: the same on every run, and different from the
``serve --demo`` cluster's (scope ``clusterwatch-demo``) at the same addresses.
Masters that still speak list the nodes silent for ``node_timeout_ms`` in their heartbeats'
``failing`` (as the agent does from a real node's ``fail?`` flags), so a node that speaks
again is no longer listed by the next heartbeats.

``Simulation`` is driven by time passed in; ``run_local`` feeds an in-process bus (the
``serve --demo`` cluster) and ``run_remote`` a server over RESP with ``BUS PUBLISH``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import hiredis
import msgspec

from clusterwatch.cluster.ids import derive_id

from .respclient import RespClient, RespError

__all__ = [
    "Fault",
    "PublishTally",
    "Simulation",
    "demo_simulation",
    "parse_fault",
    "parse_script",
    "run_local",
    "run_remote",
]

log = logging.getLogger("clusterwatch.simulate")

NUM_SLOTS = 16384
# Messages per BUS PUBLISH request.
_CHUNK = 500

FaultKind = Literal["stop", "resume", "partition", "failover", "migrate", "leave"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted event. ``nodes`` is ``(source, target)`` for a migration."""

    kind: FaultKind
    at: float
    nodes: tuple[str, ...]
    duration: float = 0.0
    slots: tuple[tuple[int, int], ...] = ()


_TIME = r"(\d+(?:\.\d+)?)(ms|s)?"
_FAULTS: dict[str, re.Pattern[str]] = {
    "stop": re.compile(rf"stop (\S+) at {_TIME}"),
    "resume": re.compile(rf"resume (\S+) at {_TIME}"),
    "leave": re.compile(rf"leave (\S+) at {_TIME}"),
    "failover": re.compile(rf"failover (\S+) at {_TIME}"),
    "partition": re.compile(rf"partition (\S+) at {_TIME} for {_TIME}"),
    "migrate": re.compile(rf"migrate (\S+) from (\S+) to (\S+) at {_TIME}"),
}


def _seconds(value: str, unit: str | None) -> float:
    return float(value) / 1000 if unit == "ms" else float(value)


def _slot_ranges(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        start, _, end = part.partition("-")
        first, last = int(start), int(end or start)
        if not 0 <= first <= last < NUM_SLOTS:
            raise ValueError(f"bad slot range {part!r}")
        ranges.append((first, last))
    return tuple(ranges)


def parse_fault(text: str) -> Fault:
    """One fault line, e.g. ``partition m1,m1r1 at 10 for 5``; ``ValueError`` if malformed."""
    line = " ".join(text.split())
    kind = line.split(" ", 1)[0]
    pattern = _FAULTS.get(kind)
    match = pattern.fullmatch(line) if pattern else None
    if match is None:
        raise ValueError(f"cannot parse fault {text.strip()!r}; expected one of: "
                         "stop|resume|leave|failover <node> at <t>, "
                         "partition <nodes> at <t> for <d>, "
                         "migrate <slots> from <a> to <b> at <t>")
    g = match.groups()
    if kind == "partition":
        return Fault("partition", _seconds(g[1], g[2]), tuple(g[0].split(",")),
                     duration=_seconds(g[3], g[4]))
    if kind == "migrate":
        return Fault("migrate", _seconds(g[3], g[4]), (g[1], g[2]), slots=_slot_ranges(g[0]))
    return Fault(kind, _seconds(g[1], g[2]), (g[0],))  # type: ignore[arg-type]


def parse_script(text: str) -> list[Fault]:
    """A fault script: one fault per line; blank lines and ``#`` comments are skipped."""
    faults = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            faults.append(parse_fault(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return faults


@dataclass(slots=True)
class SimNode:
    name: str
    id: str
    host: str
    port: int
    index: int
    role: Literal["master", "replica"]
    replicaof: str | None
    epoch: int
    slots: set[int] = field(default_factory=set)
    claimed: bool = False
    seq: int = 0
    silent: bool = False
    silent_since: float = 0.0
    left: bool = False
    next_beat: float = 0.0
    beats: int = 0


def _runs(slots: Iterable[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for slot in sorted(slots):
        if runs and runs[-1][1] == slot - 1:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot])
    return runs


# (query id, source topic, state store): ksqlDB's naming for two persistent queries.
_DEMO_QUERIES = (
    ("CTAS_ORDERS_BY_REGION_3", "orders", "Aggregate-Aggregate-Materialize"),
    ("CTAS_PAYMENTS_PER_MINUTE_7", "payments", "Aggregate-GroupBy-repartition-store"),
)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Simulation:
    """The simulated cluster's state and the messages it sends; time is passed in.

    Sequence numbers follow the wall clock (``max(last + 1, now_ms)``), so a restarted
    simulator is not taken for a replay of its previous run.
    """

    def __init__(self, *, masters: int = 3, replicas: int = 1, rate: float = 1.0,
                 faults: Sequence[Fault] = (), host: str = "127.0.0.1", base_port: int = 30001,
                 node_timeout_ms: int = 15_000, hostnames: bool = False,
                 scope: str = "clusterwatch-simulate",
                 seq_clock: Callable[[], int] = _wall_ms) -> None:
        if masters < 1 or masters > NUM_SLOTS:
            raise ValueError("masters must be between 1 and 16384")
        if replicas < 0 or rate <= 0:
            raise ValueError("replicas must be >= 0 and rate > 0")
        if base_port < 1 or base_port + masters * (replicas + 1) > 55536:
            raise ValueError("ports would leave 1..55535 (bus ports are port + 10000)")
        self.masters = masters
        self.replicas_per_master = replicas
        self.interval = 1.0 / rate
        self.node_timeout = node_timeout_ms / 1000
        self.hostnames = hostnames
        self.scope = scope
        self._seq_clock = seq_clock
        self.nodes: list[SimNode] = []
        self._by_ref: dict[str, SimNode] = {}
        total = masters * (replicas + 1)
        port = base_port
        # redis-cli --cluster create's split: 0-5460, 5461-10922, 10923-16383 for three.
        per_master = NUM_SLOTS / masters
        first, cursor = 0, 0.0
        for m in range(masters):
            last = NUM_SLOTS - 1 if m == masters - 1 else math.floor(cursor + per_master - 0.5)
            master = self._add(f"m{m + 1}", host, port, "master", None, epoch=m + 1)
            master.slots = set(range(first, last + 1))
            first, cursor = last + 1, cursor + per_master
            master.claimed = True
            port += 1
            for r in range(replicas):
                self._add(f"m{m + 1}r{r + 1}", host, port, "replica", master.id, epoch=m + 1)
                port += 1
        # Spread the heartbeats evenly over one interval.
        for i, node in enumerate(self.nodes):
            node.next_beat = self.interval * (i + 1) / total
        self._faults = sorted(faults, key=lambda f: f.at)
        for fault in self._faults:
            for ref in fault.nodes:
                self.node(ref)
            if fault.kind == "failover" and self.node(fault.nodes[0]).role != "master":
                raise ValueError(f"failover {fault.nodes[0]}: not a master")

    def _add(self, name: str, host: str, port: int, role: Literal["master", "replica"],
             replicaof: str | None, *, epoch: int) -> SimNode:
        node = SimNode(name, derive_id(host, port, scope=self.scope), host, port,
                       len(self.nodes), role, replicaof, epoch)
        self.nodes.append(node)
        self._by_ref[name] = self._by_ref[node.id] = node
        return node

    def node(self, ref: str) -> SimNode:
        """A node by name (``m1``, ``m2r1``) or id; ``ValueError`` if unknown."""
        try:
            return self._by_ref[ref]
        except KeyError:
            raise ValueError(f"unknown node {ref!r} (nodes are m1..m{self.masters}"
                             f"{', m1r1...' if self.replicas_per_master else ''})") from None

    @property
    def current_epoch(self) -> int:
        return max(node.epoch for node in self.nodes)

    # --- messages ---------------------------------------------------------------------

    def _message(self, node: SimNode, kind: str, **fields: Any) -> bytes:
        node.seq = max(node.seq + 1, self._seq_clock())
        return msgspec.json.encode({"v": 1, "type": kind, "node": node.id,
                                    "epoch": node.epoch, "seq": node.seq, **fields})

    def _hello(self, node: SimNode) -> bytes:
        extra: dict[str, Any] = {"hostname": f"node-{node.name}"} if self.hostnames else {}
        if node.replicaof is not None:
            extra["replicaof"] = node.replicaof
        return self._message(node, "hello", addr=f"{node.host}:{node.port}@{node.port + 10000}",
                             role=node.role, **extra)

    def _slots(self, node: SimNode) -> bytes:
        node.claimed = True
        return self._message(node, "slots", ranges=_runs(node.slots))

    def _heartbeat(self, node: SimNode, failing: list[str] | None = None) -> bytes:
        node.beats += 1
        extra: dict[str, Any] = {} if failing is None else {"failing": failing}
        master = node if node.role == "master" or node.replicaof is None \
            else self._by_ref.get(node.replicaof, node)
        partition = master.index
        load = (node.beats * 7 + node.index * 13) % 50
        return self._message(
            node, "heartbeat",
            node_state="RUNNING",
            transaction_id=f"tx-{node.epoch}-{len(node.slots)}",
            config_state="CONFIGURED",
            serving=True,
            plugins_initialized=True,
            service_role=node.role,
            services={
                "api": {"version": "1.4.2", "state": "running",
                        "status": {"critical": {"listening": True},
                                   "info": {"connections": load}}},
                "storage": {"version": "1.4.2", "state": "running",
                            "status": {"critical": {"writable": node.role == "master"},
                                       "info": {"used_bytes": 1_000_000 + 4096 * load}}},
            },
            partitions=[{"id": partition,
                         "role": "leader" if node.role == "master" else "follower",
                         "health": "healthy"}],
            thread_pool={"active": load % 16, "max": 16, "queued": 0},
            requests={"active": load % 8, "max": 100, "total": node.beats * 100 + load,
                      "per_second": round(100 / self.interval + load / 4, 2)},
            **self._query_status(node, partition, load),
            **extra,
        )

    def _query_status(self, node: SimNode, partition: int, load: int) -> dict[str, Any]:
        """ksqlDB-style queries and store lags: each master runs the two persistent queries
        for its partition of the ``orders`` and ``payments`` topics (active, caught up), each
        replica keeps a standby of its master's partition that lags a little behind."""
        active = node.role == "master"
        end = 10_000 + node.beats * 25  # the changelog grows with time
        behind = 0 if active else load % 12
        queries: dict[str, Any] = {}
        lags: dict[str, Any] = {}
        for query, topic, store in _DEMO_QUERIES:
            part = [{"topic": topic, "partition": partition}]
            queries[query] = {"active_stores": [store] if active else [],
                              "active_partitions": part if active else [],
                              "standby_stores": [] if active else [store],
                              "standby_partitions": [] if active else part}
            lags[store] = {str(partition): {"current_offset": end - behind,
                                            "end_offset": end, "offset_lag": behind}}
        return {"queries": queries, "store_lags": lags}

    def _full_state(self, node: SimNode) -> list[bytes]:
        batch = [self._hello(node)]
        if node.role == "master" or node.claimed:
            batch.append(self._slots(node))
        batch.append(self._heartbeat(node))
        return batch

    def initial(self) -> list[bytes]:
        """Every node's hello, the masters' slots and a first heartbeat, at t = 0."""
        return [data for node in self.nodes for data in self._full_state(node)]

    def resend(self) -> list[bytes]:
        """The full state of every node that speaks (after reconnecting to a server that
        may have restarted and forgotten everything)."""
        return [data for node in self.nodes if not node.silent and not node.left
                for data in self._full_state(node)]

    def step(self, t: float) -> list[bytes]:
        """The messages due at ``t`` seconds since the start: scripted faults, then
        heartbeats (each live master's with its `failing` list)."""
        batch: list[bytes] = []
        while self._faults and self._faults[0].at <= t:
            batch.extend(self._apply(self._faults.pop(0), t))
        silent = [n for n in self.nodes
                  if n.silent and not n.left and t - n.silent_since >= self.node_timeout]
        for node in self.nodes:
            if node.silent or node.left or node.next_beat > t:
                continue
            reporting = node.role == "master" and bool(node.slots)
            batch.append(self._heartbeat(
                node, [target.id for target in silent] if reporting else None))
            node.next_beat += self.interval
            if node.next_beat <= t:  # fell behind (a stall): do not burst to catch up
                node.next_beat = t + self.interval
        return batch

    def _apply(self, fault: Fault, t: float) -> list[bytes]:
        log.info("fault", extra={"fault": fault.kind, "nodes": ",".join(fault.nodes),
                                 "at": fault.at})
        nodes = [self.node(ref) for ref in fault.nodes]
        if fault.kind in ("stop", "partition"):
            for node in nodes:
                if not node.silent:
                    node.silent, node.silent_since = True, t
            if fault.kind == "partition":
                resume = [Fault("resume", fault.at + fault.duration, (n.id,)) for n in nodes]
                self._faults = sorted([*self._faults, *resume], key=lambda f: f.at)
            return []
        if fault.kind == "resume":
            node = nodes[0]
            if not node.silent or node.left:
                return []
            node.silent = False
            node.next_beat = t + self.interval
            return self._full_state(node)
        if fault.kind == "leave":
            node = nodes[0]
            if node.left:
                return []
            node.left = True
            return [] if node.silent else [self._message(node, "leave")]
        if fault.kind == "failover":
            return self._failover(nodes[0])
        return self._migrate(nodes[0], nodes[1], fault.slots)

    def _failover(self, master: SimNode) -> list[bytes]:
        candidates = [n for n in self.nodes if n.replicaof == master.id
                      and not n.silent and not n.left]
        if not candidates:
            log.warning("failover: no live replica", extra={"master": master.name})
            return []
        promoted = candidates[0]
        epoch = self.current_epoch + 1
        promoted.role, promoted.replicaof, promoted.epoch = "master", None, epoch
        promoted.slots, master.slots = master.slots, set()
        batch = [self._hello(promoted), self._slots(promoted)]
        # The old master and its other replicas follow the new master at its epoch.
        for node in [master, *candidates[1:],
                     *(n for n in self.nodes if n.replicaof == master.id
                       and n not in candidates)]:
            node.role, node.replicaof, node.epoch = "replica", promoted.id, epoch
            if not node.silent and not node.left:
                batch.append(self._hello(node))
                if node.claimed:
                    batch.append(self._slots(node))
        return batch

    def _migrate(self, source: SimNode, target: SimNode,
                 ranges: tuple[tuple[int, int], ...]) -> list[bytes]:
        moving = {slot for first, last in ranges for slot in range(first, last + 1)}
        moving &= source.slots
        if not moving or target.role != "master":
            log.warning("migrate: nothing to move", extra={"from": source.name,
                                                           "to": target.name})
            return []
        # Resharding bumps the importing master's epoch without agreement (Redis).
        target.epoch = self.current_epoch + 1
        target.slots |= moving
        source.slots -= moving
        batch = [] if target.silent else [self._slots(target)]
        if not source.silent:
            batch.append(self._slots(source))
        return batch


def demo_simulation(*, node_timeout_ms: int = 15_000) -> Simulation:
    """The ``serve --demo`` cluster: 3 masters, 3 replicas, one heartbeat a second."""
    return Simulation(masters=3, replicas=1, rate=1.0, node_timeout_ms=node_timeout_ms,
                      base_port=30001, scope="clusterwatch-demo")


# --- running ----------------------------------------------------------------------------


@dataclass(slots=True)
class PublishTally:
    """Outcomes of everything published."""

    applied: int = 0
    stale: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, kind: str, error: str = "") -> None:
        if kind == "applied":
            self.applied += 1
        elif kind == "stale":
            self.stale += 1
        else:
            self.rejected += 1
            if len(self.errors) < 10:
                self.errors.append(error)
                log.warning("message rejected", extra={"error": error})

    def summary(self) -> dict[str, int]:
        return {"applied": self.applied, "stale": self.stale, "rejected": self.rejected}


async def _run(sim: Simulation, send: Callable[[list[bytes]], Awaitable[None]], *,
               tick: float, duration: float | None, started: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time() - started
        if duration is not None and t >= duration:
            return
        batch = sim.step(t)
        if batch:
            await send(batch)
        await asyncio.sleep(tick)


async def run_local(sim: Simulation, publish: Callable[[list[bytes]], object], *,
                    tick: float = 0.05, duration: float | None = None) -> None:
    """Feed an in-process bus; ``sim.initial()`` is expected to be published already."""

    async def send(batch: list[bytes]) -> None:
        publish(batch)

    await _run(sim, send, tick=tick, duration=duration,
               started=asyncio.get_running_loop().time())


async def run_remote(sim: Simulation, client: RespClient, *, tick: float = 0.05,
                     duration: float | None = None, once: bool = False) -> PublishTally:
    """Publish to a server with ``BUS PUBLISH``; reconnect (and resend every node's state)
    when the connection drops."""
    tally = PublishTally()
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = True
    backoff = 0.1

    async def send(batch: list[bytes]) -> None:
        for i in range(0, len(batch), _CHUNK):
            replies = await client.call(b"BUS", b"PUBLISH", *batch[i:i + _CHUNK])
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    tally.count("rejected", str(reply))
                else:
                    tally.count(bytes(reply).split(b":", 1)[0].decode())

    while True:
        try:
            if not client.connected:
                await client.connect()
                await send(sim.initial() if first else sim.resend())
                if not first:
                    log.info("reconnected, state resent", extra={"server": client.port})
                first, backoff = False, 0.1
            if once:
                return tally
            remaining = None if duration is None else duration - (loop.time() - started)
            if remaining is not None and remaining <= 0:
                return tally
            await _run(sim, send, tick=tick, duration=duration, started=started)
            return tally
        except (TimeoutError, OSError) as exc:
            await client.close()
            if duration is not None and loop.time() - started >= duration:
                return tally
            log.warning("server unreachable, retrying", extra={
                "host": client.host, "port": client.port, "error": str(exc) or type(exc).__name__,
                "retry_in": round(backoff, 2)})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        except RespError as exc:
            await client.close()
            raise SystemExit(f"clusterwatch simulate: the server refused: {exc}") from None


def describe(sim: Simulation) -> list[str]:
    """One line per node: name, id, address, role."""
    return [f"{n.name} {n.id} {n.host}:{n.port} {n.role}"
            + (f" of {sim.node(n.replicaof).name}" if n.replicaof else "")
            for n in sim.nodes]
