"""The compacted snapshot: what survives trimming of the bus stream.

Rule: for every node, the snapshot keeps its latest ``hello``, ``slots`` and ``heartbeat``,
its latest message of any kind (its ``(epoch, seq)`` and last-seen time), its latest
``fail_report`` about each target while such a report can still count (``validity_ms``), and
a ``leave`` as the tombstone that drops everything else the node said before it (its failure
reports stay, as they do in the model, until they expire). Each kept
message carries its stream id and its receive time on the bus clock.

Replaying the kept messages in stream-id order, at their receive times, rebuilds what the
latest messages hold: each node's kept messages are a subsequence of its own applied order
(so none is stale); its latest heartbeat carries its current ``failing`` and ``forgotten``
lists at their receive time, its latest ``slots`` its open slots. The rest of the model is
history that no latest message holds, and the snapshot carries it from the model itself
(``ModelHistory``), restored after the replay (``restore_history``):

* the slot claims (cluster/slots.py): claims a node stopped listing, releases, the claims
  ever seen, as the slot table's runs;
* the ``fail`` states, each with the time it began: Redis's FAIL outlives the quorum that set
  it, so the rebuilt model holds exactly the nodes that were ``fail``, as ``fail`` (a node
  the replay failed with partial evidence, and the full history did not, is not);
* the nodes the cluster forgot (a majority's ``forgotten`` lists, merge rule 8), each with
  its tombstone's ``(epoch, seq)`` and the end of its ban: their kept messages are dropped
  (a restarted instance must not bring back a node ``del-node`` removed, after the lists
  that forgot it expired) unless the node spoke again after its tombstone;
* whether the ``auto`` failure rule switched to Redis's;
* the bindings of nodes to the users that publish for them (``cluster/publishers.py``):
  the replayed messages carry no publisher.

The snapshot covers the stream up to ``covers``; an instance loads it and then reads the
stream after ``covers``. An instance writes one every snapshot interval and whenever it has
applied half of ``--bus-maxlen`` entries since the last, so the retained stream always
reaches back past the newest snapshot; a snapshot only replaces an older one. A snapshot
from an older version (no slot runs) is replayed alone: the claims follow the latest
``slots`` messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from clusterwatch.cluster import ClusterModel, FailReport, Leave, NodeMessage

__all__ = ["Compactor", "Kept", "ModelHistory", "Snapshot", "decode_snapshot",
           "history_of", "restore_history"]

Kept = tuple[str, int, str]  # (stream id, receive time on the bus clock, the message JSON)
SlotRun = tuple[int, int, list[tuple[int, str, bool]], list[tuple[int, str]]]
Forgotten = tuple[str, int, int, int]  # (node, tombstone epoch, tombstone seq, ban ends)


class ModelHistory(NamedTuple):
    """What the model holds beyond its nodes' latest messages (the header's list)."""

    fail_since: dict[str, int]
    slots: list[SlotRun]
    forgotten: list[Forgotten]
    reports_seen: bool


def history_of(model: ClusterModel, now_ms: int) -> ModelHistory:
    """`model`'s history at `now_ms`, for a snapshot."""
    model.refresh(now_ms)
    return ModelHistory(model.failed_since(), model.export_slots(),
                        model.cluster_forgotten(now_ms),
                        model.fail_rule_setting == "auto" and model.fail_rule == "redis")


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    v: int = 1
    covers: str  # the last stream id the snapshot includes
    last_entry_ms: int  # the bus clock at `covers`
    bus_ms: int
    messages: list[Kept]
    # Nodes that were fail at `bus_ms`: a quorum of reports is history the messages above
    # may no longer hold (ClusterModel.restore_fail).
    failed: list[str] = []
    # A report was applied in the history (the `auto` failure rule is then Redis's).
    reports_seen: bool = False
    # When each node in `failed` became fail (absent in older snapshots: at `bus_ms`).
    fail_since: dict[str, int] = {}
    # The slot table's runs (cluster/slots.py SlotTable.export); None in older snapshots.
    slots: list[SlotRun] | None = None
    # Nodes the cluster forgot: (node, tombstone epoch, tombstone seq, ban ends).
    forgotten: list[Forgotten] = []
    # Who publishes for each node (cluster/publishers.py): node id -> user name.
    bindings: dict[str, str] = {}


def restore_history(model: ClusterModel, snapshot: Snapshot) -> None:
    """After the snapshot's messages were replayed into `model`: what they do not hold."""
    now_ms = snapshot.bus_ms
    if snapshot.slots is not None:
        model.restore_slots(snapshot.slots, now_ms)
    model.restore_forgotten(snapshot.forgotten, now_ms)
    model.restore_fail({**dict.fromkeys(snapshot.failed, now_ms), **snapshot.fail_since},
                       now_ms, exact=snapshot.slots is not None)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    """Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError`` on a foreign value."""
    return _DECODER.decode(data)


def _id_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


def _order(kept: tuple[bytes, int, bytes]) -> tuple[int, int]:
    return _id_order(kept[0])


class Compactor:
    """Notes each applied message; ``snapshot`` gives the compacted set."""

    def __init__(self, validity_ms: int) -> None:
        self.validity_ms = validity_ms
        # node id -> (message class, target) -> (stream id, receive time, JSON); the key
        # (None, "") holds the node's latest message of any kind.
        self._nodes: dict[str, dict[tuple[type | None, str], tuple[bytes, int, bytes]]] = {}

    def note(self, msg: NodeMessage, entry_id: bytes, receive_ms: int, raw: bytes) -> None:
        """Keep ``msg`` (stream id ``entry_id``, applied at ``receive_ms``) if it counts."""
        kept = (entry_id, receive_ms, raw)
        node = msg.node
        kind = type(msg)
        if kind is Leave:
            # The model keeps a leaver's failure reports until they expire: so does this.
            reports = {key: value for key, value in self._nodes.get(node, {}).items()
                       if key[0] is FailReport}
            self._nodes[node] = {**reports, (Leave, ""): kept, (None, ""): kept}
            return
        record = self._nodes.get(node)
        if record is None:
            record = self._nodes[node] = {}
        record[(kind, msg.target if kind is FailReport else "")] = kept  # type: ignore[union-attr]
        record[(None, "")] = kept

    def __len__(self) -> int:
        return len(self._nodes)

    def rebase(self) -> None:
        """Renumber the kept messages ``0-1``, ``0-2``... in stream order, so that every id
        of a stream recreated from scratch sorts after them."""
        unique = {kept[0]: kept for record in self._nodes.values() for kept in record.values()}
        renamed = {entry_id: b"0-%d" % rank
                   for rank, entry_id in enumerate(sorted(unique, key=_id_order), start=1)}
        for record in self._nodes.values():
            for key, (entry_id, receive_ms, raw) in record.items():
                record[key] = (renamed[entry_id], receive_ms, raw)

    def kept(self, now_ms: int) -> list[Kept]:
        """The messages to replay, in stream order; expired failure reports left out."""
        horizon = now_ms - self.validity_ms
        unique: dict[bytes, tuple[bytes, int, bytes]] = {}
        for record in self._nodes.values():
            for (kind, _), kept in record.items():
                if kind is FailReport and kept[1] < horizon:
                    continue
                unique[kept[0]] = kept
        ordered = sorted(unique.values(), key=_order)
        return [(i.decode(), ms, raw.decode()) for i, ms, raw in ordered]

    def snapshot(self, covers: str, last_entry_ms: int, bus_ms: int,
                 failed: Sequence[str] | None = None, reports_seen: bool = False, *,
                 history: ModelHistory | None = None,
                 bindings: dict[str, str] | None = None) -> bytes:
        """The snapshot at `bus_ms`; with the model's `history` (`history_of`), the fail
        states and `reports_seen` come from it."""
        if history is None:
            return _ENCODER.encode(Snapshot(covers=covers, last_entry_ms=last_entry_ms,
                                            bus_ms=bus_ms, messages=self.kept(bus_ms),
                                            failed=sorted(failed or ()),
                                            reports_seen=reports_seen, bindings=bindings or {}))
        self._drop_forgotten(history.forgotten)
        return _ENCODER.encode(Snapshot(
            covers=covers, last_entry_ms=last_entry_ms, bus_ms=bus_ms,
            messages=self.kept(bus_ms), failed=sorted(history.fail_since),
            reports_seen=history.reports_seen, fail_since=history.fail_since,
            slots=history.slots, forgotten=history.forgotten,
            bindings=bindings or {}))

    def _drop_forgotten(self, forgotten: list[Forgotten]) -> None:
        """Forget the records of nodes the cluster forgot, but for their failure reports,
        unless the node spoke after its tombstone."""
        for node, epoch, seq, _ban_ends in forgotten:
            record = self._nodes.get(node)
            last = None if record is None else record.get((None, ""))
            if record is None or last is None:
                continue
            latest = msgspec.json.decode(last[2])
            if (latest["epoch"], latest["seq"]) > (epoch, seq):
                continue
            reports = {key: kept for key, kept in record.items() if key[0] is FailReport}
            if reports:
                self._nodes[node] = reports
            else:
                del self._nodes[node]
