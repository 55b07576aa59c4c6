"""Blocked clients: a handler that returns ``ctx.block(Deferred())`` ends its batch there,
and EXEC never blocks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from clusterwatch.commands import (
    FAMILIES,
    CommandContext,
    CommandSpec,
    CommandTable,
    Deferred,
    Group,
    Session,
)
from clusterwatch.resp import ErrorReply, Reply, SimpleString
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig

WAITING: list[Deferred[Reply]] = []


def wait(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    if ctx.session.deny_blocking:
        return SimpleString("not blocking")
    deferred: Deferred[Reply] = Deferred()
    WAITING.append(deferred)
    return ctx.block(deferred)


def wait_wrongly(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    return ctx.block(Deferred())  # ignores deny_blocking: EXEC must cope


EXTRA = (CommandSpec(name="wait", arity=1, group=Group.SERVER, summary="t", handler=wait),
         CommandSpec(name="waitbad", arity=1, group=Group.SERVER, summary="t",
                     handler=wait_wrongly))


@pytest.fixture
def ctx() -> Iterator[CommandContext]:
    table = CommandTable([*(s for f in FAMILIES for s in f.COMMANDS), *EXTRA],
                         perf_ns=time.perf_counter_ns)
    server = Server(ServerConfig(port=0), table=table)
    WAITING.clear()
    yield CommandContext(session=Session(id=1, allowed=table.catalog.everything),
                         server=server, table=table)
    server.process.close()


def test_deferred_resolves_once_and_maps() -> None:
    seen: list[int] = []
    deferred: Deferred[int] = Deferred()
    doubled = deferred.map(lambda v: v * 2)
    doubled.add_callback(seen.append)
    assert not doubled.done
    deferred.resolve(21)
    assert seen == [42] and doubled.done
    doubled.add_callback(seen.append)  # after resolution: at once
    assert seen == [42, 42]
    with pytest.raises(RuntimeError):
        deferred.resolve(1)


def test_a_blocked_request_ends_the_batch(ctx: CommandContext) -> None:
    batch = [[b"PING"], [b"WAIT"], [b"PING"], [b"PING"]]
    replies = ctx.table.execute(ctx, batch)
    assert len(replies) == 2
    assert replies[0] == SimpleString("PONG")
    assert replies[1] is WAITING[0]
    assert ctx.session.blocked is WAITING[0]
    assert ctx.server.stats.command("wait").calls == 1


def test_exec_never_blocks(ctx: CommandContext) -> None:
    for argv in ([b"MULTI"], [b"WAIT"], [b"WAITBAD"], [b"PING"]):
        ctx.table.dispatch(ctx, argv)
    replies = ctx.table.dispatch(ctx, [b"EXEC"])
    assert replies == [SimpleString("not blocking"),
                       ErrorReply("ERR", "internal error: a command blocked inside EXEC"),
                       SimpleString("PONG")]
    assert ctx.session.blocked is None and not ctx.session.deny_blocking
    assert WAITING == []
