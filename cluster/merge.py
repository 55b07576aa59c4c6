"""Theory of operation: how node messages fold into the cluster model.

The model is a function of the messages it applied and of the receive times it was given
(`now_ms`, the server's wall clock). Nothing here reads a clock.

Clock skew. Only the receiver's clock counts; a sender's `ts_ms` is informational. On the
  memory bus that is the server's wall clock. On the Redis-stream bus it is the bus clock
  (server/bus/busclock.py): an entry's stream id, stamped by the Redis master, minus any
  outage of the bus, the same for every instance, so instances that read the same entries
  hold the same model whatever their own clocks say.

Rule 1, per-node order. A node's messages are ordered by `(epoch, seq)`. A message at or below
  the last pair applied for its node is stale: counted, never applied. Re-delivery and
  reordering are therefore harmless.
Rule 2, epochs. `current_epoch` is the largest epoch of any applied message (or the largest
  optional `current_epoch` an applied message of any type reports: Redis's currentEpoch, which
  every node gets at `--cluster create` and failed elections raise above every config epoch)
  and never decreases. A node's config epoch is the epoch of its latest applied message.
Rule 3, slot ownership. A `slots` message replaces its sender's claim; the claim keeps the
  epoch of that message (a later restart at a higher epoch does not strengthen an old claim).
  A slot belongs to its claimant with the highest claim epoch; a tie goes to the smaller node
  id and the tie is counted as a conflict. Owners follow from the current claims alone.
Rule 4, order independence. Given the same receive times, any interleaving of the same
  per-node sequences yields the same model: every effect below depends on the sender's own
  history and on the current claims, never on which node spoke first.
Rule 5, liveness, from receive times only:

    from        to      when
    ok          pfail   now >= last_seen + node_timeout
    pfail       fail    valid reports from a majority of slot-serving masters
                        (validity 2 * node_timeout); with the timer rule also
                        now >= pfail_since + fail_after
    pfail/fail  ok      any applied message from the node

  The fail rule (ModelConfig.fail_rule, `--fail-rule`). `redis`: Redis's rule, only the
  report majority makes a node fail; without it a pfail node stays pfail however long (a
  cluster that lost most of its masters shows them `fail?` forever, as its survivors do).
  `timer`: the majority or `fail_after`, for systems whose nodes send no failure reports.
  DEFAULT `auto`: `timer` until the first valid fail_report message is received, `redis` from
  then on (it never switches back), so a cluster whose nodes report failures gets Redis's
  answer and one whose nodes do not still sees silent nodes fail. A node the timer already
  made fail stays fail when `auto` switches, until it speaks.
  A report counts only while its sender is a master serving slots, so a forged report from
  an unknown or slot-less node is kept but never counts: forging a FAIL needs the identities
  of a majority of the slot-serving masters.

  `pfail_since` is `last_seen + node_timeout`, not the time the check ran, and a quorum is
  judged at `pfail_since` or when a message changes the reports or the masters, so states do
  not depend on how often `refresh` is called. Unlike Redis, FAIL of a slot-serving master clears
  at once when it speaks again, and `cluster_state` has no rejoin delay: an observer has no
  writes to protect.
  `cluster_state` is ok when a majority of slot-serving masters is neither pfail nor fail and,
  if full coverage is required, every slot has an owner that is not fail.
Rule 6, invalid input. A message that fails validation never reaches this module; the model
  only counts it by reason.

What each applied message does to its sender's record, besides setting `(epoch, seq)`,
`last_seen = now` and clearing pfail/fail:

    hello        replaces address, hostname, announced role and replicaof
    heartbeat    replaces the status payload (kept as sent) and its receive time
    slots        replaces the slot claim
    fail_report  records (target, sender, now); may turn a pfail target into fail
    leave        withdraws the claim and removes the record; a tombstone keeps its
                 `(epoch, seq)` so late copies stay stale, and a later message rejoins it
                 as a new node (no address until its next hello)

A node enters the table with its first applied message; nothing else creates one.
Bounded table: a first message from a new node while `max_nodes` nodes are known is rejected
(code `max_nodes`), a `leave` too; known nodes are untouched. Tombstones are bounded as well:
past `max_nodes` of them the oldest is dropped (a very late copy of that node's messages
would then rejoin it). A node silent for `forget_after` is
forgotten, and `forget` (CLUSTER FORGET) forgets one at once: as a `leave`, its claim is
withdrawn, its record removed (NodeLeft) and a tombstone keeps its `(epoch, seq)`; also, as
Redis's blacklist, its messages are rejected (code `forgotten`) for `forget_ban` after. Failure
reports about unknown nodes are kept until they expire, so they count if the node appears; they
are kept for at most `max_nodes` targets at a time (a report about one more unknown target is
applied but not kept).

Versions: `version` rises with every applied message and every state transition;
`topology_version` only when something views show changes other than last_seen, seq and
the heartbeat payload; `slot_version` only when a slot's owner changes.

Changes: `changes` logs the id of every node whose record changed (a message applied, a
state transition, a removal), so views rebuild only those nodes between versions.

Deadlines: `next_deadline` is a lower bound on the next time-driven transition, and `refresh`
returns at once before it. A heartbeat only moves its sender's deadline later, so it never
touches the bound; when the bound passes, one scan of all nodes sets it exactly again.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable
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
from clusterwatch.cluster.failure import FailureReports, quorum
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
from clusterwatch.cluster.slots import NUM_SLOTS, SlotTable, expand_ranges

__all__ = ["MergeState", "Node"]

NEVER: Final = 2**63
_OK: Final = NodeState.OK
_PFAIL: Final = NodeState.PFAIL
_FAIL: Final = NodeState.FAIL


class Node:
    """The mutable record of one node; only `MergeState` writes it."""

    __slots__ = (
        "address",
        "epoch",
        "heartbeat",
        "heartbeat_ms",
        "hello",
        "id",
        "last_seen_ms",
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
        self.hello: Hello | None = None
        self.address: Address | None = None
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_ms: int | None = None


class MergeState:
    """Nodes, claims, failure reports, epochs and counters, changed only by the rules above."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._timeout = config.node_timeout_ms
        self._fail_after = config.fail_after
        self._validity = config.report_validity_ms
        self.fail_rule_setting = config.fail_rule
        # The timer makes pfail nodes fail: `timer`, or `auto` before any fail_report.
        self.timer_rule = config.fail_rule != "redis"
        self.nodes: dict[str, Node] = {}
        self.left: dict[str, tuple[int, int]] = {}
        self.banned: dict[str, int] = {}  # forgotten node -> time its ban ends
        self._max_nodes = config.max_nodes
        self._forget_after = config.forget_after_ms
        self.table = SlotTable()
        self.reports = FailureReports()
        self.slots_in_state: dict[NodeState, int] = dict.fromkeys(NodeState, 0)
        self.masters_in_state: dict[NodeState, int] = dict.fromkeys(NodeState, 0)
        self._pfail: set[str] = set()
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
        if self.timer_rule and type(msg) is FailReport and self.fail_rule_setting == "auto":
            self.timer_rule = False
        if node is None:
            return self._apply_first(msg, now_ms)
        epoch = msg.epoch
        if epoch < node.epoch or (epoch == node.epoch and msg.seq <= node.seq):
            self.stale += 1
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
        else:
            self._effect(node, msg, now_ms)
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
        self.reports.discard(node_id)
        self.epoch_carried.pop(node_id, None)
        self._lower_epoch()
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
        self._claim(node.id, node.epoch, frozenset(), now_ms)
        # The claim is withdrawn, so the per-state slot and master counts no longer hold it.
        self._pfail.discard(node.id)
        del self.nodes[node.id]
        self._tombstone(node.id, (node.epoch, node.seq))
        self.banned[node.id] = now_ms + self.config.forget_ban_ms
        for banned in [n for n, until in self.banned.items() if until <= now_ms]:
            del self.banned[banned]
        self._emit(NodeLeft(node=node.id))
        self._dirty = True

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
                # No message arrived since `due` (it would have run this scan first), so the
                # reports and masters seen now are those at `due`: judge the quorum there.
                self._check_fail(node, due)
            if node.state is _PFAIL and self.timer_rule:
                fail_at = node.pfail_since_ms + self._fail_after
                if now_ms >= fail_at:
                    self._set_state(node, _FAIL)
                else:
                    upcoming = min(upcoming, fail_at)
        self.next_deadline = upcoming
        self.reports.prune(now_ms, self._validity)
        self._settle()
        return self.version != before

    def restore_fail(self, node_ids: Iterable[str], now_ms: int) -> None:
        """Mark pfail nodes fail: a snapshot's record of a quorum reached in the history it
        compacted away (the reports' senders may have left or lost their slots since)."""
        self.refresh(now_ms)
        for node_id in node_ids:
            node = self.nodes.get(node_id)
            if node is not None and node.state is _PFAIL:
                self._set_state(node, _FAIL)
        self._settle()

    def note_reports_seen(self) -> None:
        if self.fail_rule_setting == "auto":
            self.timer_rule = False

    @property
    def fail_rule(self) -> str:
        """The rule in force: `timer` or `redis` (`auto` resolved)."""
        return "timer" if self.timer_rule else "redis"

    def count_reports(self, node_id: str, now_ms: int) -> int:
        """Valid failure reports against `node_id` from slot-serving masters."""
        return self.reports.count(node_id, now_ms, self._validity, self.table.owned)

    def _apply_first(self, msg: NodeMessage, now_ms: int) -> Outcome:
        tombstone = self.left.get(msg.node)
        if tombstone is not None:
            if (msg.epoch, msg.seq) <= tombstone:
                self.stale += 1
                return Outcome("stale", tombstone)
            del self.left[msg.node]
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
            if type(msg) is Heartbeat:
                compact_heartbeat(msg, node.id, node.heartbeat)
                node.heartbeat = msg
                node.heartbeat_ms = now_ms
            else:
                self._effect(node, msg, now_ms)
        self._settle()
        return APPLIED

    def _refresh_sender(self, node: Node, epoch: int, now_ms: int) -> None:
        if epoch != node.epoch:
            node.epoch = epoch
            self._carry(node.id, epoch)
            self._dirty = True
        if node.state is not _OK:
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
                self._claim(node.id, msg.epoch, expand_ranges(msg.ranges), now_ms)
            case FailReport():
                target = self.nodes.get(msg.target)
                reports = self.reports
                if (target is None and msg.target not in reports
                        and len(reports) >= self._max_nodes):
                    return  # a bound on reports about unknown nodes: kept for max_nodes targets
                reports.record(msg.target, node.id, now_ms)
                if target is not None and target.state is _PFAIL:
                    self._check_fail(target, now_ms)
            case Leave():
                self._claim(node.id, msg.epoch, frozenset(), now_ms)
                del self.nodes[node.id]
                self._tombstone(node.id, (msg.epoch, msg.seq))
                self._emit(NodeLeft(node=node.id))
                self._dirty = True
            case Heartbeat():
                compact_heartbeat(msg, node.id, node.heartbeat)
                node.heartbeat = msg
                node.heartbeat_ms = now_ms

    def _claim(self, node_id: str, epoch: int, slots: frozenset[int], now_ms: int) -> None:
        changes, conflicts = self.table.claim(node_id, epoch, slots)
        self.slot_conflicts += conflicts
        if not changes:
            return
        self.slot_version += 1
        self._dirty = True
        nodes = self.nodes
        slots_in_state = self.slots_in_state
        delta: dict[str, int] = {}
        for _slot, old, new in changes:
            if old is not None:
                slots_in_state[nodes[old].state] -= 1
                delta[old] = delta.get(old, 0) - 1
            if new is not None:
                slots_in_state[nodes[new].state] += 1
                delta[new] = delta.get(new, 0) + 1
        masters_changed = False
        for owner, change in delta.items():
            after = self.table.owned.get(owner, 0)
            if (after - change == 0) != (after == 0):
                self.masters_in_state[nodes[owner].state] += 1 if after else -1
                masters_changed = True
        if masters_changed:
            for pfail_id in sorted(self._pfail):
                self._check_fail(nodes[pfail_id], now_ms)
        self._emit_moves(changes)

    def _emit_moves(self, changes: list[tuple[int, str | None, str | None]]) -> None:
        start, old, new = changes[0]
        end = start
        for slot, slot_old, slot_new in changes[1:]:
            if slot == end + 1 and slot_old == old and slot_new == new:
                end = slot
                continue
            self._emit(SlotsMoved(start=start, end=end, old=old, new=new))
            start, end, old, new = slot, slot, slot_old, slot_new
        self._emit(SlotsMoved(start=start, end=end, old=old, new=new))

    def _check_fail(self, node: Node, at_ms: int) -> None:
        """Mark a pfail node fail if a quorum of valid reports holds at `at_ms`."""
        owned = self.table.owned
        reports = self.reports.count(node.id, at_ms, self._validity, owned)
        if reports and reports >= quorum(len(owned)):
            self._set_state(node, _FAIL)

    def _set_state(self, node: Node, new: NodeState) -> None:
        old = node.state
        owned = self.table.owned.get(node.id, 0)
        if owned:
            self.slots_in_state[old] -= owned
            self.slots_in_state[new] += owned
            self.masters_in_state[old] -= 1
            self.masters_in_state[new] += 1
        node.state = new
        self.changes.add(node.id)
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


def _shared_address(address: Address | None) -> Address | None:
    if address is None:
        return None
    return address._replace(host=sys.intern(address.host))


def _announced(hello: Hello) -> tuple[str, str | None, str, str | None]:
    return (hello.addr, hello.hostname, hello.role, hello.replicaof)


def _state_name(ok: bool) -> str:
    return "ok" if ok else "fail"
