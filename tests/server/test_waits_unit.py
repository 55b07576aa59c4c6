"""The waits' bookkeeping on a real event loop: one check per question, released clients
answered a chunk per loop turn, time-outs for the rest."""

from __future__ import annotations

import asyncio

from server.waits import WAKE_CHUNK, Waits


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
    assert waits._groups.keys() == {"two"}
    kept.abandon()
    assert len(waits) == 0 and not waits._groups


def test_abandon_reaches_the_source_of_a_mapped_deferred_and_drops_callbacks() -> None:
    from commands import Deferred

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
