"""The cluster facts HEALTH's cluster checks read, kept per node between model versions.

Each node contributes whether it is reachable (the model's verdict, cluster/liveness.py),
its last-seen time, and the partitions its last heartbeat reports (every id, the ids it
leads, the ids it leads healthily); the facts are sums over the contributions. A new model
version re-counts only the nodes the model logged as changed (`ClusterModel.changes`), so
its cost follows what changed, plus the unreachable nodes and, while some partition lacks a
healthy leader, the partitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from msgspec import Struct

from clusterwatch.cluster.liveness import reachable
from clusterwatch.cluster.messages import Heartbeat
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.records import NodeRow

__all__ = ["Facts", "FactsKeeper"]


class Facts(NamedTuple):
    """What the cluster checks need from the model at one version."""

    nodes: int
    unreachable: tuple[str, ...]
    last_reachable_ms: int | None  # when the last reachable node went pfail; None if any is ok
    partitions: tuple[int, ...]
    led: int  # partitions with a leader on a reachable node
    sick: tuple[int, ...]  # partitions without a healthy leader on a reachable node
    leader_lost_ms: int | None  # when the last reachable leader went pfail
    slots_assigned: bool
    cluster_ok: bool


class _Node(Struct, frozen=True, gc=False):
    """One node's contribution, kept until its next change: untracked by the GC."""

    ok: bool
    last_seen: int
    parts: tuple[int, ...]
    led: tuple[int, ...]
    healthy: tuple[int, ...]


def _contribution(row: NodeRow, bus_fresh: bool) -> _Node:
    _id, state, last_seen, beat, _received, _addr = row
    parts, led, healthy = _partitions(beat)
    return _Node(reachable(state, bus_fresh), last_seen, parts, led, healthy)


def _partitions(beat: Heartbeat | None) -> tuple[tuple[int, ...], ...]:
    if beat is None or not beat.partitions:
        return (), (), ()
    parts = tuple(p.id for p in beat.partitions)
    led = tuple(p.id for p in beat.partitions if p.role == "leader")
    healthy = tuple(p.id for p in beat.partitions if p.role == "leader" and p.health == "healthy")
    return parts, led, healthy


class FactsKeeper:
    """`Facts` for one model, rebuilt per version from the changed nodes' contributions."""

    def __init__(self, model: ClusterModel) -> None:
        self._model = model
        self._version = -1
        self._cursor = -1
        self._facts: Facts | None = None
        self._nodes: dict[str, _Node] = {}
        self._unreachable: set[str] = set()
        # partition id -> how many nodes report it / lead it while ok / lead it healthily while ok
        self._universe: dict[int, int] = {}
        self._led: dict[int, int] = {}
        self._healthy: dict[int, int] = {}
        self._sorted: tuple[int, ...] | None = ()

    def facts(self, now_ms: int) -> Facts:
        model = self._model
        if self._facts is not None and self._version == model.version:
            return self._facts
        changed, self._cursor = model.changes.since(self._cursor)
        if changed is None:
            self._reset()
            for row in model.node_rows():
                self._add(row[0], _contribution(row, model.bus_fresh))
        else:
            for node_id in set(changed):
                old = self._nodes.pop(node_id, None)
                if old is not None:
                    self._remove(node_id, old)
                now_row = model.node_row(node_id)
                if now_row is not None:
                    self._add(node_id, _contribution(now_row, model.bus_fresh))
        self._facts = self._build(now_ms)
        self._version = model.version
        return self._facts

    def _build(self, now_ms: int) -> Facts:
        model = self._model
        timeout = model.config.node_timeout_ms
        nodes = self._nodes
        unreachable = self._unreachable
        if self._sorted is None:
            self._sorted = tuple(sorted(self._universe))
        partitions = self._sorted
        last_ok = max((nodes[n].last_seen + timeout for n in unreachable), default=-1)
        lost = max((nodes[n].last_seen + timeout for n in unreachable if nodes[n].led),
                   default=-1)
        healthy = self._healthy
        sick = () if len(healthy) == len(partitions) else tuple(
            p for p in partitions if p not in healthy)
        return Facts(
            nodes=len(nodes),
            unreachable=tuple(sorted(unreachable)),
            last_reachable_ms=None if len(unreachable) < len(nodes) or last_ok < 0 else last_ok,
            partitions=partitions,
            led=len(self._led),
            sick=sick,
            leader_lost_ms=None if self._led or lost < 0 else lost,
            slots_assigned=model.summary(now_ms).slots_assigned > 0,
            cluster_ok=model.cluster_state == "ok",
        )

    def _reset(self) -> None:
        self._nodes = {}
        self._unreachable = set()
        self._universe = {}
        self._led = {}
        self._healthy = {}
        self._sorted = ()

    def _add(self, node_id: str, node: _Node) -> None:
        self._nodes[node_id] = node
        if not node.ok:
            self._unreachable.add(node_id)
        self._count(self._universe, node.parts, 1, track=True)
        if node.ok:
            self._count(self._led, node.led, 1)
            self._count(self._healthy, node.healthy, 1)

    def _remove(self, node_id: str, node: _Node) -> None:
        self._unreachable.discard(node_id)
        self._count(self._universe, node.parts, -1, track=True)
        if node.ok:
            self._count(self._led, node.led, -1)
            self._count(self._healthy, node.healthy, -1)

    def _count(self, counts: dict[int, int], ids: Iterable[int], step: int, *,
               track: bool = False) -> None:
        """Add `step` to each id's count; an id whose count reaches 0 is dropped."""
        for part in ids:
            count = counts.get(part, 0) + step
            if count:
                counts[part] = count
            else:
                del counts[part]
            if track and (count == 0 or count == step):  # an id appeared or disappeared
                self._sorted = None
