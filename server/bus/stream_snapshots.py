"""The Redis-stream bus's snapshots: the compacted model (``compaction.py``) kept in Redis.

At start-up the instance loads the newest snapshot, ``<stream>:snapshot`` (a hash: ``ms``
and ``seq`` of the id it covers, ``data``), then the reader reads the stream after the id
it covers. A snapshot key that cannot be read (another type, foreign content) is reported at
warning level and in ``bus_snapshot_error``, and the instance replays the stream instead;
it never overwrites a key that is not a snapshot.

Every instance writes a snapshot each ``--bus-snapshot-interval`` and after every
``maxlen / 2`` entries it applied, so a node that said ``hello`` an hour ago and has only
heartbeated since survives a stream trimmed to its last minute: its hello is in the
snapshot. A Lua guard keeps only the newest snapshot when several instances write one; a
snapshot that covers ids beyond the stream's last id (from a stream since deleted and
recreated) gives way to a newer one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from clusterwatch.cluster import ClusterModel

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor, decode_snapshot, history_of, restore_history
from .stream_shared import BusTasks, ReadPosition, StreamClients, StreamSettings, reason

__all__ = ["StreamSnapshots"]

log = logging.getLogger("clusterwatch.bus")

# KEYS[1] is the snapshot, KEYS[2] the stream.
_SAVE_SNAPSHOT = """
local old = redis.call('HMGET', KEYS[1], 'ms', 'seq')
local ms, seq = tonumber(ARGV[1]), tonumber(ARGV[2])
if old[1] then
  local oms, oseq = tonumber(old[1]), tonumber(old[2])
  if oms > ms or (oms == ms and oseq >= seq) then
    local info = redis.pcall('XINFO', 'STREAM', KEYS[2])
    if info.err then return 0 end
    local tail
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then tail = info[i + 1] end
    end
    local tms, tseq = string.match(tail or '', '^(%d+)-(%d+)$')
    tms, tseq = tonumber(tms), tonumber(tseq)
    if not tms or oms < tms or (oms == tms and oseq <= tseq) then return 0 end
  end
end
redis.call('HSET', KEYS[1], 'ms', ARGV[1], 'seq', ARGV[2], 'data', ARGV[3])
return 1
"""


class StreamSnapshots:
    def __init__(self, model: ClusterModel, settings: StreamSettings, *,
                 position: ReadPosition, clock: BusClock, compactor: Compactor,
                 clients: StreamClients, tasks: BusTasks,
                 on_applied: Callable[[int], None]) -> None:
        self._model = model
        self._settings = settings
        self._position = position
        self._clock = clock
        self._compactor = compactor
        self._clients = clients
        self._tasks = tasks
        self._on_applied = on_applied
        self._save: Any = None
        self._since_written = 0  # entries applied since the last write was asked for
        self.written = 0
        self.covers = ""
        self.error = ""

    @property
    def key(self) -> str:
        return f"{self._settings.stream}:snapshot"

    async def load(self, client: aioredis.Redis) -> bool:
        """Rebuild the model from the newest snapshot; False when there is none, or when it
        cannot be used (reported: the stream is replayed instead)."""
        try:
            raw: Any = await client.hget(self.key, "data")
        except ResponseError as exc:
            await self._unusable(client, exc)
            return False
        if raw is None:
            return False
        try:
            snapshot = decode_snapshot(raw)
            parse_entry_id(snapshot.covers)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            await self._unusable(client, exc)
            return False
        model = self._model
        if snapshot.reports_seen:
            model.note_reports_seen()
        for entry_id, receive_ms, text in snapshot.messages:
            data = text.encode()
            outcome, msg = model.publish_decoded(data, receive_ms)
            if msg is not None and outcome.kind == "applied":
                self._compactor.note(msg, entry_id.encode(), receive_ms, data)
        self._clock.restore(snapshot.last_entry_ms, snapshot.bus_ms)
        restore_history(model, snapshot)
        for node_id, user in snapshot.bindings.items():
            model.rebind(node_id, user)
        self._position.moved_to(snapshot.covers)
        self.covers = snapshot.covers
        model.refresh(self._clock.now_ms)
        self._on_applied(len(snapshot.messages))
        log.info("bus snapshot loaded", extra={"covers": snapshot.covers,
                                               "messages": len(snapshot.messages)})
        return True

    async def _unusable(self, client: aioredis.Redis, exc: Exception) -> None:
        self.error = await self._describe_error(client, exc)
        log.warning("bus snapshot cannot be used: replaying the stream instead", extra={
            "key": self.key, "error": self.error})

    async def _describe_error(self, client: aioredis.Redis, exc: Exception) -> str:
        """Why the snapshot key cannot be read or written, for BUS INFO and the log."""
        key = self.key
        if isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE"):
            kind: Any = "another type"
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                kind = await client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            return f"{key} holds a {kind}, not a snapshot hash: left as it is"
        if isinstance(exc, ResponseError):
            return f"{key}: {reason(exc)}"
        return f"{key} holds no readable snapshot: {reason(exc)}"

    def count_applied(self, entries: int) -> None:
        """The reader applied ``entries``: with ``--bus-maxlen``, write one each maxlen / 2."""
        self._since_written += entries
        maxlen = self._settings.maxlen
        if maxlen and self._since_written >= maxlen // 2:
            self._since_written = 0
            self._tasks.spawn(self.write())

    async def write(self) -> None:
        """Save the compacted model, unless another instance saved a newer one."""
        writer = self._clients.writer
        position = self._position
        if writer is None or not position.ready or position.last_id == "0-0":
            return
        if self._save is None:
            self._save = writer.register_script(_SAVE_SNAPSHOT)
        covers = position.last_id
        ms, seq = position.last_key
        now_ms = self._clock.now_ms
        model = self._model
        model.bindings.prune(model.known_nodes)
        data = self._compactor.snapshot(covers, self._clock.last_entry_ms or ms, now_ms,
                                        history=history_of(model, now_ms),
                                        bindings=dict(model.bindings.items()))
        try:
            saved = await self._save(keys=[self.key, self._settings.stream],
                                     args=[ms, seq, data])
        except ResponseError as exc:  # Redis answered: the key itself is the problem
            error = await self._describe_error(writer, exc)
            if error != self.error:
                log.warning("bus snapshot not written: a restarted instance replays what the "
                            "stream retains", extra={"key": self.key, "error": error})
            self.error = error
            return
        except (RedisError, OSError, TimeoutError) as exc:
            log.info("bus snapshot not written", extra={"reason": reason(exc)})
            return
        self.error = ""
        if saved:
            self.written += 1
            self.covers = covers
