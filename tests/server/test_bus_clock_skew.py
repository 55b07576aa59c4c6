"""The bus clock's skew bound and the snapshot's rebase after a stream was recreated.

An id far ahead of the reading instance's clock (an ``XADD`` with an explicit id an hour
ahead) must not stop bus time: Redis gives every later ``XADD *`` that millisecond with a
growing sequence, so without the bound bus time stands still until Redis's clock gets
there, and no node can fail. ``BusClock`` holds such ids to the bound and counts them.
"""

from __future__ import annotations

from itertools import pairwise

from clusterwatch.cluster import ClusterModel, NodeState
from clusterwatch.server.bus.busclock import BusClock
from clusterwatch.server.bus.compaction import Compactor, decode_snapshot
from tests.cluster.clusterkit import T0, TIMEOUT, heartbeat, hello, views
from tests.server.test_bus_compaction import CONFIG, read_stream, restored

HOUR = 3_600_000
BOUND = 5_000
GAP = 3_000


def clock_at(wall_ms: int) -> BusClock:
    clock = BusClock(gap_ms=GAP, max_skew_ms=BOUND)
    clock.observe_wall(wall_ms)
    return clock


def test_an_id_within_the_bound_is_bus_time() -> None:
    clock = clock_at(T0)
    assert clock.stamp(T0 + BOUND) == T0 + BOUND  # Redis's clock a little ahead: fine
    assert clock.skewed == 0
    assert clock.stamp(T0 + BOUND + 100) == T0 + BOUND  # beyond: held to the bound
    assert clock.skewed == 1


def test_an_id_an_hour_ahead_does_not_stop_bus_time() -> None:
    """The raw XADD an hour ahead, then the ids Redis gives every later XADD * (the same
    far millisecond, a growing sequence) read while the instance's clock moves on: bus
    time follows the wall clock, as it would have followed the entries' real times."""
    clock = clock_at(T0)
    clock.stamp(T0)
    jumped = clock.stamp(T0 + HOUR)
    assert jumped == T0 + GAP  # held to the bound, then the gap rule: a bounded step
    assert clock.skewed == 1
    times = []
    for second in range(1, 61):
        clock.observe_wall(T0 + second * 1000)
        times.append(clock.stamp(T0 + HOUR))  # ids HOUR-1, HOUR-2, ...: same millisecond
    assert clock.skewed == 61
    assert all(b - a == 1000 for a, b in pairwise(times))
    assert times[-1] == jumped + 60_000


def test_bus_time_joins_the_ids_when_the_wall_clock_reaches_them() -> None:
    """Continuous when the stuck millisecond comes within the bound, and it holds at most
    the bound while Redis's clock catches up with it."""
    clock = clock_at(T0)
    clock.stamp(T0)
    future = T0 + 20_000
    clock.stamp(future)
    held_ms = 0
    for wall in range(T0 + 1000, T0 + 30_001, 1000):
        clock.observe_wall(wall)
        before = clock.now_ms
        clock.stamp(max(future, wall))  # Redis's ids: the stuck millisecond, then its clock
        step = clock.now_ms - before
        assert step in (0, 1000)  # never a jump, never backwards
        held_ms += 1000 - step
    assert held_ms == BOUND
    assert clock.skewed == 15  # the first read and walls 1..14 s: beyond the bound


def test_a_silent_node_still_fails_after_an_entry_from_the_future() -> None:
    """The finding: with an entry an hour ahead, a node that stops heartbeating must still
    be failed after node-timeout of bus time, on the instance's clock."""
    model = ClusterModel(CONFIG)
    clock = clock_at(T0)
    model.publish(hello("a", 1, 1), clock.stamp(T0))
    model.publish(hello("b", 1, 1), clock.stamp(T0))
    clock.stamp(T0 + HOUR)  # the raw XADD
    for step in range(1, 4 * TIMEOUT // 100):
        wall = T0 + step * 100
        clock.observe_wall(wall)
        model.publish(heartbeat("a", 1, 1 + step), clock.stamp(T0 + HOUR))  # same ms
    model.refresh(clock.now_ms)
    states = {row[0]: row[1] for row in model.node_rows()}
    assert states["b"] is not NodeState.OK  # silent: pfail at least
    assert states["a"] is NodeState.OK


def test_restore_holds_a_snapshot_clock_from_the_future_to_the_bound() -> None:
    clock = clock_at(T0)
    clock.restore(last_entry_ms=T0 + HOUR, now_ms=T0 + HOUR - 10)
    assert clock.last_entry_ms == T0 + BOUND
    assert clock.now_ms == T0 + BOUND
    clock.observe_wall(T0 + 1000)
    assert clock.stamp(T0 + HOUR) == T0 + BOUND + 1000


def test_without_a_wall_clock_there_is_no_bound() -> None:
    clock = BusClock(gap_ms=GAP, max_skew_ms=BOUND)
    assert clock.stamp(T0 + HOUR) == T0 + HOUR
    assert clock.skewed == 0


# --- a stream recreated behind the ids already read ----------------------------------

def test_rebase_keeps_the_old_messages_before_a_recreated_stream() -> None:
    """Messages read from a stream's previous life (ids an hour ahead) and then from the
    recreated stream (ids from Redis's clock, lower): after ``rebase`` the snapshot
    replays them in the order they were applied, and builds the same model."""
    model = ClusterModel(CONFIG)
    compactor = Compactor(2 * TIMEOUT)
    read_stream(model, compactor, [(f"{T0 + HOUR}-1", T0, hello("a", 1, 1)),
                                   (f"{T0 + HOUR}-2", T0, hello("b", 1, 1)),
                                   (f"{T0 + HOUR}-3", T0 + 10, heartbeat("a", 1, 2))])
    compactor.rebase()
    read_stream(model, compactor, [(f"{T0 + 500}-0", T0 + 500, heartbeat("a", 1, 3)),
                                   (f"{T0 + 600}-0", T0 + 600, heartbeat("b", 1, 2))])
    data = compactor.snapshot(f"{T0 + 600}-0", T0 + 600, T0 + 600)
    kept = decode_snapshot(data).messages
    assert [entry_id for entry_id, _, _ in kept] == ["0-1", "0-2", f"{T0 + 500}-0",
                                                     f"{T0 + 600}-0"]
    again, _ = restored(data)
    assert views(again, T0 + 600) == views(model, T0 + 600)
