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
``max-deleted-entry-id``), never silently. A snapshot key that cannot be read (another
type, foreign content) is reported at warning level and in ``bus_snapshot_error``, and the
instance replays the stream instead; it never overwrites a key that is not a snapshot.

A stream that vanishes. Every instance looks at ``XINFO STREAM`` each second and whenever a
read finds nothing new. A stream that is gone (``DEL``), or that came back as a new one
(its ``entries-added`` went down, or its last id is behind the last id this instance read),
was reset: counted in ``bus_stream_resets`` and logged at warning level. While it is gone,
and while the instance reads a stream recreated behind its last id again from its start
(``XADD *`` in a new stream gives ids from Redis's clock, which can be below the old ones:
a reader waiting after its last id would never see them), ``bus_state`` is ``down`` with the
reason and HEALTH's ``busFresh`` is DOWN. A ``BUS PUBLISH`` whose entries land behind the
last id read here waits for that re-read, so its reply is ``applied`` only once they are
applied (else ``pending`` with the reason). The messages kept for the snapshot move before
the new stream's ids, so a snapshot still replays in the order they were applied, and a
snapshot that covers ids beyond the stream's last id (from its previous life) gives way to
a newer one.

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
from redis.exceptions import NoScriptError, RedisError, ResponseError

from clusterwatch.cluster import (
    ClusterModel,
    MessageError,
    NodeMessage,
    Outcome,
    SelfCheck,
    decode_message,
)
from clusterwatch.cluster.publishers import Publisher
from clusterwatch.commands import BusError, Deferred

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor, decode_snapshot, history_of, restore_history
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
_SKEW_WARNING_S = 60.0
# Outcomes kept for appends whose reply is still on its way (see ``_early``).
_EARLY_MAX = 65_536
# Publishers met in entries (user, admin), each with its key verdicts: a handful in practice.
_PUBLISHERS = 1024
# The Lua guard that keeps only the newest snapshot when several instances write one. A
# snapshot that covers ids beyond the stream's (KEYS[2]) last id is from a stream since
# deleted and recreated: it gives way.
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

# One round trip for a whole batch: redis-py packs one EVALSHA instead of one XADD each.
# Scripts replicate by effects, so replicas get the XADDs with their ids.
# ARGV[1] is the trim strategy ("", MAXLEN or MINID), ARGV[2] its threshold, then three
# values per message: its publisher's user name ("" for none), "1" if that user is an admin
# (else ""), and the message; the entry keeps them as fields m, u and a.
_APPEND = """
local ids = {}
for i = 3, #ARGV, 3 do
  local fields = {'m', ARGV[i + 2]}
  if ARGV[i] ~= '' then
    fields[3] = 'u'
    fields[4] = ARGV[i]
    if ARGV[i + 1] ~= '' then
      fields[5] = 'a'
      fields[6] = ARGV[i + 1]
    end
  end
  if ARGV[1] == '' then
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', unpack(fields))
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', unpack(fields))
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
    # How far ahead of this instance's clock a stream id may be and still be bus time
    # (busclock.py); 0: five tick intervals.
    max_clock_skew_ms: int = 0

    @property
    def clock_skew_bound_ms(self) -> int:
        return self.max_clock_skew_ms or 5 * self.tick_ms


class _Waiter:
    """A ``BUS PUBLISH`` waiting for its appended entries to be applied here."""

    __slots__ = ("appended", "behind", "decoded", "deferred", "indexes", "outcomes", "payloads",
                 "pending", "publisher", "timer")

    def __init__(self, outcomes: list[Outcome | None],
                 deferred: Deferred[list[Outcome] | BusError]) -> None:
        self.outcomes = outcomes
        self.deferred = deferred
        self.pending: dict[bytes, int] = {}  # entry id -> index in outcomes
        self.timer: asyncio.TimerHandle | None = None
        self.appended = False
        self.behind = False  # appended behind the last id read here: the stream was reset
        self.payloads: list[bytes] = []  # the valid messages, to append
        self.indexes: list[int] = []  # where each one's outcome goes
        # index -> (message, as decoded when validated): the reader need not decode it again
        self.decoded: dict[int, tuple[bytes, NodeMessage]] = {}
        self.publisher: Publisher | None = None


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
        self._clock = BusClock(3 * settings.tick_ms, settings.clock_skew_bound_ms)
        self._skew_warned: float | None = None  # when ids ahead of our clock were last logged
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
        self.snapshot_error = ""
        # A vanished or recreated stream (see the module notes).
        self.stream_resets = 0
        self.stream_trouble = ""
        self._stream_seen = False
        self._gone = False  # XINFO found no stream (after this instance had seen one)
        self._rewind = False  # the reader reads the stream again from its start
        self._rewinds = 0
        self._life_start = 0  # entries_read when this instance began on the current stream
        self._rewind_target: tuple[int, int] | None = None
        self._since_snapshot = 0
        self._replay_target: tuple[int, int] | None = None
        self._replayed = False
        self.replay_ms = 0
        self._started = time.monotonic()
        self.stream_length = 0
        self.stream_last_id = "0-0"
        self._waiters: dict[bytes, tuple[_Waiter, int]] = {}
        self._publishers: dict[tuple[bytes, bool], Publisher] = {}
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
        if self.stream_trouble:
            return SelfCheck("DOWN", f"redis-stream bus {self.address}: {self.stream_trouble}")
        return None

    def info(self) -> Sequence[tuple[str, str | int]]:
        last_ms = self._last_key[0]
        stream_ms = parse_entry_id(self.stream_last_id)[0]
        state: str = self.state if self.state != "up" or self.ready else "replaying"
        reason = self.down_reason if self.state == "down" else ""
        if state == "up" and self.stream_trouble:
            state, reason = "down", self.stream_trouble
        return (
            ("bus_address", self.address),
            ("bus_stream", self.settings.stream),
            ("bus_state", state),
            ("bus_down_reason", reason),
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
            ("bus_clock_skewed_entries", self._clock.skewed),
            ("bus_stream_resets", self.stream_resets),
            ("bus_snapshot_covers", self.snapshot_covers),
            ("bus_snapshots_written", self.snapshots_written),
            ("bus_snapshot_error", self.snapshot_error),
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

    def publish(self, messages: Sequence[bytes], *, wait: bool = True,
                publisher: Publisher | None = None
                ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        if not wait:
            raise BusError("BUS PUBLISH cannot run inside MULTI on the redis-stream bus",
                           retry=False)
        outcomes: list[Outcome | None] = [None] * len(messages)
        valid: list[int] = []
        decoded: dict[int, tuple[bytes, NodeMessage]] = {}
        model = self.model
        for index, data in enumerate(messages):
            try:
                msg = decode_message(data, max_size=self._max_bytes)
            except MessageError as exc:
                outcomes[index] = model.reject(exc)
                continue
            # Refused here (keys, bindings, absurd epochs) is never appended; what passes is
            # judged again by every instance as it reads the entry, with the same publisher.
            refused = model.refusal(msg, publisher)
            if refused is not None:
                outcomes[index] = model.reject(refused)
            else:
                decoded[index] = (data, msg)
                valid.append(index)
        if not valid:
            return outcomes  # type: ignore[return-value]
        writer = self._writer
        if writer is None:
            raise self._unavailable()
        # Appending does not wait for the reader to be up: the writer has its own connection,
        # and a Redis that is back takes messages before the reader's backoff ends. A Redis
        # that refuses connections answers at once; a frozen one within the publish bound.
        deferred: Deferred[list[Outcome] | BusError] = Deferred()
        waiter = _Waiter(outcomes, deferred)
        loop = asyncio.get_running_loop()
        waiter.timer = loop.call_later(self.settings.publish_timeout_ms / 1000,
                                       self._give_up, waiter)
        self._open_waiters.add(waiter)
        waiter.payloads = [messages[i] for i in valid]
        waiter.indexes = valid
        waiter.decoded = decoded
        waiter.publisher = publisher
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

    def _unavailable(self) -> BusError:
        reason = self.down_reason or "not connected yet"
        return BusError(f"bus unavailable: redis-stream {self.address}: {reason}")

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
            results = await self._send_appends(writer, [
                item for waiter in waiters for payload in waiter.payloads
                for item in _with_publisher(payload, waiter.publisher)])
        except (RedisError, OSError, TimeoutError) as exc:
            error = BusError(
                f"bus unavailable: redis-stream {self.address}: {_reason(exc)}; some "
                "messages may have been appended (re-sending them is harmless)")
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
            error = BusError(
                f"bus unavailable: appended as {ids[0].decode()}..{ids[-1].decode()} but only "
                f"{results[-1]} of {wanted} replicas acknowledged them (re-sending them is "
                "harmless)")
            for waiter in waiters:
                self._finish(waiter, error)
            return
        start = 0
        behind = False
        for waiter in waiters:
            waiter.appended = True
            mine = ids[start:start + len(waiter.indexes)]
            start += len(mine)
            for index, entry_id in zip(waiter.indexes, mine, strict=True):
                if parse_entry_id(entry_id) <= self._last_key:
                    outcome = early.get(entry_id)
                    if outcome is not None:  # read back before this reply
                        waiter.outcomes[index] = outcome
                        continue
                    # Behind what this instance read, yet never read here: the stream was
                    # recreated behind it. It waits for the reader's re-read.
                    waiter.behind = behind = True
                waiter.pending[entry_id] = index
                self._waiters[entry_id] = (waiter, index)
            if not waiter.pending:
                self._finish(waiter, None)
        if behind:
            self._spawn(self._look_at_stream())

    async def _send_appends(self, writer: aioredis.Redis, payloads: list[str | bytes]
                            ) -> list[Any]:
        """One round trip: the append script's entry ids, then WAIT's replica count.
        ``payloads`` holds three values per message (``_with_publisher``).

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
            self._finish(waiter, BusError(
                f"bus unavailable: redis-stream {self.address} did not answer within "
                f"{bound} ms; some messages may have been appended (re-sending them is "
                "harmless)"))
            return
        reason = f"not applied by this instance within {bound} ms"
        if waiter.behind:
            reason += (f" (the stream {self.settings.stream} was recreated behind the last "
                       "id it read: it is reading it again)")
        for entry_id, index in waiter.pending.items():
            self._waiters.pop(entry_id, None)
            waiter.outcomes[index] = Outcome("pending", entry=entry_id.decode(), reason=reason)
        waiter.pending.clear()
        self._finish(waiter, None)

    def _finish(self, waiter: _Waiter, error: BusError | None) -> None:
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
            self._finish(waiter, BusError("bus closed: the server is shutting down"))
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
            self._clock.observe_wall(_wall_ms())
            if not await self._load_snapshot(reader, info):
                self._ordinal = (int(info.get("entries-added", 0)) - int(info.get("length", 0)),
                                 0)
            self._replay_target = parse_entry_id(info.get("last-generated-id", "0-0"))
            if self._replay_target < self._last_key:  # the snapshot outlived its stream
                self._stream_reset(f"the stream {stream} ends at "
                                   f"{info['last-generated-id']}, before the snapshot's "
                                   f"{self.last_id}: it was recreated")
                self._read_from_start(None)
            self._observe(info)
        else:
            if self.state == "down":
                self.reconnects += 1
                log.info("redis-stream bus reconnected", extra={
                    "bus": self.address, "resume_after": self.last_id})
            self._observe(info)
        self.state = "up"
        self.down_reason = ""
        while not self._closing:
            if not self.replay_ms and self.ready:
                self.replay_ms = int((time.monotonic() - self._started) * 1000)
                log.info("redis-stream bus replayed", extra={
                    "bus": self.address, "entries": self.entries_read,
                    "replay_ms": self.replay_ms, "nodes": len(self._compactor)})
            if self._rewind:
                self._read_from_start(self._rewind_target)
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
            else:
                # Nothing after our last id: a quiet stream, or one recreated behind it.
                self._observe(await self._stream_info(reader))
                if self.ready and not self._rewind:
                    await self._tick()

    def _apply(self, entries: list[list[Any]]) -> None:
        """Apply one XREAD batch: ``[id, [field, value, ...]]`` per entry, in stream order."""
        publish = self.model.publish_decoded
        apply_decoded = self.model.apply_decoded
        clock = self._clock
        clock.observe_wall(_wall_ms())
        skewed = clock.skewed
        stamp = clock.stamp
        note = self._compactor.note
        waiters = self._waiters
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
            slot = waiters.pop(entry_id, None) if waiters else None
            mine = slot[0].decoded.get(slot[1]) if slot is not None else None
            msg: NodeMessage | None
            if mine is not None and mine[0] == data:  # published here: decoded already
                msg = mine[1]
                outcome = apply_decoded(msg, now, publisher)
            else:
                outcome, msg = publish(data, now, publisher)
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
        if clock.skewed != skewed:
            self._note_skew(entry_id)
        target = self._rewind_target
        if target is not None and not self._rewind and self._last_key >= target:
            self._caught_up()
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
                        "bus": self.address, "entry": entry_id.decode(), "ahead_ms": ahead_ms,
                        "bound_ms": clock.max_skew_ms, "skewed_entries": clock.skewed})

    # --- the stream's continuity ------------------------------------------------------

    def _observe(self, info: dict[str, Any]) -> None:
        """Take in XINFO STREAM's figures, and notice a stream that vanished or came back
        as a new one (see the module notes)."""
        stream = self.settings.stream
        if info.get("missing"):
            self.stream_length = 0
            if (self._stream_seen or self.entries_read) and not self._gone:
                self._gone = True
                self._stream_reset(f"the stream {stream} is gone (deleted?)")
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
            if not self._rewind and info["rewinds_before"] == self._rewinds:
                if not self._gone:
                    self._stream_reset(f"the stream {stream} was recreated")
                self._gone = False
                self._rewind = True
                self._rewind_target = tail
                self.stream_trouble = (
                    f"the stream {stream} was recreated behind the last id read here "
                    f"({self.last_id}; its last id is {self.stream_last_id}): reading it "
                    "again from its start")
            return
        if self._gone:  # back, after the ids read here: reading goes on
            self._gone = False
            self._life_start = info["entries_read_before"]
            self._ordinal = None
            if not self._rewind and self._rewind_target is None:
                self.stream_trouble = ""
        elif added is not None and info["entries_read_before"] - self._life_start > int(added):
            # More entries read here than were ever added to it: a new stream.
            self._stream_reset(f"the stream {stream} was recreated (it has {added} entries "
                               f"added, fewer than this instance read)")
            self._life_start = self.entries_read
            self._ordinal = None
        self._count_lost(info)

    def _stream_reset(self, what: str) -> None:
        self.stream_resets += 1
        log.warning("redis-stream bus stream was reset: entries this instance had not read "
                    "are lost", extra={"bus": self.address, "reset": what,
                                       "last_id": self.last_id, "resets": self.stream_resets})

    def _read_from_start(self, target: tuple[int, int] | None) -> None:
        """Read the (recreated) stream again from its start. What the snapshot keeps moves
        before its ids; the trouble lasts until the reader reaches ``target``."""
        self._rewind = False
        self._rewinds += 1
        self._life_start = self.entries_read
        self._compactor.rebase()
        self.last_id = "0-0"
        self._last_key = (0, 0)
        self._ordinal = None
        self._rewind_target = target
        if target is None or target <= self._last_key:
            self._caught_up()

    def _caught_up(self) -> None:
        self._rewind_target = None
        self.stream_trouble = ""

    async def _look_at_stream(self) -> None:
        """A publish landed behind the last id read here: look at the stream now."""
        writer = self._writer
        if writer is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            self._observe(await self._stream_info(writer))

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
        """XINFO STREAM as a dict with str keys and ids (``missing`` when there is no
        stream), with what this instance had read and seen when it asked (``_observe``
        compares the answer with those, not with what was read while it travelled)."""
        asked = {"read_before": self._last_key, "entries_read_before": self.entries_read,
                 "rewinds_before": self._rewinds}
        try:
            raw = await client.xinfo_stream(self.settings.stream)
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

    async def _load_snapshot(self, client: aioredis.Redis, info: dict[str, Any]) -> bool:
        """Rebuild the model from the newest snapshot; False when there is none, or when it
        cannot be used (reported: the stream is replayed instead)."""
        try:
            raw: Any = await client.hget(self.snapshot_key, "data")
        except ResponseError as exc:
            await self._snapshot_unusable(client, exc)
            return False
        if raw is None:
            return False
        try:
            snapshot = decode_snapshot(raw)
            parse_entry_id(snapshot.covers)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            await self._snapshot_unusable(client, exc)
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
        restore_history(model, snapshot)
        for node_id, user in snapshot.bindings.items():
            model.rebind(node_id, user)
        self.last_id = snapshot.covers
        self._last_key = parse_entry_id(snapshot.covers)
        self.snapshot_covers = snapshot.covers
        model.refresh(self._clock.now_ms)
        self._on_applied(len(snapshot.messages))
        log.info("bus snapshot loaded", extra={"covers": snapshot.covers,
                                               "messages": len(snapshot.messages)})
        return True

    async def _snapshot_unusable(self, client: aioredis.Redis, exc: Exception) -> None:
        self.snapshot_error = await self._describe_snapshot_error(client, exc)
        log.warning("bus snapshot cannot be used: replaying the stream instead", extra={
            "key": self.snapshot_key, "error": self.snapshot_error})

    async def _describe_snapshot_error(self, client: aioredis.Redis, exc: Exception) -> str:
        """Why the snapshot key cannot be read or written, for BUS INFO and the log."""
        key = self.snapshot_key
        if isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE"):
            kind: Any = "another type"
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                kind = await client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            return f"{key} holds a {kind}, not a snapshot hash: left as it is"
        if isinstance(exc, ResponseError):
            return f"{key}: {_reason(exc)}"
        return f"{key} holds no readable snapshot: {_reason(exc)}"

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
                self._observe(await self._stream_info(writer))
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
        now_ms = self._clock.now_ms
        model = self.model
        model.bindings.prune(model.known_nodes)
        data = self._compactor.snapshot(covers, self._clock.last_entry_ms or ms, now_ms,
                                        history=history_of(model, now_ms),
                                        bindings=dict(model.bindings.items()))
        try:
            saved = await self._save(keys=[self.snapshot_key, self.settings.stream],
                                     args=[ms, seq, data])
        except ResponseError as exc:  # Redis answered: the key itself is the problem
            assert self._writer is not None
            error = await self._describe_snapshot_error(self._writer, exc)
            if error != self.snapshot_error:
                log.warning("bus snapshot not written: a restarted instance replays what the "
                            "stream retains", extra={"key": self.snapshot_key, "error": error})
            self.snapshot_error = error
            return
        except (RedisError, OSError, TimeoutError) as exc:
            log.info("bus snapshot not written", extra={"reason": _reason(exc)})
            return
        self.snapshot_error = ""
        if saved:
            self.snapshots_written += 1
            self.snapshot_covers = covers


def _with_publisher(payload: bytes, publisher: Publisher | None) -> tuple[str, str, bytes]:
    """The three script values of one message: user, admin flag, the message."""
    if publisher is None:
        return "", "", payload
    return publisher.name, "1" if publisher.admin else "", payload


def _as_is(response: Any, **options: Any) -> Any:
    return response


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
