"""STATUS (Puppet's status service, Curity's node status) and CLUSTER STATUS (ksqlDB).

Replies (RESP3 shown; on RESP2 a map is a flat key/value array, a boolean ``:1``/``:0``, a
double a bulk string, as the encoder downgrades them):

    STATUS SERVICES [LEVEL critical|info|debug] [TIMEOUT s] [MAXAGE ms] [FORMAT JSON]
        map: "<node>/<service>" -> {service_version, service_status_version, detail_level,
        state, status, active_alerts: [{severity, message}]}: Puppet's services object
    STATUS SERVICE <name> [LEVEL ..] [VERSION n] [TIMEOUT s] [MAXAGE ms] [FORMAT JSON]
        map: that entry plus "service_name" (Puppet's /services/<name> body)
    STATUS SIMPLE [<name>] [TIMEOUT s] [MAXAGE ms]
        +<state> when Puppet answers 200 (every service running: ``+running``; no services at
        all: ``+unknown``, Puppet's 200 "unknown"); otherwise an error whose first word is
        the state, so ``redis-cli`` exits 1 and scripts match the word, then the instances
        that are not running (at most 8, then how many more), each with its state and, when
        it is not what the node reported, why: ``-unknown (6 services; not all running:
        m1/redis unknown (node fail since 1733400025000))``, ``-starting (1 service named
        m1/api; not all running: m1/api starting)``. An unknown name is
        ``-ERR not found: <name>``.
    STATUS NODE [<id>] [MAXAGE ms] [FORMAT JSON]
        map: Curity's node document {isReady, nodeState, clusterState, configurationState,
        transactionId, isServing, [isAdminServing,] pluginsInitialized, serviceRole,
        threadPool: {active, max, queued, utilizationRate}, httpRequests: {active, max,
        total, utilizationRate[, perSecond]}}; without <id>, clusterwatch itself
    CLUSTER STATUS [FORMAT JSON]
        map: "<host:port>" -> {hostAlive, lastStatusUpdateMs, activeStandbyPerQuery,
        hostStoreLags}: the inside of ksqlDB's {"clusterStatus": ...}; FORMAT JSON returns
        the whole document, wrapper included

``FORMAT JSON`` returns one bulk string holding exactly the source API's JSON document
(``redis-cli --raw STATUS SERVICES FORMAT JSON | jq .``). With an odd number of arguments
after SIMPLE or NODE the first is the name or id; options always come in keyword/value
pairs, so ``STATUS NODE FORMAT JSON`` is clusterwatch's own document in JSON.

``MAXAGE ms`` (cluster/freshness.py): a status older than ``ms`` counts as unknown for this
read (an entry ``unknown`` whose status says so; STATUS NODE as for a node not reachable).

Bad input (unknown level, a timeout that is not a positive integer, a MAXAGE that is not an
integer of 0 to 2^63-1, an unknown status version, an unknown service or node) is ``ERR``
and the view's message; an unknown or repeated option ``ERR syntax error``. Nothing here
changes the model.

Cost: SERVICES, SIMPLE and CLUSTER STATUS come from views that cache their answers per model
version; a repeated request (a probe polling SIMPLE) is a few dict lookups and a pre-encoded
frame. SERVICES and CLUSTER STATUS keep their replies as per-node encoded parts
(``_fragments.MapParts``) and re-encode only the nodes whose entries changed. SIMPLE of
everything keeps a tally of the states the nodes report and looks only at the changed and
the stale nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Final

from clusterwatch.cluster import ApiError, node_status, self_status
from clusterwatch.cluster.clusterstatus import Host
from clusterwatch.cluster.freshness import parse_max_age
from clusterwatch.cluster.services import (
    DEFAULT_LEVEL,
    SERVICE_STATES,
    Level,
    NodeSource,
    ServicesReport,
    SimpleStatus,
    parse_level,
    parse_status_version,
    parse_timeout,
)
from clusterwatch.resp import ErrorReply, Reply, SimpleString

from ._args import text
from ._context import ServerView
from ._fragments import MapParts
from ._spec import Arg, ArgType, CommandContext, CommandSpec, Flag, Group
from ._statusreply import (
    FORMAT_JSON,
    MAXAGE,
    TIMEOUT,
    api_error,
    cached_by_identity,
    json_bulk,
    options,
    to_reply,
    token_value,
    wants_json,
)

_STATE_REPLIES: Final = {state: SimpleString(state) for state in SERVICE_STATES}

_SERVICES_OPTS: Final = {b"level": "level", b"timeout": "timeout", b"format": "format",
                         b"maxage": "maxage"}
_SERVICE_OPTS: Final = {**_SERVICES_OPTS, b"version": "version"}
_SIMPLE_OPTS: Final = {b"timeout": "timeout", b"maxage": "maxage"}
_NODE_OPTS: Final = {b"format": "format", b"maxage": "maxage"}
_FORMAT_OPTS: Final = {b"format": "format"}
# Per-node reply parts kept per command and options; a few dozen combinations at most.
_PARTS_ENTRIES: Final = 64


def _level(found: dict[str, bytes]) -> Level:
    raw = found.get("level")
    return DEFAULT_LEVEL if raw is None else parse_level(raw)


def _timeout(found: dict[str, bytes]) -> int | None:
    raw = found.get("timeout")
    return None if raw is None else parse_timeout(raw)


def _max_age(found: dict[str, bytes]) -> int | None:
    raw = found.get("maxage")
    return None if raw is None else parse_max_age(raw)


def status_services(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    found = options(argv[2:], _SERVICES_OPTS)
    try:
        level, timeout, as_json = _level(found), _timeout(found), wants_json(found)
        max_age = _max_age(found)
        report = ctx.server.services.services(ctx.server.model_now_ms(), level=level,
                                              timeout_s=timeout, max_age_ms=max_age)
    except ApiError as exc:
        raise api_error(exc) from None
    parts = _parts(ctx.server, "status|services", (level, timeout, as_json, max_age),
                   lambda: MapParts("json" if as_json else "resp"))
    return parts.reply(report.changes, report.sources, partial(_entry_members, report))


def services_document(server: ServerView, level: Level, timeout: int | None,
                      max_age: int | None = None) -> tuple[int, memoryview]:
    """Puppet's services object as JSON, and its HTTP code, from the parts that
    ``STATUS SERVICES ... FORMAT JSON`` keeps (the HTTP route serves the same bytes)."""
    report = server.services.services(server.model_now_ms(), level=level, timeout_s=timeout,
                                      max_age_ms=max_age)
    parts = _parts(server, "status|services", (level, timeout, True, max_age),
                   lambda: MapParts("json"))
    return report.http_status, parts.document(report.changes, report.sources,
                                              partial(_entry_members, report))


def _entry_members(report: ServicesReport, source: NodeSource) -> Iterator[tuple[str, Any]]:
    return ((entry.name, entry.to_json()) for entry in report.entries_of(source))


def status_service(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    found = options(argv[3:], _SERVICE_OPTS)
    try:
        level, timeout, as_json = _level(found), _timeout(found), wants_json(found)
        raw_version = found.get("version")
        version = None if raw_version is None else parse_status_version(raw_version)
        entry = ctx.server.services.service(text(argv[2]), ctx.server.model_now_ms(), level=level,
                                            status_version=version, timeout_s=timeout,
                                            max_age_ms=_max_age(found))
    except ApiError as exc:
        raise api_error(exc) from None
    # Rendered once while the entry shows the same status data: a status may be as large as
    # a node message (64 KB of nested JSON, about 8 ms to render), polled by dashboards.
    key = (entry.name, entry.service_version, entry.service_status_version,
           entry.detail_level, entry.state, entry.active_alerts, as_json)

    def render() -> Reply:
        doc = entry.to_json(with_name=True)
        return json_bulk(doc) if as_json else to_reply(doc)

    return cached_by_identity(ctx, "status|service", key, entry.source, render)


def _simple_error(answer: SimpleStatus, name: str | None) -> ErrorReply:
    count = answer.services
    noun = "service" if count == 1 else "services"
    named = f" named {name}" if name is not None else ""
    shown = ", ".join(_not_running(*item) for item in answer.not_running)
    more = answer.not_running_count - len(answer.not_running)
    if more > 0:
        shown += f", and {more} more"
    return ErrorReply(answer.state, f"({count} {noun}{named}; not all running: {shown})")


def _not_running(name: str, state: str, why: str) -> str:
    return f"{name} {state}" if why == "reported" else f"{name} {state} ({why})"


def status_simple(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    server = ctx.server
    if len(argv) == 2:  # the probe's hot path: no name, no options
        answer = server.services.simple(server.model_now_ms())
        name = None
        timeout = None
    else:
        rest = argv[2:]
        name = text(rest[0]) if len(rest) % 2 else None
        found = options(rest[1:] if name is not None else rest, _SIMPLE_OPTS)
        try:
            timeout = _timeout(found)
            max_age = _max_age(found)
            answer = server.services.simple(server.model_now_ms(), name, timeout_s=timeout,
                                            max_age_ms=max_age)
        except ApiError as exc:
            raise api_error(exc) from None
    if answer.ok:
        return _STATE_REPLIES[answer.state]
    return cached_by_identity(ctx, "status|simple", (name, timeout), answer,
                              lambda: _simple_error(answer, name))


def status_node(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    rest = argv[2:]
    node = text(rest[0]) if len(rest) % 2 else None
    found = options(rest[1:] if node is not None else rest, _NODE_OPTS)
    try:
        as_json = wants_json(found)
        max_age = _max_age(found)
        if node is None:
            status = self_status(ctx.server.self_counters())
        else:
            status = node_status(ctx.server.model, node, ctx.server.model_now_ms(), max_age)
    except ApiError as exc:
        raise api_error(exc) from None
    doc = status.to_json()
    return json_bulk(doc) if as_json else to_reply(doc)


def _host_members(host: Host) -> tuple[tuple[str, Any]]:
    return ((host.key, host.entry()),)


def _parts(server: ServerView, name: str, key: object, make: Callable[[], MapParts[Any]]
           ) -> MapParts[Any]:
    table: dict[object, MapParts[Any]] | None = server.reply_cache.get(name)
    if table is None:
        table = server.reply_cache[name] = {}
    parts = table.get(key)
    if parts is None:
        if len(table) >= _PARTS_ENTRIES:
            table.clear()
        parts = table[key] = make()
    return parts


def cluster_status(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    """CLUSTER STATUS: registered as a CLUSTER subcommand (commands/cluster.py)."""
    found = options(argv[2:], _FORMAT_OPTS)
    as_json = wants_json(found)
    view = ctx.server.cluster_status
    hosts = view.hosts(ctx.server.model_now_ms())
    if as_json:
        parts = _parts(ctx.server, "cluster|status", True, _cluster_status_json)
    else:
        parts = _parts(ctx.server, "cluster|status", False, lambda: MapParts("resp"))
    return parts.reply(view.changes, hosts, _host_members)


def cluster_status_document(server: ServerView) -> memoryview:
    """ksqlDB's cluster status as JSON, from the parts that ``CLUSTER STATUS FORMAT JSON``
    keeps (the HTTP route serves the same bytes)."""
    view = server.cluster_status
    hosts = view.hosts(server.model_now_ms())
    parts = _parts(server, "cluster|status", True, _cluster_status_json)
    return parts.document(view.changes, hosts, _host_members)


def _cluster_status_json() -> MapParts[Any]:
    return MapParts("json", head=b'{"clusterStatus":{', tail=b"}}")


# --- specs ----------------------------------------------------------------------------------

_LEVEL_ARG: Final = token_value("LEVEL", Arg(
    name="level", type=ArgType.ONEOF,
    args=tuple(Arg(name=lvl, type=ArgType.PURE_TOKEN, token=lvl)
               for lvl in ("critical", "info", "debug"))))
_VERSION_ARG: Final = Arg(name="version", type=ArgType.INTEGER, token="VERSION", optional=True)
_PER_SERVICE = "O(N) where N is the number of services on all nodes"


def _sub(name: str, arity: int, summary: str, handler: object, *, args: tuple[Arg, ...],
         complexity: str = "O(1)", flags: Flag = Flag.NONE) -> CommandSpec:
    return CommandSpec(name=name, container="status", arity=arity, summary=summary,
                       group=Group.STATUS, since="0.1.0", complexity=complexity, args=args,
                       flags=flags | Flag.LOADING | Flag.STALE,
                       handler=handler)  # type: ignore[arg-type]


CLUSTER_STATUS_SPEC: Final = CommandSpec(
    name="status", container="cluster", arity=-2, group=Group.STATUS, since="0.1.0",
    summary="Returns ksqlDB's cluster status: per host, liveness, the last status update, "
            "active and standby stores and partitions per query, and store lags.",
    complexity="O(N) where N is the number of monitored nodes",
    flags=Flag.LOADING | Flag.STALE, handler=cluster_status,
    args=(FORMAT_JSON,),
)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="status", arity=-2, group=Group.STATUS, since="0.1.0",
        summary="A container for the monitored cluster's status commands (Puppet's services, "
                "Curity's node status).",
        subcommands=(
            _sub("services", -2,
                 "Returns the status of every service of every node, Puppet status service "
                 "style.",
                 status_services, complexity=_PER_SERVICE,
                 args=(_LEVEL_ARG, TIMEOUT, MAXAGE, FORMAT_JSON)),
            _sub("service", -3,
                 "Returns the status of one service: <node>/<service>, or a service name "
                 "that one node reports.",
                 status_service,
                 args=(Arg(name="name", type=ArgType.STRING), _LEVEL_ARG, _VERSION_ARG,
                       TIMEOUT, MAXAGE, FORMAT_JSON)),
            _sub("simple", -2,
                 "Returns running when every service (or every instance of <name>) runs; "
                 "otherwise an error that starts with the most severe state.",
                 status_simple, flags=Flag.FAST,
                 args=(Arg(name="name", type=ArgType.STRING, optional=True), TIMEOUT, MAXAGE)),
            _sub("node", -2,
                 "Returns a node's status (Curity's node status); without an id, "
                 "clusterwatch's own.",
                 status_node,
                 args=(Arg(name="node-id", type=ArgType.STRING, optional=True), MAXAGE,
                       FORMAT_JSON)),
        ),
    ),
)
