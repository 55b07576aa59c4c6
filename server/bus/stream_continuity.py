"""The stream's continuity: entries trimmed before they were read, and a stream that vanishes.

Every instance looks at ``XINFO STREAM`` each second and whenever a read finds nothing new.
Entries trimmed before anyone snapshotted them are counted as ``lost`` (from
``max-deleted-entry-id``), never silently.

A stream that is gone (``DEL``), or that came back as a new one (its ``entries-added`` went
down, or its last id is behind the last id this instance read), was reset: counted in
``bus_stream_resets`` and logged at warning level. While it is gone, and while the instance
reads a stream recreated behind its last id again from its start (``XADD *`` in a new
stream gives ids from Redis's clock, which can be below the old ones: a reader waiting after
its last id would never see them), ``stream_trouble`` says so: ``bus_state`` is ``down``
with it as the reason and HEALTH's ``busFresh`` is DOWN. The messages kept for the snapshot
move before the new stream's ids (``Compactor.rebase``), so a snapshot still replays in the
order they were applied.

The same figures give ``bus_lag_entries``: XINFO's ``entries-added`` against the entries
read here, counted from a moment both were known to match.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .busclock import parse_entry_id
from .compaction import Compactor
from .stream_shared import ReadPosition, StreamClients, StreamSettings

__all__ = ["StreamContinuity"]

log = logging.getLogger("clusterwatch.bus")


class StreamContinuity:
    def __init__(self, settings: StreamSettings, *, address: str, position: ReadPosition,
                 compactor: Compactor, clients: StreamClients) -> None:
        self._settings = settings
        self._address = address
        self._position = position
        self._compactor = compactor
        self._clients = clients
        self.lost = 0
        self.stream_resets = 0
        self.stream_trouble = ""
        self.stream_length = 0
        self.stream_last_id = "0-0"
        self._stream_seen = False
        self._gone = False  # XINFO found no stream (after this instance had seen one)
        self.reread_due = False  # the reader is to read the stream again from its start
        self._rereads = 0
        self._reread_target: tuple[int, int] | None = None
        self._life_start = 0  # entries_read when this instance began on the current stream
        # (entries-added, entries_read) when both were known to match.
        self._lag_base: tuple[int, int] | None = None
        self._entries_added = 0

    async def stream_info(self, client: aioredis.Redis) -> dict[str, Any]:
        """XINFO STREAM as a dict with str keys and ids (``missing`` when there is no
        stream), with what this instance had read and seen when it asked (``observe``
        compares the answer with those, not with what was read while it travelled)."""
        position = self._position
        asked = {"read_before": position.last_key, "entries_read_before": position.entries_read,
                 "rereads_before": self._rereads}
        try:
            raw = await client.xinfo_stream(self._settings.stream)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return {"missing": True, "length": 0, "last-generated-id": "0-0", **asked}
            raise
        info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
        for name in ("last-generated-id", "max-deleted-entry-id"):
            value = info.get(name)
            if isinstance(value, bytes):
                info[name] = value.decode()
        info.update(asked)
        return info

    def observe(self, info: dict[str, Any]) -> None:
        """Take in XINFO STREAM's figures, and notice a stream that vanished or came back
        as a new one."""
        stream = self._settings.stream
        position = self._position
        if info.get("missing"):
            self.stream_length = 0
            if (self._stream_seen or position.entries_read) and not self._gone:
                self._gone = True
                self.reset(f"the stream {stream} is gone (deleted?)")
                self.stream_trouble = (f"the stream {stream} is gone (deleted?): waiting for "
                                       "it to be recreated")
            return
        self.stream_length = int(info.get("length", 0))
        self.stream_last_id = info.get("last-generated-id", "0-0")
        added = info.get("entries-added")
        if added is not None:
            self._entries_added = int(added)
        self._stream_seen = True
        tail = parse_entry_id(self.stream_last_id)
        if tail < info["read_before"]:
            # Ids below what this instance had read when it asked: a new stream.
            if not self.reread_due and info["rereads_before"] == self._rereads:
                if not self._gone:
                    self.reset(f"the stream {stream} was recreated")
                self._gone = False
                self.reread_due = True
                self._reread_target = tail
                self.stream_trouble = (
                    f"the stream {stream} was recreated behind the last id read here "
                    f"({position.last_id}; its last id is {self.stream_last_id}): reading it "
                    "again from its start")
            return
        if self._gone:  # back, after the ids read here: reading goes on
            self._gone = False
            self._life_start = info["entries_read_before"]
            self._lag_base = None
            if not self.reread_due and self._reread_target is None:
                self.stream_trouble = ""
        elif added is not None and info["entries_read_before"] - self._life_start > int(added):
            # More entries read here than were ever added to it: a new stream.
            self.reset(f"the stream {stream} was recreated (it has {added} entries "
                       f"added, fewer than this instance read)")
            self._life_start = position.entries_read
            self._lag_base = None
        self._count_lost(info)

    def reset(self, what: str) -> None:
        self.stream_resets += 1
        log.warning("redis-stream bus stream was reset: entries this instance had not read "
                    "are lost", extra={"bus": self._address, "reset": what,
                                       "last_id": self._position.last_id,
                                       "resets": self.stream_resets})

    def reread_if_due(self) -> None:
        if self.reread_due:
            self.read_from_start(self._reread_target)

    def read_from_start(self, target: tuple[int, int] | None) -> None:
        """Read the (recreated) stream again from its start. What the snapshot keeps moves
        before its ids; the trouble lasts until the reader reaches ``target``."""
        position = self._position
        self.reread_due = False
        self._rereads += 1
        self._life_start = position.entries_read
        self._compactor.rebase()
        position.moved_to("0-0")
        self._lag_base = None
        self._reread_target = target
        if target is None or target <= position.last_key:
            self._caught_up()

    def note_read(self) -> None:
        """The reader moved on: a re-read that reached its target is over."""
        target = self._reread_target
        if target is not None and not self.reread_due and self._position.last_key >= target:
            self._caught_up()

    def _caught_up(self) -> None:
        self._reread_target = None
        self.stream_trouble = ""

    async def look_at_stream(self) -> None:
        """A publish landed behind the last id read here: look at the stream now."""
        writer = self._clients.writer
        if writer is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            self.observe(await self.stream_info(writer))

    def _count_lost(self, info: dict[str, Any]) -> None:
        position = self._position
        deleted = parse_entry_id(info.get("max-deleted-entry-id", "0-0"))
        if deleted > position.last_key:
            # Entries in (last_id, max-deleted-entry-id] are gone unread. Their number is
            # not knowable; the episodes are counted and the range logged.
            log.warning("redis-stream bus entries were trimmed before this instance read "
                        "them", extra={"bus": self._address, "after": position.last_id,
                                       "trimmed_to": info.get("max-deleted-entry-id")})
            self.lost += 1

    def count_lag_from(self, entries_added: int, entries_read: int) -> None:
        """``entries_added`` in XINFO's count is ``entries_read`` here."""
        self._lag_base = (entries_added, entries_read)

    def note_if_at_tail(self) -> None:
        if self.stream_last_id == self._position.last_id:
            self._lag_base = (self._entries_added, self._position.entries_read)

    def lag_entries(self) -> int:
        """Entries appended and not read yet, from XINFO's entries-added; -1 while unknown
        (replaying from a snapshot, until this instance first reaches the tail)."""
        position = self._position
        if self.stream_last_id == position.last_id:
            return 0
        if self._lag_base is None:
            return -1
        base_added, base_read = self._lag_base
        return max(0, self._entries_added - base_added - (position.entries_read - base_read))
