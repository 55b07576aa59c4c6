"""Applying what the reader read: one ``XREAD`` batch of stream entries into the model.

Entries are applied in stream order, each at its stream id's time on the bus clock
(``busclock.py``: the Redis master's clock, gaps excused, ids too far ahead held to a
bound, warned about at most once a minute). Instances that have read the same entries hold
the same model, failure detection included.

An entry's fields: ``m``, the node message; ``u`` and ``a``, the user that published it
and whether that user is an admin (absent when published without a user), so every
instance judges it with the same publisher. An entry without ``m`` is a ``tick`` (bus time
moves for everyone) or foreign: counted and skipped. An entry published here is settled
with its waiting ``BUS PUBLISH`` (``publish_waits.py``), its message not decoded again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from clusterwatch.cluster import ClusterModel, NodeMessage
from clusterwatch.cluster.publishers import Publisher

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor
from .publish_waits import PublishWaits
from .stream_continuity import StreamContinuity
from .stream_shared import ReadPosition, wall_ms
from .stream_snapshots import StreamSnapshots

__all__ = ["EntryApplier"]

log = logging.getLogger("clusterwatch.bus")

_SKEW_WARNING_S = 60.0
# Publishers met in entries (user, admin), each with its key verdicts: a handful in practice.
_PUBLISHERS = 1024


class EntryApplier:
    def __init__(self, model: ClusterModel, *, address: str, position: ReadPosition,
                 clock: BusClock, compactor: Compactor, waits: PublishWaits,
                 continuity: StreamContinuity, snapshots: StreamSnapshots,
                 on_applied: Callable[[int], None]) -> None:
        self._model = model
        self._address = address
        self._position = position
        self._clock = clock
        self._compactor = compactor
        self._waits = waits
        self._continuity = continuity
        self._snapshots = snapshots
        self._on_applied = on_applied
        self._publishers: dict[tuple[bytes, bool], Publisher] = {}
        self._skew_warned: float | None = None  # when ids ahead of our clock were last logged
        self.ticks = 0
        self.foreign = 0

    def apply(self, entries: list[list[Any]]) -> None:
        """Apply one XREAD batch: ``[id, [field, value, ...]]`` per entry, in stream order."""
        publish = self._model.publish_decoded
        apply_decoded = self._model.apply_decoded
        clock = self._clock
        clock.observe_wall(wall_ms())
        skewed = clock.skewed
        stamp = clock.stamp
        note = self._compactor.note
        waits = self._waits
        waiting = waits.by_entry
        node_messages = 0
        entry_id = b""
        publishers = self._publishers
        for entry_id, fields in entries:
            now = stamp(int(entry_id[:entry_id.index(b"-")]))
            publisher = None
            if len(fields) == 2 and fields[0] == b"m":
                data = fields[1]
            else:
                named = dict(zip(fields[::2], fields[1::2], strict=False))
                data = named.get(b"m")
                if data is None:
                    if fields[:1] == [b"tick"]:
                        self.ticks += 1
                    else:
                        self.foreign += 1
                    continue
                user = named.get(b"u")
                if user is not None:
                    key = (user, named.get(b"a") == b"1")
                    publisher = publishers.get(key)
                    if publisher is None:
                        if len(publishers) > _PUBLISHERS:
                            publishers.clear()
                        publisher = publishers[key] = Publisher(user.decode(errors="replace"),
                                                                admin=key[1])
            node_messages += 1
            slot = waiting.pop(entry_id, None) if waiting else None
            mine = slot[0].decoded.get(slot[1]) if slot is not None else None
            msg: NodeMessage | None
            if mine is not None and mine[0] == data:  # published here: decoded already
                msg = mine[1]
                outcome = apply_decoded(msg, now, publisher)
            else:
                outcome, msg = publish(data, now, publisher)
            if msg is not None and outcome.kind == "applied":
                note(msg, entry_id, now, data)
            if waits.appending:
                waits.record_early(entry_id, outcome)
            if slot is not None:
                waits.settle(slot[0], slot[1], entry_id, outcome)
        if not entry_id:
            return
        position = self._position
        position.moved_to(entry_id.decode())
        if clock.skewed != skewed:
            self._note_skew(entry_id)
        self._continuity.note_read()
        position.entries_read += len(entries)
        self._model.refresh(clock.now_ms)
        self._on_applied(node_messages)
        self._snapshots.count_applied(len(entries))

    def _note_skew(self, entry_id: bytes) -> None:
        """A batch held ids to the skew bound: warn, at most once a minute."""
        clock = self._clock
        now = time.monotonic()
        if self._skew_warned is not None and now - self._skew_warned < _SKEW_WARNING_S:
            return
        self._skew_warned = now
        ahead_ms = parse_entry_id(entry_id)[0] - (clock.limit_ms - clock.max_skew_ms)
        log.warning("redis-stream bus entries are ahead of this instance's clock; bus time "
                    "follows the local clock", extra={
                        "bus": self._address, "entry": entry_id.decode(), "ahead_ms": ahead_ms,
                        "bound_ms": clock.max_skew_ms, "skewed_entries": clock.skewed})
