"""HEALTH EXPLAIN and HEALTH SAFE-TO-STOP, and their HTTP paths, against a real demo server
(a password set) with a PINGing bystander: their shapes in RESP2, RESP3 and JSON, and every
bad argument: no id, too many ids (a hundred thousand), repeated and unknown ids, a huge
id, unknown options and probes, junk query parameters, no credentials. Each gets a clear
error, the server keeps answering, and the bystander is not held up."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess, free_port

from .conftest import BystanderFactory

pytestmark = pytest.mark.integration

PASSWORD = "pw"
AUTH = "Basic " + base64.b64encode(f"default:{PASSWORD}".encode()).decode()


@pytest.fixture
def demo(server_factory: Callable[..., ServerProcess]) -> Iterator[tuple[ServerProcess, int]]:
    http = free_port()
    server = server_factory("--demo", "--http-port", str(http), "--requirepass", PASSWORD)
    yield server, http


def client(server: ServerProcess, protocol: int = 2) -> redis.Redis:
    return redis.Redis(port=server.port, password=PASSWORD, protocol=protocol,
                       socket_timeout=30)


def masters(r: redis.Redis) -> list[str]:
    text = r.execute_command("CLUSTER", "NODES").decode()
    return sorted(line.split()[0] for line in text.splitlines()
                  if " master " in f" {line.split()[2].replace(',', ' ')} "
                  and len(line.split()) > 8)


def http_get(port: int, path: str, *, auth: bool = True) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        request.add_header("Authorization", AUTH)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_shapes_in_resp2_resp3_and_json(demo: tuple[ServerProcess, int]) -> None:
    server, http = demo
    r2, r3 = client(server, 2), client(server, 3)
    node = masters(r2)[0]
    flat = r2.execute_command("HEALTH", "EXPLAIN", "NODE", node)
    assert isinstance(flat, list) and len(flat) % 2 == 0
    assert flat[0:2] == [b"node", node.encode()]
    doc3 = r3.execute_command("HEALTH", "EXPLAIN", "NODE", node)
    assert isinstance(doc3, dict) and doc3[b"state"] == b"ok"
    assert doc3[b"quorum"][b"sentinel"] == b"#quorum 0/2"
    as_json = json.loads(r2.execute_command("HEALTH", "EXPLAIN", "NODE", node, "FORMAT",
                                            "JSON"))
    assert as_json["node"] == node and as_json["decided_by"] == "heard"
    code, over_http = http_get(http, f"/health/explain?node={node}")
    assert code == 200 and over_http.keys() == as_json.keys()

    cluster3 = r3.execute_command("HEALTH", "EXPLAIN", "READY")
    assert cluster3[b"probe"] == b"ready" and cluster3[b"status"] == b"UP"
    assert cluster3[b"cluster"][b"cluster_state"] == b"ok"
    code, doc = http_get(http, "/health/explain?probe=live")
    assert code == 200 and doc["probe"] == "live"

    answer2 = r2.execute_command("HEALTH", "SAFE-TO-STOP", node)
    assert answer2[0:2] == [b"safe", 0]  # RESP2: a boolean is an integer
    answer3 = r3.execute_command("HEALTH", "SAFE-TO-STOP", node)
    assert answer3[b"safe"] is False and answer3[b"verdict"] in (b"unsafe", b"unknown")
    code, doc = http_get(http, f"/safe-to-stop?node={node}")
    assert code == 409 and doc["safe"] is False and doc["findings"]


def test_bad_arguments_get_clear_errors_and_the_bystander_is_not_held_up(
        demo: tuple[ServerProcess, int], bystander: BystanderFactory) -> None:
    server, _http = demo
    r = client(server)
    node = masters(r)[0]
    cases: list[tuple[tuple[str, ...], str]] = [
        (("HEALTH", "SAFE-TO-STOP"), "wrong number of arguments for 'health|safe-to-stop'"),
        (("HEALTH", "SAFE-TO-STOP", node, node), f"Node {node} specified multiple times"),
        (("HEALTH", "SAFE-TO-STOP", node, "nope"), "Unknown node nope"),
        (("HEALTH", "SAFE-TO-STOP", *[f"n{i}" for i in range(100_000)]),
         "too many nodes: at most 64 at a time, got 100000"),
        (("HEALTH", "SAFE-TO-STOP", "x" * 1_000_000), "Unknown node " + "x" * 61 + "..."),
        (("HEALTH", "SAFE-TO-STOP", "\r\n\x00"), "Unknown node ???"),
        (("HEALTH", "EXPLAIN", "NODE"), "syntax error"),
        (("HEALTH", "EXPLAIN", "NODE", "nope"), "unknown node 'nope'"),
        (("HEALTH", "EXPLAIN", "NODE", node, "NODE", node), "syntax error"),
        (("HEALTH", "EXPLAIN", "READY", "NODE", node), "syntax error"),
        (("HEALTH", "EXPLAIN", "BOGUS"), "unknown probe 'BOGUS'"),
        (("HEALTH", "EXPLAIN", "FORMAT", "XML"), "unknown format 'XML'"),
        (("HEALTH", "EXPLAIN", "NODE", "y" * 1_000_000), "unknown node 'yyy"),
    ]
    with bystander(server, password=PASSWORD) as watcher:
        for argv, message in cases:
            with pytest.raises(redis.ResponseError) as caught:
                r.execute_command(*argv)
            assert message in str(caught.value), (argv[:3], str(caught.value))
            assert len(str(caught.value)) < 300
        for _ in range(200):
            r.execute_command("HEALTH", "EXPLAIN")
            r.execute_command("HEALTH", "SAFE-TO-STOP", *masters(r))
    print(watcher.check())
    assert r.ping() and r.execute_command("HEALTH") == b"UP"


def test_unauthenticated_clients_get_noauth_and_401(demo: tuple[ServerProcess, int]) -> None:
    server, http = demo
    anonymous = redis.Redis(port=server.port, protocol=2, socket_timeout=30)
    for argv in (("HEALTH", "EXPLAIN"), ("HEALTH", "SAFE-TO-STOP", "a")):
        with pytest.raises(redis.AuthenticationError, match="Authentication required"):
            anonymous.execute_command(*argv)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as probe:
        probe.sendall(b"HEALTH\r\n")
        assert probe.recv(100) == b"+UP\r\n"  # the probe stays open
    for path in ("/health/explain", "/health/explain?probe=ready", "/safe-to-stop?node=a"):
        code, doc = http_get(http, path, auth=False)
        assert (code, doc["kind"]) == (401, "unauthorized"), path


def test_http_junk_parameters(demo: tuple[ServerProcess, int]) -> None:
    server, http = demo
    node = masters(client(server))[0]
    cases = [
        ("/safe-to-stop", 400, "no node given"),
        ("/safe-to-stop?node=", 400, "no node given"),
        ("/safe-to-stop?node=,,,", 400, "no node given"),
        (f"/safe-to-stop?node={node},{node}", 400, "specified multiple times"),
        (f"/safe-to-stop?node={node}&node={node}", 400, "specified multiple times"),
        ("/safe-to-stop?node=nope", 404, "Unknown node nope"),
        ("/safe-to-stop?" + "&".join(f"node=n{i}" for i in range(300)), 400,
         "too many nodes: at most 64"),
        ("/health/explain?node=a&node=b", 400, "given 2 times"),
        ("/health/explain?probe=x", 400, "unknown probe 'x'"),
        (f"/health/explain?probe=ready&node={node}", 400, "exclude each other"),
        ("/health/explain?node=nope", 404, "unknown node 'nope'"),
        ("/health/explain?node=%00%ff", 404, "unknown node"),
    ]
    for path, status, message in cases:
        code, doc = http_get(http, path)
        assert code == status and message in doc["msg"], (path, code, doc)
    code, doc = http_get(http, f"/safe-to-stop?node={node}&junk=1&verbose=yes")
    assert code == 409 and doc["nodes"] == [node]
