"""The Redis-stream bus: several clusterwatch instances, one model, kept in a Redis Stream.

Publishing. ``BUS PUBLISH`` on any instance validates every message first: an invalid one
is answered exactly as on the memory bus and never appended. The valid ones are appended
as ``XADD <stream> [MAXLEN|MINID ~ ...] * m <json>`` each, in one round trip (a Lua script
runs the XADDs; then ``WAIT`` when ``--bus-wait-replicas`` asks for replicas). The reply
waits until this instance's own reader has applied them, so it carries the same outcomes
as the memory bus (``applied``, ``stale: ...``). Past ``--bus-publish-timeout`` it says
``pending`` for what is not applied yet; those entries stay in the stream and every
reader applies them. A Redis that refuses connections gets an immediate ``TRYAGAIN``
error; a frozen one the same error once the publish bound has passed: never a hang.

Reading. One reader task: ``XREAD COUNT n BLOCK tick STREAMS <stream> <last id>``, entries
applied in stream order, each at its stream id's time on the bus clock (``busclock.py``:
the Redis master's clock, gaps excused). Instances that have read the same entries hold the
same model, failure detection included. An entry without an ``m`` field (nor ``tick``) is
foreign: counted and skipped. On any error the reader marks the bus down, reconnects with
backoff (50 ms doubling to 1 s) and resumes after its last applied id: nothing is skipped
and nothing applied twice. While the bus is down its clock stands still, so no node is failed
for the silence.

Start-up. The instance loads the newest compacted snapshot (``<stream>:snapshot``, see
``compaction.py``), then reads the stream after the snapshot's id up to the tail it saw at
start; until then ``ready`` is False (HEALTH STARTUP and READY answer DOWN). Entries trimmed
before anyone snapshotted them are counted as ``lost`` (from ``XINFO STREAM``'s
``max-deleted-entry-id``), never silently.

Trimming. ``--bus-maxlen`` appends with ``MAXLEN ~ N``; ``--bus-retention-ms`` with
``MINID ~ <now - retention>``. Every instance writes a snapshot each
``--bus-snapshot-interval`` and after every ``maxlen / 2`` entries it applied, so a node that
said ``hello`` an hour ago and has only heartbeated since survives a stream trimmed to its
last minute: its hello is in the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from cluster import (
    ClusterModel,
    MessageError,
    NodeMessage,
    NodeState,
    Outcome,
    SelfCheck,
    decode_message,
)
from commands import CommandError, Deferred

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor, decode_snapshot
from .connect import display_url, redis_client

__all__ = ["RedisStreamBus", "StreamSettings"]

log = logging.getLogger("clusterwatch.bus")

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0
_STATS_INTERVAL = 1.0
# A batch of at least this many entries (yet under a full read) means a busy stream: the
# reader waits this long before the next XREAD, so the next batch is larger.
_LINGER_MIN = 16
_LINGER_S = 0.001
# Outcomes kept for appends whose reply is still on its way (see ``_early``).
_EARLY_MAX = 65_536
# The Lua guard that keeps only the newest snapshot when several instances write one.
_SAVE_SNAPSHOT = """
local old = redis.call('HMGET', KEYS[1], 'ms', 'seq')
local ms, seq = tonumber(ARGV[1]), tonumber(ARGV[2])
if old[1] then
  local oms, oseq = tonumber(old[1]), tonumber(old[2])
  if oms > ms or (oms == ms and oseq >= seq) then return 0 end
end
redis.call('HSET', KEYS[1], 'ms', ARGV[1], 'seq', ARGV[2], 'data', ARGV[3])
return 1
"""

# One round trip for a whole batch: redis-py packs one EVALSHA instead of one XADD each.
# ARGV[1] is the trim strategy ("", MAXLEN or MINID), ARGV[2] its threshold, then the
# messages. Scripts replicate by effects, so replicas get the XADDs with their ids.
_APPEND = """
local ids = {}
for i = 3, #ARGV do
  if ARGV[1] == '' then
    ids[i - 2] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
  else
    ids[i - 2] = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'm', ARGV[i])
  end
end
return ids
"""

BusState = Literal["starting", "replaying", "up", "down"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSettings:
    """The bus's share of ``ServerConfig`` (whose defaults and checks apply), in ms."""

    url: str
    stream: str
    maxlen: int
    retention_ms: int
    publish_timeout_ms: int
    snapshot_interval_ms: int
    wait_replicas: int
    # Quiet time after which an instance appends a tick; the bus clock's gap is 3 ticks.
    tick_ms: int = 1000
    read_count: int = 1000
    # Failure reports count for 2 x node_timeout; older ones are left out of snapshots.
    report_validity_ms: int = 30_000


class _Waiter:
    """A ``BUS PUBLISH`` waiting for its appended entries to be applied here."""

    __slots__ = ("appended", "decoded", "deferred", "indexes", "outcomes", "payloads", "pending",
                 "timer")

    def __init__(self, outcomes: list[Outcome | None],
                 deferred: Deferred[list[Outcome] | CommandError]) -> None:
        self.outcomes = outcomes
        self.deferred = deferred
        self.pending: dict[bytes, int] = {}  # entry id -> index in outcomes
        self.timer: asyncio.TimerHandle | None = None
        self.appended = False
        self.payloads: list[bytes] = []  # the valid messages, to append
        self.indexes: list[int] = []  # where each one's outcome goes
        # index -> (message, as decoded when validated): the reader need not decode it again
        self.decoded: dict[int, tuple[bytes, NodeMessage]] = {}


class RedisStreamBus:
    name = "redis-stream"

    def __init__(self, model: ClusterModel, settings: StreamSettings, *, instance: str,
                 on_applied: Callable[[int], None], max_message_bytes: int) -> None:
        self.model = model
        self.settings = settings
        self.address = display_url(settings.url)
        self.instance = instance
        self._on_applied = on_applied
        self._max_bytes = max_message_bytes
        self._clock = BusClock(3 * settings.tick_ms)
        self._compactor = Compactor(settings.report_validity_ms)
        self.state: BusState = "starting"
        self.down_reason = ""
        self.reconnects = 0
        self.last_id = "0-0"
        self._last_key = (0, 0)
        self.entries_read = 0
        self.ticks = 0
        self.foreign = 0
        self.lost = 0
        self.snapshots_written = 0
        self.snapshot_covers = ""
        self._since_snapshot = 0
        self._replay_target: tuple[int, int] | None = None
        self._replayed = False
        self.replay_ms = 0
        self._started = time.monotonic()
        self.stream_length = 0
        self.stream_last_id = "0-0"
        self._waiters: dict[bytes, tuple[_Waiter, int]] = {}
        # While appends are in flight, the outcome of every entry applied meanwhile: an
        # entry can be read back before its XADD reply reaches ``_append``.
        self._appending = 0
        self._early: dict[bytes, Outcome] = {}
        # (entries-added, entries_read) when this instance was last at the tail.
        self._ordinal: tuple[int, int] | None = None
        self._entries_added = 0
        self._open_waiters: set[_Waiter] = set()
        self._queued: list[_Waiter] = []
        self._reader: aioredis.Redis | None = None
        self._writer: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._save: Any = None
        self._append_sha = ""
        self._closing = False

    # --- Bus -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Latched: true from the moment the replay reached the tail seen at start."""
        if self._replayed:
            return True
        if self._replay_target is not None and self._last_key >= self._replay_target:
            self._replayed = True
        return self._replayed

    def now_ms(self) -> int:
        return self._clock.now_ms

    def self_check(self) -> SelfCheck | None:
        if self.state == "down":
            return SelfCheck("DOWN", f"redis-stream bus {self.address} unavailable: "
                             f"{self.down_reason}")
        if not self.ready:
            return SelfCheck("DOWN", f"replaying the redis-stream bus: at {self.last_id}, "
                             f"{self.entries_read} entries read")
        return None

    def info(self) -> Sequence[tuple[str, str | int]]:
        last_ms = self._last_key[0]
        stream_ms = parse_entry_id(self.stream_last_id)[0]
        return (
            ("bus_address", self.address),
            ("bus_stream", self.settings.stream),
            ("bus_state", self.state if self.state != "up" or self.ready else "replaying"),
            ("bus_down_reason", self.down_reason if self.state == "down" else ""),
            ("bus_reconnects", self.reconnects),
            ("bus_length", self.stream_length),
            ("bus_last_id", self.last_id),
            ("bus_stream_last_id", self.stream_last_id),
            ("bus_lag_entries", self._lag_entries()),
            ("bus_lag_ms", max(0, stream_ms - last_ms) if last_ms else 0),
            ("bus_entries_read", self.entries_read),
            ("bus_ticks", self.ticks),
            ("bus_foreign_entries", self.foreign),
            ("bus_lost_entries", self.lost),
            ("bus_clock_ms", self._clock.now_ms),
            ("bus_clock_excused_ms", self._clock.excused_ms),
            ("bus_snapshot_covers", self.snapshot_covers),
            ("bus_snapshots_written", self.snapshots_written),
            ("bus_replay_ms", self.replay_ms),
        )

    def _lag_entries(self) -> int:
        """Entries appended and not read yet, from XINFO's entries-added; -1 while unknown
        (replaying from a snapshot, until this instance first reaches the tail)."""
        if self.stream_last_id == self.last_id:
            return 0
        if self._ordinal is None:
            return -1
        base_added, base_read = self._ordinal
        return max(0, self._entries_added - base_added - (self.entries_read - base_read))

    def publish(self, messages: Sequence[bytes], *,
                wait: bool = True) -> list[Outcome] | Deferred[list[Outcome] | CommandError]:
        if not wait:
            raise CommandError("BUS PUBLISH cannot run inside MULTI on the redis-stream bus")
        outcomes: list[Outcome | None] = [None] * len(messages)
        valid: list[int] = []
        decoded: dict[int, tuple[bytes, NodeMessage]] = {}
        for index, data in enumerate(messages):
            try:
                decoded[index] = (data, decode_message(data, max_size=self._max_bytes))
            except MessageError as exc:
                outcomes[index] = self.model.reject(exc)
            else:
                valid.append(index)
        if not valid:
            return outcomes  # type: ignore[return-value]
        writer = self._writer
        if writer is None:
            raise self._unavailable()
        # Appending does not wait for the reader to be up: the writer has its own connection,
        # and a Redis that is back takes messages before the reader's backoff ends. A Redis
        # that refuses connections answers at once; a frozen one within the publish bound.
        deferred: Deferred[list[Outcome] | CommandError] = Deferred()
        waiter = _Waiter(outcomes, deferred)
        loop = asyncio.get_running_loop()
        waiter.timer = loop.call_later(self.settings.publish_timeout_ms / 1000,
                                       self._give_up, waiter)
        self._open_waiters.add(waiter)
        waiter.payloads = [messages[i] for i in valid]
        waiter.indexes = valid
        waiter.decoded = decoded
        # Publishes that arrive in the same loop turn share one round trip.
        if not self._queued:
            loop.call_soon(self._flush, writer)
        self._queued.append(waiter)
        return deferred

    def _flush(self, writer: aioredis.Redis) -> None:
        queued, self._queued = self._queued, []
        self._spawn(self._append(writer, queued))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _unavailable(self) -> CommandError:
        reason = self.down_reason or "not connected yet"
        return CommandError(f"bus unavailable: redis-stream {self.address}: {reason}",
                            "TRYAGAIN")

    def _trim(self) -> tuple[str, str]:
        """The trim strategy and threshold for the retention settings ("", "" for none)."""
        settings = self.settings
        if settings.maxlen:
            return "MAXLEN", str(settings.maxlen)
        if settings.retention_ms:
            # This instance's clock: it only decides how much history Redis keeps.
            return "MINID", str(time.time_ns() // 1_000_000 - settings.retention_ms)
        return "", ""

    async def _append(self, writer: aioredis.Redis, waiters: list[_Waiter]) -> None:
        self._appending += 1
        try:
            results = await self._send_appends(
                writer, [payload for waiter in waiters for payload in waiter.payloads])
        except (RedisError, OSError, TimeoutError) as exc:
            error = CommandError(
                f"bus unavailable: redis-stream {self.address}: {_reason(exc)}; some "
                "messages may have been appended (re-sending them is harmless)", "TRYAGAIN")
            for waiter in waiters:
                self._finish(waiter, error)
            return
        finally:
            self._appending -= 1
        early = self._early
        if not self._appending:
            self._early = {}
        ids: list[bytes] = results[0]
        wanted = self.settings.wait_replicas
        if wanted and results[-1] < wanted:
            error = CommandError(
                f"bus unavailable: appended as {ids[0].decode()}..{ids[-1].decode()} but only "
                f"{results[-1]} of {wanted} replicas acknowledged them (re-sending them is "
                "harmless)", "TRYAGAIN")
            for waiter in waiters:
                self._finish(waiter, error)
            return
        start = 0
        for waiter in waiters:
            waiter.appended = True
            mine = ids[start:start + len(waiter.indexes)]
            start += len(mine)
            for index, entry_id in zip(waiter.indexes, mine, strict=True):
                if parse_entry_id(entry_id) <= self._last_key:  # read back before this reply
                    waiter.outcomes[index] = early.get(entry_id) or Outcome(
                        "pending", entry=entry_id.decode(),
                        reason="applied; outcome not recorded")
                    continue
                waiter.pending[entry_id] = index
                self._waiters[entry_id] = (waiter, index)
            if not waiter.pending:
                self._finish(waiter, None)

    async def _send_appends(self, writer: aioredis.Redis, payloads: list[bytes]) -> list[Any]:
        """One round trip: the append script's entry ids, then WAIT's replica count.

        EVALSHA, not redis-py's Script in a pipeline, which asks SCRIPT EXISTS every time;
        a Redis that lost its script cache (a restart) gets it loaded again."""
        settings = self.settings
        args: list[str | bytes] = [settings.stream, *self._trim(), *payloads]
        for attempt in (1, 2):
            try:
                if not settings.wait_replicas:
                    return [await writer.evalsha(self._append_sha, 1, *args)]
                pipe = writer.pipeline(transaction=False)
                pipe.evalsha(self._append_sha, 1, *args)
                pipe.wait(settings.wait_replicas, settings.publish_timeout_ms // 2)
                results: list[Any] = await pipe.execute()
                return results
            except NoScriptError:
                if attempt == 2:
                    raise
                await writer.script_load(_APPEND)
        raise AssertionError("unreachable")

    def _give_up(self, waiter: _Waiter) -> None:
        bound = self.settings.publish_timeout_ms
        if not waiter.appended:
            self._finish(waiter, CommandError(
                f"bus unavailable: redis-stream {self.address} did not answer within "
                f"{bound} ms; some messages may have been appended (re-sending them is "
                "harmless)", "TRYAGAIN"))
            return
        for entry_id, index in waiter.pending.items():
            self._waiters.pop(entry_id, None)
            waiter.outcomes[index] = Outcome(
                "pending", entry=entry_id.decode(),
                reason=f"not applied by this instance within {bound} ms")
        waiter.pending.clear()
        self._finish(waiter, None)

    def _finish(self, waiter: _Waiter, error: CommandError | None) -> None:
        if waiter.deferred.done:
            return
        if waiter.timer is not None:
            waiter.timer.cancel()
        self._open_waiters.discard(waiter)
        for entry_id in waiter.pending:
            self._waiters.pop(entry_id, None)
        if error is not None:
            waiter.deferred.resolve(error)
        else:
            waiter.deferred.resolve([o for o in waiter.outcomes if o is not None])

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        timeout = self.settings.tick_ms * 1.5 / 1000 + 1.0
        self._reader = redis_client(self.settings.url, socket_timeout=timeout)
        self._writer = redis_client(self.settings.url,
                               socket_timeout=max(self.settings.publish_timeout_ms / 1000 * 0.8,
                                                  0.05))
        self._save = self._writer.register_script(_SAVE_SNAPSHOT)
        self._append_sha = hashlib.sha1(_APPEND.encode()).hexdigest()
        # Entries as hiredis parses them, without redis-py's per-entry dict building.
        self._reader.set_response_callback("XREAD", _as_is)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_forever(), name="bus-reader"),
                       loop.create_task(self._maintain(), name="bus-maintenance")]

    async def aclose(self) -> None:
        # The flag ends the loops even where redis-py turns a cancellation into a timeout.
        self._closing = True
        tasks = [*self._tasks, *self._inflight]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for waiter in list(self._open_waiters):
            self._finish(waiter, CommandError("bus closed: the server is shutting down",
                                              "TRYAGAIN"))
        for client in (self._reader, self._writer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    # --- the reader ------------------------------------------------------------------

    async def _read_forever(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._closing:
            try:
                await self._read_session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                self._mark_down(exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if self.state == "up":
                backoff = _BACKOFF_FIRST

    def _mark_down(self, exc: BaseException) -> None:
        if self.state != "down":
            log.warning("redis-stream bus unavailable", extra={
                "bus": self.address, "reason": _reason(exc), "last_id": self.last_id})
        self.state = "down"
        self.down_reason = _reason(exc)

    async def _read_session(self) -> None:
        reader = self._reader
        assert reader is not None
        settings = self.settings
        stream = settings.stream
        info = await self._stream_info(reader)
        if self._replay_target is None:  # first contact: snapshot, then replay to the tail
            if not await self._load_snapshot(reader, info):
                self._ordinal = (self._entries_added - self.stream_length, 0)
            self._replay_target = parse_entry_id(info.get("last-generated-id", "0-0"))
        else:
            if self.state == "down":
                self.reconnects += 1
                log.info("redis-stream bus reconnected", extra={
                    "bus": self.address, "resume_after": self.last_id})
            self._check_continuity(info)
        self.state = "up"
        self.down_reason = ""
        while not self._closing:
            if not self.replay_ms and self.ready:
                self.replay_ms = int((time.monotonic() - self._started) * 1000)
                log.info("redis-stream bus replayed", extra={
                    "bus": self.address, "entries": self.entries_read,
                    "replay_ms": self.replay_ms, "nodes": len(self._compactor)})
            # A jittered wait: on a quiet stream the instance whose wait ends first ticks,
            # and the others see its tick before theirs ends, so one tick a tick interval.
            block_ms = settings.tick_ms + random.randrange(settings.tick_ms // 2 + 1)
            reply: Any = await reader.xread({stream: self.last_id},
                                            count=settings.read_count, block=block_ms)
            entries = reply[0][1] if reply else []
            if entries:
                self._apply(entries)
                if _LINGER_MIN <= len(entries) < settings.read_count:
                    # Busy but not flooded: let a batch build up instead of paying a round
                    # trip for every few entries. A lone entry is read at once.
                    await asyncio.sleep(_LINGER_S)
            elif self.ready:
                await self._tick()

    def _apply(self, entries: list[list[Any]]) -> None:
        """Apply one XREAD batch: ``[id, [field, value, ...]]`` per entry, in stream order."""
        publish = self.model.publish_decoded
        apply_decoded = self.model.apply_decoded
        stamp = self._clock.stamp
        note = self._compactor.note
        waiters = self._waiters
        node_messages = 0
        entry_id = b""
        for entry_id, fields in entries:
            now = stamp(int(entry_id[:entry_id.index(b"-")]))
            if len(fields) == 2 and fields[0] == b"m":
                data = fields[1]
            else:
                data = dict(zip(fields[::2], fields[1::2], strict=False)).get(b"m")
                if data is None:
                    if fields[:1] == [b"tick"]:
                        self.ticks += 1
                    else:
                        self.foreign += 1
                    continue
            node_messages += 1
            slot = waiters.pop(entry_id, None) if waiters else None
            mine = slot[0].decoded.get(slot[1]) if slot is not None else None
            msg: NodeMessage | None
            if mine is not None and mine[0] == data:  # published here: decoded already
                msg = mine[1]
                outcome = apply_decoded(msg, now)
            else:
                outcome, msg = publish(data, now)
            if msg is not None and outcome.kind == "applied":
                note(msg, entry_id, now, data)
            if self._appending:
                early = self._early
                early[entry_id] = outcome
                if len(early) > _EARLY_MAX:
                    del early[next(iter(early))]
            if slot is not None:
                waiter, index = slot
                waiter.outcomes[index] = outcome
                del waiter.pending[entry_id]
                if not waiter.pending:
                    self._finish(waiter, None)
        if not entry_id:
            return
        self._last_key = parse_entry_id(entry_id)
        self.last_id = entry_id.decode()
        self.entries_read += len(entries)
        self._since_snapshot += len(entries)
        self.model.refresh(self._clock.now_ms)
        self._on_applied(node_messages)
        if self.settings.maxlen and self._since_snapshot >= self.settings.maxlen // 2:
            self._since_snapshot = 0
            self._spawn(self._write_snapshot())

    async def _tick(self) -> None:
        """The stream was quiet for a tick: append one, so bus time moves for everyone."""
        writer = self._writer
        if writer is None:
            return
        strategy, threshold = self._trim()
        trim: dict[str, Any] = {}
        if strategy:
            trim = {strategy.lower(): threshold, "approximate": True}
        await writer.xadd(self.settings.stream, {b"tick": self.instance.encode()}, **trim)

    def _check_continuity(self, info: dict[str, Any]) -> None:
        """After a reconnect: a stream whose ids went backwards was lost and recreated
        (a Redis without persistence restarted); read it again from its start."""
        tail = parse_entry_id(info.get("last-generated-id", "0-0"))
        if tail < self._last_key:
            log.warning("redis-stream bus was reset: its last id is behind ours; reading "
                        "it from the start", extra={"bus": self.address, "ours": self.last_id,
                                                    "theirs": info.get("last-generated-id")})
            self.last_id = "0-0"
            self._last_key = (0, 0)
            return
        self._count_lost(info)

    def _count_lost(self, info: dict[str, Any]) -> None:
        deleted = parse_entry_id(info.get("max-deleted-entry-id", "0-0"))
        if deleted > self._last_key:
            # Entries in (last_id, max-deleted-entry-id] are gone unread. Their number is
            # not knowable; the episodes are counted and the range logged.
            log.warning("redis-stream bus entries were trimmed before this instance read "
                        "them", extra={"bus": self.address, "after": self.last_id,
                                       "trimmed_to": info.get("max-deleted-entry-id")})
            self.lost += 1

    async def _stream_info(self, client: aioredis.Redis) -> dict[str, Any]:
        try:
            raw = await client.xinfo_stream(self.settings.stream)
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return {"length": 0, "last-generated-id": "0-0"}
            raise
        info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
        for name in ("last-generated-id", "max-deleted-entry-id"):
            value = info.get(name)
            if isinstance(value, bytes):
                info[name] = value.decode()
        self.stream_length = int(info.get("length", 0))
        self.stream_last_id = info.get("last-generated-id", "0-0")
        added = info.get("entries-added")
        if added is not None:
            self._entries_added = int(added)
        return info

    async def _load_snapshot(self, client: aioredis.Redis, info: dict[str, Any]) -> bool:
        """Rebuild the model from the newest snapshot; False when there is none."""
        raw: Any = await client.hget(self.snapshot_key, "data")
        if raw is None:
            self._count_lost(info)
            return False
        try:
            snapshot = decode_snapshot(raw)
            parse_entry_id(snapshot.covers)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("ignoring an unreadable bus snapshot", extra={
                "key": self.snapshot_key, "error": str(exc)})
            self._count_lost(info)
            return False
        model = self.model
        if snapshot.reports_seen:
            model.note_reports_seen()
        for entry_id, receive_ms, text in snapshot.messages:
            data = text.encode()
            outcome, msg = model.publish_decoded(data, receive_ms)
            if msg is not None and outcome.kind == "applied":
                self._compactor.note(msg, entry_id.encode(), receive_ms, data)
        self._clock.restore(snapshot.last_entry_ms, snapshot.bus_ms)
        model.restore_fail(snapshot.failed, snapshot.bus_ms)
        self.last_id = snapshot.covers
        self._last_key = parse_entry_id(snapshot.covers)
        self.snapshot_covers = snapshot.covers
        model.refresh(self._clock.now_ms)
        self._on_applied(len(snapshot.messages))
        self._count_lost(info)
        log.info("bus snapshot loaded", extra={"covers": snapshot.covers,
                                               "messages": len(snapshot.messages)})
        return True

    @property
    def snapshot_key(self) -> str:
        return f"{self.settings.stream}:snapshot"

    # --- maintenance: stream figures and snapshots -----------------------------------

    async def _maintain(self) -> None:
        interval = self.settings.snapshot_interval_ms / 1000
        next_snapshot = time.monotonic() + interval
        while not self._closing:
            await asyncio.sleep(_STATS_INTERVAL)
            writer = self._writer
            if writer is None or self.state == "down":
                continue
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await self._stream_info(writer)
                if self.stream_last_id == self.last_id:
                    self._ordinal = (self._entries_added, self.entries_read)
                if self.ready and time.monotonic() >= next_snapshot:
                    next_snapshot = time.monotonic() + interval
                    await self._write_snapshot()

    async def _write_snapshot(self) -> None:
        """Save the compacted model, unless another instance saved a newer one."""
        if self._save is None or not self.ready or self.last_id == "0-0":
            return
        covers = self.last_id
        ms, seq = self._last_key
        failed = [row[0] for row in self.model.node_rows() if row[1] is NodeState.FAIL]
        data = self._compactor.snapshot(covers, self._clock.last_entry_ms or ms,
                                        self._clock.now_ms, failed,
                                        self.model.fail_rule_setting == "auto"
                                        and self.model.fail_rule == "redis")
        try:
            saved = await self._save(keys=[self.snapshot_key], args=[ms, seq, data])
        except (RedisError, OSError, TimeoutError) as exc:
            log.info("bus snapshot not written", extra={"reason": _reason(exc)})
            return
        if saved:
            self.snapshots_written += 1
            self.snapshot_covers = covers



def _as_is(response: Any, **options: Any) -> Any:
    return response


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
