"""What the parts of the Redis-stream bus share, handed to each part that needs it: the
settings, the two Redis clients, where the reader is in the stream, and the bus's tasks.

Two clients: the reader's connection blocks in ``XREAD`` for up to a tick and a half;
appends, ticks, snapshots and the maintenance task's ``XINFO`` go through the writer's,
whose timeout is within the publish bound.

Trimming. ``--bus-maxlen`` appends with ``MAXLEN ~ N``; ``--bus-retention-ms`` with
``MINID ~ <now - retention>`` (``StreamSettings.trim``), entries and ticks alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from .busclock import parse_entry_id
from .connect import redis_client

__all__ = ["BusState", "BusTasks", "ReadPosition", "StreamClients", "StreamSettings",
           "reason", "wall_ms"]

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

    def trim(self) -> tuple[str, str]:
        """The trim strategy and threshold for the retention settings ("", "" for none)."""
        if self.maxlen:
            return "MAXLEN", str(self.maxlen)
        if self.retention_ms:
            # This instance's clock: it only decides how much history Redis keeps.
            return "MINID", str(time.time_ns() // 1_000_000 - self.retention_ms)
        return "", ""


class StreamClients:
    """The reader's and the writer's connections; None until the bus starts."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: aioredis.Redis | None = None
        self.writer: aioredis.Redis | None = None

    def open(self, settings: StreamSettings) -> None:
        timeout = settings.tick_ms * 1.5 / 1000 + 1.0
        self.reader = redis_client(settings.url, socket_timeout=timeout)
        self.writer = redis_client(settings.url,
                                   socket_timeout=max(settings.publish_timeout_ms / 1000 * 0.8,
                                                      0.05))
        # Entries as hiredis parses them, without redis-py's per-entry dict building.
        self.reader.set_response_callback("XREAD", _as_is)

    async def aclose(self) -> None:
        for client in (self.reader, self.writer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()


class ReadPosition:
    """Where the reader is in the stream, whether it is connected, and whether it has
    replayed what the stream held when this instance started."""

    __slots__ = ("_replayed", "down_reason", "entries_read", "last_id", "last_key",
                 "replay_target", "state")

    def __init__(self) -> None:
        self.state: BusState = "starting"
        self.down_reason = ""
        self.last_id = "0-0"
        self.last_key = (0, 0)
        self.entries_read = 0
        # The stream's last id at first contact: the replay ends there.
        self.replay_target: tuple[int, int] | None = None
        self._replayed = False

    @property
    def ready(self) -> bool:
        """Latched: true from the moment the replay reached the tail seen at start."""
        if self._replayed:
            return True
        if self.replay_target is not None and self.last_key >= self.replay_target:
            self._replayed = True
        return self._replayed

    def moved_to(self, entry_id: str) -> None:
        self.last_key = parse_entry_id(entry_id)
        self.last_id = entry_id


class BusTasks:
    """The bus's loops and the work they spawn (appends, snapshots), and their end."""

    __slots__ = ("_inflight", "_loops", "closing")

    def __init__(self) -> None:
        # Ends the loops even where redis-py turns a cancellation into a timeout.
        self.closing = False
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()

    def run(self, loop: Coroutine[Any, Any, None], name: str) -> None:
        self._loops.append(asyncio.get_running_loop().create_task(loop, name=name))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def stop(self) -> None:
        self.closing = True
        tasks = [*self._loops, *self._inflight]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


def _as_is(response: Any, **options: Any) -> Any:
    return response


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def reason(exc: BaseException) -> str:
    """An error's first line, short enough for BUS INFO and a log line."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
