"""`ClusterModel`: the one object the server holds; merge rules in `cluster.merge`, who may
speak for a node in `cluster.publishers`.

Absurd epochs. One message may not move a node's config epoch, or the cluster's current
  epoch it reports, more than `MAX_EPOCH_STEP` (2^20) past the cluster's current epoch
  (which no node's epoch exceeds): such a message is rejected (code `range`, naming the
  field) before it reaches the merge. Real Redis Cluster epochs grow by one per election,
  so a clusterwatch restarted against an old cluster (epochs in the thousands) is far inside
  the step, and reaching 2^63 would take 2^43 messages. Sequence numbers are not bounded (the
  agent's are wall-clock milliseconds, the simulator's small counters, and the model keeps
  no clock to judge them by): a node pushed to an absurd seq is stale only within its epoch.
  The way back from a bad publisher is `CLUSTER FORGET`: it removes everything the model
  holds for the node, its (epoch, seq) and binding included, and lowers the cluster's
  current epoch to what the remaining nodes carried, so after the 60 s ban the node's real
  publisher is taken again at its real (epoch, seq).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.config import ModelConfig
from clusterwatch.cluster.events import ClusterEvent
from clusterwatch.cluster.explain import explain_cluster, explain_node
from clusterwatch.cluster.liveness import Liveness, judge, left
from clusterwatch.cluster.merge import MergeState, Node
from clusterwatch.cluster.messages import MessageError, NodeMessage, decode_message
from clusterwatch.cluster.publishers import Bindings, Publisher
from clusterwatch.cluster.records import Counters, NodeInfo, NodeRow, NodeState, Outcome
from clusterwatch.cluster.views import ClusterSummary, Shard, SlotRange, Views
from clusterwatch.cluster.whatif import safe_to_stop

__all__ = ["MAX_EPOCH_STEP", "ClusterModel"]

MAX_EPOCH_STEP: Final = 2**20


class ClusterModel:
    """The cluster as seen through node messages.

    Time is always passed in: `now_ms` is the server's wall clock in milliseconds at the moment
    a message was received or a view was asked for.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self._state = MergeState(self.config)
        self._views = Views(self._state)
        self._max_bytes = self.config.max_message_bytes
        self._max_ids = self.config.max_nodes
        self.bindings = Bindings()
        self._owners = self.bindings.owners
        self._bus_stale_since: int | None = None

    def publish(self, data: bytes, now_ms: int, publisher: Publisher | None = None) -> Outcome:
        """Decode, validate and apply one JSON node message, published as `publisher`.

        Returns:
            `applied`, `stale` (with the node's last applied `(epoch, seq)`) or `rejected`
            (with the `MessageError`; the model is unchanged except for the reject counter).
        """
        try:
            msg = decode_message(data, max_size=self._max_bytes, max_ids=self._max_ids)
        except MessageError as exc:
            return self._state.reject(exc)
        state = self._state
        # `apply_decoded`'s common cases inline, one call less: an epoch within the step,
        # and no publisher (the in-process feed) or the one the node is bound to, allowed.
        ceiling = state.current_epoch + MAX_EPOCH_STEP
        if msg.epoch <= ceiling and (msg.current_epoch is None or msg.current_epoch <= ceiling):
            if publisher is None:
                return state.apply(msg, now_ms)
            if self._owners.get(msg.node) == publisher.name and (
                    publisher.may_write is None or publisher.verdicts.get(msg.node)):
                return state.apply(msg, now_ms)
        return self.apply_decoded(msg, now_ms, publisher)

    def publish_decoded(self, data: bytes, now_ms: int, publisher: Publisher | None = None
                        ) -> tuple[Outcome, NodeMessage | None]:
        """`publish`, also giving back the decoded message (None when it was rejected)."""
        try:
            msg = decode_message(data, max_size=self._max_bytes, max_ids=self._max_ids)
        except MessageError as exc:
            return self._state.reject(exc), None
        return self.apply_decoded(msg, now_ms, publisher), msg

    def apply_decoded(self, msg: NodeMessage, now_ms: int,
                      publisher: Publisher | None = None) -> Outcome:
        """Apply a message exactly as `decode_message` returned it (already validated)."""
        state = self._state
        # `refusal`, inline for the common case. No node's epoch is above the current
        # epoch, so the current epoch is the base of the step.
        ceiling = state.current_epoch + MAX_EPOCH_STEP
        if msg.epoch > ceiling or (msg.current_epoch is not None
                                   and msg.current_epoch > ceiling):
            return state.reject(_too_far(
                "epoch" if msg.epoch > ceiling else "current_epoch",
                msg.epoch if msg.epoch > ceiling else msg.current_epoch or 0,
                state.current_epoch))
        if publisher is None:
            return state.apply(msg, now_ms)
        node_id = msg.node
        owner = self._owners.get(node_id)
        if owner != publisher.name or (publisher.may_write is not None
                                       and not publisher.may_publish_for(node_id)):
            refused = self.bindings.refusal(node_id, publisher, state.nodes)
            if refused is not None:
                return state.reject(refused)
            owner = None
        outcome = state.apply(msg, now_ms)
        if owner is None and outcome.kind == "applied":
            self.bindings.bind(node_id, publisher.name)
        return outcome

    def refusal(self, msg: NodeMessage,
                publisher: Publisher | None = None) -> MessageError | None:
        """Why `msg` may not be applied as `publisher` now (see the module notes and
        `cluster.publishers`), or None; checks without changing anything."""
        state = self._state
        ceiling = state.current_epoch + MAX_EPOCH_STEP
        if msg.epoch > ceiling:
            return _too_far("epoch", msg.epoch, state.current_epoch)
        if msg.current_epoch is not None and msg.current_epoch > ceiling:
            return _too_far("current_epoch", msg.current_epoch, state.current_epoch)
        if publisher is not None:
            return self.bindings.refusal(msg.node, publisher, state.nodes)
        return None

    @property
    def bus_fresh(self) -> bool:
        """The bus the model is read from is fresh (see `set_bus_fresh`)."""
        return self._bus_stale_since is None

    def set_bus_fresh(self, fresh: bool, now_ms: int) -> bool:
        """The server's word on its bus: while it is not fresh, no node the model holds is
        `reachable` (cluster/liveness.py). A change is a new model version in which every
        node changed; True if it changed."""
        if fresh == (self._bus_stale_since is None):
            return False
        self._bus_stale_since = None if fresh else now_ms
        state = self._state
        state.version += 1
        state.changes.reset()
        return True

    def liveness(self, node_id: str, now_ms: int) -> Liveness | None:
        """The one verdict on `node_id` at `now_ms` (cluster/liveness.py); `left` for a node
        the model remembers leaving, None for one it never knew."""
        self._state.refresh(now_ms)
        return self.current_liveness(node_id)

    def current_liveness(self, node_id: str) -> Liveness | None:
        """`liveness` at the model's current version, without running failure detection."""
        state = self._state
        node = state.nodes.get(node_id)
        if node is None:
            if node_id in state.left or node_id in state.banned:
                return left(node_id)
            return None
        return judge(node.state, last_seen_ms=node.last_seen_ms,
                     pfail_since_ms=node.pfail_since_ms, fail_since_ms=node.fail_since_ms,
                     stale_seen_ms=state.stale_seen.get(node_id),
                     bus_stale_since_ms=self._bus_stale_since,
                     node_timeout_ms=self.config.node_timeout_ms)

    @property
    def known_nodes(self) -> Container[str]:
        """The ids the model holds (a container: ``in`` only)."""
        return self._state.nodes.keys()

    def publisher_of(self, node_id: str) -> str | None:
        """The user `node_id` is bound to, or None."""
        return self.bindings.owner(node_id, self._state.nodes)

    def rebind(self, node_id: str, user: str) -> bool:
        """Bind a known node to `user` (BUS REBIND); False if the node is not known."""
        if node_id not in self._state.nodes:
            return False
        self.bindings.rebind(node_id, user)
        return True

    def restore_fail(self, failed: Mapping[str, int] | Iterable[str], now_ms: int,
                     exact: bool = False) -> None:
        """After replaying a compacted history at `now_ms`: the nodes that were `fail` when
        it was compacted (with the time each became fail, when `failed` maps them to it)
        are `fail` again (under the timer rule only those at least `pfail` again now);
        `exact`: no other node is."""
        self._state.restore_fail(failed, now_ms, exact)

    def failed_since(self) -> dict[str, int]:
        """The `fail` nodes and the time each became fail (what `restore_fail` takes)."""
        return {node.id: node.fail_since_ms for node in self._state.nodes.values()
                if node.state is NodeState.FAIL}

    def export_slots(self) -> list[tuple[int, int, list[tuple[int, str, bool]],
                                         list[tuple[int, str]]]]:
        """The slot claims and the claims ever seen, as runs (`SlotTable.export`): history a
        node's latest `slots` message does not hold."""
        return self._state.table.export()

    def restore_slots(self, runs: Iterable[tuple[int, int, Sequence[tuple[int, str, bool]],
                                                 Sequence[tuple[int, str]]]],
                      now_ms: int) -> None:
        """Replace the slot claims with `export_slots`'s runs (claims of unknown nodes left
        out), after replaying a compacted history."""
        self._state.restore_slots(runs, now_ms)

    def cluster_forgotten(self, now_ms: int) -> list[tuple[str, int, int, int]]:
        """The nodes the cluster forgot (merge rule 8) and that have not spoken since: `(node,
        epoch, seq, ban ends)`, the pair of its tombstone and when its ban ends (or ended),
        at most `max_nodes`, oldest first."""
        state = self._state
        return [(node, epoch, seq, state.banned.get(node, now_ms))
                for node, (epoch, seq) in state.cluster_forgotten.items()]

    def restore_forgotten(self, entries: Iterable[tuple[str, int, int, int]],
                          now_ms: int) -> None:
        """`cluster_forgotten`'s entries again: each node forgotten (if known), its tombstone
        and the rest of its ban."""
        self._state.restore_forgotten(entries, now_ms)

    def reject(self, error: MessageError) -> Outcome:
        """Count a message that failed validation before it reached the model."""
        return self._state.reject(error)

    def apply(self, msg: NodeMessage, now_ms: int) -> Outcome:
        """Apply an already built message, validated exactly as `publish` would."""
        return self.publish(msgspec.json.encode(msg), now_ms)

    def refresh(self, now_ms: int) -> bool:
        """Run failure detection at `now_ms`; O(1) until the next deadline.

        Returns:
            True if any node or cluster state changed.
        """
        state = self._state
        if now_ms < state.next_deadline:  # the common case, without a call
            return False
        return state.refresh(now_ms)

    @property
    def version(self) -> int:
        """Rises with every applied message and every failure-state transition."""
        return self._state.version

    @property
    def topology_version(self) -> int:
        """Rises when anything but last-seen times, seqs and heartbeat payloads changes."""
        return self._state.topology_version

    @property
    def current_epoch(self) -> int:
        return self._state.current_epoch

    def forget(self, node_id: str, now_ms: int) -> bool:
        """Forget a known node as CLUSTER FORGET does: everything the model holds for it goes,
        its (epoch, seq) and its publisher's binding included, and its messages are refused
        for `forget_ban_ms` after; False if no such node is known."""
        forgotten = self._state.forget(node_id, now_ms)
        if forgotten:
            self.bindings.release(node_id)
        return forgotten

    @property
    def fail_rule(self) -> str:
        """The failure rule in force, `redis` or `timer` (the setting `auto` resolved)."""
        return self._state.fail_rule

    @property
    def fail_rule_setting(self) -> str:
        """The configured failure rule: `auto`, `redis` or `timer`."""
        return self._state.fail_rule_setting

    def note_reports_seen(self) -> None:
        """A snapshot's history held a fail_report (`auto` is Redis's rule from then on):
        restore that before replaying its messages, whose refreshes follow the rule."""
        self._state.note_reports_seen()

    @property
    def cluster_state(self) -> str:
        """`ok` or `fail`, as of the last refresh or message."""
        return "ok" if self._state.cluster_ok else "fail"

    def counters(self) -> Counters:
        state = self._state
        return Counters(
            received=dict(state.received),
            applied=state.applied,
            stale=state.stale,
            rejected=dict(state.rejected),
            slot_conflicts=state.slot_conflicts,
            events_dropped=state.events_dropped,
        )

    def message_totals(self) -> tuple[int, int, int]:
        """Messages applied, stale and rejected so far: ``counters`` without its copies."""
        state = self._state
        return state.applied, state.stale, sum(state.rejected.values())

    def drain_events(self) -> list[ClusterEvent]:
        """The change events recorded since the last drain, oldest first."""
        events = list(self._state.events)
        self._state.events.clear()
        return events

    def node(self, node_id: str) -> NodeInfo | None:
        """One node's record, or None if the model does not know it."""
        node = self._state.nodes.get(node_id)
        return None if node is None else self._views.node_info(node)

    @property
    def node_count(self) -> int:
        """How many nodes the model knows (left nodes excluded)."""
        return len(self._state.nodes)

    def nodes(self) -> Iterator[NodeInfo]:
        """Every known node, sorted by id."""
        nodes = self._state.nodes
        for node_id in sorted(nodes):
            yield self._views.node_info(nodes[node_id])

    def roles(self) -> Iterator[tuple[str, Literal["master", "replica"], str | None]]:
        """`(id, effective role, replicaof)` per node, in no set order: a scan that builds
        no `NodeInfo`, for comparing roles after a topology change."""
        role = self._views.role
        for node in self._state.nodes.values():
            yield node.id, role(node), None if node.hello is None else node.hello.replicaof

    def node_rows(self) -> Iterator[NodeRow]:
        """`(id, state, last_seen_ms, heartbeat, heartbeat_ms, addr)` per node, in no set order.

        A cheap scan for views rebuilt once per model version; `nodes()` builds a `NodeInfo` each.
        `addr` is the hello's `host:port[@busport]`, None before the first hello.
        """
        for node in self._state.nodes.values():
            yield _row(node)

    def node_row(self, node_id: str) -> NodeRow | None:
        """One node's `node_rows` row, or None if the model does not know it."""
        node = self._state.nodes.get(node_id)
        return None if node is None else _row(node)

    @property
    def changes(self) -> ChangeLog:
        """The ids of nodes whose record changed, in order: read with a cursor (`ChangeLog`)."""
        return self._state.changes

    def count_failure_reports(self, node_id: str, now_ms: int) -> int | None:
        """Valid failure reports against a known node from slot-serving masters; None if unknown."""
        self._state.refresh(now_ms)
        if node_id not in self._state.nodes:
            return None
        return self._state.count_reports(node_id, now_ms)

    def explain_node(self, node_id: str, now_ms: int) -> dict[str, Any] | None:
        """HEALTH EXPLAIN NODE: the evidence behind a node's state (cluster/explain.py);
        None if the node is not known."""
        self._state.refresh(now_ms)
        return explain_node(self._state, node_id, now_ms)

    def explain_cluster(self, now_ms: int) -> dict[str, Any]:
        """The evidence behind `cluster_state` (cluster/explain.py)."""
        self._state.refresh(now_ms)
        return explain_cluster(self._state, now_ms)

    def safe_to_stop(self, node_ids: Sequence[str], now_ms: int) -> dict[str, Any]:
        """HEALTH SAFE-TO-STOP: would the cluster stay ok if these nodes stopped now
        (cluster/whatif.py); raises `ApiError` for bad ids."""
        self._state.refresh(now_ms)
        return safe_to_stop(self._state, node_ids, now_ms)

    def cluster_info_text(self, now_ms: int) -> str:
        """CLUSTER INFO: `field:value\\r\\n` lines in Redis's order.

        `cluster_my_epoch` is 0: an observer is no member and has no config epoch. The
        `cluster_stats_messages_*_received` counts are valid messages, applied or stale;
        rejected ones are only in `counters().rejected`. Nothing is sent, so `_sent` is 0.
        """
        self._state.refresh(now_ms)
        return self._views.cluster_info()

    def summary(self, now_ms: int) -> ClusterSummary:
        """CLUSTER INFO's cluster figures as numbers: the same values its text shows."""
        self._state.refresh(now_ms)
        return self._views.summary()

    def cluster_nodes_text(self, now_ms: int) -> str:
        """CLUSTER NODES: one `\\n`-terminated line per node, sorted by node id."""
        self._state.refresh(now_ms)
        return self._views.cluster_nodes()

    def cluster_nodes_bytes(self, now_ms: int) -> bytes:
        """`cluster_nodes_text` encoded (UTF-8); only the lines of changed nodes are rebuilt."""
        self._state.refresh(now_ms)
        return self._views.cluster_nodes_bytes()

    def cluster_slots(self, now_ms: int) -> list[SlotRange]:
        """CLUSTER SLOTS rows in slot order; failed replicas are left out."""
        self._state.refresh(now_ms)
        return self._views.cluster_slots()

    def cluster_shards(self, now_ms: int) -> list[Shard]:
        """CLUSTER SHARDS data, one shard per slot-serving master, in slot order."""
        self._state.refresh(now_ms)
        return self._views.cluster_shards()


def _row(node: Node) -> NodeRow:
    hello = node.hello
    return (node.id, node.state, node.last_seen_ms, node.heartbeat, node.heartbeat_ms,
            None if hello is None else hello.addr)


def _too_far(field: str, value: int, base: int) -> MessageError:
    return MessageError(field, f"{value} is more than {MAX_EPOCH_STEP} past the cluster's "
                        f"epoch {base}", "range")
