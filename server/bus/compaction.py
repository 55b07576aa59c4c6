"""The compacted snapshot: what survives trimming of the bus stream.

Rule: for every node, the snapshot keeps its latest ``hello``, ``slots`` and ``heartbeat``,
its latest message of any kind (its ``(epoch, seq)`` and last-seen time), its latest
``fail_report`` about each target while such a report can still count (``validity_ms``), and
a ``leave`` as the tombstone that drops everything else the node said before it (its failure
reports stay, as they do in the model, until they expire). Each kept
message carries its stream id and its receive time on the bus clock.

Replaying the kept messages in stream-id order, at their receive times, rebuilds the model
that reading the whole stream built: each node's kept messages are a subsequence of its own
applied order (so none is stale), and merge rules 3 and 4 make slot owners and every other
view depend only on the latest claims and times, not on what came between. The snapshot
covers the stream up to ``covers``; an instance loads it and then reads the stream after
``covers``. An instance writes one every snapshot interval and whenever it has applied half
of ``--bus-maxlen`` entries since the last, so the retained stream always reaches back past
the newest snapshot; a snapshot only replaces an older one. The one piece of state that is
history, not latest messages, is a node failed by a quorum of reports whose senders have
since left or lost their slots: the snapshot lists the nodes that were ``fail``, and the
rebuilt model marks them ``fail`` again if they are at least ``pfail`` at its time. The
bindings of nodes to the users that publish for them (``cluster/publishers.py``) are kept
as they stand: the replayed messages carry no publisher.
"""

from __future__ import annotations

import msgspec

from clusterwatch.cluster import FailReport, Leave, NodeMessage

__all__ = ["Compactor", "Kept", "Snapshot", "decode_snapshot"]

Kept = tuple[str, int, str]  # (stream id, receive time on the bus clock, the message JSON)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    v: int = 1
    covers: str  # the last stream id the snapshot includes
    last_entry_ms: int  # the bus clock at `covers`
    bus_ms: int
    messages: list[Kept]
    # Nodes that were fail at `bus_ms`: a quorum of reports is history the messages above
    # may no longer hold (ClusterModel.restore_fail).
    failed: list[str] = []
    # A fail_report was applied in the history (the `auto` failure rule is then Redis's).
    reports_seen: bool = False
    # Who publishes for each node (cluster/publishers.py): node id -> user name.
    bindings: dict[str, str] = {}


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
                 failed: list[str] | None = None, reports_seen: bool = False,
                 bindings: dict[str, str] | None = None) -> bytes:
        return _ENCODER.encode(Snapshot(covers=covers, last_entry_ms=last_entry_ms,
                                        bus_ms=bus_ms, messages=self.kept(bus_ms),
                                        failed=sorted(failed or ()),
                                        reports_seen=reports_seen, bindings=bindings or {}))
