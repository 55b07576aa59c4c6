"""The HTTP sources (Zeebe, Curity, Puppet, ksqlDB) against a fake endpoint on 127.0.0.1.

The fake serves the seed pages' example documents and codes (tests/agent/data: the Puppet and
ksqlDB examples are copied from the seeds; Puppet's services document at level debug combines
the seed's services example with its one-service debug example; the Curity seed has no
example, so its documents are built from the seed's field list), then the same paths
answering 503, slower than the source timeout, invalid JSON and an HTML error page. Each
time the NodeView is checked, and its fields must be a valid heartbeat.

End to end: a one-node ClusterModel fed as the agent feeds the server (hello, then a
heartbeat made of the view's fields, msgspec-encoded) must give the source's answer back
through the server's views: HealthTracker (HEALTH ... NODE), node_status (STATUS NODE),
ServiceStatusView (STATUS SERVICES) and ClusterStatusView (CLUSTER STATUS).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from clusterwatch.agent.sources import NodeView, Source, SourceError, open_source
from clusterwatch.agent.sources.curity import CuritySource
from clusterwatch.agent.sources.ksqldb import KsqldbSource
from clusterwatch.agent.sources.puppet import PuppetSource
from clusterwatch.agent.sources.zeebe import ZeebeSource
from clusterwatch.cluster import (
    ClusterModel,
    ClusterStatusView,
    HealthTracker,
    Heartbeat,
    ModelConfig,
    ServiceStatusView,
    decode_message,
    node_status,
)

DATA = Path(__file__).parent / "data"
TIMEOUT = 0.3  # the sources' timeout in these tests
T0 = 1_700_000_000_000
NODE = "n1"
LEVELS = ("critical", "info", "debug")


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


PUPPET = {level: load(f"puppet-services-{level}.json") for level in LEVELS}
KSQL = load("ksqldb-cluster-status.json")
CURITY = load("curity-node-status.json")


# --- the fake endpoint -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    slow: bool = False


def doc(value: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(value).encode())


EMPTY_503 = Answer(503)
SLOW = Answer(200, b"{}", slow=True)
INVALID = Answer(200, b'{"status": "UP", "nodeState": "RUNN')
HTML = Answer(502, b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
              b"<body><center><h1>502 Bad Gateway</h1></center></body></html>", "text/html")
HTML_200 = Answer(200, b"<html><head><title>Login</title></head><body>sign in</body></html>",
                  "text/html")


@dataclass
class Fake:
    """Answers by path (or ``path?level=L``); 404 for anything else. Records every request."""

    port: int = 0
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        level = request.query.get("level")
        answer = self.answers.get(f"{request.path}?level={level}") if level else None
        answer = answer or self.answers.get(request.path)
        if answer is None:
            return web.Response(status=404, text="not found")
        if answer.slow:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
        return web.Response(status=answer.status, body=answer.body,
                            content_type=answer.content_type)

    def url(self, kind: str, path: str = "", scheme: str = "http") -> str:
        return f"{kind}+{scheme}://127.0.0.1:{self.port}{path}"

    def every(self, answer: Answer, *paths: str) -> None:
        self.answers = dict.fromkeys(paths, answer)


@contextlib.asynccontextmanager
async def serving(ssl_context: Any = None) -> AsyncIterator[Fake]:
    fake = Fake()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(ssl=ssl_context)
    assert server.port is not None
    fake.port = server.port
    try:
        yield fake
    finally:
        fake.release.set()
        await server.close()


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    async with serving() as endpoint:
        yield endpoint


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Source]:
    source = open_source(url, timeout=TIMEOUT)
    try:
        yield source
    finally:
        await source.aclose()


async def read_once(url: str) -> NodeView:
    async with opened(url) as source:
        return await source.read()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def as_heartbeat(view: NodeView) -> Heartbeat:
    """The view's fields must make a valid heartbeat, as the agent sends them."""
    data = msgspec.json.encode({"v": 1, "type": "heartbeat", "node": NODE, "epoch": 1,
                                "seq": 1, **view.fields})
    msg = decode_message(data, max_size=1 << 20)
    assert isinstance(msg, Heartbeat)
    assert view.alive
    return msg


def reason(view: NodeView, service: str) -> str:
    entry = view.fields["services"][service]
    assert entry["state"] == "unknown"
    text = entry["status"]["critical"]["reason"]
    assert isinstance(text, str)
    return text


# --- the server side -------------------------------------------------------------------------


class Served:
    """A one-node model fed as the agent feeds the server: a hello, then view heartbeats."""

    def __init__(self, addr: str = "10.0.0.1:7000") -> None:
        self.model = ClusterModel(ModelConfig(node_timeout_ms=15_000))
        self.now = T0
        self.seq = 0
        self.health = HealthTracker(self.model, started_ms=T0)
        self.services = ServiceStatusView(self.model)
        self.status = ClusterStatusView(self.model)
        self._send("hello", addr=addr)

    def _send(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        data = msgspec.json.encode({"v": 1, "type": kind, "node": NODE, "epoch": 1,
                                    "seq": self.seq, **fields})
        outcome = self.model.publish(data, self.now)
        assert outcome.kind == "applied", outcome

    def beat(self, view: NodeView) -> None:
        self.now += 1000
        self._send("heartbeat", **view.fields)
        self.health.observe(self.now)

    def probe(self, probe: str) -> int:
        """The code the server's Zeebe path (/startup, /ready, /health ?node=) answers."""
        return self.health.evaluate(self.now, probe, node=NODE).http_status("zeebe")

    def node(self) -> dict[str, Any]:
        return node_status(self.model, NODE, self.now).to_json()

    def entry(self, service: str, level: str = "info") -> dict[str, Any]:
        report = self.services.services(self.now, level=level)
        entry: dict[str, Any] = report.to_json()[f"{NODE}/{service}"]
        return entry


# --- open_source -----------------------------------------------------------------------------


def test_open_source_dispatches_by_scheme_and_names_without_credentials() -> None:
    kinds = {"zeebe+http://h:9600": ZeebeSource, "curity+https://h:4465/": CuritySource,
             "puppet+https://h:8140/status/v1/services": PuppetSource,
             "ksqldb+http://h:8088/clusterStatus": KsqldbSource}
    for url, kind in kinds.items():
        assert isinstance(open_source(url, timeout=1), kind)
    source = open_source("curity+http://user:secret@h:4465/", timeout=1)
    assert source.name == "curity+http://h:4465/"
    with pytest.raises(SourceError, match="level"):
        open_source("puppet+https://h:8140/status/v1/services?level=trace", timeout=1)
    with pytest.raises(SourceError, match="timeout"):
        open_source("puppet+https://h:8140/status/v1/services?timeout=0", timeout=1)
    with pytest.raises(SourceError, match="cafile"):
        open_source("puppet+https://h:8140/status/v1/services?cafile=/no/such/ca.pem",
                    timeout=1)


# --- Zeebe -----------------------------------------------------------------------------------

BROKER_PATHS = ("/startup", "/ready", "/health")
ACTUATOR_PATHS = ("/actuator/health/startup", "/actuator/health/readiness", "/actuator/health")


def broker(fake: Fake, startup: int, ready: int, health: int) -> None:
    fake.answers = {path: Answer(code) for path, code in
                    zip(BROKER_PATHS, (startup, ready, health), strict=True)}


@pytest.mark.parametrize(("codes", "node_state", "state"), [
    ((503, 503, 503), "BOOTING", "starting"),
    ((204, 503, 503), "STOPPING", "starting"),
    ((204, 204, 204), "RUNNING", "running"),
    ((200, 200, 200), "RUNNING", "running"),
])
async def test_zeebe_probes_become_the_node_state_the_server_answers_them_from(
        fake: Fake, codes: tuple[int, int, int], node_state: str, state: str) -> None:
    broker(fake, *codes)
    view = await read_once(fake.url("zeebe"))
    beat = as_heartbeat(view)
    assert beat.node_state == node_state
    assert beat.serving is (codes[2] != 503)
    service = view.fields["services"]["zeebe"]
    assert service["state"] == state
    assert service["status"]["info"] == {"endpoint": "broker", "httpStatus": dict(
        zip(("startup", "ready", "health"), codes, strict=True))}
    served = Served()
    served.beat(view)
    # HEALTH STARTUP / READY / HEALTH NODE n1 answer as the broker's own paths did.
    expected = [204 if code != 503 else 503 for code in codes]
    assert [served.probe(p) for p in ("startup", "ready", "health")] == expected


async def test_zeebe_ready_but_unhealthy_is_error_and_ready_stays_up_once_seen(
        fake: Fake) -> None:
    served = Served()
    broker(fake, 204, 204, 204)
    async with opened(fake.url("zeebe")) as source:
        served.beat(await source.read())
        assert [served.probe(p) for p in ("startup", "ready", "health")] == [204, 204, 204]
        broker(fake, 204, 204, 503)
        view = await source.read()
    assert as_heartbeat(view).node_state == "ERROR"
    assert view.fields["services"]["zeebe"]["state"] == "error"
    assert view.fields["serving"] is False
    served.beat(view)
    assert [served.probe(p) for p in ("startup", "ready", "health")] == [204, 204, 503]


async def test_zeebe_ready_but_unhealthy_first_seen_is_the_documented_gap(fake: Fake) -> None:
    # The schema cannot say "ready but unhealthy" without partitions: READY answers DOWN
    # on the server until it has seen the broker ready (see zeebe.py's header).
    broker(fake, 204, 204, 503)
    served = Served()
    served.beat(await read_once(fake.url("zeebe")))
    assert [served.probe(p) for p in ("startup", "ready", "health")] == [204, 503, 503]


async def test_zeebe_broker_without_startup_path_is_judged_by_the_other_two(
        fake: Fake) -> None:
    fake.answers = {"/ready": Answer(204), "/health": Answer(204)}
    view = await read_once(fake.url("zeebe"))
    assert as_heartbeat(view).node_state == "RUNNING"
    assert view.fields["services"]["zeebe"]["state"] == "running"


GATEWAY: dict[str, Any] = {"status": "UP", "components": {
    "gatewayStarted": {"status": "UP"},
    "gatewayClusterAwareness": {"status": "UP"},
    "brokers": {"status": "UP", "components": {"partitions": {"status": "UP", "details": {
        "partitions": [{"partitionId": 2, "role": "FOLLOWER", "health": "HEALTHY"},
                       {"partitionId": 1, "role": "LEADER", "health": "HEALTHY"},
                       {"partitionId": 3, "role": "INACTIVE", "health": "HEALTHY"},
                       {"partitionId": "x", "role": "LEADER", "health": "HEALTHY"}]}}}},
}}


async def test_zeebe_actuator_document_gives_partitions(fake: Fake) -> None:
    fake.answers = {"/actuator/health/startup": doc({"status": "UP"}),
                    "/actuator/health/readiness": doc({"status": "UP"}),
                    "/actuator/health": doc(GATEWAY)}
    view = await read_once(fake.url("zeebe", "/actuator/health"))
    beat = as_heartbeat(view)
    assert beat.node_state == "RUNNING"
    assert [(p.id, p.role, p.health) for p in beat.partitions or []] == [
        (1, "leader", "healthy"), (2, "follower", "healthy")]
    assert view.fields["services"]["zeebe"]["status"]["debug"] == {"health": GATEWAY}
    served = Served()
    served.beat(view)
    report = served.health.evaluate(served.now, "health", node=NODE)
    assert report.http_status("zeebe") == 204
    assert {c.name: c.reason for c in report.checks}["partitions"] == "all 2 partitions healthy"


async def test_zeebe_falls_back_to_the_actuator_when_broker_paths_404(fake: Fake) -> None:
    down = copy.deepcopy(GATEWAY)
    down["status"] = "DOWN"
    down["components"]["brokers"]["components"]["partitions"]["details"]["partitions"][1][
        "health"] = "UNHEALTHY"
    # A gateway without a readiness group: started means ready to receive requests.
    fake.answers = {"/actuator/health/startup": doc({"status": "UP"}),
                    "/actuator/health": doc(down, 503)}
    async with opened(fake.url("zeebe")) as source:
        view = await source.read()
        fake.requests.clear()
        await source.read()
    assert sorted(fake.requests) == sorted(ACTUATOR_PATHS)  # the actuator is remembered
    beat = as_heartbeat(view)
    assert beat.node_state == "ERROR"
    assert [(p.id, p.health) for p in beat.partitions or []] == [(1, "unhealthy"),
                                                                  (2, "healthy")]
    status = view.fields["services"]["zeebe"]["status"]
    assert status["critical"] == {"startup": "UP", "ready": "UP", "health": "DOWN"}
    assert status["info"]["httpStatus"] == {"startup": 200, "ready": 404, "health": 503}


@pytest.mark.parametrize(("answer", "words"), [
    (SLOW, "no answer within 0.3 s"),
    (INVALID, "HTTP 200: invalid JSON"),
    (HTML, "HTTP 502: an HTML page instead of the JSON document (502 Bad Gateway)"),
    (HTML_200, "HTTP 200: an HTML page instead of the JSON document (Login)"),
    (Answer(500, b"boom", "text/plain"), "unexpected HTTP 500: boom"),
])
async def test_zeebe_unreadable_probes_are_failed_probes_with_the_reason(
        fake: Fake, answer: Answer, words: str) -> None:
    fake.every(answer, *BROKER_PATHS)
    started = asyncio.get_running_loop().time()
    view = await read_once(fake.url("zeebe"))
    assert asyncio.get_running_loop().time() - started < 5 * TIMEOUT  # probes run at once
    assert as_heartbeat(view).node_state == "BOOTING"
    assert view.fields["serving"] is False
    assert reason(view, "zeebe").startswith(f"startup, ready, health: {words}")
    served = Served()
    served.beat(view)
    assert [served.probe(p) for p in ("startup", "ready", "health")] == [503, 503, 503]
    entry = served.entry("zeebe")
    assert entry["state"] == "unknown" and words in entry["status"]["reason"]


async def test_zeebe_refused_is_not_started() -> None:
    view = await read_once(f"zeebe+http://127.0.0.1:{closed_port()}")
    assert as_heartbeat(view).node_state == "BOOTING"
    assert reason(view, "zeebe").startswith("startup, ready, health: cannot connect to 127.0.0.1")


async def test_zeebe_wrong_endpoint_everywhere_says_so(fake: Fake) -> None:
    view = await read_once(fake.url("zeebe"))  # nothing is served: 404 everywhere
    assert as_heartbeat(view).node_state == "BOOTING"
    assert reason(view, "zeebe") == "health: unexpected HTTP 404: not found"


# --- Curity ----------------------------------------------------------------------------------

CURITY_MEMBERS = ("isReady", "nodeState", "clusterState", "configurationState",
                  "transactionId", "isServing", "pluginsInitialized", "serviceRole")


@pytest.mark.parametrize(("name", "code"), [("running", 200), ("booting", 503),
                                            ("admin", 200)])
async def test_curity_document_survives_the_server(fake: Fake, name: str, code: int) -> None:
    document = CURITY[name]
    fake.answers = {"/": doc(document, code)}
    view = await read_once(fake.url("curity", "/"))
    beat = as_heartbeat(view)
    assert beat.node_state == document["nodeState"]
    assert beat.config_state == document["configurationState"]
    assert beat.serving is document["isServing"]
    assert view.fields["services"]["curity"]["status"]["critical"] == {
        "isReady": document["isReady"], "nodeState": document["nodeState"], "httpStatus": code}
    served = Served()
    served.beat(view)
    status = served.node()
    assert {key: status[key] for key in CURITY_MEMBERS} == {
        key: document[key] for key in CURITY_MEMBERS}
    assert status.get("isAdminServing") == document.get("isAdminServing")
    assert status["threadPool"]["max"] == document["threadPool"]["max"]
    assert status["threadPool"]["utilizationRate"] == document["threadPool"]["utilizationRate"]
    assert status["httpRequests"]["utilizationRate"] == document["httpRequests"][
        "utilizationRate"]
    assert node_status(served.model, NODE, served.now).http_status("/") == code


async def test_curity_reconfiguring_node_is_still_configured(fake: Fake) -> None:
    document = dict(CURITY["running"], configurationState="RECONFIGURING")
    fake.answers = {"/": doc(document, 200)}
    served = Served()
    served.beat(await read_once(fake.url("curity", "/")))
    assert served.node()["configurationState"] == "RECONFIGURING"
    assert node_status(served.model, NODE, served.now).http_status("/") == 200


@pytest.mark.parametrize(("answer", "words"), [
    (EMPTY_503, "HTTP 503 without a document"),
    (SLOW, "no answer within 0.3 s"),
    (INVALID, "HTTP 200: invalid JSON"),
    (HTML, "HTTP 502: an HTML page instead of the JSON document (502 Bad Gateway)"),
    (Answer(302, b"", "text/plain"), "unexpected HTTP 302"),
    (doc({"nodeState": "SLEEPING"}), "not a node status document"),
    (doc([1, 2]), "expected the node status object"),
])
async def test_curity_unreadable_is_an_error_node_with_the_reason(
        fake: Fake, answer: Answer, words: str) -> None:
    fake.answers = {"/": answer}
    view = await read_once(fake.url("curity", "/"))
    beat = as_heartbeat(view)
    assert (beat.node_state, beat.serving) == ("ERROR", False)
    assert words in reason(view, "curity")
    served = Served()
    served.beat(view)
    status = served.node()
    assert (status["isReady"], status["nodeState"], status["isServing"]) == (
        False, "ERROR", False)
    assert words in served.entry("curity", "critical")["status"]["reason"]


async def test_curity_refused_is_an_error_node() -> None:
    view = await read_once(f"curity+http://127.0.0.1:{closed_port()}/")
    assert as_heartbeat(view).node_state == "ERROR"
    assert reason(view, "curity").startswith("cannot connect to 127.0.0.1:")


# --- Puppet ----------------------------------------------------------------------------------

SERVICES_PATH = "/status/v1/services"


def puppet(fake: Fake, docs: dict[str, Any], code: int = 200) -> None:
    fake.answers = {f"{SERVICES_PATH}?level={level}": doc(value, code)
                    for level, value in docs.items()}


async def test_puppet_reads_each_level_up_to_the_urls_and_passes_timeout_through(
        fake: Fake) -> None:
    puppet(fake, PUPPET)
    view = await read_once(fake.url("puppet", SERVICES_PATH + "?timeout=5"))
    assert sorted(fake.requests) == [f"{SERVICES_PATH}?level=critical&timeout=5",
                                     f"{SERVICES_PATH}?level=info&timeout=5"]
    beat = as_heartbeat(view)
    assert beat.services is not None
    other = beat.services["other-service"]
    assert (other.version, other.status_version, other.state) == ("0.0.1-SNAPSHOT", 2,
                                                                  "running")
    assert other.status == {"critical": None,
                            "info": {"baz": [1, 2, 3], "bang": {"key": "value"}}}


async def test_puppet_services_survive_the_server_at_every_level(fake: Fake) -> None:
    puppet(fake, PUPPET)
    view = await read_once(fake.url("puppet", SERVICES_PATH + "?level=debug"))
    assert len(fake.requests) == 3
    served = Served()
    served.beat(view)
    for level in LEVELS:
        for name, expected in PUPPET[level].items():
            entry = served.entry(name, level)
            assert entry["detail_level"] == level
            for key in ("service_version", "service_status_version", "state", "status"):
                assert entry[key] == expected[key], (level, name, key)
    assert served.services.simple(served.now).state == "running"


async def test_puppet_503_document_is_read_with_its_states_and_alerts(fake: Fake) -> None:
    docs = {level: copy.deepcopy(PUPPET[level]) for level in ("critical", "info")}
    alert = {"severity": "error", "message": "database unreachable"}
    for value in docs.values():
        value["other-service"].update(state="error", active_alerts=[alert])
    puppet(fake, docs, 503)
    view = await read_once(fake.url("puppet", SERVICES_PATH))
    beat = as_heartbeat(view)
    assert beat.services is not None and beat.services["other-service"].state == "error"
    served = Served()
    served.beat(view)
    entry = served.entry("other-service")
    assert (entry["state"], entry["active_alerts"]) == ("error", [alert])
    simple = served.services.simple(served.now)
    assert (simple.state, simple.http_status) == ("error", 503)


@pytest.mark.parametrize(("answer", "words"), [
    (EMPTY_503, "HTTP 503 without a document"),
    (SLOW, "no answer within 0.3 s"),
    (INVALID, "HTTP 200: invalid JSON"),
    (HTML, "HTTP 502: an HTML page instead of the JSON document (502 Bad Gateway)"),
    (Answer(404, b'{"kind": "service-not-found"}'), "unexpected HTTP 404"),
    (doc(["puppet-server"]), "expected an object of services, got list"),
])
async def test_puppet_unreadable_services_are_unknown_with_the_reason(
        fake: Fake, answer: Answer, words: str) -> None:
    async with opened(fake.url("puppet", SERVICES_PATH)) as source:
        fake.every(answer, SERVICES_PATH)
        first = await source.read()  # nothing read yet: one `puppet` service
        assert list(first.fields["services"]) == ["puppet"]
        assert words in reason(first, "puppet")
        puppet(fake, PUPPET)
        await source.read()
        fake.every(answer, SERVICES_PATH)
        view = await source.read()  # every known service is unknown, versions kept
    beat = as_heartbeat(view)
    assert beat.services is not None
    assert sorted(beat.services) == ["other-service", "puppet-server"]
    for name, service in beat.services.items():
        assert service.state == "unknown" and service.alerts == ()
        assert service.version == PUPPET["info"][name]["service_version"]
        assert words in reason(view, name)
    served = Served()
    served.beat(view)
    assert words in served.entry("puppet-server")["status"]["reason"]
    assert served.services.simple(served.now).state == "unknown"


async def test_puppet_refused_is_one_unknown_puppet_service() -> None:
    view = await read_once(f"puppet+http://127.0.0.1:{closed_port()}{SERVICES_PATH}")
    assert list(as_heartbeat(view).services or {}) == ["puppet"]
    assert reason(view, "puppet").startswith("cannot connect to 127.0.0.1:")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   capture_output=True, check=True, timeout=60)
    return cert, key


async def test_puppet_over_https_with_a_cafile(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with serving(context) as fake:
        puppet(fake, PUPPET)
        url = fake.url("puppet", SERVICES_PATH, scheme="https")
        trusted = await read_once(f"{url}?cafile={cert}")
        untrusted = await read_once(url)
    assert fake.requests[0].startswith(SERVICES_PATH + "?level=")
    assert "cafile" not in "".join(fake.requests)
    assert sorted(as_heartbeat(trusted).services or {}) == ["other-service", "puppet-server"]
    assert "certificate" in reason(untrusted, "puppet").lower()


# --- ksqlDB ----------------------------------------------------------------------------------

LOCAL = KSQL["clusterStatus"]["localhost:8088"]


def ksql_keys(*keys: str) -> dict[str, Any]:
    entries = list(KSQL["clusterStatus"].values())
    return {"clusterStatus": dict(zip(keys, entries, strict=False))}


async def test_ksqldb_this_hosts_entry_survives_the_server(fake: Fake) -> None:
    fake.answers = {"/clusterStatus": doc(KSQL)}
    view = await read_once(fake.url("ksqldb", "/clusterStatus?host=localhost:8088"))
    assert fake.requests == ["/clusterStatus"]  # host= is ours, not ksqlDB's
    beat = as_heartbeat(view)
    assert beat.ts_ms == LOCAL["hostStoreLags"]["updateTimeMs"]
    assert beat.queries is not None and list(beat.queries) == ["CTAS_MY_AGG_TABLE_3"]
    assert view.fields["services"]["ksqldb"]["status"]["critical"] == {
        "host": "localhost:8088", "hostAlive": True}
    served = Served(addr="localhost:8088")
    served.beat(view)
    host = served.status.cluster_status(served.now)["clusterStatus"]["localhost:8088"]
    assert host["hostAlive"] is True
    assert host["activeStandbyPerQuery"] == LOCAL["activeStandbyPerQuery"]
    assert host["hostStoreLags"] == LOCAL["hostStoreLags"]


async def test_ksqldb_matches_the_urls_host_and_port(fake: Fake) -> None:
    other = KSQL["clusterStatus"]["other.ksqldb.host:8088"]
    fake.answers = {"/clusterStatus": doc(ksql_keys("localhost:8088",
                                                    f"127.0.0.1:{fake.port}"))}
    view = await read_once(fake.url("ksqldb", "/clusterStatus"))
    served = Served(addr=f"127.0.0.1:{fake.port}")
    served.beat(view)
    host = served.status.cluster_status(served.now)["clusterStatus"][f"127.0.0.1:{fake.port}"]
    assert host["activeStandbyPerQuery"] == other["activeStandbyPerQuery"]
    assert host["hostStoreLags"] == other["hostStoreLags"]


async def test_ksqldb_single_entry_is_the_server_queried_and_no_lags_stay_empty(
        fake: Fake) -> None:
    entry = copy.deepcopy(LOCAL)
    entry["hostStoreLags"] = {"stateStoreLags": {}, "updateTimeMs": 0}
    fake.answers = {"/clusterStatus": doc({"clusterStatus": {"ksql-1.internal:8088": entry}})}
    view = await read_once(fake.url("ksqldb"))
    beat = as_heartbeat(view)
    assert beat.store_lags is None and beat.ts_ms is None
    served = Served(addr="ksql-1.internal:8088")
    served.beat(view)
    host = served.status.cluster_status(served.now)["clusterStatus"]["ksql-1.internal:8088"]
    assert host["activeStandbyPerQuery"] == LOCAL["activeStandbyPerQuery"]
    assert host["hostStoreLags"] == {"stateStoreLags": {}, "updateTimeMs": 0}


@pytest.mark.parametrize(("answer", "words"), [
    (EMPTY_503, "unexpected HTTP 503"),
    (SLOW, "no answer within 0.3 s"),
    (INVALID, "HTTP 200: invalid JSON"),
    (HTML, "HTTP 502: an HTML page instead of the JSON document (502 Bad Gateway)"),
    (doc({"KsqlStatementErrorMessage": "x"}), "not a cluster status document"),
    (doc(KSQL), "127.0.0.1:{port} is not in the cluster status (hosts: localhost:8088, "
                "other.ksqldb.host:8088)"),
])
async def test_ksqldb_unreadable_has_no_queries_and_a_note(
        fake: Fake, answer: Answer, words: str) -> None:
    fake.answers = {"/clusterStatus": answer}
    view = await read_once(fake.url("ksqldb", "/clusterStatus"))
    beat = as_heartbeat(view)
    assert beat.queries == {} and beat.store_lags is None and beat.ts_ms is None
    assert words.format(port=fake.port) in reason(view, "ksqldb")
    served = Served(addr=f"127.0.0.1:{fake.port}")
    served.beat(view)
    host = served.status.cluster_status(served.now)["clusterStatus"][f"127.0.0.1:{fake.port}"]
    assert host["activeStandbyPerQuery"] == {}
    assert host["hostStoreLags"] == {"stateStoreLags": {}, "updateTimeMs": 0}


async def test_ksqldb_refused_has_no_queries() -> None:
    view = await read_once(f"ksqldb+http://127.0.0.1:{closed_port()}/clusterStatus")
    assert as_heartbeat(view).queries == {}
    assert reason(view, "ksqldb").startswith("cannot connect to 127.0.0.1:")


def test_data_files_are_the_seed_examples() -> None:
    seeds = Path(__file__).resolve().parents[3] / "shared" / "seeds"
    if not seeds.is_dir():
        pytest.skip("the seed pages are not next to the repository")
    text = (seeds / "ksqldb-cluster-status.md").read_text()
    start = text.index("```json\n") + len("```json\n")
    assert json.loads(text[start:text.index("```", start)]) == KSQL
    puppet_page = (seeds / "puppet-status-api.md").read_text()
    assert '"extra_debugging_info": [4, 5, 6]' in puppet_page
    for level in ("critical", "info"):
        assert f'"detail_level": "{level}"' in puppet_page
