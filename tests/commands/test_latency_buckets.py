"""The per-command latency buckets behind the `/metrics` histogram: which bucket a call
lands in, a run counted at its average, and the counts kept by dispatch and EXEC."""

from __future__ import annotations

import pytest

from clusterwatch.commands._stats import LATENCY_BOUNDS_NS, CommandStat, Stats
from tests.commands.test_execute import argvs, ticking_ctx

INF = len(LATENCY_BOUNDS_NS)  # the index of the +Inf bucket


def bucket_of(calls: int, elapsed_ns: int) -> list[int]:
    stat = CommandStat()
    stat.record(calls, elapsed_ns)
    return stat.latency_counts()


def only(index: int, calls: int = 1) -> list[int]:
    counts = [0] * (INF + 1)
    counts[index] = calls
    return counts


@pytest.mark.parametrize(("elapsed_ns", "index"), [
    (0, 0),
    (800, 0),
    (10_000, 0),  # bounds are inclusive, as Prometheus's `le`
    (10_001, 1),
    (50_000, 1),
    (50_001, 2),
    (999_999, 4),
    (1_000_000, 4),
    (7_000_000, 6),
    (100_000_000, INF - 1),
    (100_000_001, INF),
    (10**12, INF),
])
def test_one_call_lands_in_the_first_bucket_that_holds_it(elapsed_ns: int, index: int) -> None:
    assert bucket_of(1, elapsed_ns) == only(index)


def test_a_run_counts_every_call_at_the_runs_average() -> None:
    assert bucket_of(4, 4 * 60_000) == only(2, 4)  # 60 us each: the 100 us bucket
    assert bucket_of(4, 40_000) == only(0, 4)  # exactly 10 us each
    assert bucket_of(4, 40_001) == only(1, 4)  # 10.00025 us each: above the first bound
    assert bucket_of(16, 16 * 200_000_000) == only(INF, 16)


def test_counts_add_up_to_the_calls_and_the_sum_is_kept() -> None:
    stat = CommandStat()
    for calls, elapsed_ns in [(1, 5_000), (3, 3 * 70_000), (1, 2_000_000), (2, 1_000)]:
        stat.record(calls, elapsed_ns)
    counts = stat.latency_counts()
    assert counts == [3, 0, 3, 0, 0, 1, 0, 0, 0, 0]
    assert sum(counts) == stat.calls == 7
    assert stat.nsec == 5_000 + 210_000 + 2_000_000 + 1_000


def test_resetstat_empties_the_buckets() -> None:
    stats = Stats()
    stat = stats.command("ping")
    stat.record(1, 20_000_000)
    stats.reset()
    assert stats.commands["ping"] is stat
    assert stat.latency_counts() == only(0, 0)
    stat.record(1, 20_000)
    assert stat.latency_counts() == only(1)


def test_execute_counts_a_pipelined_run_and_a_call_alone() -> None:
    ctx, _ = ticking_ctx(60_000)  # every clock read is 60 us later
    ctx.table.execute(ctx, argvs("PING", "PING", "PING", "INFO server"))
    stats = ctx.server.stats
    # One read when the PING run starts, one when INFO starts it: 20 us per PING.
    assert stats.commands["ping"].latency_counts() == only(1, 3)
    assert stats.commands["info"].latency_counts() == only(2)


def test_exec_counts_each_queued_command_through_dispatch() -> None:
    ctx, _ = ticking_ctx(700_000)
    ctx.table.execute(ctx, argvs("MULTI"))
    ctx.table.execute(ctx, argvs("PING"))
    ctx.table.execute(ctx, argvs("EXEC"))
    ping = ctx.server.stats.commands["ping"]
    assert ping.calls == 1 and ping.latency_counts() == only(4)  # 700 us: the 1 ms bucket
