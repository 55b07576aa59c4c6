"""The HTTP mirror (`--http-port`) with real HTTP clients against a real server process:
urllib.request (stdlib) and curl, GET and HEAD, every route's code, content type and body
shape; `?exclude=`; Puppet's 400 and 404; a node going silent, step by step; off by default."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess, free_port
from tests.integration.cluster_helpers import EPOCH, A, B, C, message, poll, three_masters

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]
CURL = shutil.which("curl")


@dataclass(frozen=True)
class Answer:
    code: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(port: int, path: str, method: str = "GET") -> Answer:
    """One request with urllib.request; 4xx and 5xx are answers, not exceptions."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers.get("Content-Type", ""),
                          response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers.get("Content-Type", ""), exc.read(),
                          dict(exc.headers))


def curl(port: int, path: str, method: str = "GET") -> Answer:
    """The same request with curl: status line, headers and body."""
    assert CURL is not None
    argv = [CURL, "-sS", "--max-time", "10", "-D", "-"]
    # curl -I writes the headers as its output: -D - has them already.
    argv += ["-I", "-o", os.devnull] if method == "HEAD" else ["-o", "-", "-X", method]
    out = subprocess.run([*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         check=True, timeout=20).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    lowered = {key.lower(): value for key, value in headers.items()}
    return Answer(int(lines[0].split()[1]), lowered.get("content-type", ""), body, headers)


CLIENTS = [pytest.param(fetch, id="urllib"),
           pytest.param(curl, id="curl", marks=pytest.mark.skipif(CURL is None,
                                                                   reason="curl not installed"))]


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on, from /proc (no tool needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for row in handle.readlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


# -- the demo cluster: every route ---------------------------------------------------------


@pytest.fixture
def demo(server_factory: Factory) -> tuple[ServerProcess, int]:
    port = free_port()
    server = server_factory("--demo", "--http-port", str(port))
    # The demo's first heartbeats are in the model before the listening line; the self
    # checks (listening, ...) exist from the first 10 Hz tick on.
    for path in ("/startup", "/ready", "/health", "/live"):
        poll(lambda path=path: fetch(port, path).code,
             lambda code: code == 204, what=f"{path} 204")
    return server, port


JSON = "application/json"
PUPPET_JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
CURITY_KEYS = ["isReady", "nodeState", "clusterState", "configurationState", "transactionId",
               "isServing", "pluginsInitialized", "serviceRole", "threadPool", "httpRequests"]
PUPPET_KEYS = ["service_version", "service_status_version", "detail_level", "state", "status",
               "active_alerts"]


def _spring(doc: Any) -> None:
    assert doc == {"status": "UP"}


def _spring_verbose(doc: Any) -> None:
    assert doc["status"] == "UP"
    assert {"readiness", "listening", "clusterAwareness", "nodes"} <= set(doc["components"])
    assert all(c["status"] in ("UP", "UNKNOWN") for c in doc["components"].values())


def _curity(doc: Any) -> None:
    assert list(doc) == CURITY_KEYS
    assert doc["isReady"] is True and doc["isServing"] is True
    assert doc["nodeState"] == "RUNNING" and doc["serviceRole"] == "clusterwatch"


def _services(doc: Any) -> None:
    assert doc and all(list(entry) == PUPPET_KEYS for entry in doc.values())
    assert {entry["state"] for entry in doc.values()} == {"running"}
    assert {entry["detail_level"] for entry in doc.values()} == {"info"}


def _services_critical(doc: Any) -> None:
    assert {entry["detail_level"] for entry in doc.values()} == {"critical"}


def _cluster_status(doc: Any) -> None:
    hosts = doc["clusterStatus"]
    assert len(hosts) == 6
    for host in hosts.values():
        assert host["hostAlive"] is True
        assert set(host) == {"hostAlive", "lastStatusUpdateMs", "activeStandbyPerQuery",
                             "hostStoreLags"}


# path -> (code, content type, body check: None for an empty body, bytes, or a JSON check)
ROUTES: dict[str, tuple[int, str, Any]] = {
    "/startup": (204, "", None),
    "/ready": (204, "", None),
    "/health": (204, "", None),
    "/live": (204, "", None),
    "/health?verbose": (204, "", None),  # UP stays an empty 204 on Zeebe's paths
    "/actuator/health": (200, JSON, _spring),
    "/actuator/health?verbose": (200, JSON, _spring_verbose),
    "/actuator/health/status": (200, JSON, _spring),
    "/actuator/health/liveness": (200, JSON, _spring),
    "/actuator/health/readiness": (200, JSON, _spring),
    "/actuator/health/startup": (200, JSON, _spring),
    "/": (200, JSON, _curity),
    "/serving": (200, JSON, _curity),
    "/status/v1/services": (200, PUPPET_JSON, _services),
    "/status/v1/services?level=critical&timeout=5": (200, PUPPET_JSON, _services_critical),
    "/status/v1/simple": (200, TEXT, b"running"),
    "/clusterStatus": (200, JSON, _cluster_status),
}


@pytest.mark.parametrize("client", CLIENTS)
def test_every_route_get_and_head(demo: tuple[ServerProcess, int],
                                  client: Callable[[int, str, str], Answer]) -> None:
    _, port = demo
    for path, (code, content_type, check) in ROUTES.items():
        got = client(port, path, "GET")
        assert (got.code, got.content_type) == (code, content_type), path
        if check is None:
            assert got.body == b"", path
        elif isinstance(check, bytes):
            assert got.body == check, path
        else:
            check(got.json())
        head = client(port, path, "HEAD")
        assert (head.code, head.content_type, head.body) == (code, content_type, b""), path
        if got.body:  # HEAD carries GET's headers, Content-Length included
            _assert_head_announces_get_length(client, port, path)


def _assert_head_announces_get_length(client: Callable[[int, str, str], Answer], port: int,
                                      path: str) -> None:
    """HEAD's Content-Length is GET's body length. The demo keeps heartbeating, so a body may
    change between two requests (a counter gains a digit): GET, HEAD, GET until both GETs
    agree, and compare only then."""
    for _ in range(20):
        before = client(port, path, "GET").body
        head = client(port, path, "HEAD")
        after = client(port, path, "GET").body
        if before == after:
            assert int(_header(head, "Content-Length")) == len(before), path
            return
    raise AssertionError(f"{path}: the body never held still across GET, HEAD, GET")


def test_head_sends_no_body_on_the_wire(demo: tuple[ServerProcess, int]) -> None:
    """HEAD then GET on one keep-alive connection: the GET's status line follows HEAD's
    headers at once, so HEAD put no body bytes on the wire."""
    _, port = demo
    for path in ("/", "/status/v1/services", "/status/v1/simple", "/actuator/health"):
        request = (f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                   f"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 200 "), (path, data)
        assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
                   [b"Content-Length"]) > 0
        assert rest.startswith(b"HTTP/1.1 204 "), (path, rest[:80])


def _header(answer: Answer, name: str) -> str:
    return {key.lower(): value for key, value in answer.headers.items()}[name.lower()]


@pytest.mark.parametrize("client", CLIENTS)
def test_one_service_and_one_node(demo: tuple[ServerProcess, int],
                                  client: Callable[[int, str, str], Answer]) -> None:
    _, port = demo
    services = fetch(port, "/status/v1/services").json()
    name = sorted(services)[0]
    node, service = name.split("/")
    one = client(port, f"/status/v1/services/{name}", "GET")
    assert (one.code, one.content_type) == (200, PUPPET_JSON)
    assert list(one.json()) == [*PUPPET_KEYS, "service_name"]
    assert one.json()["service_name"] == name
    debug = client(port, f"/status/v1/services/{name}?level=debug&service_status_version=1",
                   "GET").json()
    assert (debug["detail_level"], debug["service_status_version"]) == ("debug", 1)
    for path in (f"/status/v1/simple/{name}", f"/status/v1/simple/{service}"):
        got = client(port, path, "GET")
        assert (got.code, got.content_type, got.body) == (200, TEXT, b"running"), path
    # A monitored node: Curity's document from its heartbeats, Zeebe's broker view.
    curity = client(port, f"/?node={node}", "GET")
    assert curity.code == 200 and curity.json()["isReady"] is True
    assert client(port, f"/health?node={node}", "GET").code == 204
    spring = client(port, f"/actuator/health?node={node}&verbose", "GET").json()
    assert set(spring["components"]) == {"readiness", "reachable", "started", "nodeState",
                                         "partitions"}


@pytest.mark.parametrize("client", CLIENTS)
def test_errors(demo: tuple[ServerProcess, int],
                client: Callable[[int, str, str], Answer]) -> None:
    _, port = demo
    cases = {
        "/status/v1/services/nope": (404, "service-not-found",
                                     "No status information found for service nope"),
        "/status/v1/services?level=loud": (400, "data-invalid", "Invalid level: loud"),
        "/status/v1/services?timeout=0": (400, "data-invalid", "Invalid timeout. Timeout must "
                                          "be greater than zero but was 0"),
        "/status/v1/services?timeout=soon": (400, "data-invalid", "Invalid timeout. Should be "
                                             "an integer but was soon"),
        "/status/v1/services?level=info&level=debug": (400, "data-invalid", None),
        "/health?node=nope": (404, "node-not-found", "unknown node 'nope'"),
        "/?node=nope": (404, "node-not-found", "unknown node 'nope'"),
        "/health?exclude=bogus": (400, "data-invalid", None),
        "/actuator/health/readiness?exclude=nodes": (400, "data-invalid", None),
        "/no/such/path": (404, "not-found", None),
        "/status/v1/servicesX": (404, "not-found", None),
    }
    for path, (code, kind, msg) in cases.items():
        got = client(port, path, "GET")
        assert (got.code, got.content_type) == (code, JSON), path
        body = got.json()
        assert body["kind"] == kind, path
        if msg is not None:
            assert body["msg"] == msg, path
    name = sorted(fetch(port, "/status/v1/services").json())[0]
    bad_version = client(port, f"/status/v1/services/{name}?service_status_version=9", "GET")
    assert bad_version.code == 400
    assert bad_version.json()["kind"] == "service-status-version-not-found"
    not_a_version = client(port, f"/status/v1/services/{name}?service_status_version=x", "GET")
    assert (not_a_version.code, not_a_version.json()["kind"]) == (400, "data-invalid")
    # Puppet's simple routes answer in text, 404 included.
    simple = client(port, "/status/v1/simple/nope", "GET")
    assert (simple.code, simple.content_type, simple.body) == (404, TEXT, b"not found: nope")
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/", "/serving", "/ready", "/status/v1/simple", "/clusterStatus"):
            got = client(port, path, method)
            assert got.code == 405, (method, path)
            assert _header(got, "Allow") == "GET, HEAD"


def test_exclude(demo: tuple[ServerProcess, int]) -> None:
    _, port = demo
    full = fetch(port, "/actuator/health?verbose").json()["components"]
    assert "nodes" in full and "clusterState" in full
    for path in ("/actuator/health?verbose&exclude=nodes,clusterState",
                 "/actuator/health?verbose&exclude=nodes&exclude=clusterState"):
        got = fetch(port, path)
        assert got.code == 200
        assert set(got.json()["components"]) == set(full) - {"nodes", "clusterState"}
    assert fetch(port, "/health?exclude=nodes").code == 204
    assert fetch(port, "/live?exclude=livenessClusterAwareness").code == 204
    bad = fetch(port, "/health?exclude=nodes,bogus")
    assert bad.code == 400
    assert bad.json()["kind"] == "data-invalid"
    assert "unknown check 'bogus'" in bad.json()["msg"]
    if CURL is not None:
        head = curl(port, "/health?exclude=bogus", "HEAD")
        assert (head.code, head.body) == (400, b"")


# -- a node going silent, step by step ------------------------------------------------------


def heartbeat(node: str, seq: int, state: str = "running") -> bytes:
    return message("heartbeat", node, EPOCH[node], seq, node_state="RUNNING",
                   services={"api": {"version": "1", "state": state,
                                     "status": {"critical": {"ok": state == "running"}}}})


@dataclass(frozen=True)
class Step:
    name: str
    states: dict[str, str] | None  # service state per node to publish; None: stay silent
    expect: dict[str, tuple[int, bytes | None]]  # path -> (code, body or None: unchecked)


RUNNING = {A: "running", B: "running", C: "running"}
STEPS = [
    Step("all running", RUNNING, {"/health": (204, b""), "/ready": (204, b""),
                                  "/status/v1/simple": (200, b"running"),
                                  "/status/v1/services": (200, None)}),
    Step("one starting", {**RUNNING, B: "starting"},
         {"/health": (204, b""), "/status/v1/simple": (503, b"starting"),
          f"/status/v1/simple/{B}/api": (503, b"starting"),
          f"/status/v1/simple/{A}/api": (200, b"running"),
          "/status/v1/services": (503, None)}),
    Step("error wins", {**RUNNING, B: "starting", C: "error"},
         {"/status/v1/simple": (503, b"error"), "/status/v1/simple/api": (503, b"error")}),
    Step("running again", RUNNING, {"/status/v1/simple": (200, b"running")}),
    # Silence past --node-timeout: the nodes go pfail and the bus goes stale, so /health
    # turns 503, but /ready was reached and never reverts; liveness is inside its grace
    # window; the services of nodes nobody reaches are unknown at once, although their data
    # is younger than the simple timeout (30 s): one verdict in every view (issue 24)...
    Step("silent", None, {"/health": (503, b""), "/ready": (204, b""), "/live": (204, b""),
                          "/actuator/health": (503, None), "/status/v1/simple": (503, b"unknown"),
                          # Curity: WAITING (serving its last model) is still ready.
                          "/": (200, None)}),
    # ... and with a 1 s timeout too, never served as fresh.
    Step("silent, short timeout", None, {"/status/v1/simple?timeout=1": (503, b"unknown"),
                                         "/ready": (204, b"")}),
    Step("back", RUNNING, {"/health": (204, b""), "/ready": (204, b""),
                           "/status/v1/simple?timeout=1": (200, b"running")}),
]


def test_a_node_going_silent(server_factory: Factory) -> None:
    port = free_port()
    server = server_factory("--http-port", str(port), "--node-timeout", "300")
    r = redis.Redis(port=server.port)
    assert fetch(port, "/ready").code == 503  # nothing known yet: not ready
    assert fetch(port, "/status/v1/simple").body == b"unknown"  # no services: 200 "unknown"
    r.execute_command("BUS", "PUBLISH", *three_masters())
    seq = 10
    for step in STEPS:
        if step.states is not None:
            seq += 1
            replies = r.execute_command(
                "BUS", "PUBLISH", *(heartbeat(node, seq, state)
                                    for node, state in step.states.items()))
            assert replies == [b"applied"] * len(step.states), step.name
        for path, (code, body) in step.expect.items():
            # Poll: the 10 Hz tick moves the self checks and the failure detector.
            got = poll(lambda path=path: fetch(port, path),
                       lambda got, code=code: got.code == code,
                       timeout=15.0, what=f"{step.name}: {path} {code}")
            if body is not None:
                assert got.body == body, (step.name, path)
        # Once reached, every later answer of /ready is 204, checked at every step.
        if step.name != "all running":
            assert fetch(port, "/ready").code == 204, step.name


def test_http_port_is_off_by_default(server_factory: Factory) -> None:
    server = server_factory("--demo")
    assert listening_ports(server.proc.pid) == {server.port}
    assert "http listening" not in server.logs()
    port = free_port()
    on = server_factory("--demo", "--http-port", str(port))
    assert listening_ports(on.proc.pid) == {on.port, port}
    assert f"http_port={port}" in on.logs()


def test_bad_http_port_is_refused(server_factory: Factory) -> None:
    with pytest.raises(RuntimeError, match=r"--http-port: must be a port, 0 to 65535"):
        server_factory("--http-port", "70000")


def test_stops_with_the_server(server_factory: Factory) -> None:
    port = free_port()
    server = server_factory("--http-port", str(port))
    assert fetch(port, "/startup").code in (204, 503)
    assert server.stop() == 0
    with pytest.raises(urllib.error.URLError):
        fetch(port, "/startup")


def test_blocking_query_on_the_model_index(server_factory: Factory) -> None:
    port = free_port()
    server = server_factory("--http-port", str(port))
    r = redis.Redis(port=server.port)
    first = fetch(port, "/clusterStatus")
    index = int(first.headers["X-Clusterwatch-Index"])
    started = time.monotonic()
    same = fetch(port, f"/clusterStatus?index={index}&wait=200ms")
    assert int(same.headers["X-Clusterwatch-Index"]) == index  # nothing changed
    assert time.monotonic() - started >= 0.19

    def publish() -> None:
        time.sleep(0.2)
        r.execute_command("BUS", "PUBLISH", *three_masters())

    thread = threading.Thread(target=publish)
    thread.start()
    changed = fetch(port, f"/status/v1/simple?index={index}&wait=10s")
    thread.join()
    assert int(changed.headers["X-Clusterwatch-Index"]) > index
    assert fetch(port, "/ready?index=x").code == 400
    assert fetch(port, "/ready?index=1&wait=soon").code == 400
