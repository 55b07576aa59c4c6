"""The Redis-stream bus: several clusterwatch instances, one model, kept in a Redis Stream.

Every instance appends what ``BUS PUBLISH`` gives it to the stream and applies what it reads
back, in stream order and on the stream's clock, so instances that have read the same
entries hold the same model. ``RedisStreamBus`` composes the parts, each in its module with
its rules:

- ``stream_publisher.py``: ``BUS PUBLISH`` validated, appended, answered once applied here
  (``publish_waits.py``), or ``pending`` past the publish bound;
- ``stream_reader.py``: the reader task, reconnecting with backoff, ticking a quiet stream,
  and the replay at start-up that ``ready`` waits for;
- ``stream_entries.py``: one batch of entries applied on the bus clock (``busclock.py``);
- ``stream_continuity.py``: entries trimmed unread, a stream deleted or recreated;
- ``stream_snapshots.py``: the compacted model (``compaction.py``) saved and loaded;
- ``stream_shared.py``: the settings, clients, read position and tasks they share.

Once a second a maintenance task takes in ``XINFO STREAM`` (continuity, lag) and writes a
snapshot when ``--bus-snapshot-interval`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from clusterwatch.cluster import ClusterModel, Outcome, SelfCheck
from clusterwatch.cluster.publishers import Publisher
from clusterwatch.commands import BusError, Deferred

from .busclock import BusClock, parse_entry_id
from .compaction import Compactor
from .connect import display_url
from .publish_waits import PublishWaits
from .stream_continuity import StreamContinuity
from .stream_entries import EntryApplier
from .stream_publisher import StreamPublisher
from .stream_reader import StreamReader
from .stream_shared import BusState, BusTasks, ReadPosition, StreamClients, StreamSettings
from .stream_snapshots import StreamSnapshots

__all__ = ["RedisStreamBus", "StreamSettings"]

_STATS_INTERVAL = 1.0


class RedisStreamBus:
    name = "redis-stream"

    def __init__(self, model: ClusterModel, settings: StreamSettings, *, instance: str,
                 on_applied: Callable[[int], None], max_message_bytes: int) -> None:
        self.model = model
        self.settings = settings
        self.address = address = display_url(settings.url)
        self.instance = instance
        self._clock = clock = BusClock(3 * settings.tick_ms, settings.clock_skew_bound_ms)
        compactor = Compactor(settings.report_validity_ms)
        self._position = position = ReadPosition()
        self._clients = clients = StreamClients()
        self._tasks = tasks = BusTasks()
        self._waits = waits = PublishWaits()
        self._continuity = continuity = StreamContinuity(
            settings, address=address, position=position, compactor=compactor,
            clients=clients)
        self._snapshots = snapshots = StreamSnapshots(
            model, settings, position=position, clock=clock, compactor=compactor,
            clients=clients, tasks=tasks, on_applied=on_applied)
        self._applier = applier = EntryApplier(
            model, address=address, position=position, clock=clock, compactor=compactor,
            waits=waits, continuity=continuity, snapshots=snapshots, on_applied=on_applied)
        self._reader = StreamReader(
            settings, address=address, instance=instance, position=position, clock=clock,
            compactor=compactor, clients=clients, tasks=tasks, continuity=continuity,
            snapshots=snapshots, applier=applier)
        self._publisher = StreamPublisher(
            model, settings, address=address, max_message_bytes=max_message_bytes,
            position=position, clients=clients, tasks=tasks, waits=waits,
            look_at_stream=continuity.look_at_stream)

    # --- Bus -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Latched: true from the moment the replay reached the tail seen at start."""
        return self._position.ready

    @property
    def state(self) -> BusState:
        return self._position.state

    @property
    def down_reason(self) -> str:
        return self._position.down_reason

    @property
    def last_id(self) -> str:
        return self._position.last_id

    @property
    def entries_read(self) -> int:
        return self._position.entries_read

    @property
    def stream_resets(self) -> int:
        return self._continuity.stream_resets

    @property
    def snapshot_key(self) -> str:
        return self._snapshots.key

    def now_ms(self) -> int:
        return self._clock.now_ms

    def self_check(self) -> SelfCheck | None:
        position = self._position
        if position.state == "down":
            return SelfCheck("DOWN", f"redis-stream bus {self.address} unavailable: "
                             f"{position.down_reason}")
        if not position.ready:
            return SelfCheck("DOWN", f"replaying the redis-stream bus: at {position.last_id}, "
                             f"{position.entries_read} entries read")
        trouble = self._continuity.stream_trouble
        if trouble:
            return SelfCheck("DOWN", f"redis-stream bus {self.address}: {trouble}")
        return None

    def info(self) -> Sequence[tuple[str, str | int]]:
        position = self._position
        continuity = self._continuity
        snapshots = self._snapshots
        clock = self._clock
        last_ms = position.last_key[0]
        stream_ms = parse_entry_id(continuity.stream_last_id)[0]
        state: str = position.state if position.state != "up" or position.ready else "replaying"
        reason = position.down_reason if position.state == "down" else ""
        if state == "up" and continuity.stream_trouble:
            state, reason = "down", continuity.stream_trouble
        return (
            ("bus_address", self.address),
            ("bus_stream", self.settings.stream),
            ("bus_state", state),
            ("bus_down_reason", reason),
            ("bus_reconnects", self._reader.reconnects),
            ("bus_length", continuity.stream_length),
            ("bus_last_id", position.last_id),
            ("bus_stream_last_id", continuity.stream_last_id),
            ("bus_lag_entries", continuity.lag_entries()),
            ("bus_lag_ms", max(0, stream_ms - last_ms) if last_ms else 0),
            ("bus_entries_read", position.entries_read),
            ("bus_ticks", self._applier.ticks),
            ("bus_foreign_entries", self._applier.foreign),
            ("bus_lost_entries", continuity.lost),
            ("bus_clock_ms", clock.now_ms),
            ("bus_clock_excused_ms", clock.excused_ms),
            ("bus_clock_skewed_entries", clock.skewed),
            ("bus_stream_resets", continuity.stream_resets),
            ("bus_snapshot_covers", snapshots.covers),
            ("bus_snapshots_written", snapshots.written),
            ("bus_snapshot_error", snapshots.error),
            ("bus_replay_ms", self._reader.replay_ms),
        )

    def publish(self, messages: Sequence[bytes], *, wait: bool = True,
                publisher: Publisher | None = None
                ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        return self._publisher.publish(messages, wait=wait, publisher=publisher)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._clients.open(self.settings)
        self._tasks.run(self._reader.read_forever(), name="bus-reader")
        self._tasks.run(self._maintain(), name="bus-maintenance")

    async def aclose(self) -> None:
        await self._tasks.stop()
        self._waits.finish_all(BusError("bus closed: the server is shutting down"))
        await self._clients.aclose()

    async def _maintain(self) -> None:
        """Stream figures each second, and a snapshot each snapshot interval."""
        interval = self.settings.snapshot_interval_ms / 1000
        next_snapshot = time.monotonic() + interval
        position = self._position
        continuity = self._continuity
        while not self._tasks.closing:
            await asyncio.sleep(_STATS_INTERVAL)
            writer = self._clients.writer
            if writer is None or position.state == "down":
                continue
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                continuity.observe(await continuity.stream_info(writer))
                continuity.note_if_at_tail()
                if position.ready and time.monotonic() >= next_snapshot:
                    next_snapshot = time.monotonic() + interval
                    await self._snapshots.write()
