"""Server commands: COMMAND, CONFIG, INFO, DBSIZE, TIME, SLOWLOG, LATENCY."""

from __future__ import annotations

from collections.abc import Sequence

from clusterwatch.resp import OK, Map, Reply

from . import info as info_module
from ._args import parse_int, text, upper
from ._docs import command_docs, command_info
from ._errors import CommandError, syntax_error
from ._glob import compile_glob
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group

_SERVER = Group.SERVER
_STRING = ArgType.STRING


# --- COMMAND ------------------------------------------------------------------------------


def command(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return [command_info(spec) for spec in ctx.table.all_specs()]


def command_count(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return len(ctx.table.commands)


def command_list(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    names: list[Reply] = [spec.name for spec in ctx.table.all_specs()]
    if len(argv) == 2:
        return names
    if len(argv) != 5 or upper(argv[2]) != "FILTERBY":
        raise syntax_error()
    kind, value = upper(argv[3]), text(argv[4])
    if kind == "PATTERN":
        matches = compile_glob(value.lower().encode()).matches
        return [name for name in names if matches(str(name).encode())]
    if kind == "ACLCAT":
        return [spec.full_name for spec in ctx.table.runnable()
                if f"@{value.lower()}" in spec.categories]
    if kind == "MODULE":
        return []
    raise syntax_error()


def command_info_(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) == 2:
        return command(ctx, argv)
    replies: list[Reply] = []
    for raw in argv[2:]:
        spec = ctx.table.lookup_name(text(raw))
        replies.append(command_info(spec) if spec else None)
    return replies


def command_docs_(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    if len(argv) == 2:
        specs = ctx.table.all_specs()
    else:
        found = (ctx.table.lookup_name(text(raw)) for raw in argv[2:])
        specs = [spec for spec in found if spec is not None]
    return Map((spec.full_name, command_docs(spec)) for spec in specs)


def command_getkeys(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    try:
        spec = ctx.table.resolve(argv[2:])
    except CommandError:
        raise CommandError("Invalid command specified") from None
    if spec.getkeys is None:
        raise CommandError("The command has no key arguments")
    keys = spec.getkeys(argv[2:])
    if not keys:
        raise CommandError("Invalid arguments specified for command")
    return list[Reply](keys)


# --- CONFIG -------------------------------------------------------------------------------


def config_get(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    values = ctx.server.config_values()
    matched: dict[str, str] = {}
    for raw in argv[2:]:
        matches = compile_glob(text(raw).lower().encode()).matches
        for name, value in values.items():
            if matches(name.encode()):
                matched[name] = value
    return Map(matched.items())


def config_resetstat(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.server.stats.reset()
    return OK


# --- small server commands ----------------------------------------------------------------


def dbsize(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return 0


def time_(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    now_us = ctx.server.now_us()
    return [str(now_us // 1_000_000), str(now_us % 1_000_000)]


def slowlog_get(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    count = 10
    if len(argv) == 3:
        count = parse_int(argv[2], error=CommandError(
            "count should be greater than or equal to -1"))
        if count < -1:
            raise CommandError("count should be greater than or equal to -1")
    entries = list(ctx.server.stats.slowlog.entries)
    if count >= 0:
        entries = entries[:count]
    return [
        [e.id, e.timestamp, e.duration_us, list(e.args), e.client_addr, e.client_name]
        for e in entries
    ]


def slowlog_len(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return len(ctx.server.stats.slowlog.entries)


def slowlog_reset(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    ctx.server.stats.slowlog.entries.clear()
    return OK


def latency_latest(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    return [[name, event.timestamp, event.latest_ms, event.max_ms]
            for name, event in sorted(ctx.server.stats.latency.events.items())]


def latency_history(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    event = ctx.server.stats.latency.events.get(text(argv[2]))
    return [] if event is None else [[ts, ms] for ts, ms in event.history]


def latency_reset(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    events = ctx.server.stats.latency.events
    names = [text(raw) for raw in argv[2:]] or list(events)
    return sum(1 for name in names if events.pop(name, None) is not None)


def _sub(container: str, name: str, arity: int, summary: str, handler: object, *,
         group: Group = _SERVER, since: str = "2.0.0", args: tuple[Arg, ...] = (),
         flags: Flag = Flag.NONE) -> CommandSpec:
    return CommandSpec(name=name, container=container, arity=arity, summary=summary,
                       group=group, since=since, args=args,
                       flags=flags | Flag.LOADING | Flag.STALE,
                       handler=handler)  # type: ignore[arg-type]


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="command", arity=-1, group=_SERVER, since="2.8.13",
        summary="Returns detailed information about all commands.",
        flags=Flag.LOADING | Flag.STALE, handler=command,
        subcommands=(
            _sub("command", "count", 2, "Returns a count of commands.", command_count,
                 since="2.8.13"),
            _sub("command", "list", -2, "Returns a list of command names.", command_list,
                 since="7.0.0", args=(Arg(name="filterby", type=ArgType.ONEOF,
                 token="FILTERBY", optional=True, args=(
                     Arg(name="module-name", type=_STRING, token="MODULE"),
                     Arg(name="category", type=_STRING, token="ACLCAT"),
                     Arg(name="pattern", type=ArgType.PATTERN, token="PATTERN"))),)),
            _sub("command", "info", -2, "Returns information about one, multiple or all "
                 "commands.", command_info_, since="2.8.13",
                 args=(Arg(name="command-name", type=_STRING, optional=True, multiple=True),)),
            _sub("command", "docs", -2, "Returns documentary information about one, multiple "
                 "or all commands.", command_docs_, since="7.0.0",
                 args=(Arg(name="command-name", type=_STRING, optional=True, multiple=True),)),
            _sub("command", "getkeys", -4, "Extracts the key names from an arbitrary "
                 "command.", command_getkeys, since="2.8.13",
                 args=(Arg(name="command", type=_STRING),
                       Arg(name="arg", type=_STRING, optional=True, multiple=True))),
        ),
    ),
    CommandSpec(
        name="config", arity=-2, group=_SERVER, since="2.0.0",
        summary="A container for server configuration commands.",
        subcommands=(
            _sub("config", "get", -3, "Returns the effective values of configuration "
                 "parameters.", config_get, flags=Flag.ADMIN | Flag.NOSCRIPT,
                 args=(Arg(name="parameter", type=_STRING, multiple=True),)),
            _sub("config", "resetstat", 2, "Resets the server's statistics.",
                 config_resetstat, flags=Flag.ADMIN | Flag.NOSCRIPT),
        ),
    ),
    CommandSpec(
        name="info", arity=-1, group=_SERVER, since="1.0.0",
        summary="Returns information and statistics about the server.",
        flags=Flag.LOADING | Flag.STALE, handler=info_module.info,
        args=(Arg(name="section", type=_STRING, optional=True, multiple=True),),
    ),
    CommandSpec(
        name="dbsize", arity=1, group=_SERVER, since="1.0.0", flags=Flag.READONLY | Flag.FAST,
        summary="Returns the number of keys in the database (always 0).", handler=dbsize,
    ),
    CommandSpec(
        name="time", arity=1, group=_SERVER, since="2.6.0",
        flags=Flag.LOADING | Flag.STALE | Flag.FAST,
        summary="Returns the server time.", handler=time_,
    ),
    CommandSpec(
        name="slowlog", arity=-2, group=_SERVER, since="2.2.12",
        summary="A container for slow log commands.",
        subcommands=(
            _sub("slowlog", "get", -2, "Returns the slow log's entries.", slowlog_get,
                 since="2.2.12", flags=Flag.ADMIN,
                 args=(Arg(name="count", type=ArgType.INTEGER, optional=True),)),
            _sub("slowlog", "len", 2, "Returns the number of entries in the slow log.",
                 slowlog_len, since="2.2.12", flags=Flag.ADMIN),
            _sub("slowlog", "reset", 2, "Clears all entries from the slow log.", slowlog_reset,
                 since="2.2.12", flags=Flag.ADMIN),
        ),
    ),
    CommandSpec(
        name="latency", arity=-2, group=_SERVER, since="2.8.13",
        summary="A container for latency diagnostics commands.",
        subcommands=(
            _sub("latency", "latest", 2, "Returns the latest latency samples for all events.",
                 latency_latest, since="2.8.13", flags=Flag.ADMIN | Flag.NOSCRIPT),
            _sub("latency", "history", 3, "Returns timestamp-latency samples for an event.",
                 latency_history, since="2.8.13", flags=Flag.ADMIN | Flag.NOSCRIPT,
                 args=(Arg(name="event", type=_STRING),)),
            _sub("latency", "reset", -2, "Resets the latency data for one or more events.",
                 latency_reset, since="2.8.13", flags=Flag.ADMIN | Flag.NOSCRIPT,
                 args=(Arg(name="event", type=_STRING, optional=True, multiple=True),)),
        ),
    ),
)
