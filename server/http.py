"""The optional HTTP mirror (`--http-port`): the seed status APIs' own paths, for Kubernetes
probes, load balancers and dashboards that speak HTTP, not RESP.

Every answer comes from the server's view objects (`Server.health`, `Server.services`,
`Server.cluster_status`, Curity's `self_status`/`node_status`), evaluated at the model
clock (`Server.model_now_ms()`) with `Server.self_checks`, as the RESP commands do: this
module only maps paths and query parameters to view calls, and view answers to status codes,
content types and bodies. HTTP itself is aiohttp's low-level server on the server's event
loop (no hand-written parser).

A request goes through `HttpMirror._handle`: a path that shows details needs HTTP Basic
credentials of an ACL user allowed its command (server/httpauth.py; protected mode refuses
it to peers not local); a request carrying Consul's `?index=N` waits until the model index
passes N or its wait ends (CLUSTER WAIT's check, `commands.waits.AboveIndex`); `respond`
routes it (`_ROUTES`; GET and HEAD only), and every answer carries the model index
(`X-Clusterwatch-Index`). A view's refusal (`ApiError`) becomes its kind's code
(`refusal_code`) and `to_json()` body. Connections and their limits are server/httpconn.py's.

Each path, parameter and code in full: docs/http-mirror.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import msgspec
from aiohttp import web
from multidict import MultiMapping

from clusterwatch.cluster import ApiError, node_status, self_status
from clusterwatch.cluster.apierror import bad_argument, echo
from clusterwatch.cluster.freshness import parse_max_age
from clusterwatch.cluster.health import HTTP_PATHS, HttpStyle, Probe, parse_probe
from clusterwatch.cluster.services import Level, parse_level, parse_status_version, parse_timeout
from clusterwatch.cluster.whatif import MAX_IDS
from clusterwatch.commands import ServerView
from clusterwatch.commands.healthexplain import explain_document, safe_to_stop_document
from clusterwatch.commands.status import cluster_status_document, services_document
from clusterwatch.commands.waits import index_wait

from .config import ServerConfig
from .httpauth import CHALLENGE, AccessDeniedError, authorize, required_command
from .httpconn import HttpConnections
from .metrics import CONTENT_TYPE, Metrics
from .protocol import PROTECTED_MODE_TEXT, is_local_peer
from .tls import TlsContexts

__all__ = ["HttpMirror"]

log = logging.getLogger("clusterwatch.http")

JSON: Final = "application/json"
UTF8: Final = "utf-8"
_METHODS: Final = ("GET", "HEAD")
_ALLOW: Final = ", ".join(_METHODS)
_SERVICES: Final = "/status/v1/services"
_SIMPLE: Final = "/status/v1/simple"
_SAFE_TO_STOP: Final = "/safe-to-stop"
_FALSE: Final = frozenset({"0", "false", "no", "off"})

Query = MultiMapping[str]


class MirroredServer(ServerView, Protocol):
    """What the HTTP mirror reads of its server, beyond the views the RESP commands read
    (``app.Server`` implements it)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def tls(self) -> TlsContexts: ...

    @property
    def protected(self) -> bool: ...

    @property
    def metrics(self) -> Metrics: ...


Handler = Callable[[MirroredServer, web.BaseRequest], web.Response]


class HttpMirror:
    """The HTTP listener of one `Server`; does nothing when `http_port` is 0."""

    def __init__(self, server: MirroredServer) -> None:
        self._server = server
        self._listener: asyncio.Server | None = None
        self.connections: HttpConnections | None = None
        self.port: int | None = None

    async def start(self) -> None:
        server = self._server
        config = server.config
        if not config.http_port:
            return
        connections = HttpConnections(self._handle, limit=config.http_max_clients,
                                      on_refused=self._refused)
        self._listener = await asyncio.get_running_loop().create_server(
            connections, config.bind, config.http_port, ssl=server.tls.http_listener,
            reuse_address=True, backlog=511)
        self.connections = connections
        sockets = self._listener.sockets or ()
        self.port = int(sockets[0].getsockname()[1]) if sockets else config.http_port
        log.info("http listening", extra={"bind": config.bind, "http_port": self.port,
                                          "tls": config.tls_http,
                                          "http_max_clients": config.http_max_clients})

    def _refused(self) -> None:
        self._server.stats.rejected_connections += 1

    async def close(self) -> None:
        """Stop accepting and close the HTTP connections."""
        listener, self._listener = self._listener, None
        if listener is None or self.connections is None:
            return
        listener.close()
        await asyncio.sleep(0)  # requests already read start before idle connections close
        await self.connections.close(self._server.config.shutdown_timeout)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        server = self._server
        try:
            many = request.path == _SAFE_TO_STOP  # its `node` may be repeated
            command = required_command(request.path, _param(request.query, "verbose"),
                                       None if many else _param(request.query, "node"))
            if command is not None and server.protected and not _is_local(request):
                raise AccessDeniedError(403, PROTECTED_MODE_TEXT)
            if command is not None:
                authorize(server.acl, command, request.headers.get("Authorization"),
                          peer=request.remote or "", now_ms=server.now_ms())
            if "index" in request.query:
                await self._blocking_query(request.query)
            response = respond(server, request)
        except ApiError as exc:
            response = error_response(exc)
        except AccessDeniedError as exc:
            kind = ("unauthorized" if exc.status == 401 else
                    "denied" if str(exc) == PROTECTED_MODE_TEXT else "forbidden")
            response = _json(exc.status, {"kind": kind, "msg": str(exc)})
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = CHALLENGE
        except Exception:
            log.exception("http handler failed", extra={"path": request.path})
            response = _json(500, {"kind": "internal-error", "msg": "internal error"})
        response.headers[INDEX_HEADER] = str(server.model.version)
        return response

    async def _blocking_query(self, query: Query) -> None:
        """Consul's blocking query: ``?index=N[&wait=10s]`` answers once the model index
        is above N, or when the wait (default 5 min, at most 10) is over. The poll counts
        in ``blocked_clients``; when its client goes away aiohttp cancels this handler and
        the wait is abandoned, which frees it at once."""
        index = _index(_param(query, "index") or "")
        wait = _param(query, "wait")
        wait_ms = _duration_ms("5m" if wait is None else wait)
        server = self._server
        if server.model.version > index:
            return
        deferred = index_wait(server, index, wait_ms)
        if deferred.done:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: object) -> None:
            if not done.done():
                done.set_result(None)

        deferred.add_callback(wake)
        server.blocked_clients += 1
        try:
            await done
        finally:
            server.blocked_clients -= 1
            if not deferred.done:
                deferred.abandon()


def respond(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    """The answer to one request (raises `ApiError` for a request a view refuses)."""
    path = request.path
    handler = _ROUTES.get(path)
    if handler is None:
        if path.startswith(_SERVICES + "/") and len(path) > len(_SERVICES) + 1:
            handler = _service
        elif path.startswith(_SIMPLE + "/") and len(path) > len(_SIMPLE) + 1:
            handler = _simple
        else:
            raise ApiError(f"no route for {echo(path)}", kind="not-found")
    if request.method not in _METHODS:
        return _json(405, {"kind": "method-not-allowed",
                           "msg": f"method {echo(request.method)} not allowed"},
                     headers={"Allow": _ALLOW})
    _max_age(request.query)  # a bad ?maxage= is a 400 on every path
    return handler(server, request)


# The HTTP code of each kind of refusal (cluster/apierror.py KINDS): Puppet's 400
# `data-invalid` and 404 `service-not-found`, and the same codes for the other views.
_REFUSAL_CODES: Final[Mapping[str, int]] = {
    "data-invalid": 400, "service-status-version-not-found": 400,
    "service-not-found": 404, "node-not-found": 404, "not-found": 404}


def refusal_code(exc: ApiError) -> int:
    """The HTTP code for a view's refusal."""
    return _REFUSAL_CODES[exc.kind]


def error_response(exc: ApiError) -> web.Response:
    """A view's refusal: its HTTP code and `{"kind": ..., "msg": ...}`."""
    return _json(refusal_code(exc), exc.to_json())


# -- Zeebe / Spring / Kubernetes ---------------------------------------------------------


def _health_route(probe: Probe, style: HttpStyle) -> Handler:
    def handler(server: MirroredServer, request: web.BaseRequest) -> web.Response:
        query = request.query
        node = _param(query, "node")
        report = server.health.evaluate(server.model_now_ms(), probe, node=node,
                                        exclude=_exclude(query), self_checks=server.self_checks,
                                        max_age_ms=_max_age(query))
        code = report.http_status(style)
        verbose = _flag(query, "verbose")
        if style == "zeebe" and (code == 204 or not verbose):
            return web.Response(status=code)
        return _json(code, report.to_json(verbose=verbose))

    return handler


def _explain(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    query = request.query
    node = _param(query, "node")
    raw_probe = _param(query, "probe")
    if node is not None and raw_probe is not None:
        raise bad_argument("Invalid parameters: probe and node exclude each other")
    probe = "health" if raw_probe is None else parse_probe(raw_probe)
    return _json(200, explain_document(server, probe, node))


def _safe_to_stop(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    ids: list[str] = []
    for value in request.query.getall("node", ()):
        ids.extend(part for part in value.split(",") if part)
        if len(ids) > MAX_IDS:
            break  # validate_ids refuses more than MAX_IDS: no need to split the rest
    document = safe_to_stop_document(server, ids)
    return _json(200 if document["safe"] else 409, document)


def _exclude(query: Query) -> tuple[str, ...]:
    """`?exclude=a,b` and `?exclude=a&exclude=b`, in order, without empty names."""
    names: list[str] = []
    for value in query.getall("exclude", ()):
        names.extend(name.strip() for name in value.split(",") if name.strip())
    return tuple(names)


# -- Curity ------------------------------------------------------------------------------


def _curity(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    node = _param(request.query, "node")
    if node is None:
        status = self_status(server.self_counters())
    else:
        status = node_status(server.model, node, server.model_now_ms(),
                             _max_age(request.query))
    code, body = status.http_response(request.method, request.path)
    if body is None and request.method == "HEAD":
        # The view's HEAD answer has no body; the GET document still sets the headers
        # (Content-Length), and aiohttp sends no body for HEAD.
        body = status.to_json()
    return _json(code, body)


# -- Puppet ------------------------------------------------------------------------------


def _services(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    query = request.query
    code, body = services_document(server, _level(query), _timeout(query), _max_age(query))
    return web.Response(status=code, content_type=JSON, charset=UTF8, body=body)


def _service(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    query = request.query
    name = request.path[len(_SERVICES) + 1:]
    level, timeout = _level(query), _timeout(query)
    raw_version = _param(query, "service_status_version")
    version = None if raw_version is None else parse_status_version(raw_version)
    entry = server.services.service(name, server.model_now_ms(), level=level,
                                    status_version=version, timeout_s=timeout,
                                    max_age_ms=_max_age(query))
    return _json(entry.http_status, entry.to_json(with_name=True), charset=UTF8)


def _simple(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    path = request.path
    name = path[len(_SIMPLE) + 1:] if path != _SIMPLE else None
    try:
        answer = server.services.simple(server.model_now_ms(), name,
                                        timeout_s=_timeout(request.query),
                                        max_age_ms=_max_age(request.query))
    except ApiError as exc:  # Puppet's simple routes answer in text: "not found: <name>"
        return _text(refusal_code(exc), exc.message)
    return _text(answer.http_status, answer.body)


def _level(query: Query) -> Level:
    raw = _param(query, "level")
    return "info" if raw is None else parse_level(raw)


def _timeout(query: Query) -> int | None:
    raw = _param(query, "timeout")
    return None if raw is None else parse_timeout(raw)


def _max_age(query: Query) -> int | None:
    """`?maxage=<ms>` (cluster/freshness.py): data older counts as unknown for this read."""
    raw = _param(query, "maxage")
    return None if raw is None else parse_max_age(raw)


# -- ksqlDB ------------------------------------------------------------------------------


def _cluster_status(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    return web.Response(status=200, content_type=JSON, body=cluster_status_document(server))


# -- Prometheus --------------------------------------------------------------------------


def _metrics(server: MirroredServer, request: web.BaseRequest) -> web.Response:
    return web.Response(status=200, body=server.metrics.scrape(),
                        headers={"Content-Type": CONTENT_TYPE})


# -- plumbing ----------------------------------------------------------------------------


def _is_local(request: web.BaseRequest) -> bool:
    """A peer protected mode lets in: exactly 127.0.0.1 or ::1, or a Unix socket (Redis's
    test, as ``RespProtocol`` applies it)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return is_local_peer(peer)


def _param(query: Query, name: str) -> str | None:
    """A single-valued parameter; given twice is a 400."""
    values = query.getall(name, ())
    if len(values) > 1:
        raise bad_argument(f"Invalid {name}: given {len(values)} times")
    return values[0] if values else None


def _flag(query: Query, name: str) -> bool:
    """`?verbose`, `?verbose=1`, `?verbose=true` are on; `=0`, `=false`, `=no`, `=off` off."""
    value = _param(query, name)
    return value is not None and value.strip().lower() not in _FALSE


_ENCODER: Final = msgspec.json.Encoder()


def _encode(document: Any) -> bytes:
    return _ENCODER.encode(document)


INDEX_HEADER = "X-Clusterwatch-Index"
_MAX_WAIT_MS = 600_000
_MAX_INDEX = 2**64 - 1  # Consul's index is a uint64
_DURATION = re.compile(r"([0-9]{1,12})(ms|s|m)")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000}


def _index(raw: str) -> int:
    """A model index: ASCII digits, at most a uint64 (Consul's); else a 400."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20) or int(raw) > _MAX_INDEX:
        raise bad_argument(f"Invalid index: {echo(raw)} (an integer from 0 to {_MAX_INDEX})")
    return int(raw)


def _duration_ms(raw: str) -> int:
    """Consul's wait: ``10s``, ``500ms``, ``5m``; capped at 10 minutes."""
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise bad_argument(f"Invalid wait: {echo(raw)} (e.g. 10s, 500ms, 5m)")
    return min(int(match[1]) * _UNITS[match[2]], _MAX_WAIT_MS)


def _text(code: int, text: str) -> web.Response:
    return web.Response(status=code, content_type="text/plain", charset=UTF8, text=text)


def _json(code: int, document: Any, *, charset: str | None = None,
          headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=code, content_type=JSON, charset=charset, headers=headers,
                        body=_encode(document))


_ROUTES: Final[Mapping[str, Handler]] = {
    **{path: _health_route(probe, style) for path, (probe, style) in HTTP_PATHS.items()},
    "/": _curity,
    "/serving": _curity,
    _SERVICES: _services,
    _SIMPLE: _simple,
    "/clusterStatus": _cluster_status,
    "/metrics": _metrics,
    "/health/explain": _explain,
    _SAFE_TO_STOP: _safe_to_stop,
}


def routes() -> tuple[str, ...]:
    """Every exact path served (the `<name>` routes are prefixes of the Puppet ones)."""
    return tuple(_ROUTES)

