"""HEALTH: Zeebe / Spring Boot / Kubernetes health probes for the cluster or one node.

    HEALTH [STARTUP|READY|LIVE|HEALTH] [NODE <id>] [VERBOSE] [EXCLUDE <check> ...]
           [MAXAGE <ms>] [FORMAT JSON]
    HEALTH EXPLAIN [probe | NODE <id>] [FORMAT JSON]       (commands/healthexplain.py)
    HEALTH SAFE-TO-STOP <id> [<id> ...]

No probe is the HEALTH probe; no NODE is the cluster as a whole (the gateway view, including
clusterwatch's own checks). Semantics: ``cluster/health.py``, in full in
``docs/health-rules.md``. Replies:

    plain      ``+UP`` when the status is UP. Anything else (DOWN, OUT_OF_SERVICE, DEGRADED,
               UNKNOWN) is an error reply whose first word is the status, then the probe and
               the checks that decided it (those with that status) with their reasons:
               ``-DOWN ready: clusterAwareness DOWN (no node known yet)``.
               The reply is an error exactly when Zeebe's probe path answers 503, so
               ``redis-cli HEALTH READY`` works as a Kubernetes exec probe: exit status 0
               when UP, 1 otherwise; scripts match the first word.
    VERBOSE    a map, whatever the status: {status, components: {<check>: {status,
               details: {reason}}}} (Spring's document; ``details`` only when there is a
               reason)
    FORMAT JSON one bulk string: ``{"status":"UP"}``, or the VERBOSE document with VERBOSE

``EXCLUDE`` takes the check names up to the next keyword (NODE, VERBOSE, MAXAGE, FORMAT); an
unknown check is an error that lists the probe's checks. ``MAXAGE <ms>``: data older than
that counts as unknown for this read (cluster/freshness.py; ``HealthTracker._too_old``); a
value that is not an integer of 0 to 2^63-1 is ``ERR value is not an integer or out of
range`` (a negative one ``ERR MAXAGE is negative``), a repeated one ``ERR syntax error``.
An unknown probe or node is an ``ERR``; an unknown or repeated option ``ERR syntax error``.

Authentication: HEALTH is ``no_auth``, because probes (Kubernetes exec or TCP probes, load
balancers) usually cannot authenticate. A client that has not authenticated gets the plain
form only, and a non-UP answer names the status and the probe without reasons; NODE,
VERBOSE, EXCLUDE, MAXAGE and FORMAT need AUTH (``-NOAUTH``), so node ids and reasons stay behind
the password.

Cost: a latched cluster READY is answered from the latch alone (about a PING); the tracker
caches every other report per model version, the plain UP reply is a constant, and other
replies are rendered once per report object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from clusterwatch.cluster import ApiError, HealthReport
from clusterwatch.cluster.freshness import parse_max_age
from clusterwatch.cluster.health import UP, parse_probe
from clusterwatch.resp import ErrorReply, Reply, SimpleString

from ._args import text
from ._deferred import Deferred
from ._errors import NOAUTH, CommandError, syntax_error
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from ._statusreply import (
    FORMAT_JSON,
    MAXAGE,
    api_error,
    cached_by_identity,
    json_bulk,
    to_reply,
    wants_json,
)
from .healthexplain import explain, safe_to_stop
from .waits import health_wait

_UP: Final = SimpleString(UP)
_PROBES: Final = {b"startup": "startup", b"ready": "ready", b"live": "live",
                  b"health": "health", b"readiness": "ready", b"liveness": "live"}
_KEYWORDS: Final = frozenset({b"node", b"verbose", b"exclude", b"format", b"wait",
                              b"maxage"})
_SUBCOMMANDS: Final = {b"explain": explain, b"safe-to-stop": safe_to_stop}
# A plain error reply lists at most this many failing checks.
_SHOWN: Final = 5


def _noauth() -> CommandError:
    return CommandError(NOAUTH.message, NOAUTH.prefix)


def _plain_error(report: HealthReport, detailed: bool) -> ErrorReply:
    scope = report.probe if report.node is None else f"{report.probe} NODE {report.node}"
    if not detailed:
        return ErrorReply(report.status, f"{scope} (AUTH for details)")
    failing = [check for check in report.checks if check.status == report.status]
    if not failing:
        return ErrorReply(report.status, f"{scope}: no checks")
    parts = [f"{c.name} {c.status} ({c.reason})" if c.reason else f"{c.name} {c.status}"
             for c in failing[:_SHOWN]]
    more = f"; and {len(failing) - _SHOWN} more" if len(failing) > _SHOWN else ""
    return ErrorReply(report.status, f"{scope}: {'; '.join(parts)}{more}")


def _plain(ctx: CommandContext, report: HealthReport, detailed: bool) -> Reply:
    if report.status == UP:
        return _UP
    return cached_by_identity(ctx, "health|plain", (report.probe, report.node, detailed),
                              report, lambda: _plain_error(report, detailed))


def health(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    server = ctx.server
    authenticated = ctx.session.authenticated
    if len(argv) <= 2:  # the probes' hot path: HEALTH [probe]
        probe = "health"
        if len(argv) == 2:
            found_probe = _PROBES.get(argv[1]) or _PROBES.get(argv[1].lower())
            if found_probe is None:
                return _parse(ctx, argv)  # an option alone, or an unknown probe
            probe = found_probe
            # Once the cluster has been ready it is READY for good (the tracker's latch).
            if probe == "ready" and server.health.ready_since() is not None:
                return _UP
        report = server.health.evaluate(server.model_now_ms(), probe,
                                        self_checks=server.self_checks)
        return _plain(ctx, report, authenticated)
    if not authenticated:
        raise _noauth()
    return _parse(ctx, argv)


def _parse(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    args = argv[1:]
    i = 0
    probe = "health"
    sub = _SUBCOMMANDS.get(args[0].lower()) if args else None
    if sub is not None:
        if not ctx.session.authenticated:
            raise _noauth()
        return sub(ctx, args[1:])
    if args and args[0].lower() == b"wait":
        if not ctx.session.authenticated:
            raise _noauth()
        try:
            return health_wait(ctx, args[1:])
        except ApiError as exc:
            raise api_error(exc) from None
    try:
        if args and args[0].lower() not in _KEYWORDS:
            probe = parse_probe(args[0])
            i = 1
        if i < len(args) and not ctx.session.authenticated:
            raise _noauth()
        node: str | None = None
        verbose = False
        exclude: list[bytes] | None = None
        fmt: dict[str, bytes] = {}
        max_age: int | None = None
        while i < len(args):
            keyword = args[i].lower()
            if keyword == b"verbose" and not verbose:
                verbose = True
                i += 1
            elif keyword == b"node" and node is None and i + 1 < len(args):
                node = text(args[i + 1])
                i += 2
            elif keyword == b"maxage" and max_age is None and i + 1 < len(args):
                max_age = parse_max_age(args[i + 1])
                i += 2
            elif keyword == b"format" and not fmt and i + 1 < len(args):
                fmt["format"] = args[i + 1]
                i += 2
            elif keyword == b"exclude" and exclude is None:
                i += 1
                exclude = []
                while i < len(args) and args[i].lower() not in _KEYWORDS:
                    exclude.append(args[i])
                    i += 1
                if not exclude:
                    raise syntax_error()
            else:
                raise syntax_error()
        as_json = wants_json(fmt)
        server = ctx.server
        report = server.health.evaluate(server.model_now_ms(), probe, node=node,
                                        exclude=exclude or (),
                                        self_checks=server.self_checks, max_age_ms=max_age)
    except ApiError as exc:
        raise api_error(exc) from None
    if not (verbose or as_json):
        return _plain(ctx, report, ctx.session.authenticated)
    key = (report.probe, report.node, report.excluded, verbose, as_json)
    if as_json:
        return cached_by_identity(ctx, "health|doc", key, report,
                                  lambda: json_bulk(report.to_json(verbose=verbose)))
    return cached_by_identity(ctx, "health|doc", key, report,
                              lambda: to_reply(report.to_json(verbose=True)))


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="health", arity=-1, group=Group.STATUS, since="0.1.0",
        summary="Returns UP, or an error starting with the status (DOWN, OUT_OF_SERVICE, "
                "DEGRADED, UNKNOWN): Zeebe/Kubernetes startup, readiness, liveness and health "
                "probes for the cluster or one node. HEALTH WAIT <probe> <status> "
                "<timeout-ms> blocks until the probe is at the status or better. HEALTH EXPLAIN "
                "[probe | NODE <id>] shows the evidence behind a verdict; HEALTH "
                "SAFE-TO-STOP <id> [<id> ...] whether stopping nodes now keeps the cluster ok.",
        complexity="O(1) for a cached or latched answer, else O(N) where N is the number of "
                   "monitored nodes",
        flags=Flag.FAST | Flag.STALE | Flag.LOADING | Flag.NO_AUTH, handler=health,
        args=(
            Arg(name="probe", type=ArgType.ONEOF, optional=True, args=tuple(
                Arg(name=name.lower(), type=ArgType.PURE_TOKEN, token=name)
                for name in ("STARTUP", "READY", "LIVE", "HEALTH"))),
            Arg(name="node-id", type=ArgType.STRING, token="NODE", optional=True),
            Arg(name="verbose", type=ArgType.PURE_TOKEN, token="VERBOSE", optional=True),
            Arg(name="exclude", type=ArgType.BLOCK, optional=True, args=(
                Arg(name="exclude", type=ArgType.PURE_TOKEN, token="EXCLUDE"),
                Arg(name="check", type=ArgType.STRING, multiple=True))),
            MAXAGE,
            FORMAT_JSON,
        ),
    ),
)
