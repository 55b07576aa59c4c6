"""The command table: lookup, arity, authentication, transactions and accounting, in
the order redis-server applies them (``processCommand``), for every command.

A handler sees only well-formed calls: the right arity, an authenticated client (or a
``NO_AUTH`` command), and never a command that MULTI should have queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from resp import QUEUED, ErrorReply, Reply, SimpleString

from ._context import CommandContext
from ._docs import arg_usage
from ._errors import NOAUTH, CommandError, unknown_command, unknown_subcommand, wrong_arity
from ._spec import CommandSpec, Flag

log = logging.getLogger("clusterwatch.commands")

# Commands that run at once inside MULTI instead of being queued (Redis: these are
# exempt from queueing).
_NOT_QUEUED = frozenset({"exec", "discard", "multi", "watch", "unwatch", "quit", "reset"})


def _help_lines(container: CommandSpec) -> list[Reply]:
    lines: list[Reply] = [SimpleString(
        f"{container.name.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )]
    for sub in container.subcommands:
        usage = " ".join([sub.name.upper(), *(arg_usage(arg) for arg in sub.args)])
        lines.append(SimpleString(usage))
        lines.append(SimpleString(f"    {sub.summary}"))
    return lines


def _with_help(spec: CommandSpec) -> CommandSpec:
    """Give every container a HELP subcommand generated from its subcommands, as Redis has."""
    if not spec.subcommands or any(sub.name == "help" for sub in spec.subcommands):
        return spec
    help_spec = CommandSpec(
        name="help", container=spec.name, arity=2, group=spec.group, since=spec.since,
        summary="Returns helpful text about the different subcommands.",
        flags=Flag.LOADING | Flag.STALE,
        handler=lambda ctx, argv: _help_lines(ctx.table.commands[argv[0].lower()]),
    )
    return replace(spec, subcommands=(*spec.subcommands, help_spec))


class CommandTable:
    """All commands, by name; subcommands one level below their container."""

    def __init__(self, specs: Iterable[CommandSpec], *, perf_ns: Callable[[], int]) -> None:
        """``perf_ns`` is the injected clock that times each call (stats and slow log)."""
        self.perf_ns = perf_ns
        self.commands: dict[bytes, CommandSpec] = {}
        self.subcommands: dict[bytes, dict[bytes, CommandSpec]] = {}
        for raw in specs:
            spec = _with_help(raw)
            key = spec.name.encode()
            if key in self.commands:
                raise ValueError(f"command {spec.name!r} defined twice")
            if spec.name != spec.name.lower():
                raise ValueError(f"command names are lower case: {spec.name!r}")
            self.commands[key] = spec
            if spec.subcommands:
                subs = {}
                for sub in spec.subcommands:
                    if sub.container != spec.name:
                        raise ValueError(f"{sub.name!r} must name {spec.name!r} as container")
                    subs[sub.name.encode()] = sub
                self.subcommands[key] = subs
        # Clients send names in upper or lower case; index both so the common lookups
        # need no case folding (mixed case falls back to lower()).
        self._by_name = {**self.commands, **{k.upper(): v for k, v in self.commands.items()}}
        # Subcommands by the container name as sent (either case), then the sub as sent.
        self._subs_by_name: dict[bytes, dict[bytes, CommandSpec]] = {}
        for container, subs in self.subcommands.items():
            both_cases = {**subs, **{k.upper(): v for k, v in subs.items()}}
            self._subs_by_name[container] = self._subs_by_name[container.upper()] = both_cases

    def resolve(self, argv: Sequence[bytes]) -> CommandSpec:
        """The spec ``argv`` calls, or the error Redis gives (unknown, arity)."""
        spec = self._by_name.get(argv[0]) or self._by_name.get(argv[0].lower())
        if spec is None:
            raise unknown_command(argv[0], list(argv[1:]))
        if spec.subcommands:
            if len(argv) == 1:
                if spec.handler is not None:  # COMMAND alone lists every command
                    return spec
                raise wrong_arity(spec.name)
            sub = self.subcommands[spec.name.encode()].get(argv[1].lower())
            if sub is None:
                raise unknown_subcommand(spec.name, argv[1])
            spec = sub
        if not spec.min_argc <= len(argv) <= spec.max_argc:
            raise wrong_arity(spec.full_name)
        return spec

    def dispatch(self, ctx: CommandContext, argv: list[bytes]) -> Reply:
        """Run one request and account for it; errors come back as ``ErrorReply``.

        The common case (a known command, right arity, authenticated, no MULTI) is
        decided by the first test; everything else goes through ``_admit``.
        """
        session = ctx.session
        spec = self._by_name.get(argv[0])
        if spec is not None and spec.subcommands and len(argv) > 1:
            spec = self._subs_by_name[argv[0]].get(argv[1])
        if (spec is None or spec.subcommands or not spec.min_argc <= len(argv) <= spec.max_argc
                or not session.authenticated or session.multi is not None):
            admitted = self._admit(ctx, argv)
            if admitted.__class__ is not CommandSpec:
                return admitted  # type: ignore[return-value]
            spec = admitted
        session.last_command = spec.full_name  # CLIENT LIST shows the running command
        perf_ns = self.perf_ns
        started = perf_ns()
        try:
            reply = spec.handler(ctx, argv)  # type: ignore[misc]
        except CommandError as exc:
            reply = self._error_reply(ctx, exc)
            ctx.server.stats.command(spec.full_name).failed_calls += 1
        elapsed = perf_ns() - started
        stats = ctx.server.stats
        stat = stats.commands.get(spec.full_name) or stats.command(spec.full_name)
        stat.calls += 1
        stat.nsec += elapsed
        if elapsed >= stats.slow_threshold_ns:
            self._record_slow(ctx, argv, elapsed // 1000)
        return reply

    def _admit(self, ctx: CommandContext, argv: list[bytes]) -> CommandSpec | Reply:
        """Redis's checks before a call, in its order: lookup and arity, authentication,
        then MULTI queueing. Returns the spec to run, or the reply to send instead."""
        session = ctx.session
        try:
            spec = self.resolve(argv)
        except CommandError as exc:
            if session.multi is not None:
                session.multi_dirty = True
            self._count_rejection(ctx, argv)
            return self._error_reply(ctx, exc)
        if not session.authenticated and Flag.NO_AUTH not in spec.flags:
            ctx.server.stats.command(spec.full_name).rejected_calls += 1
            if session.multi is not None:
                session.multi_dirty = True
            return self._error_reply(ctx, NOAUTH)
        if session.multi is not None and spec.name not in _NOT_QUEUED:
            if Flag.NO_MULTI in spec.flags:
                session.multi_dirty = True
                ctx.server.stats.command(spec.full_name).rejected_calls += 1
                return self._error_reply(
                    ctx, CommandError("Command not allowed inside a transaction"))
            session.multi.append(argv)
            return QUEUED
        return spec

    @staticmethod
    def _record_slow(ctx: CommandContext, argv: list[bytes], elapsed_us: int) -> None:
        stats = ctx.server.stats
        now_s = ctx.server.now_ms() // 1000
        stats.slowlog.record(argv, elapsed_us, now_s, ctx.session.addr, ctx.session.name)
        stats.latency.record("command", elapsed_us // 1000, now_s)

    def _count_rejection(self, ctx: CommandContext, argv: Sequence[bytes]) -> None:
        spec = self._by_name.get(argv[0]) or self._by_name.get(argv[0].lower())
        if spec is None:
            return
        if spec.subcommands and len(argv) > 1:
            spec = self.subcommands[spec.name.encode()].get(argv[1].lower(), spec)
        ctx.server.stats.command(spec.full_name).rejected_calls += 1

    @staticmethod
    def _error_reply(ctx: CommandContext, exc: CommandError) -> ErrorReply:
        ctx.server.stats.count_error(exc.prefix)
        return ErrorReply(exc.prefix, exc.message)

    def all_specs(self) -> list[CommandSpec]:
        return list(self.commands.values())

    def lookup_name(self, name: str) -> CommandSpec | None:
        """A command by name, or a subcommand by ``container|sub``."""
        container, _, sub = name.lower().partition("|")
        spec = self.commands.get(container.encode())
        if spec is None or not sub:
            return spec
        return self.subcommands.get(container.encode(), {}).get(sub.encode())
