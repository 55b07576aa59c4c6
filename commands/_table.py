"""The command table: lookup, arity, authentication, transactions and accounting, in
the order redis-server applies them (``processCommand``), for every command.

A handler sees only well-formed calls: the right arity, an authenticated client (or a
``NO_AUTH`` command), and never a command that MULTI should have queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from clusterwatch.resp import QUEUED, ErrorReply, Reply, SimpleString

from ._acl_log import AclLogEntry
from ._acl_user import CommandCatalog
from ._deferred import Deferred
from ._docs import arg_usage
from ._errors import (
    NOAUTH,
    CommandError,
    no_permission,
    unknown_command,
    unknown_subcommand,
    wrong_arity,
)
from ._session import Session, client_info_line
from ._spec import CommandContext, CommandSpec, Flag

log = logging.getLogger("clusterwatch.commands")

# Commands that run at once inside MULTI instead of being queued (Redis: these are
# exempt from queueing).
_NOT_QUEUED = frozenset({"exec", "discard", "multi", "watch", "unwatch", "quit", "reset"})
# Below this slow-log threshold, requests are timed one by one (see ``execute``).
_RUN_TIMING_MIN_NS = 1_000_000
_NO_DEADLINE = 1 << 63


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


def _admission(leaves: Mapping[bytes, CommandSpec],
               subs_by_name: Mapping[bytes, Mapping[bytes, CommandSpec]]
               ) -> Callable[[Session, list[bytes]], CommandSpec | None]:
    """The admission test of every request (a closure: calling one costs less than a
    method, and both request paths call it once per request)."""

    def admitted(session: Session, argv: list[bytes]) -> CommandSpec | None:
        """The spec to run for ``argv`` when the request is the common case: a known
        command, the right arity, allowed to the client's user, no MULTI. Otherwise None,
        and ``CommandTable.dispatch`` decides (Redis's error, or queueing it)."""
        spec = leaves.get(argv[0])
        if spec is None and len(argv) > 1:
            subs = subs_by_name.get(argv[0])
            spec = subs.get(argv[1]) if subs is not None else None
        if (spec is None or not spec.min_argc <= len(argv) <= spec.max_argc
                or spec.full_name not in session.allowed or session.multi is not None):
            return None
        return spec

    return admitted


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
        # What a request can run directly: commands without subcommands, by name as sent.
        self._leaves = {name: spec for name, spec in self._by_name.items()
                        if not spec.subcommands}
        self.catalog = CommandCatalog(self.runnable())
        self.admitted = _admission(self._leaves, self._subs_by_name)

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

    def execute(self, ctx: CommandContext, batch: Sequence[list[bytes]],
                deadline_ns: int = _NO_DEADLINE) -> list[Reply | Deferred[Reply]]:
        """Run a client's pipelined requests in order; one reply each, errors included.

        Stops early after a request that closes the connection (QUIT, a CLIENT KILL of
        itself), switches the protocol (HELLO) or blocks the client (its reply is the
        ``Deferred`` in ``session.blocked``), so the replies may be fewer than the
        requests: the caller encodes them and calls again with the rest. It also stops,
        with at least one request run, once the injected clock passes ``deadline_ns``:
        checked where a run ends (see below), which every command that is not FAST is, so
        a pipeline of costly commands cannot hold the caller past its turn.

        The common case (a known command, right arity, allowed to this client's user,
        no MULTI) runs at once: ``admitted`` says which it is, for this path and
        ``execute_single``'s; everything else goes through ``dispatch``. Consecutive
        requests for the same FAST command form a run, timed and counted as a whole (see
        ``_account``): one clock read per run instead of two per request.
        """
        session = ctx.session
        admitted, perf_ns = self.admitted, self.perf_ns
        replies: list[Reply | Deferred[Reply]] = []
        append = replies.append
        protocol = session.protocol
        # A slow log that wants sub-millisecond requests (0: log everything) gets each
        # request timed alone.
        alone = ctx.server.stats.slow_threshold_ns < _RUN_TIMING_MIN_NS
        run: CommandSpec | None = None  # the command of the run in progress
        current: CommandSpec | None = None  # the command that may extend it
        run_start = run_clock = 0  # where in ``replies`` and when it began
        for argv in batch:
            spec = admitted(session, argv)
            if spec is None:
                if run is not None:
                    self._account(ctx, run, len(replies) - run_start, perf_ns() - run_clock,
                                  batch[len(replies) - 1])
                    run = current = None
                append(self.dispatch(ctx, argv))
                if (session.close_after_reply or session.protocol != protocol
                        or session.blocked is not None or perf_ns() >= deadline_ns):
                    break
                continue
            if spec is not current:
                now = perf_ns()
                if run is not None:
                    self._account(ctx, run, len(replies) - run_start, now - run_clock,
                                  batch[len(replies) - 1])
                    if now >= deadline_ns:
                        run = None
                        break
                run, run_start, run_clock = spec, len(replies), now
                # Only FAST commands (O(1), Redis's flag) run on together; any other
                # request is a run of its own, timed exactly.
                current = spec if spec.fast and not alone else None
                session.last_command = spec.full_name  # CLIENT LIST shows it
            try:
                append(spec.handler(ctx, argv))  # type: ignore[misc]
            except CommandError as exc:
                append(self._error_reply(ctx, exc))
                ctx.server.stats.command(spec.full_name).failed_calls += 1
            except Exception:
                append(self._internal_error(ctx, argv))
            if (session.close_after_reply or session.protocol != protocol
                    or session.blocked is not None):
                break
        if run is not None:
            self._account(ctx, run, len(replies) - run_start, perf_ns() - run_clock,
                          batch[len(replies) - 1])
        return replies

    def execute_single(self, ctx: CommandContext, argv: list[bytes]) -> Reply | Deferred[Reply]:
        """``execute`` for a batch of one request: the same reply, statistics and slow
        log, without the bookkeeping of runs. The caller checks ``session`` afterwards
        (blocked, closing, protocol switched) as it does after ``execute``."""
        spec = self.admitted(ctx.session, argv)
        if spec is None:
            return self.dispatch(ctx, argv)
        return self._call(ctx, spec, argv)

    @staticmethod
    def _account(ctx: CommandContext, spec: CommandSpec, calls: int, elapsed_ns: int,
                 last: list[bytes]) -> None:
        """Count a run of ``calls`` requests for ``spec`` that took ``elapsed_ns`` in all.

        A run is one request, or a pipeline of the same FAST command (PING, HEALTH). Its
        time includes each request's admission. All its calls go into the latency bucket
        of the run's average per call: the run's timing cannot tell them apart. When a run
        of several reaches the slow-log threshold (1 ms or more; below that every request
        is a run of its own), one entry records the last request with the run's whole
        time: Redis would have logged the one slow request among them, which the run's
        timing cannot single out either.
        """
        stats = ctx.server.stats
        stat = stats.commands.get(spec.full_name) or stats.command(spec.full_name)
        stat.record(calls, elapsed_ns)
        if elapsed_ns >= stats.slow_threshold_ns:
            CommandTable._record_slow(ctx, last, elapsed_ns // 1000)

    def dispatch(self, ctx: CommandContext, argv: list[bytes]) -> Reply | Deferred[Reply]:
        """Run one request and account for it; errors come back as ``ErrorReply``."""
        spec = self._admit(ctx, argv)
        if not isinstance(spec, CommandSpec):
            return spec
        return self._call(ctx, spec, argv)

    def _call(self, ctx: CommandContext, spec: CommandSpec,
              argv: list[bytes]) -> Reply | Deferred[Reply]:
        """Run an admitted request alone: its handler, timed and accounted for."""
        ctx.session.last_command = spec.full_name
        perf_ns = self.perf_ns
        started = perf_ns()
        reply: Reply | Deferred[Reply]
        try:
            reply = spec.handler(ctx, argv)  # type: ignore[misc]
        except CommandError as exc:
            reply = self._error_reply(ctx, exc)
            ctx.server.stats.command(spec.full_name).failed_calls += 1
        except Exception:
            reply = self._internal_error(ctx, argv)
        self._account(ctx, spec, 1, perf_ns() - started, argv)
        return reply

    @staticmethod
    def _internal_error(ctx: CommandContext, argv: list[bytes]) -> ErrorReply:
        """A handler raised something it should not: log it, and the client gets an error."""
        log.exception("command failed", extra={"client": ctx.session.id,
                                               "command": argv[0][:64]})
        ctx.server.stats.count_error("ERR")
        return ErrorReply("ERR", "internal error")

    def _admit(self, ctx: CommandContext, argv: list[bytes]) -> CommandSpec | Reply:
        """Redis's checks before a call, in its order: lookup and arity, authentication,
        the user's permissions, then MULTI queueing. Returns the spec to run, or the
        reply to send instead."""
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
        if session.authenticated and spec.full_name not in session.allowed:
            ctx.server.stats.command(spec.full_name).rejected_calls += 1
            if session.multi is not None:
                session.multi_dirty = True
            user = ctx.server.acl.users.get(session.user)
            if user is not None and spec.full_name in user.allowed:  # RESP2 subscribed
                return self._error_reply(ctx, CommandError(
                    f"Can't execute '{spec.full_name}': only (P|S)SUBSCRIBE / "
                    "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
            self._log_denial(ctx, spec)
            return self._error_reply(ctx, no_permission(spec.full_name))
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
    def _log_denial(ctx: CommandContext, spec: CommandSpec) -> None:
        session = ctx.session
        now_ms = ctx.server.now_ms()
        ctx.server.acl.log.add(AclLogEntry(
            reason="command", object=spec.full_name, username=session.user,
            context="multi" if session.multi is not None or session.deny_blocking
            else "toplevel",
            client_info=client_info_line(session, now_ms), updated_ms=now_ms))

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

    def runnable(self) -> list[CommandSpec]:
        """What a request can run, so what an ACL rule can allow: every command without
        subcommands, every subcommand, and a container that also runs alone (COMMAND)."""
        found: list[CommandSpec] = []
        for spec in self.commands.values():
            if not spec.subcommands or spec.handler is not None:
                found.append(spec)
            found.extend(spec.subcommands)
        return found

    def lookup_name(self, name: str) -> CommandSpec | None:
        """A command by name, or a subcommand by ``container|sub``."""
        container, _, sub = name.lower().partition("|")
        spec = self.commands.get(container.encode())
        if spec is None or not sub:
            return spec
        return self.subcommands.get(container.encode(), {}).get(sub.encode())
