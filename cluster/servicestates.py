"""The state of every service instance, kept per node with a deadline heap for the timeout.

A node's services are `(name, state)` pairs: the state its last heartbeat reported, or
`unknown` once that heartbeat is older than the timeout or while the model's verdict on the
node is not `reachable` (as `STATUS SERVICES` reports such entries; the services view logs a
node whose verdict moved as changed). An update looks only at the nodes whose services
changed (the services view's node log) and at the nodes whose deadline (heartbeat time +
timeout) passed since the last update, found on a heap: a node that stays stale is not
looked at again, so the cost follows what changed, not the size of the cluster. Nodes whose
pairs changed are logged (`changes`). A fresh node has one entry on the heap, moved to its
newer deadline when popped, so the heap holds about one entry per node and a heartbeat costs
no heap operation.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Mapping, Sequence
from typing import NamedTuple, Protocol

from clusterwatch.cluster.changes import ChangeLog

__all__ = ["ServiceStates", "StateListing", "states_at"]

Pairs = tuple[tuple[str, str], ...]


class _Status(Protocol):
    @property
    def state(self) -> str: ...


class _Instance(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def status(self) -> _Status: ...


class _Node(Protocol):
    @property
    def received_ms(self) -> int: ...
    @property
    def instances(self) -> Sequence[_Instance]: ...


class ServiceStates(NamedTuple):
    """`by_node`: each reporting node's `(name, state)` pairs, in node id order after a reset;
    `changes` logs the nodes whose pairs changed. Both are live: read them before the next
    update."""

    by_node: Mapping[str, Pairs]
    changes: ChangeLog


def states_at(node: _Node, timeout_ms: int, now_ms: int, down: bool = False) -> Pairs:
    """A node's `(name, state)` pairs at `now_ms`: all `unknown` past the timeout or while
    the node is `down` (not reachable)."""
    if down or node.received_ms + timeout_ms < now_ms:
        return tuple((inst.key, "unknown") for inst in node.instances)
    return tuple((inst.key, inst.status.state) for inst in node.instances)


class StateListing:
    """`ServiceStates` at one timeout, brought up to date by `update`."""

    __slots__ = ("_cursor", "_deadlines", "_now", "_pairs", "_queued", "changes", "timeout_ms")

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._cursor = -1  # in the services view's node log
        self._now = -1
        self._pairs: dict[str, Pairs] = {}
        # (received + timeout, node id) of nodes fresh when pushed, and each queued node's
        # earliest deadline on the heap: a newer heartbeat moves it when it is popped.
        self._deadlines: list[tuple[int, str]] = []
        self._queued: dict[str, int] = {}
        self.changes = ChangeLog()

    def update(self, by_node: Mapping[str, _Node], node_log: ChangeLog,
               now_ms: int, down: Container[str] = ()) -> ServiceStates:
        """`down`: the nodes that are not reachable."""
        changed, self._cursor = node_log.since(self._cursor)
        if changed is None or now_ms < self._now:  # new members, or the clock stepped back
            self._rebuild(by_node, now_ms, down)
        else:
            todo = set(changed)
            deadlines = self._deadlines
            queued = self._queued
            while deadlines and deadlines[0][0] < now_ms:
                deadline, node_id = heapq.heappop(deadlines)
                if queued.get(node_id) == deadline:
                    del queued[node_id]
                node = by_node.get(node_id)
                if node is not None:
                    todo.add(node_id)
                    self._queue(node, node_id, now_ms)
            pairs = self._pairs
            for node_id in todo:
                node = by_node.get(node_id)
                if node is None:  # not without a reset of the node log
                    continue
                now_pairs = states_at(node, self.timeout_ms, now_ms, node_id in down)
                if now_pairs != pairs.get(node_id):
                    pairs[node_id] = now_pairs
                    self.changes.add(node_id)
                if node_id in changed:
                    self._queue(node, node_id, now_ms)
            if len(deadlines) > 2 * len(by_node) + 64:  # only if clocks keep stepping back
                self._reheap(by_node, now_ms)
        self._now = now_ms
        return ServiceStates(self._pairs, self.changes)

    def _queue(self, node: _Node, node_id: str, now_ms: int) -> None:
        """Have a fresh node popped by its deadline (an earlier entry for it does)."""
        deadline = node.received_ms + self.timeout_ms
        if deadline < now_ms:
            return
        queued = self._queued.get(node_id)
        if queued is None or deadline < queued:
            heapq.heappush(self._deadlines, (deadline, node_id))
            self._queued[node_id] = deadline

    def _rebuild(self, by_node: Mapping[str, _Node], now_ms: int,
                 down: Container[str]) -> None:
        self._pairs = {node_id: states_at(node, self.timeout_ms, now_ms, node_id in down)
                       for node_id, node in by_node.items()}
        self._reheap(by_node, now_ms)
        self.changes.fit(len(by_node))
        self.changes.reset()

    def _reheap(self, by_node: Mapping[str, _Node], now_ms: int) -> None:
        timeout = self.timeout_ms
        self._queued = {node_id: node.received_ms + timeout for node_id, node in by_node.items()
                        if node.received_ms + timeout >= now_ms}
        self._deadlines = [(deadline, node_id) for node_id, deadline in self._queued.items()]
        heapq.heapify(self._deadlines)
