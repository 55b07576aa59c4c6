"""``CommandTable.execute``: a pipelined batch run in order, with runs of the same command
timed and counted as a whole, and the early stops the connection relies on."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from clusterwatch.commands import CommandContext, build_table
from clusterwatch.resp import ErrorReply, Map, Reply, SimpleString, Verbatim
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from tests.commands.test_handlers import attach, make_ctx, run

PONG = SimpleString("PONG")


def argvs(*requests: str) -> list[list[bytes]]:
    return [request.encode().split() for request in requests]


def stat_line(ctx: CommandContext, name: str) -> str:
    reply = run(ctx, "INFO", "commandstats")
    text = reply.text.decode()  # type: ignore[union-attr]
    for line in text.splitlines():
        if line.startswith(f"cmdstat_{name}:"):
            return line.split(":", 1)[1]
    return ""


def calls(ctx: CommandContext, name: str) -> int:
    line = stat_line(ctx, name)
    return int(line.split(",")[0].removeprefix("calls=")) if line else 0


def slowlog_args(ctx: CommandContext) -> list[object]:
    """The arguments of each slow-log entry, newest first."""
    entries = run(ctx, "SLOWLOG", "GET", "10")
    assert isinstance(entries, list)
    return [entry[3] for entry in entries]  # type: ignore[index]


def ticking_ctx(step_ns: int, **config: int) -> tuple[CommandContext, Iterator[int]]:
    """A server whose clock advances ``step_ns`` at every read."""
    ticks = itertools.count(step=step_ns)
    app = Server(ServerConfig(**config), table=build_table(perf_ns=lambda: next(ticks)))
    return make_ctx(server=app), ticks


def test_replies_in_order_and_every_call_counted() -> None:
    ctx = make_ctx()
    batch = argvs("PING", "PING", "PING a", "ECHO b", "ping", "NOSUCH", "PING")
    replies = ctx.table.execute(ctx, batch)
    assert replies[:5] == [PONG, PONG, b"a", b"b", PONG]
    assert isinstance(replies[5], ErrorReply) and replies[5].message.startswith(
        "unknown command 'NOSUCH'")
    assert replies[6] == PONG
    assert calls(ctx, "ping") == 5
    assert calls(ctx, "echo") == 1


def test_wrong_arity_inside_a_run_is_rejected_and_the_run_goes_on() -> None:
    ctx = make_ctx()
    replies = ctx.table.execute(ctx, argvs("ECHO a", "ECHO", "ECHO c"))
    assert replies[0] == b"a" and replies[2] == b"c"
    assert isinstance(replies[1], ErrorReply) and "wrong number of arguments" in replies[1].message
    assert stat_line(ctx, "echo").startswith("calls=2,")
    assert "rejected_calls=1" in stat_line(ctx, "echo")


def test_a_run_is_timed_as_a_whole_and_its_time_is_kept() -> None:
    ctx, _ = ticking_ctx(1_000)  # every clock read is 1 us later
    ctx.table.execute(ctx, argvs("PING", "PING", "PING", "PING"))
    # One read when the run starts, one when it ends: 1 us for four calls.
    assert stat_line(ctx, "ping").startswith("calls=4,usec=1,usec_per_call=0.25,")


def test_resetstat_twice_in_one_batch_counts_the_second() -> None:
    ctx = make_ctx()
    ctx.table.execute(ctx, argvs("PING", "CONFIG RESETSTAT", "CONFIG RESETSTAT"))
    assert calls(ctx, "ping") == 0
    assert calls(ctx, "config|resetstat") == 1


def test_slowlog_at_zero_logs_every_request_of_a_run() -> None:
    ctx, _ = ticking_ctx(1_000, slowlog_log_slower_than=0)
    ctx.table.execute(ctx, argvs("PING", "PING a", "PING b"))
    assert slowlog_args(ctx) == [[b"PING", b"b"], [b"PING", b"a"], [b"PING"]]
    entries = run(ctx, "SLOWLOG", "GET", "10")
    assert all(entry[2] == 1 for entry in entries)  # type: ignore[index, union-attr]


def test_a_slow_run_gives_one_entry_with_its_last_request() -> None:
    ctx, _ = ticking_ctx(6_000_000, slowlog_log_slower_than=10_000)  # 6 ms per read
    ctx.table.execute(ctx, argvs("PING x", "PING y", "PING z", "ECHO e"))
    entries = run(ctx, "SLOWLOG", "GET", "10")
    assert isinstance(entries, list)
    # The PING run took 6 ms (under 10 ms): no entry. ECHO took 6 ms: none either.
    assert entries == []
    ctx, _ = ticking_ctx(12_000_000, slowlog_log_slower_than=10_000)
    ctx.table.execute(ctx, argvs("PING x", "PING y", "PING z"))
    entries = run(ctx, "SLOWLOG", "GET", "10")
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0][2] == 12_000 and entries[0][3] == [b"PING", b"z"]  # type: ignore[index]


def test_stops_after_quit() -> None:
    ctx = make_ctx()
    replies = ctx.table.execute(ctx, argvs("PING", "QUIT", "PING"))
    assert replies == [PONG, SimpleString("OK")]
    assert ctx.session.close_after_reply


def test_stops_after_a_protocol_switch_and_goes_on_when_called_again() -> None:
    ctx = make_ctx()
    batch = argvs("PING", "HELLO 3", "PING")
    first = ctx.table.execute(ctx, batch)
    assert len(first) == 2 and isinstance(first[1], Map)
    assert ctx.session.protocol == 3
    assert ctx.table.execute(ctx, batch[len(first):]) == [PONG]


def test_client_info_inside_a_batch_shows_itself() -> None:
    ctx = make_ctx()
    attach(ctx)
    replies = ctx.table.execute(ctx, argvs("PING", "PING", "CLIENT INFO", "PING"))
    assert isinstance(replies[2], Verbatim)
    assert " cmd=client|info " in replies[2].text.decode()
    assert ctx.session.last_command == "ping"


def test_a_handler_that_raises_gets_an_error_and_the_batch_goes_on() -> None:
    ctx = make_ctx()
    spec = ctx.table.commands[b"echo"]
    original = spec.handler

    def broken(ctx: CommandContext, argv: list[bytes]) -> Reply:
        raise RuntimeError("bug")

    object.__setattr__(spec, "handler", broken)
    try:
        replies = ctx.table.execute(ctx, argvs("PING", "ECHO a", "PING"))
    finally:
        object.__setattr__(spec, "handler", original)
    assert replies[0] == PONG and replies[2] == PONG
    assert replies[1] == ErrorReply("ERR", "internal error")
    assert "errorstat_ERR:count=1" in run(ctx, "INFO", "errorstats").text.decode()  # type: ignore[union-attr]


def test_commands_that_are_not_fast_are_timed_one_by_one() -> None:
    ctx, _ = ticking_ctx(12_000_000, slowlog_log_slower_than=10_000)
    ctx.table.execute(ctx, argvs("DBSIZE", "CLUSTER MYID", "CLUSTER MYID"))
    # DBSIZE is FAST (a run of one here); CLUSTER MYID is not: one entry per request.
    assert slowlog_args(ctx) == [[b"CLUSTER", b"MYID"], [b"CLUSTER", b"MYID"], [b"DBSIZE"]]
