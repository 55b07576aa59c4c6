"""The waits' bookkeeping on a real event loop: one check per question, index waits in
order (a change checks what it passes, plus one), released clients answered a chunk per
loop turn, time-outs for the rest, abandoned waits freed at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from clusterwatch.commands import Deferred
from clusterwatch.commands.waits import AboveIndex
from clusterwatch.server.waits import WAKE_CHUNK, Waits


async def test_waits_with_one_key_share_one_check_and_all_get_the_answer() -> None:
    waits = Waits()
    version = 0
    calls = 0

    def check() -> int | None:
        nonlocal calls
        calls += 1
        return version if version > 0 else None

    deferreds = [waits.add(check, 60_000, lambda: version, key=("cluster wait", 0))
                 for _ in range(1000)]
    assert len(waits) == 1000
    calls = 0
    waits.changed()  # nothing changed yet: one check for the thousand
    assert calls == 1 and not any(d.done for d in deferreds)
    version = 7
    waits.changed()
    assert calls == 2 and len(waits) == 0
    assert sum(d.done for d in deferreds) == WAKE_CHUNK  # the first chunk at once
    for _ in range(1000 // WAKE_CHUNK + 1):
        await asyncio.sleep(0)  # one chunk per loop turn
    answers = []
    for deferred in deferreds:
        deferred.add_callback(answers.append)
    assert answers == [7] * 1000


async def test_a_bystander_callback_runs_between_chunks() -> None:
    waits = Waits()
    ready = False
    order: list[str] = []
    deferreds = [waits.add(lambda: 1 if ready else None, 60_000, lambda: 0, key="k")
                 for _ in range(3 * WAKE_CHUNK)]
    for index, deferred in enumerate(deferreds):
        deferred.add_callback(lambda _v, i=index: order.append(f"w{i // WAKE_CHUNK}"))
    ready = True
    waits.changed()
    asyncio.get_running_loop().call_soon(order.append, "bystander")
    for _ in range(5):
        await asyncio.sleep(0)
    assert order.index("bystander") < order.index("w2")
    assert len(order) == 3 * WAKE_CHUNK + 1


async def test_a_time_out_answers_only_its_own_wait() -> None:
    waits = Waits()
    short = waits.add(lambda: None, 10, lambda: "timed out", key="same")
    long = waits.add(lambda: None, 60_000, lambda: "late", key="same")
    unique = waits.add(lambda: None, 60_000, lambda: "unique")
    await asyncio.sleep(0.05)
    got: list[str] = []
    short.add_callback(got.append)
    assert got == ["timed out"] and not long.done and not unique.done
    assert len(waits) == 2
    waits.close()
    long.add_callback(got.append)
    unique.add_callback(got.append)
    assert got == ["timed out", "late", "unique"] and len(waits) == 0


async def test_an_answer_ready_at_once_does_not_wait() -> None:
    waits = Waits()
    deferred = waits.add(lambda: 5, 60_000, lambda: 0, key="x")
    assert deferred.done and len(waits) == 0


async def test_an_abandoned_wait_is_freed_at_once_and_its_group_goes_with_it() -> None:
    waits = Waits()
    gone = waits.add(lambda: None, 600_000, lambda: "late", key="one")
    kept = waits.add(lambda: None, 600_000, lambda: "late", key="two")
    assert len(waits) == 2
    gone.abandon()
    assert len(waits) == 1 and gone.abandoned and not gone.done
    gone.abandon()  # twice is harmless
    assert len(waits) == 1
    assert waits.groups == 1
    kept.abandon()
    assert len(waits) == 0 and waits.groups == 0


def test_abandon_reaches_the_source_of_a_mapped_deferred_and_drops_callbacks() -> None:
    from clusterwatch.commands import Deferred

    source: Deferred[int] = Deferred()
    heard: list[str] = []
    source.on_abandon(lambda: heard.append("source"))
    mapped = source.map(lambda value: value + 1)
    seen: list[int] = []
    mapped.add_callback(seen.append)
    mapped.abandon()
    assert heard == ["source"] and source.abandoned
    source.resolve(1)  # a late value goes nowhere
    assert seen == []
    late: Deferred[int] = Deferred()
    late.resolve(3)
    late.on_abandon(lambda: heard.append("late"))
    late.abandon()  # resolved first: nothing to abandon
    assert heard == ["source"]


# --- waits on the model index: kept in order, a change costs what it releases ----------


class Model:
    """The one fact index waits ask about, and a count of how often it was asked."""

    def __init__(self) -> None:
        self.version = 0
        self.checks = 0

    def above(self, index: int) -> tuple[Callable[[], int | None], AboveIndex]:
        def check() -> int | None:
            self.checks += 1
            return self.version if self.version > index else None

        return check, AboveIndex(index)


def index_waits(waits: Waits, model: Model, indexes: range) -> list[Deferred[int]]:
    deferreds = []
    for index in indexes:
        check, key = model.above(index)
        deferreds.append(waits.add(check, 600_000, lambda: -1, key=key))
    return deferreds


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_twenty_thousand_indexes_cost_one_check_per_change() -> None:
    waits, model = Waits(), Model()
    deferreds = index_waits(waits, model, range(20_000))
    assert len(waits) == waits.groups == 20_000
    model.checks = 0
    waits.changed()  # nothing released: the lowest index's check alone
    assert model.checks == 1
    model.version = 10  # passes indexes 0..9
    model.checks = 0
    waits.changed()
    await settle()
    assert model.checks == 11  # the ten released, and the one that still waits
    assert [d.done for d in deferreds[:11]] == [True] * 10 + [False]
    assert len(waits) == 19_990


async def test_a_change_passing_many_indexes_is_answered_a_chunk_per_turn() -> None:
    waits, model = Waits(), Model()
    order: list[str] = []
    for index, deferred in enumerate(index_waits(waits, model, range(3 * WAKE_CHUNK))):
        deferred.add_callback(lambda _v, i=index: order.append(f"w{i // WAKE_CHUNK}"))
    model.version = 10 * WAKE_CHUNK
    waits.changed()
    assert len(order) == WAKE_CHUNK  # the first chunk at once
    asyncio.get_running_loop().call_soon(order.append, "bystander")
    await settle()
    assert order.index("bystander") < order.index("w2")
    assert len(order) == 3 * WAKE_CHUNK + 1 and len(waits) == 0


async def test_abandoned_index_waits_are_freed_and_leave_no_growing_heap() -> None:
    waits, model = Waits(), Model()
    for start in range(0, 50_000, 10_000):  # waves at ever new indexes, each abandoned
        for deferred in index_waits(waits, model, range(start, start + 10_000)):
            deferred.abandon()
        assert len(waits) == waits.groups == 0
        assert len(waits._indexes) <= 64
    kept = index_waits(waits, model, range(5))
    model.version = 3
    waits.changed()
    await settle()
    assert [d.done for d in kept] == [True, True, True, False, False]


async def test_cluster_wait_and_http_polls_on_one_index_share_its_check() -> None:
    waits, model = Waits(), Model()
    check, key = model.above(7)
    other_check, same_key = model.above(7)
    first = waits.add(check, 600_000, lambda: -1, key=key)
    second = waits.add(other_check, 600_000, lambda: -1, key=same_key)
    assert waits.groups == 1 and len(waits) == 2
    model.version = 8
    waits.changed()
    answers: list[int] = []
    first.add_callback(answers.append)
    second.add_callback(answers.append)
    assert answers == [8, 8]


async def test_a_released_wait_whose_time_runs_out_before_its_turn_gets_the_answer() -> None:
    waits, model = Waits(), Model()
    check, key = model.above(0)
    deferreds = [waits.add(check, 600_000, lambda: -1, key=key) for _ in range(WAKE_CHUNK)]
    last = waits.add(check, 1, lambda: -1, key=key)  # answered in the second chunk
    model.version = 8
    waits.changed()
    time.sleep(0.005)  # its timer is due before the second chunk's turn
    await settle()
    answers: list[int] = []
    last.add_callback(answers.append)
    assert answers == [8] and all(d.done for d in deferreds) and len(waits) == 0
