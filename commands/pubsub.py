"""Pub/sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE and PUBSUB, as Redis 7.

The channels are clusterwatch's own (server/watch.py publishes them); there is no
PUBLISH. A subscribe-family command answers one frame per channel: a push in RESP3, an
array in RESP2, where the client is then in subscribed mode and may only send
(P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT and RESET. A channel the user's ACL channel
patterns do not allow (``&pattern``) is ``-NOPERM``, as in Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clusterwatch.resp import Encoded, Push, Reply, encode

from ._acl_log import AclLogEntry
from ._errors import CommandError
from ._session import Session, client_info_line
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from ._subscriptions import SUBSCRIBED_MODE_COMMANDS
from .connection import refresh_permissions

_NO_CHANNEL_PERMISSION = CommandError(
    "this user has no permissions to access one of the channels used as arguments", "NOPERM")


def _confirmations(kind: bytes, names: list[bytes], counts: list[int]) -> Encoded:
    """``[kind, name, count]`` per name: arrays in RESP2, pushes in RESP3, written out
    directly (a PSUBSCRIBE may name many thousands)."""
    head = b"3\r\n$%d\r\n%b\r\n" % (len(kind), kind)
    bodies = [b"%b$%d\r\n%b\r\n:%d\r\n" % (head, len(name), name, count)
              for name, count in zip(names, counts, strict=True)]
    return Encoded(b"*" + b"*".join(bodies), b">" + b">".join(bodies))


def _count(session: Session) -> int:
    return len(session.channels) + len(session.patterns)


def _check_channels(ctx: CommandContext, names: Sequence[bytes], *, patterns: bool) -> None:
    user = ctx.server.acl.users.get(ctx.session.user)
    if user is None or user.all_channels:
        return
    allowed = user.may_use_pattern if patterns else user.may_use_channel
    for raw in names:
        if allowed(raw):
            continue
        now_ms = ctx.server.now_ms()
        ctx.server.acl.log.add(AclLogEntry(
            reason="channel", context="toplevel", object=raw.decode("utf-8", "replace"),
            username=user.name, client_info=client_info_line(ctx.session, now_ms),
            updated_ms=now_ms))
        raise _NO_CHANNEL_PERMISSION


def _join(ctx: CommandContext, names: Sequence[bytes], kind: bytes,
          add: Callable[[Session, bytes], None]) -> Reply:
    """(P)SUBSCRIBE: one confirmation per name, with the session's count after it."""
    _check_channels(ctx, names, patterns=kind == b"psubscribe")
    session = ctx.session
    counts = []
    for name in names:
        add(session, name)
        counts.append(_count(session))
    refresh_permissions(ctx)
    return _confirmations(kind, list(names), counts)


def _leave(ctx: CommandContext, names: Sequence[bytes], kind: bytes, held: set[bytes],
           drop: Callable[[Session, bytes], None]) -> Reply:
    """(P)UNSUBSCRIBE: the names given, or every one held; with none, one frame with a
    null name, as Redis answers."""
    session = ctx.session
    left = list(names) or sorted(held)
    counts = []
    for name in left:
        drop(session, name)
        counts.append(_count(session))
    refresh_permissions(ctx)
    if not left:
        nothing = Push([kind, None, _count(session)])
        return Encoded(encode(nothing, 2), encode(nothing, 3))
    return _confirmations(kind, left, counts)


def subscribe(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return _join(ctx, argv[1:], b"subscribe", ctx.server.subscriptions.subscribe)


def psubscribe(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return _join(ctx, argv[1:], b"psubscribe", ctx.server.subscriptions.psubscribe)


def unsubscribe(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return _leave(ctx, argv[1:], b"unsubscribe", ctx.session.channels,
                  ctx.server.subscriptions.unsubscribe)


def punsubscribe(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return _leave(ctx, argv[1:], b"punsubscribe", ctx.session.patterns,
                  ctx.server.subscriptions.punsubscribe)


def pubsub_channels(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    channels: list[Reply] = [*ctx.server.subscriptions.active_channels(
        argv[2] if len(argv) == 3 else None)]
    return channels


def pubsub_numsub(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    channels = ctx.server.subscriptions.channels
    reply: list[Reply] = []
    for channel in argv[2:]:
        reply.extend((channel, len(channels.get(channel, ()))))
    return reply


def pubsub_numpat(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return len(ctx.server.subscriptions.patterns)


_SUB_FLAGS = Flag.PUBSUB | Flag.NOSCRIPT | Flag.LOADING | Flag.STALE
_CHANNELS = (Arg(name="channel", type=ArgType.STRING, multiple=True),)
_PATTERNS = (Arg(name="pattern", type=ArgType.PATTERN, multiple=True),)


def _command(name: str, arity: int, summary: str, handler: object,
             args: tuple[Arg, ...]) -> CommandSpec:
    return CommandSpec(name=name, arity=arity, summary=summary, group=Group.PUBSUB,
                       since="2.0.0", complexity="O(N) where N is the number of channels",
                       flags=_SUB_FLAGS, args=args, handler=handler)  # type: ignore[arg-type]


def _pubsub_sub(name: str, arity: int, summary: str, handler: object,
                args: tuple[Arg, ...] = ()) -> CommandSpec:
    return CommandSpec(name=name, container="pubsub", arity=arity, summary=summary,
                       group=Group.PUBSUB, since="2.8.0",
                       flags=Flag.PUBSUB | Flag.LOADING | Flag.STALE,
                       args=args, handler=handler)  # type: ignore[arg-type]


COMMANDS: tuple[CommandSpec, ...] = (
    _command("subscribe", -2, "Listens for messages published to channels.", subscribe,
             _CHANNELS),
    _command("psubscribe", -2, "Listens for messages published to channels that match "
             "one or more patterns.", psubscribe, _PATTERNS),
    _command("unsubscribe", -1, "Stops listening to messages posted to channels.",
             unsubscribe, (Arg(name="channel", type=ArgType.STRING, optional=True,
                               multiple=True),)),
    _command("punsubscribe", -1, "Stops listening to messages published to channels that "
             "match one or more patterns.", punsubscribe,
             (Arg(name="pattern", type=ArgType.PATTERN, optional=True, multiple=True),)),
    CommandSpec(
        name="pubsub", arity=-2, group=Group.PUBSUB, since="2.8.0",
        summary="A container for Pub/Sub commands.",
        subcommands=(
            _pubsub_sub("channels", -2, "Returns the active channels.", pubsub_channels,
                        (Arg(name="pattern", type=ArgType.PATTERN, optional=True),)),
            _pubsub_sub("numsub", -2, "Returns a count of subscribers to channels.",
                        pubsub_numsub, (Arg(name="channel", type=ArgType.STRING,
                                            optional=True, multiple=True),)),
            _pubsub_sub("numpat", 2, "Returns a count of unique pattern subscriptions.",
                        pubsub_numpat),
        ),
    ),
)

__all__ = ["COMMANDS", "SUBSCRIBED_MODE_COMMANDS"]
