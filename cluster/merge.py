"""Theory of operation: how node messages fold into the cluster model.

The model is a function of the messages it applied and of the receive times it was given
(`now_ms`: the server's wall clock, or on the Redis-stream bus the bus clock, the same for
every instance that reads the same entries). Nothing here reads a clock; a sender's `ts_ms`
is informational. `MergeState.apply` applies one message, `refresh` what time does:

1. Per-node order: a message at or below its node's last applied `(epoch, seq)` is stale,
   counted, never applied, so re-delivery and reordering are harmless.
2. Epochs: `current_epoch`, the largest epoch applied messages carry or report, never falls.
3. Slots bind as Redis binds them (cluster/slots.py): a slot stays with its owner until a
   claim at a higher epoch takes it (ties: the smaller id) or the owner releases it, leaves
   or is forgotten, so no interleaving of a move leaves a slot unowned.
4. Order independence: any interleaving of the same per-node sequences at the same receive
   times gives the same model, but for `fail` and forgets, which are history as in Redis.
5. Liveness: a node silent for `node_timeout` is `fail?`; `fail` comes from a quorum of the
   slot-serving masters' reports (`redis`), a timer (`timer`), or the one then the other
   (`auto`). Every state change is checked against `TRANSITIONS`.
6. Invalid input: a message that fails validation never reaches this module.
7. Who speaks for a node: decided before a message gets here (cluster/publishers.py).
8. Forgetting follows the cluster: a node a quorum lists as forgotten is forgotten as
   CLUSTER FORGET forgets it.

A node enters the table with its first applied message (only a `hello` under
`require_hello`); nodes, tombstones and report targets are bounded by `max_nodes`. For the
views: `version` rises with every change, `topology_version` and `slot_version` only with
what they name, and `changes` logs every node whose record changed. `next_deadline` bounds
the next time-driven transition: `refresh` before it is free, and times are exact, so
states never depend on how often it runs.

Each rule in full, and what each message does to its sender's record: docs/merge-rules.md.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.compact import compact_heartbeat, compact_hello
from clusterwatch.cluster.config import ModelConfig
from clusterwatch.cluster.events import (
    ClusterEvent,
    ClusterStateChanged,
    EpochChanged,
    NodeJoined,
    NodeLeft,
    NodeStateChanged,
    SlotsMoved,
)
from clusterwatch.cluster.failure import (
    FailureReports,
    Listings,
    fails_by_quorum,
    forgetters,
    quorum,
    reporters_of,
)
from clusterwatch.cluster.messages import (
    MESSAGE_TYPES,
    Address,
    FailReport,
    Heartbeat,
    Hello,
    Leave,
    MessageError,
    NodeMessage,
    Slots,
    parse_addr,
)
from clusterwatch.cluster.records import APPLIED, NodeState, Outcome
from clusterwatch.cluster.slots import NUM_SLOTS, ClaimResult, SlotTable

__all__ = ["TRANSITIONS", "IllegalTransitionError", "MergeState", "Node"]

NEVER: Final = 2**63
_OK: Final = NodeState.OK
_PFAIL: Final = NodeState.PFAIL
_FAIL: Final = NodeState.FAIL
_NO_IDS: Final[frozenset[str]] = frozenset()

# Rule 5's transitions, each with what takes it; `_set_state` refuses any other (a state
# set to itself included: it would emit a change that is none).
TRANSITIONS: Final[Mapping[NodeState, frozenset[NodeState]]] = {
    # silent for node_timeout (refresh); a quorum reports it, or a snapshot says fail
    _OK: frozenset({_PFAIL, _FAIL}),
    # it spoke (_refresh_sender); the timer's fail_after (refresh), or a quorum (_judge)
    _PFAIL: frozenset({_OK, _FAIL}),
    # it spoke where its rule clears fail (_refresh_sender, _release); a snapshot says it
    # was not fail (restore_fail: pfail if silent, else ok)
    _FAIL: frozenset({_OK, _PFAIL}),
}


class IllegalTransitionError(RuntimeError):
    """A liveness change that rule 5 does not make: a bug in this module."""


class Node:
    """The mutable record of one node; only `MergeState` writes it."""

    __slots__ = (
        "address",
        "epoch",
        "fail_since_ms",
        "heartbeat",
        "heartbeat_ms",
        "hello",
        "id",
        "last_seen_ms",
        "open_slots",
        "pfail_since_ms",
        "seq",
        "state",
    )

    def __init__(self, node_id: str, epoch: int, seq: int, now_ms: int) -> None:
        self.id = node_id
        self.epoch = epoch
        self.seq = seq
        self.last_seen_ms = now_ms
        self.state = _OK
        self.pfail_since_ms = 0
        self.fail_since_ms = 0
        self.hello: Hello | None = None
        self.address: Address | None = None
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_ms: int | None = None
        # CLUSTER NODES' `[slot->-id]` / `[slot-<-id]` entries, each after a space.
        self.open_slots = ""


class MergeState:
    """Nodes, claims, failure reports, epochs and counters, changed only by the rules above."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._timeout = config.node_timeout_ms
        self._fail_after = config.fail_after
        self._validity = config.report_validity_ms
        self._undo = config.fail_undo_ms
        self.fail_rule_setting = config.fail_rule
        # The timer makes pfail nodes fail: `timer`, or `auto` before any report.
        self.timer_rule = config.fail_rule != "redis"
        self.nodes: dict[str, Node] = {}
        self.left: dict[str, tuple[int, int]] = {}
        self.banned: dict[str, int] = {}  # forgotten node -> time its ban ends
        # Nodes rule 8 forgot, with their tombstones, until they rejoin (for snapshots, which
        # must not bring them back); at most max_nodes, the oldest dropped.
        self.cluster_forgotten: dict[str, tuple[int, int]] = {}
        self._max_nodes = config.max_nodes
        self._require_hello = config.require_hello
        self._forget_after = config.forget_after_ms
        self.table = SlotTable()
        self.reports = FailureReports()
        self.failing = Listings()
        self.flagged = Listings()  # heartbeats' `failed` lists: Redis's FAIL flags
        # Reporters whose latest heartbeat carried `failed` (even empty): their `failing`
        # entries are FAILs only where `failed` says so.
        self._flaggers: set[str] = set()
        # Senders that hold a list of any kind (or a flaggers' mark): a heartbeat from one of
        # them is taken through `_take_lists` even when it carries none (its lists go).
        self._listing: set[str] = set()
        self.forgotten = Listings()
        self.slots_in_state: dict[NodeState, int] = dict.fromkeys(NodeState, 0)
        self.masters_in_state: dict[NodeState, int] = dict.fromkeys(NodeState, 0)
        self._pfail: set[str] = set()
        # Evidence to act on once the current change is applied (rules 5 and 7).
        self._to_judge: set[str] = set()
        self._to_check_forget: set[str] = set()
        self._masters_changed = False
        self.current_epoch = 0
        # The largest epoch each node (known or left) spoke of: what the current epoch falls
        # back to when CLUSTER FORGET removes the node that raised it.
        self.epoch_carried: dict[str, int] = {}
        self._epoch_floor = 0
        self.cluster_ok = False
        self.version = 0
        self.topology_version = 0
        self.slot_version = 0
        self.next_deadline = NEVER
        self._dirty = False
        self.received: dict[str, int] = dict.fromkeys(MESSAGE_TYPES, 0)
        self.applied = 0
        self.stale = 0
        # Nodes not ok whose messages still arrive stale, and when the last one did
        # (cluster/liveness.py's `stale` verdict).
        self.stale_seen: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.slot_conflicts = 0
        self.events: deque[ClusterEvent] = deque(maxlen=config.max_events)
        self.events_dropped = 0
        # Node ids whose record changed (any field a view shows), for incremental views.
        self.changes = ChangeLog()

    def apply(self, msg: NodeMessage, now_ms: int) -> Outcome:
        """Apply one validated message received at `now_ms`."""
        if now_ms >= self.next_deadline:
            self.refresh(now_ms)
        node = self.nodes.get(msg.node)
        if node is None:
            refused = self._refuse_new(msg, now_ms)
            if refused is not None:
                return self.reject(refused)
        self.received[msg.kind] += 1
        if self.timer_rule and self.fail_rule_setting == "auto" and (
                type(msg) is FailReport or (type(msg) is Heartbeat and msg.failing is not None)):
            self.timer_rule = False
        if node is None:
            return self._apply_first(msg, now_ms)
        epoch = msg.epoch
        if epoch < node.epoch or (epoch == node.epoch and msg.seq <= node.seq):
            self.stale += 1
            if node.state is _PFAIL:
                self._note_stale(node.id, now_ms)
            return Outcome("stale", (node.epoch, node.seq))
        self.applied += 1
        self.version += 1
        self.changes.add(node.id)
        node.seq = msg.seq
        node.last_seen_ms = now_ms
        if epoch != node.epoch or node.state is not _OK:
            self._refresh_sender(node, epoch, now_ms)
        if msg.current_epoch is not None:
            self._carry(node.id, msg.current_epoch)
        if type(msg) is Heartbeat:
            compact_heartbeat(msg, node.id, node.heartbeat)
            node.heartbeat = msg
            node.heartbeat_ms = now_ms
            if msg.failing or msg.forgotten or msg.failed is not None or (
                    node.id in self._listing):
                self._take_lists(node.id, msg, now_ms)
        else:
            self._effect(node, msg, now_ms)
        if node.state is _FAIL and not self.timer_rule:
            self._release(node, now_ms)
        if self._to_judge or self._to_check_forget or self._masters_changed:
            self._act_on_evidence(now_ms)
        if self._dirty:
            self._settle()
        return APPLIED

    def reject(self, error: MessageError) -> Outcome:
        """Count an invalid message; nothing else changes."""
        self.rejected[error.code] = self.rejected.get(error.code, 0) + 1
        return Outcome("rejected", error=error)

    def _refuse_new(self, msg: NodeMessage, now_ms: int) -> MessageError | None:
        """Why a first message from an unknown node may not enter the table, if it may not."""
        banned_until = self.banned.get(msg.node)
        if banned_until is not None:
            if now_ms < banned_until:
                return MessageError(
                    "node", f"node {msg.node} was forgotten: refused for "
                    f"{(banned_until - now_ms + 999) // 1000} s more", "forgotten")
            del self.banned[msg.node]
        if self._require_hello and type(msg) is not Hello and type(msg) is not Leave:
            return MessageError("node", f"unknown node {msg.node}: say hello first (its "
                                f"first message was a {msg.kind})", "no_hello")
        owned = self.table.owned
        if forgetters(msg.node, now_ms - self._validity, self.forgotten, owned) >= quorum(
                len(owned)):
            return MessageError("node", f"node {msg.node} was forgotten by a majority of the "
                                "masters", "forgotten")
        if len(self.nodes) >= self._max_nodes:
            return MessageError("node", f"too many nodes: max-nodes is {self._max_nodes}",
                                "max_nodes")
        return None

    def forget(self, node_id: str, now_ms: int) -> bool:
        """Forget a known node as CLUSTER FORGET does; False if it is not known. Unlike a
        leave or forget-after, no tombstone keeps its (epoch, seq): after the ban the next
        message for it starts afresh (the way back from a publisher that pushed it to an
        absurd epoch)."""
        if node_id not in self.nodes:
            return False
        self._forget(self.nodes[node_id], now_ms)
        self.left.pop(node_id, None)
        self.cluster_forgotten.pop(node_id, None)
        self.reports.discard(node_id)
        self.epoch_carried.pop(node_id, None)
        self._lower_epoch()
        self._act_on_evidence(now_ms)
        self._settle()
        return True

    def _lower_epoch(self) -> None:
        """The current epoch a forgotten node no longer props up: the largest any other
        node (known or left) carried. It only falls when the forgotten node alone held it."""
        carried = max(self.epoch_carried.values(), default=self._epoch_floor)
        carried = max(carried, self._epoch_floor)
        if carried < self.current_epoch:
            self._emit(EpochChanged(old=self.current_epoch, new=carried))
            self.current_epoch = carried

    def _forget(self, node: Node, now_ms: int) -> None:
        self.version += 1
        self.changes.add(node.id)
        self._account(self.table.remove(node.id))
        # The claims are withdrawn, so the per-state slot and master counts no longer hold it.
        self._pfail.discard(node.id)
        self._drop_lists(node.id, now_ms)
        del self.nodes[node.id]
        self.stale_seen.pop(node.id, None)
        self._tombstone(node.id, (node.epoch, node.seq))
        self.banned[node.id] = now_ms + self.config.forget_ban_ms
        for banned in [n for n, until in self.banned.items() if until <= now_ms]:
            del self.banned[banned]
        self._emit(NodeLeft(node=node.id))
        self._dirty = True

    def _remember_forgotten(self, node_id: str, pair: tuple[int, int]) -> None:
        forgotten = self.cluster_forgotten
        forgotten.pop(node_id, None)
        forgotten[node_id] = pair
        if len(forgotten) > self._max_nodes:
            del forgotten[next(iter(forgotten))]

    def _tombstone(self, node_id: str, pair: tuple[int, int]) -> None:
        left = self.left
        left.pop(node_id, None)
        left[node_id] = pair
        if len(left) > self._max_nodes:
            del left[next(iter(left))]

    def refresh(self, now_ms: int) -> bool:
        """Run the time-driven transitions due at `now_ms`; True if anything changed."""
        if now_ms < self.next_deadline:
            return False
        before = self.version
        timeout = self._timeout
        upcoming = NEVER
        forget_after = self._forget_after
        if forget_after:
            for node in [n for n in self.nodes.values()
                         if now_ms >= n.last_seen_ms + forget_after]:
                self._forget(node, node.last_seen_ms + forget_after)
        for node in self.nodes.values():
            if forget_after:
                upcoming = min(upcoming, node.last_seen_ms + forget_after)
            if node.state is _OK:
                due = node.last_seen_ms + timeout
                if now_ms < due:
                    upcoming = min(upcoming, due)
                    continue
                node.pfail_since_ms = due
                self._set_state(node, _PFAIL)
                if self.timer_rule:
                    # No message arrived since `due` (it would have run this scan first), so
                    # the reports and masters seen now are those at `due`: judge there.
                    self._judge(node.id, due)
            if node.state is _PFAIL and self.timer_rule:
                fail_at = node.pfail_since_ms + self._fail_after
                if now_ms >= fail_at:
                    node.fail_since_ms = fail_at
                    self._set_state(node, _FAIL)
                else:
                    upcoming = min(upcoming, fail_at)
        if not self.timer_rule:
            upcoming = min(upcoming, self._expire_reports(now_ms))
        oldest = now_ms - self._validity
        self.reports.prune(oldest)
        self.failing.prune(oldest)
        self.flagged.prune(oldest)
        self.forgotten.prune(oldest)
        self.next_deadline = upcoming
        self._act_on_evidence(now_ms)
        self._settle()
        return self.version != before

    def _expire_reports(self, now_ms: int) -> int:
        """Judge, in time order, what each report expiring by `now_ms` lets count again (its
        target, no longer reported by a quorum, counts as a reporter); the next expiry."""
        validity = self._validity
        expiries: list[tuple[int, str]] = []
        upcoming = NEVER
        for at, _reporter, target in self.reports.times():
            expiry = at + validity + 1
            if expiry <= now_ms:
                expiries.append((expiry, target))
            else:
                upcoming = min(upcoming, expiry)
        for at, _reporter, targets in self.failing.times():
            expiry = at + validity + 1
            if expiry <= now_ms:
                expiries.extend((expiry, target) for target in targets)
            else:
                upcoming = min(upcoming, expiry)
        for expiry, target in sorted(expiries):
            for reported in sorted(self._reported_by(target, expiry)):
                self._judge(reported, expiry)
        return upcoming

    def restore_fail(self, failed: Mapping[str, int] | Iterable[str], now_ms: int,
                     exact: bool = False) -> None:
        """Mark nodes fail: a snapshot's record of the fail states (with the time each began,
        when `failed` maps them to it) reached in the history it compacted away. Under the
        timer rule only nodes at least pfail again are marked. `exact`: the nodes not in
        `failed` are not fail either (a replay of the latest messages alone may have failed
        a node with evidence that the full history judged with more)."""
        self.refresh(now_ms)
        since = failed if isinstance(failed, Mapping) else dict.fromkeys(failed, now_ms)
        if exact:
            for node in self.nodes.values():
                if node.state is _FAIL and node.id not in since:
                    due = node.last_seen_ms + self._timeout
                    if now_ms >= due:
                        node.pfail_since_ms = due
                    self._set_state(node, _PFAIL if now_ms >= due else _OK)
                    self.next_deadline = min(self.next_deadline, due)
        for node_id, began in since.items():
            failed_node = self.nodes.get(node_id)
            if failed_node is None:
                continue
            if failed_node.state is not _FAIL and (failed_node.state is _PFAIL
                                                   or not self.timer_rule):
                self._set_state(failed_node, _FAIL)
            if failed_node.state is _FAIL:
                failed_node.fail_since_ms = min(began, now_ms)
        self._settle()

    def restore_slots(self, runs: Iterable[tuple[int, int, Sequence[tuple[int, str, bool]],
                                                 Sequence[tuple[int, str]]]],
                      now_ms: int) -> None:
        before = {node_id: self.table.owned.get(node_id, 0) for node_id in self.nodes}
        moves = self.table.restore(runs, self.nodes.__contains__)
        # Counted again from scratch: the owners' states are what the moves cannot say.
        self.slots_in_state = dict.fromkeys(NodeState, 0)
        self.masters_in_state = dict.fromkeys(NodeState, 0)
        for node_id, count in self.table.owned.items():
            state = self.nodes[node_id].state
            self.slots_in_state[state] += count
            self.masters_in_state[state] += 1
        for move in moves:
            self._emit(SlotsMoved(start=move.start, end=move.end, old=move.old, new=move.new))
        if moves:
            self.slot_version += 1
            self.version += 1
            self._dirty = True
            self.changes.reset()
        if set(before) != {n for n, count in before.items() if count} or any(
                bool(before[n]) != (n in self.table.owned) for n in before):
            self._masters_changed = True
        self._act_on_evidence(now_ms)
        self._settle()

    def restore_forgotten(self, entries: Iterable[tuple[str, int, int, int]],
                          now_ms: int) -> None:
        """Nodes the cluster forgot, `(node, epoch, seq, ban ends)`: forgotten again (unless
        known at a later pair), tombstoned, banned for what is left of the ban."""
        for node_id, epoch, seq, ban_ends in entries:
            node = self.nodes.get(node_id)
            if node is not None and (node.epoch, node.seq) > (epoch, seq):
                continue  # it spoke again after it was forgotten
            if node is not None:
                self._forget(node, now_ms)
            self._tombstone(node_id, max((epoch, seq), self.left.get(node_id, (epoch, seq))))
            if ban_ends > now_ms:
                self.banned[node_id] = ban_ends
            else:
                self.banned.pop(node_id, None)
            self._remember_forgotten(node_id, self.left[node_id])
        self._act_on_evidence(now_ms)
        self._settle()

    def note_reports_seen(self) -> None:
        if self.fail_rule_setting == "auto":
            self.timer_rule = False

    @property
    def fail_rule(self) -> str:
        """The rule in force: `timer` or `redis` (`auto` resolved)."""
        return "timer" if self.timer_rule else "redis"

    def count_reports(self, node_id: str, now_ms: int) -> int:
        """Valid failure reports against `node_id` from slot-serving masters, one per reporter."""
        return len(reporters_of(node_id, now_ms - self._validity, self.reports, self.failing,
                                self.table.owned))

    def _apply_first(self, msg: NodeMessage, now_ms: int) -> Outcome:
        tombstone = self.left.get(msg.node)
        if tombstone is not None:
            if (msg.epoch, msg.seq) <= tombstone:
                self.stale += 1
                return Outcome("stale", tombstone)
            del self.left[msg.node]
        self.cluster_forgotten.pop(msg.node, None)
        self.applied += 1
        self.version += 1
        self.changes.add(msg.node)
        self._carry(msg.node, msg.epoch)
        if msg.current_epoch is not None:
            self._carry(msg.node, msg.current_epoch)
        if type(msg) is Leave:
            self._tombstone(msg.node, (msg.epoch, msg.seq))
        else:
            node = Node(msg.node, msg.epoch, msg.seq, now_ms)
            self.nodes[node.id] = node
            self.changes.fit(len(self.nodes))
            self._emit(NodeJoined(node=node.id))
            self._dirty = True
            self.next_deadline = min(self.next_deadline, now_ms + self._timeout)
            # Reports about it may have come first.
            self._to_judge.add(node.id)
            if type(msg) is Heartbeat:
                compact_heartbeat(msg, node.id, node.heartbeat)
                node.heartbeat = msg
                node.heartbeat_ms = now_ms
                if msg.failing or msg.forgotten:
                    self._take_lists(node.id, msg, now_ms)
            else:
                self._effect(node, msg, now_ms)
        self._act_on_evidence(now_ms)
        self._settle()
        return APPLIED

    def _refresh_sender(self, node: Node, epoch: int, now_ms: int) -> None:
        if epoch != node.epoch:
            node.epoch = epoch
            self._carry(node.id, epoch)
            self._dirty = True
        if node.state is _PFAIL or (node.state is _FAIL and self.timer_rule):
            self._set_state(node, _OK)
            self.next_deadline = min(self.next_deadline, now_ms + self._timeout)

    def _release(self, node: Node, now_ms: int) -> None:
        """Redis's rule: the node spoke; clear its fail where Redis would (rule 5)."""
        if node.id in self.table.owned and now_ms <= node.fail_since_ms + self._undo:
            return
        if fails_by_quorum(node.id, now_ms - self._validity, self.reports, self.failing,
                           self.table.owned, quorum(len(self.table.owned))):
            return
        self._set_state(node, _OK)
        self.next_deadline = min(self.next_deadline, now_ms + self._timeout)

    def _effect(self, node: Node, msg: NodeMessage, now_ms: int) -> None:
        match msg:
            case Hello():
                if node.hello is None or _announced(node.hello) != _announced(msg):
                    master = None if msg.replicaof is None else self.nodes.get(msg.replicaof)
                    compact_hello(msg, node.id, None if master is None else master.id)
                    node.hello = msg
                    node.address = _shared_address(parse_addr(msg.addr))
                    self._dirty = True
            case Slots():
                self._account(self.table.claim(node.id, msg.epoch, msg.ranges, msg.released))
                open_slots = _open_slots(msg)
                if open_slots != node.open_slots:
                    node.open_slots = open_slots
                    self._dirty = True
            case FailReport():
                target = msg.target
                reports = self.reports
                if (target not in self.nodes and target not in reports
                        and len(reports) >= self._max_nodes):
                    return  # a bound on reports about unknown nodes: kept for max_nodes targets
                reports.record(target, node.id, now_ms)
                self.next_deadline = min(self.next_deadline, now_ms + self._validity + 1)
                self._to_judge.add(target)
            case Leave():
                self._account(self.table.remove(node.id))
                self._drop_lists(node.id, now_ms)
                del self.nodes[node.id]
                self.stale_seen.pop(node.id, None)
                self._tombstone(node.id, (msg.epoch, msg.seq))
                self._emit(NodeLeft(node=node.id))
                self._dirty = True
            case Heartbeat():
                compact_heartbeat(msg, node.id, node.heartbeat)
                node.heartbeat = msg
                node.heartbeat_ms = now_ms

    def _take_lists(self, node_id: str, msg: Heartbeat, now_ms: int) -> None:
        """The heartbeat's `failing` and `forgotten` lists replace the sender's."""
        oldest = now_ms - self._validity
        failing = frozenset(msg.failing) if msg.failing else _NO_IDS
        if failing and failing == self.failing.listed_by(node_id, oldest):
            self.failing.refresh(node_id, now_ms)
        elif failing or node_id in self.failing:
            added, withdrawn = self.failing.replace(node_id, failing, now_ms, oldest)
            self._to_judge.update(added)
            for target in withdrawn:  # reported less, `target` may count as a reporter again
                self._to_judge.update(self._reported_by(target, now_ms))
            if failing:
                self.next_deadline = min(self.next_deadline, now_ms + self._validity + 1)
        if msg.failed is None:
            self._flaggers.discard(node_id)
        else:
            self._flaggers.add(node_id)
        self._to_judge.update(_replaced(self.flagged, node_id, msg.failed, now_ms, oldest))
        self._to_check_forget.update(
            _replaced(self.forgotten, node_id, msg.forgotten, now_ms, oldest))
        if (node_id in self.failing or node_id in self.flagged or node_id in self.forgotten
                or node_id in self._flaggers):
            self._listing.add(node_id)
        else:
            self._listing.discard(node_id)

    def _drop_lists(self, node_id: str, now_ms: int) -> None:
        for target in self.failing.withdraw(node_id):
            self._to_judge.update(self._reported_by(target, now_ms))
        self.flagged.withdraw(node_id)
        self._flaggers.discard(node_id)
        self.forgotten.withdraw(node_id)
        self._listing.discard(node_id)

    def _reported_by(self, reporter: str, at_ms: int) -> set[str]:
        """The nodes `reporter`'s reports valid at `at_ms` are about."""
        oldest = at_ms - self._validity
        found = set(self.failing.listed_by(reporter, oldest))
        found.update(self.reports.reported_by(reporter, oldest))
        return found

    def _act_on_evidence(self, now_ms: int) -> None:
        """Forget and fail what the evidence gathered by the change just applied says."""
        while self._masters_changed or self._to_check_forget or self._to_judge:
            if self._masters_changed:
                # A master more or less changes every count and the quorum itself.
                self._masters_changed = False
                self._to_judge.update(self.reports.targets())
                self._to_judge.update(self.failing.targets())
                self._to_check_forget.update(self.forgotten.targets())
            if self._to_check_forget:
                candidates = sorted(self._to_check_forget)
                self._to_check_forget.clear()
                owned = self.table.owned
                oldest = now_ms - self._validity
                for node_id in candidates:
                    node = self.nodes.get(node_id)
                    if node is not None and forgetters(node_id, oldest, self.forgotten,
                                                       owned) >= quorum(len(owned)):
                        self._forget(node, now_ms)
                        self._remember_forgotten(node_id, (node.epoch, node.seq))
                continue
            candidates = sorted(self._to_judge)
            self._to_judge.clear()
            for node_id in candidates:
                self._judge(node_id, now_ms)

    def _judge(self, node_id: str, at_ms: int) -> None:
        """Make the node fail if a quorum reports it at `at_ms` (the timer rule: if pfail)."""
        node = self.nodes.get(node_id)
        if node is None or node.state is _FAIL or (self.timer_rule and node.state is not _PFAIL):
            return
        owned = self.table.owned
        oldest = at_ms - self._validity
        if fails_by_quorum(node_id, oldest, self.reports, self.failing, owned,
                           quorum(len(owned))) and self._flagged(node_id, oldest):
            node.fail_since_ms = at_ms
            self._set_state(node, _FAIL)

    def _flagged(self, node_id: str, oldest_ms: int) -> bool:
        """Whether a valid report about `node_id` is a FAIL: a `failed` list naming it, a
        `fail_report` message, or a `failing` list from a sender that does not say which of
        its reports are FAILs."""
        if next(self.flagged.listers(node_id, oldest_ms), None) is not None:
            return True
        if next(self.reports.reporters(node_id, oldest_ms), None) is not None:
            return True
        flaggers = self._flaggers
        return any(r not in flaggers for r in self.failing.listers(node_id, oldest_ms))

    def _account(self, result: ClaimResult) -> None:
        """Counts, versions and events after the slot table changed."""
        self.slot_conflicts += result.conflicts
        if not result.moves:
            return
        self.slot_version += 1
        self._dirty = True
        nodes = self.nodes
        slots_in_state = self.slots_in_state
        delta: dict[str, int] = {}
        for move in result.moves:
            size = move.end - move.start + 1
            old, new = move.old, move.new
            if old is not None:
                slots_in_state[nodes[old].state] -= size
                delta[old] = delta.get(old, 0) - size
            if new is not None:
                slots_in_state[nodes[new].state] += size
                delta[new] = delta.get(new, 0) + size
            self._emit(SlotsMoved(start=move.start, end=move.end, old=old, new=new))
        owned = self.table.owned
        for owner, change in delta.items():
            after = owned.get(owner, 0)
            if (after - change == 0) != (after == 0):
                self.masters_in_state[nodes[owner].state] += 1 if after else -1
                self._masters_changed = True

    def _note_stale(self, node_id: str, now_ms: int) -> None:
        """A stale message from a `fail?` node: the first turns its verdict to `stale`
        (cluster/liveness.py), a transition like any other (a new version, the node logged
        as changed); later ones only move the time."""
        if node_id not in self.stale_seen:
            self.version += 1
            self.changes.add(node_id)
        self.stale_seen[node_id] = now_ms

    def _set_state(self, node: Node, new: NodeState) -> None:
        old = node.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransitionError(f"node {node.id}: {old} -> {new}")
        owned = self.table.owned.get(node.id, 0)
        if owned:
            self.slots_in_state[old] -= owned
            self.slots_in_state[new] += owned
            self.masters_in_state[old] -= 1
            self.masters_in_state[new] += 1
        node.state = new
        self.changes.add(node.id)
        if new is not _PFAIL:
            self.stale_seen.pop(node.id, None)
        if new is _PFAIL:
            self._pfail.add(node.id)
        else:
            self._pfail.discard(node.id)
        self.version += 1
        self._dirty = True
        self._emit(NodeStateChanged(node=node.id, old=old, new=new))

    def _carry(self, node_id: str, epoch: int) -> None:
        """`node_id` spoke of `epoch` (its config epoch or a reported current epoch)."""
        carried = self.epoch_carried
        if epoch > carried.get(node_id, -1):
            if node_id not in carried and len(carried) >= 2 * self._max_nodes:
                self._fold_carried()
            carried[node_id] = epoch
        self._raise_epoch(epoch)

    def _fold_carried(self) -> None:
        """Bound the table: ids neither known nor tombstoned fold into one floor."""
        carried = self.epoch_carried
        gone = [n for n in carried if n not in self.nodes and n not in self.left]
        for node_id in gone:
            self._epoch_floor = max(self._epoch_floor, carried.pop(node_id))

    def _raise_epoch(self, epoch: int) -> None:
        if epoch > self.current_epoch:
            self._emit(EpochChanged(old=self.current_epoch, new=epoch))
            self.current_epoch = epoch
            self._dirty = True

    def _settle(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.topology_version += 1
        ok = self._compute_ok()
        if ok != self.cluster_ok:
            self.cluster_ok = ok
            self._emit(ClusterStateChanged(old=_state_name(not ok), new=_state_name(ok)))

    def _compute_ok(self) -> bool:
        size = len(self.table.owned)
        if self.masters_in_state[_OK] < quorum(size):
            return False
        if not self.config.require_full_coverage:
            return True
        return self.table.assigned == NUM_SLOTS and self.slots_in_state[_FAIL] == 0

    def _emit(self, event: ClusterEvent) -> None:
        if len(self.events) == self.events.maxlen:
            self.events_dropped += 1
        self.events.append(event)


def _replaced(lists: Listings, node_id: str, ids: list[str] | None, now_ms: int,
              oldest_ms: int) -> frozenset[str]:
    """`node_id`'s list in `lists` is now `ids` (refreshed when the same): the ids it added."""
    listed = frozenset(ids) if ids else _NO_IDS
    if listed and listed == lists.listed_by(node_id, oldest_ms):
        lists.refresh(node_id, now_ms)
    elif listed or node_id in lists:
        return lists.replace(node_id, listed, now_ms, oldest_ms)[0]
    return _NO_IDS


def _open_slots(msg: Slots) -> str:
    """CLUSTER NODES' open-slot entries: by slot, `[slot->-id]` migrating, `[slot-<-id]`
    importing."""
    if not msg.migrating and not msg.importing:
        return ""
    entries = [(slot, 0, f" [{slot}->-{peer}]") for slot, peer in msg.migrating.items()]
    entries += [(slot, 1, f" [{slot}-<-{peer}]") for slot, peer in msg.importing.items()]
    return "".join(text for _slot, _order, text in sorted(entries))


def _shared_address(address: Address | None) -> Address | None:
    if address is None:
        return None
    return address._replace(host=sys.intern(address.host))


def _announced(hello: Hello) -> tuple[str, str | None, str, str | None]:
    return (hello.addr, hello.hostname, hello.role, hello.replicaof)


def _state_name(ok: bool) -> str:
    return "ok" if ok else "fail"
