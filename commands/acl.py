"""ACL: Redis 7's user management commands, over ``AccessControl`` (commands/_access.py).

A change to a user takes effect at once for the clients authenticated as it; deleting a
user (or loading a file without it) disconnects them, as Redis does, and so does taking
from a user a channel or pattern its clients are subscribed to (``resetchannels``,
``reset``, ``&other`` after ``resetchannels``, or an ACL LOAD that does). ACL LOAD leaves
the clients of users it does not change alone, as Redis 7.2 does (7.0 disconnected every
client of every user but ``default``). A client that loses its own subscription this way
gets its reply, then is disconnected.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from clusterwatch.resp import OK, Map, Reply, Set

from ._acl_user import AclRuleError
from ._args import parse_int, text, upper
from ._categories import CATEGORIES
from ._errors import CommandError, syntax_error
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from .connection import log_in


def acl_whoami(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return ctx.session.user


def acl_users(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    names: list[Reply] = [*sorted(ctx.server.acl.users)]
    return names


def acl_list(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return list(ctx.server.acl.lines())


def acl_cat(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) == 2:
        return list(CATEGORIES)
    name = text(argv[2]).lower()
    members = ctx.table.catalog.by_category.get(name)
    if members is None:
        raise CommandError(f"Unknown category '{text(argv[2])}'")
    return [spec.full_name for spec in ctx.table.runnable() if spec.full_name in members]


def acl_getuser(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    user = ctx.server.acl.users.get(text(argv[2]))
    if user is None:
        return None
    passwords: list[Reply] = list(user.passwords)
    return Map([
        ("flags", Set(user.flags())),
        ("passwords", passwords),
        ("commands", user.commands_text()),
        ("keys", user.keys_text()),
        ("channels", user.channels_text()),
        ("selectors", []),
    ])


def acl_setuser(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    name = text(argv[2])
    try:
        ctx.server.acl.setuser(name, [text(rule) for rule in argv[3:]])
    except AclRuleError as exc:
        raise CommandError(str(exc)) from None
    _refresh_sessions(ctx, {name})
    return OK


def acl_deluser(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    try:
        removed = ctx.server.acl.deluser(text(name) for name in argv[2:])
    except AclRuleError as exc:
        raise CommandError(str(exc)) from None
    _refresh_sessions(ctx, set(removed))
    return len(removed)


def acl_dryrun(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    name = text(argv[2])
    user = ctx.server.acl.users.get(name)
    if user is None:
        raise CommandError(f"User '{name}' not found")
    try:
        spec = ctx.table.resolve(argv[3:])
    except CommandError:
        raise CommandError(f"Command '{text(argv[3])}' not found") from None
    if spec.full_name in user.allowed:
        return OK
    return f"This user has no permissions to run the '{spec.full_name}' command"


def acl_genpass(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    bits = 256
    if len(argv) == 3:
        bits = parse_int(argv[2])
        if not 0 < bits <= 4096:
            raise CommandError("ACL GENPASS argument must be the number of bits for the "
                               "output password, a positive number up to 4096")
    chars = (bits + 3) // 4
    return secrets.token_hex((chars + 1) // 2)[:chars]


def acl_log(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    log = ctx.server.acl.log
    count = len(log)
    if len(argv) == 3:
        if upper(argv[2]) == "RESET":
            log.reset()
            return OK
        count = max(parse_int(argv[2]), 0)
    elif len(argv) > 3:
        raise syntax_error()
    return log.reply(count, ctx.server.now_ms())


def acl_load(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.server.acl_load()
    _refresh_sessions(ctx, None)
    return OK


def acl_save(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.server.acl_save()
    return OK


def _refresh_sessions(ctx: CommandContext, names: Iterable[str] | None) -> None:
    """Give the clients of the changed users (all users: None) their new permissions;
    disconnect those whose user is gone, and those subscribed to a channel or pattern
    their user's channel rules no longer allow (as Redis 7 does). A user switched off
    keeps its connections, as in Redis: it only cannot authenticate anew."""
    users = ctx.server.acl.users
    wanted = None if names is None else set(names)
    for session in list(ctx.server.sessions()):
        if not session.authenticated or (wanted is not None and session.user not in wanted):
            continue
        user = users.get(session.user)
        if user is None or not user.may_keep(session.channels, session.patterns):
            ctx.server.kill_session(session.id)
            if session.id == ctx.session.id:
                session.close_after_reply = True
        else:
            log_in(session, user)


_ADMIN = Flag.ADMIN | Flag.NOSCRIPT | Flag.LOADING | Flag.STALE
_PLAIN = Flag.NOSCRIPT | Flag.LOADING | Flag.STALE
_STRING = ArgType.STRING
_USER = Arg(name="username", type=_STRING)


def _sub(name: str, arity: int, summary: str, handler: object, *, flags: Flag = _ADMIN,
         args: tuple[Arg, ...] = (), complexity: str = "O(1)") -> CommandSpec:
    return CommandSpec(name=name, container="acl", arity=arity, summary=summary,
                       group=Group.SERVER, since="6.0.0", complexity=complexity,
                       flags=flags, args=args, handler=handler)  # type: ignore[arg-type]


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="acl", arity=-2, group=Group.SERVER, since="6.0.0",
        summary="A container for Access List Control commands.",
        subcommands=(
            _sub("cat", -2, "Lists the ACL categories, or the commands inside a category.",
                 acl_cat, flags=_PLAIN,
                 args=(Arg(name="category", type=_STRING, optional=True),)),
            _sub("deluser", -3, "Deletes ACL users, and terminates their connections.",
                 acl_deluser, args=(Arg(name="username", type=_STRING, multiple=True),)),
            _sub("dryrun", -4, "Simulates the execution of a command by a user, without "
                 "executing the command.", acl_dryrun,
                 args=(_USER, Arg(name="command", type=_STRING),
                       Arg(name="arg", type=_STRING, optional=True, multiple=True))),
            _sub("genpass", -2, "Generates a pseudorandom, secure password that can be used "
                 "to identify ACL users.", acl_genpass, flags=_PLAIN,
                 args=(Arg(name="bits", type=ArgType.INTEGER, optional=True),)),
            _sub("getuser", 3, "Lists the ACL rules of a user.", acl_getuser, args=(_USER,)),
            _sub("list", 2, "Dumps the effective rules in ACL file format.", acl_list),
            _sub("load", 2, "Reloads the rules from the configured ACL file.", acl_load),
            _sub("log", -2, "Lists recent security events generated due to commands "
                 "rejected by ACL rules.", acl_log,
                 args=(Arg(name="operation", type=ArgType.ONEOF, optional=True, args=(
                     Arg(name="count", type=ArgType.INTEGER),
                     Arg(name="reset", type=ArgType.PURE_TOKEN, token="RESET"))),)),
            _sub("save", 2, "Saves the effective ACL rules in the configured ACL file.",
                 acl_save),
            _sub("setuser", -3, "Creates and modifies an ACL user and its rules.",
                 acl_setuser, args=(_USER, Arg(name="rule", type=_STRING, optional=True,
                                               multiple=True))),
            _sub("users", 2, "Lists all ACL users.", acl_users),
            _sub("whoami", 2, "Returns the authenticated username of the current "
                 "connection.", acl_whoami, flags=_PLAIN),
        ),
    ),
)
