"""The HTTP mirror answers exactly what the views answer at the same instant.

A real `Server` runs in-process with its clock held still (`now_ms` replaced), its HTTP port
on a free loopback port; an aiohttp client asks every route, and each answer is compared with
the view called directly at that same instant: status code and decoded body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusterwatch.cluster import node_status, self_status
from clusterwatch.cluster.apierror import ApiError
from clusterwatch.cluster.health import HTTP_PATHS
from clusterwatch.commands import CommandContext, Session
from clusterwatch.resp import encode
from clusterwatch.server.app import Server
from clusterwatch.server.config import ConfigError, ServerConfig
from clusterwatch.server.http import refusal_code, routes
from tests.conftest import free_port

A, B, C = ("a" * 40, "b" * 40, "c" * 40)
THIRDS = ((0, 5460), (5461, 10922), (10923, 16383))


def msg(kind: str, node: str, epoch: int, seq: int, **fields: Any) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": epoch, "seq": seq,
                                **fields})


def cluster_messages() -> list[bytes]:
    batch = []
    states = {A: "running", B: "starting", C: "running"}
    for i, (node, span) in enumerate(zip((A, B, C), THIRDS, strict=True)):
        epoch = i + 1
        batch.append(msg("hello", node, epoch, 1, addr=f"10.0.0.1:{7000 + i}"))
        batch.append(msg("slots", node, epoch, 2, ranges=[list(span)]))
        batch.append(msg(
            "heartbeat", node, epoch, 3, node_state="RUNNING", serving=True,
            services={"api": {"version": "2", "state": states[node], "status_version": 2,
                              "status": {"critical": {"up": True}, "info": {"n": i}},
                              "status_versions": {"1": {"critical": "old"}}},
                      f"only{i}": {"state": "running"}},
            partitions=[{"id": i, "role": "leader", "health": "healthy"}],
            queries={"q1": {"active_stores": ["s"]}},
            store_lags={"s": {"0": {"current_offset": 5, "end_offset": 9, "offset_lag": 4}}}))
    return batch


class Mirror:
    """The server with its clock held at `now`, and an HTTP client for its mirror."""

    def __init__(self, server: Server, session: aiohttp.ClientSession, port: int) -> None:
        self.server = server
        self.session = session
        self.base = f"http://127.0.0.1:{port}"
        self.now = server.clock_ms
        server.now_ms = lambda: self.now  # type: ignore[method-assign]

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as response:
            raw = await response.read()
            kind = response.content_type
        if kind == "application/json":
            return response.status, json.loads(raw)
        return response.status, raw.decode()

    async def settle(self, now: int) -> None:
        """Move the held clock and let housekeeping ticks see it (self checks, failures)."""
        self.now = now
        for _ in range(500):
            if self.server.clock_ms == now and self.server.self_checks:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.25)


@pytest.fixture
async def mirror() -> AsyncIterator[Mirror]:
    port = free_port()
    server = Server(ServerConfig(port=0, http_port=port))
    async with aiohttp.ClientSession() as session:
        mirror = Mirror(server, session, port)
        await server.start()
        try:
            yield mirror
        finally:
            await server.shutdown()


def view_error(exc: ApiError) -> tuple[int, Any]:
    return refusal_code(exc), exc.to_json()


def expected(m: Mirror, path: str, query: dict[str, str]) -> tuple[int, Any]:
    """The view's answer at `m.now` for a route, as (code, decoded body)."""
    server, now = m.server, m.now
    try:
        if path in HTTP_PATHS:
            probe, style = HTTP_PATHS[path]
            exclude = tuple(query["exclude"].split(",")) if "exclude" in query else ()
            report = server.health.evaluate(now, probe, node=query.get("node"), exclude=exclude,
                                            self_checks=server.self_checks)
            code = report.http_status(style)
            verbose = "verbose" in query
            if style == "zeebe" and (code == 204 or not verbose):
                return code, ""
            return code, report.to_json(verbose=verbose)
        if path in ("/", "/serving"):
            node = query.get("node")
            status = (self_status(server.self_counters()) if node is None
                      else node_status(server.model, node, now))
            return status.http_response("GET", path)
        if path == "/status/v1/services":
            report_s = server.services.services(now, level=query.get("level", "info"))
            return report_s.http_status, report_s.to_json()
        if path.startswith("/status/v1/services/"):
            version = query.get("service_status_version")
            entry = server.services.service(path.rsplit("/services/", 1)[1], now,
                                            level=query.get("level", "info"),
                                            status_version=None if version is None
                                            else int(version))
            return entry.http_status, entry.to_json(with_name=True)
        if path.startswith("/status/v1/simple"):
            name = path[len("/status/v1/simple/"):] or None
            try:
                simple = server.services.simple(now, name)
            except ApiError as exc:
                return refusal_code(exc), exc.message
            return simple.http_status, simple.body
        if path == "/clusterStatus":
            return 200, server.cluster_status.cluster_status(now)
    except ApiError as exc:
        return view_error(exc)
    raise AssertionError(f"no view for {path}")


REQUESTS: list[tuple[str, dict[str, str]]] = [
    *((path, {}) for path in HTTP_PATHS),
    *((path, {"verbose": ""}) for path in HTTP_PATHS),
    ("/health", {"exclude": "nodes,clusterState", "verbose": ""}),
    ("/actuator/health", {"exclude": "nodes", "verbose": ""}),
    ("/health", {"exclude": "bogus"}),
    ("/health", {"node": A, "verbose": ""}),
    ("/actuator/health/readiness", {"node": B, "verbose": ""}),
    ("/health", {"node": "nope"}),
    ("/", {}),
    ("/serving", {}),
    ("/", {"node": A}),
    ("/serving", {"node": C}),
    ("/", {"node": "nope"}),
    ("/status/v1/services", {}),
    ("/status/v1/services", {"level": "debug"}),
    ("/status/v1/services", {"level": "critical"}),
    (f"/status/v1/services/{A}/api", {}),
    (f"/status/v1/services/{B}/api", {"level": "critical"}),
    (f"/status/v1/services/{A}/api", {"service_status_version": "1"}),
    (f"/status/v1/services/{A}/api", {"service_status_version": "7"}),
    ("/status/v1/services/only1", {}),
    ("/status/v1/services/api", {}),  # ambiguous: three nodes report it
    ("/status/v1/services/nope", {}),
    ("/status/v1/simple", {}),
    (f"/status/v1/simple/{A}/api", {}),
    ("/status/v1/simple/api", {}),
    ("/status/v1/simple/nope", {}),
    ("/clusterStatus", {}),
]


def url(path: str, query: dict[str, str]) -> str:
    if not query:
        return path
    return path + "?" + "&".join(f"{k}={v}" if v else k for k, v in query.items())


async def test_http_equals_the_views(mirror: Mirror) -> None:
    await mirror.settle(mirror.now)
    mirror.server.bus_publish(cluster_messages())
    # Fresh, then past node_timeout (nodes pfail, bus stale) and the critical timeout (30 s).
    for later in (0, 45_000):
        await mirror.settle(mirror.now + later)
        codes = {}
        for path, query in REQUESTS:
            got = await mirror.get(url(path, query))
            assert got == expected(mirror, path, query), (later, path, query)
            codes[url(path, query)] = got[0]
        assert {200, 204, 400, 404, 503} <= set(codes.values()), codes
        # Health can revert, ready cannot; one service starting makes simple 503 throughout.
        assert (codes["/health"], codes["/ready"]) == ((204, 204) if later == 0 else (503, 204))
        assert codes["/status/v1/simple"] == 503


async def test_json_routes_serve_the_bytes_of_format_json(mirror: Mirror) -> None:
    """/status/v1/services and /clusterStatus come from the per-node parts that STATUS
    SERVICES and CLUSTER STATUS keep for FORMAT JSON: the same bytes, as nodes change."""
    server = mirror.server
    ctx = CommandContext(session=Session(id=1, allowed=server.table.catalog.everything),
                         server=server, table=server.table)
    await mirror.settle(mirror.now)
    server.bus_publish(cluster_messages())
    for later in (0, 45_000):
        await mirror.settle(mirror.now + later)
        pairs = [(f"/status/v1/services?level={level}",
                  ["STATUS", "SERVICES", "LEVEL", level, "FORMAT", "JSON"])
                 for level in ("critical", "info", "debug")]
        pairs.append(("/clusterStatus", ["CLUSTER", "STATUS", "FORMAT", "JSON"]))
        for path, command in pairs:
            async with mirror.session.get(mirror.base + path) as response:
                body = await response.read()
            frame = encode(server.table.dispatch(ctx, [a.encode() for a in command]), 2)
            assert frame == b"$%d\r\n%b\r\n" % (len(body), body), (later, path)
            assert json.loads(body)


async def test_metrics_equal_the_views(mirror: Mirror) -> None:
    await mirror.settle(mirror.now)
    server = mirror.server
    server.bus_publish(cluster_messages())
    # Fresh, then past node_timeout (pfail), then past fail_after (fail, cluster down).
    for later in (0, 20_000, 45_000):
        now = mirror.now + later
        await mirror.settle(now)
        code, text = await mirror.get("/metrics")
        assert code == 200
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples}
        info = dict(line.split(":") for line in server.model.cluster_info_text(now).split())
        assert samples["clusterwatch_cluster_state", ()] == (info["cluster_state"] == "ok")
        for state in ("assigned", "ok", "pfail", "fail"):
            assert samples["clusterwatch_cluster_slots", (("state", state),)] == int(
                info[f"cluster_slots_{state}"]), (later, state)
        for name in ("known_nodes", "size", "current_epoch"):
            assert samples[f"clusterwatch_cluster_{name}", ()] == int(info[f"cluster_{name}"])
        for node in server.model.nodes():
            labels = (("addr", node.addr), ("node", node.id), ("role", node.role))
            assert samples["clusterwatch_node_up", labels] == (node.state == "ok"), later
            assert samples["clusterwatch_node_pfail", labels] == (node.state == "pfail")
            assert samples["clusterwatch_node_fail", labels] == (node.state == "fail")
            assert samples["clusterwatch_node_last_seen_age_seconds", labels] == (
                (now - node.last_seen_ms) / 1000)
        health = server.health.evaluate(now, "health", self_checks=server.self_checks)
        assert samples["clusterwatch_probe_status", (("probe", "health"),
                                                     ("status", health.status))] == 1
        states = [entry.state for entry in server.services.services(now).entries]
        for state in ("running", "starting", "unknown"):
            assert samples["clusterwatch_services", (("state", state),)] == states.count(state)
    assert info["cluster_state"] == "fail" and info["cluster_slots_fail"] == "16384"


def test_every_exact_route_is_covered() -> None:
    assert set(routes()) == {*HTTP_PATHS, "/", "/serving", "/status/v1/services",
                             "/status/v1/simple", "/clusterStatus", "/metrics",
                             "/health/explain", "/safe-to-stop"}


def test_http_port_setting() -> None:
    assert ServerConfig().http_port == 0
    assert ServerConfig(http_port=8080).http_port == 8080
    for bad in (-1, 65536):
        with pytest.raises(ConfigError, match=r"must be a port|must be at least 0") as caught:
            ServerConfig(http_port=bad)
        assert caught.value.setting == "http_port"


async def test_off_means_no_listener() -> None:
    server = Server(ServerConfig(port=0))
    await server.start()
    try:
        assert server.http.port is None
    finally:
        await server.shutdown()


def test_every_kind_of_refusal_has_its_http_code() -> None:
    """The model names refusals by kind (cluster/apierror.py); the server alone maps each to
    its HTTP code, Puppet's 400 and 404; a kind the model may raise without a code fails."""
    from clusterwatch.cluster.apierror import KINDS, ApiError, bad_argument, unknown_node

    codes = {kind: refusal_code(ApiError("x", kind=kind)) for kind in KINDS}
    assert codes == {"data-invalid": 400, "service-status-version-not-found": 400,
                     "service-not-found": 404, "node-not-found": 404, "not-found": 404}
    assert (refusal_code(bad_argument("x")), refusal_code(unknown_node("n"))) == (400, 404)
    with pytest.raises(ValueError, match="not one of KINDS"):
        ApiError("x", kind="teapot")
