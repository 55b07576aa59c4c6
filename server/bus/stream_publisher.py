"""Publishing on the Redis-stream bus: ``BUS PUBLISH`` appended to the stream.

``BUS PUBLISH`` on any instance validates every message first: an invalid one is answered
exactly as on the memory bus and never appended. The valid ones are appended as
``XADD <stream> [MAXLEN|MINID ~ ...] * m <json>`` each, in one round trip (a Lua script runs
the XADDs; then ``WAIT`` when ``--bus-wait-replicas`` asks for replicas). The reply waits
until this instance's own reader has applied them (``publish_waits.py``), so it carries the
same outcomes as the memory bus (``applied``, ``stale: ...``). Past
``--bus-publish-timeout`` it says ``pending`` for what is not applied yet; those entries
stay in the stream and every reader applies them. A Redis that refuses connections gets an
immediate ``TRYAGAIN`` error; a frozen one the same error once the publish bound has
passed: never a hang.

A publish whose entries land behind the last id read here (the stream was recreated,
``stream_continuity.py``) has the stream looked at at once, and waits for the reader's
re-read: its reply is ``applied`` only once they are applied (else ``pending`` with the
reason).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from clusterwatch.cluster import ClusterModel, MessageError, NodeMessage, Outcome, decode_message
from clusterwatch.cluster.publishers import Publisher
from clusterwatch.commands import BusError, Deferred

from .busclock import parse_entry_id
from .publish_waits import PublishWaits, Waiter
from .stream_shared import BusTasks, ReadPosition, StreamClients, StreamSettings, reason

__all__ = ["StreamPublisher"]

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
_APPEND_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()


class StreamPublisher:
    def __init__(self, model: ClusterModel, settings: StreamSettings, *, address: str,
                 max_message_bytes: int, position: ReadPosition, clients: StreamClients,
                 tasks: BusTasks, waits: PublishWaits,
                 look_at_stream: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._model = model
        self._settings = settings
        self._address = address
        self._max_bytes = max_message_bytes
        self._position = position
        self._clients = clients
        self._tasks = tasks
        self._waits = waits
        self._look_at_stream = look_at_stream
        self._queued: list[Waiter] = []

    def publish(self, messages: Sequence[bytes], *, wait: bool = True,
                publisher: Publisher | None = None
                ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        if not wait:
            raise BusError("BUS PUBLISH cannot run inside MULTI on the redis-stream bus",
                           retry=False)
        outcomes: list[Outcome | None] = [None] * len(messages)
        valid: list[int] = []
        decoded: dict[int, tuple[bytes, NodeMessage]] = {}
        model = self._model
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
        writer = self._clients.writer
        if writer is None:
            raise self._unavailable()
        # Appending does not wait for the reader to be up: the writer has its own connection,
        # and a Redis that is back takes messages before the reader's backoff ends. A Redis
        # that refuses connections answers at once; a frozen one within the publish bound.
        deferred: Deferred[list[Outcome] | BusError] = Deferred()
        waiter = Waiter(outcomes, deferred)
        loop = asyncio.get_running_loop()
        waiter.timer = loop.call_later(self._settings.publish_timeout_ms / 1000,
                                       self._give_up, waiter)
        self._waits.add(waiter)
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
        self._tasks.spawn(self._append(writer, queued))

    def _unavailable(self) -> BusError:
        why = self._position.down_reason or "not connected yet"
        return BusError(f"bus unavailable: redis-stream {self._address}: {why}")

    async def _append(self, writer: aioredis.Redis, waiters: list[Waiter]) -> None:
        waits = self._waits
        waits.appending += 1
        try:
            results = await self._send_appends(writer, [
                item for waiter in waiters for payload in waiter.payloads
                for item in _with_publisher(payload, waiter.publisher)])
        except (RedisError, OSError, TimeoutError) as exc:
            error = BusError(
                f"bus unavailable: redis-stream {self._address}: {reason(exc)}; some "
                "messages may have been appended (re-sending them is harmless)")
            for waiter in waiters:
                waits.finish(waiter, error)
            return
        finally:
            waits.appending -= 1
        early = waits.take_early()
        ids: list[bytes] = results[0]
        wanted = self._settings.wait_replicas
        if wanted and results[-1] < wanted:
            error = BusError(
                f"bus unavailable: appended as {ids[0].decode()}..{ids[-1].decode()} but only "
                f"{results[-1]} of {wanted} replicas acknowledged them (re-sending them is "
                "harmless)")
            for waiter in waiters:
                waits.finish(waiter, error)
            return
        start = 0
        behind = False
        position = self._position
        for waiter in waiters:
            waiter.appended = True
            mine = ids[start:start + len(waiter.indexes)]
            start += len(mine)
            for index, entry_id in zip(waiter.indexes, mine, strict=True):
                if parse_entry_id(entry_id) <= position.last_key:
                    outcome = early.get(entry_id)
                    if outcome is not None:  # read back before this reply
                        waiter.outcomes[index] = outcome
                        continue
                    # Behind what this instance read, yet never read here: the stream was
                    # recreated behind it. It waits for the reader's re-read.
                    waiter.behind = behind = True
                waits.expect(waiter, entry_id, index)
            if not waiter.pending:
                waits.finish(waiter, None)
        if behind:
            self._tasks.spawn(self._look_at_stream())

    async def _send_appends(self, writer: aioredis.Redis, payloads: list[str | bytes]
                            ) -> list[Any]:
        """One round trip: the append script's entry ids, then WAIT's replica count.
        ``payloads`` holds three values per message (``_with_publisher``).

        EVALSHA, not redis-py's Script in a pipeline, which asks SCRIPT EXISTS every time;
        a Redis that lost its script cache (a restart) gets it loaded again."""
        settings = self._settings
        args: list[str | bytes] = [settings.stream, *settings.trim(), *payloads]
        for attempt in (1, 2):
            try:
                if not settings.wait_replicas:
                    return [await writer.evalsha(_APPEND_SHA, 1, *args)]
                pipe = writer.pipeline(transaction=False)
                pipe.evalsha(_APPEND_SHA, 1, *args)
                pipe.wait(settings.wait_replicas, settings.publish_timeout_ms // 2)
                results: list[Any] = await pipe.execute()
                return results
            except NoScriptError:
                if attempt == 2:
                    raise
                await writer.script_load(_APPEND)
        raise AssertionError("unreachable")

    def _give_up(self, waiter: Waiter) -> None:
        bound = self._settings.publish_timeout_ms
        if not waiter.appended:
            self._waits.finish(waiter, BusError(
                f"bus unavailable: redis-stream {self._address} did not answer within "
                f"{bound} ms; some messages may have been appended (re-sending them is "
                "harmless)"))
            return
        why = f"not applied by this instance within {bound} ms"
        if waiter.behind:
            why += (f" (the stream {self._settings.stream} was recreated behind the last "
                    "id it read: it is reading it again)")
        self._waits.answer_pending(waiter, why)


def _with_publisher(payload: bytes, publisher: Publisher | None) -> tuple[str, str, bytes]:
    """The three script values of one message: user, admin flag, the message."""
    if publisher is None:
        return "", "", payload
    return publisher.name, "1" if publisher.admin else "", payload
