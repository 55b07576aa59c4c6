"""The Redis-stream bus's reader: one task that reads the stream, reconnecting as needed.

``XREAD COUNT n BLOCK tick STREAMS <stream> <last id>``; each batch goes to the entry
applier (``stream_entries.py``). A busy stream (a batch of 16 entries or more, yet not a
full read) makes the reader wait 1 ms before the next ``XREAD``, so the next batch is
larger. On a quiet stream the reader appends a ``tick`` once its jittered wait (one to one
and a half tick intervals) ends with nothing read, so bus time moves for everyone.

On any error the reader marks the bus down, reconnects with backoff (50 ms doubling to
1 s) and resumes after its last applied id: nothing is skipped and nothing applied twice.
While the bus is down its clock stands still, so no node is failed for the silence.

Start-up. At first contact the instance loads the newest snapshot
(``stream_snapshots.py``), then reads the stream after the snapshot's id up to the tail it
saw at start; until then ``ready`` is False (HEALTH STARTUP and READY answer DOWN). A
snapshot that covers ids beyond the stream's last id outlived its stream: the stream is
read from its start (``stream_continuity.py``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from redis.exceptions import RedisError

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor
from .stream_continuity import StreamContinuity
from .stream_entries import EntryApplier
from .stream_shared import (
    BusTasks,
    ReadPosition,
    StreamClients,
    StreamSettings,
    reason,
    wall_ms,
)
from .stream_snapshots import StreamSnapshots

__all__ = ["StreamReader"]

log = logging.getLogger("clusterwatch.bus")

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0
_LINGER_MIN = 16
_LINGER_S = 0.001


class StreamReader:
    def __init__(self, settings: StreamSettings, *, address: str, instance: str,
                 position: ReadPosition, clock: BusClock, compactor: Compactor,
                 clients: StreamClients, tasks: BusTasks, continuity: StreamContinuity,
                 snapshots: StreamSnapshots, applier: EntryApplier) -> None:
        self._settings = settings
        self._address = address
        self._instance = instance
        self._position = position
        self._clock = clock
        self._compactor = compactor
        self._clients = clients
        self._tasks = tasks
        self._continuity = continuity
        self._snapshots = snapshots
        self._applier = applier
        self._started = time.monotonic()
        self.reconnects = 0
        self.replay_ms = 0

    async def read_forever(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._tasks.closing:
            try:
                await self._read_session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                self._mark_down(exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if self._position.state == "up":
                backoff = _BACKOFF_FIRST

    def _mark_down(self, exc: BaseException) -> None:
        position = self._position
        if position.state != "down":
            log.warning("redis-stream bus unavailable", extra={
                "bus": self._address, "reason": reason(exc), "last_id": position.last_id})
        position.state = "down"
        position.down_reason = reason(exc)

    async def _read_session(self) -> None:
        reader = self._clients.reader
        assert reader is not None
        settings = self._settings
        stream = settings.stream
        position = self._position
        continuity = self._continuity
        info = await continuity.stream_info(reader)
        if position.replay_target is None:  # first contact: snapshot, then replay to the tail
            self._clock.observe_wall(wall_ms())
            if not await self._snapshots.load(reader):
                continuity.count_lag_from(
                    int(info.get("entries-added", 0)) - int(info.get("length", 0)), 0)
            position.replay_target = parse_entry_id(info.get("last-generated-id", "0-0"))
            if position.replay_target < position.last_key:  # the snapshot outlived its stream
                continuity.reset(f"the stream {stream} ends at {info['last-generated-id']}, "
                                 f"before the snapshot's {position.last_id}: it was recreated")
                continuity.read_from_start(None)
            continuity.observe(info)
        else:
            if position.state == "down":
                self.reconnects += 1
                log.info("redis-stream bus reconnected", extra={
                    "bus": self._address, "resume_after": position.last_id})
            continuity.observe(info)
        position.state = "up"
        position.down_reason = ""
        while not self._tasks.closing:
            if not self.replay_ms and position.ready:
                self.replay_ms = int((time.monotonic() - self._started) * 1000)
                log.info("redis-stream bus replayed", extra={
                    "bus": self._address, "entries": position.entries_read,
                    "replay_ms": self.replay_ms, "nodes": len(self._compactor)})
            continuity.reread_if_due()
            # A jittered wait: on a quiet stream the instance whose wait ends first ticks,
            # and the others see its tick before theirs ends, so one tick a tick interval.
            block_ms = settings.tick_ms + random.randrange(settings.tick_ms // 2 + 1)
            reply: Any = await reader.xread({stream: position.last_id},
                                            count=settings.read_count, block=block_ms)
            entries = reply[0][1] if reply else []
            if entries:
                self._applier.apply(entries)
                if _LINGER_MIN <= len(entries) < settings.read_count:
                    # Busy but not flooded: let a batch build up instead of paying a round
                    # trip for every few entries. A lone entry is read at once.
                    await asyncio.sleep(_LINGER_S)
            else:
                # Nothing after our last id: a quiet stream, or one recreated behind it.
                continuity.observe(await continuity.stream_info(reader))
                if position.ready and not continuity.reread_due:
                    await self._tick()

    async def _tick(self) -> None:
        """The stream was quiet for a tick: append one, so bus time moves for everyone."""
        writer = self._clients.writer
        if writer is None:
            return
        strategy, threshold = self._settings.trim()
        trim: dict[str, Any] = {}
        if strategy:
            trim = {strategy.lower(): threshold, "approximate": True}
        await writer.xadd(self._settings.stream, {b"tick": self._instance.encode()}, **trim)
