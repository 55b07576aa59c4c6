"""MULTI, EXEC, DISCARD. Queueing itself happens in dispatch (``CommandTable.dispatch``)."""

from __future__ import annotations

from collections.abc import Sequence

from clusterwatch.resp import OK, ErrorReply, Reply

from ._deferred import Deferred
from ._errors import CommandError
from ._spec import CommandContext, CommandSpec, Flag, Group


def multi(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if ctx.session.multi is not None:
        raise CommandError("MULTI calls can not be nested")
    ctx.session.multi = []
    ctx.session.multi_dirty = False
    return OK


def exec_(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    session = ctx.session
    queued = session.multi
    if queued is None:
        raise CommandError("EXEC without MULTI")
    dirty = session.multi_dirty
    session.multi = None
    session.multi_dirty = False
    if dirty:
        raise CommandError("Transaction discarded because of previous errors.", "EXECABORT")
    # MULTI is over, so each queued request now runs as if sent on its own, except that
    # nothing may block (Redis's CLIENT_DENY_BLOCKING).
    session.deny_blocking = True
    try:
        replies = [ctx.table.dispatch(ctx, argv_queued) for argv_queued in queued]
    finally:
        session.deny_blocking = False
    if any(isinstance(reply, Deferred) for reply in replies):  # a handler broke the rule
        session.blocked = None
        return [ErrorReply("ERR", "internal error: a command blocked inside EXEC")
                if isinstance(reply, Deferred) else reply for reply in replies]
    return replies  # type: ignore[return-value]


def discard(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if ctx.session.multi is None:
        raise CommandError("DISCARD without MULTI")
    ctx.session.multi = None
    ctx.session.multi_dirty = False
    return OK


_FLAGS = Flag.NOSCRIPT | Flag.LOADING | Flag.STALE | Flag.FAST | Flag.ALLOW_BUSY

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(name="multi", arity=1, group=Group.TRANSACTIONS, since="1.2.0", flags=_FLAGS,
                summary="Starts a transaction.", handler=multi),
    CommandSpec(name="exec", arity=1, group=Group.TRANSACTIONS, since="1.2.0",
                flags=Flag.NOSCRIPT | Flag.LOADING | Flag.STALE,
                summary="Executes all commands in a transaction.", handler=exec_),
    CommandSpec(name="discard", arity=1, group=Group.TRANSACTIONS, since="2.0.0", flags=_FLAGS,
                summary="Discards a transaction.", handler=discard),
)
