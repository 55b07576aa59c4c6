"""The one liveness verdict and MAXAGE over real sockets: redis-py (RESP2 and RESP3) and
redis-cli against a server whose node timeout is 1 s. Three masters report a running
`redis` service; one falls silent; every view says so at once, in its own words."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
import redis

from tests.conftest import ServerProcess, require_tool

from .helpers import run, wait_for

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]
NODES = ("m1", "m2", "m3")
THIRDS = ((0, 5460), (5461, 10922), (10923, 16383))
_SEQ = itertools.count(1)


def msg(kind: str, node: str, **fields: object) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": 1,
                                "seq": next(_SEQ), **fields})


def beat(node: str) -> bytes:
    return msg("heartbeat", node, node_state="RUNNING", serving=True,
               services={"redis": {"state": "running", "version": "7.2"}})


@pytest.fixture
def server(server_factory: Factory) -> Iterator[ServerProcess]:
    """Three masters, then m1 silent past the 1 s node timeout while m2 and m3 beat."""
    server = server_factory("--node-timeout", "1000")
    client = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
    try:
        batch = []
        for i, (node, span) in enumerate(zip(NODES, THIRDS, strict=True)):
            batch += [msg("hello", node, addr=f"127.0.0.{i + 1}:6379"),
                      msg("slots", node, ranges=[list(span)]), beat(node)]
        client.execute_command("BUS", "PUBLISH", *batch)
        assert client.execute_command("STATUS", "SIMPLE") == b"running"

        def m1_silent() -> bool:
            client.execute_command("BUS", "PUBLISH", beat("m2"), beat("m3"))
            lines = client.execute_command("CLUSTER", "NODES").split(b"\n")
            return any(line.startswith(b"m1 ") and b"fail?" in line for line in lines)

        assert wait_for(m1_silent, timeout=10, interval=0.2)
        yield server
    finally:
        client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_every_view_says_m1_is_not_reachable(server: ServerProcess,
                                                      protocol: int) -> None:
    client = redis.Redis(port=server.port, protocol=protocol, socket_timeout=10,
                         decode_responses=True)
    try:
        entry = client.execute_command("STATUS", "SERVICE", "m1/redis")
        as_dict = entry if protocol == 3 else dict(zip(entry[::2], entry[1::2], strict=True))
        assert as_dict["state"] == "unknown"
        assert as_dict["status"].startswith("Node m1 is not reachable: pfail (")
        with pytest.raises(redis.ResponseError) as simple:
            client.execute_command("STATUS", "SIMPLE")
        assert str(simple.value).startswith(
            "unknown (3 services; not all running: m1/redis unknown (node pfail since ")
        doc = json.loads(client.execute_command("STATUS", "NODE", "m1", "FORMAT", "JSON"))
        assert (doc["isReady"], doc["isServing"], doc["nodeState"]) == (False, False, "ERROR")
        hosts = json.loads(client.execute_command("CLUSTER", "STATUS", "FORMAT", "JSON"))
        assert [hosts["clusterStatus"][f"127.0.0.{i}:6379"]["hostAlive"] for i in (1, 2, 3)] == [
            False, True, True]
        with pytest.raises(redis.ResponseError) as health:
            client.execute_command("HEALTH", "NODE", "m1")
        assert str(health.value).startswith("DOWN health NODE m1: reachable DOWN (pfail (")
        assert client.execute_command("HEALTH", "NODE", "m2") == "UP"
    finally:
        client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_maxage(server: ServerProcess, protocol: int) -> None:
    client = redis.Redis(port=server.port, protocol=protocol, socket_timeout=10,
                         decode_responses=True)
    try:
        for bad, words in (("-5", "MAXAGE is negative"), ("x", "value is not an integer"),
                           ("1" * 40, "value is not an integer")):
            with pytest.raises(redis.ResponseError, match=words):
                client.execute_command("STATUS", "SERVICES", "MAXAGE", bad)
            with pytest.raises(redis.ResponseError, match=words):
                client.execute_command("HEALTH", "NODE", "m2", "MAXAGE", bad)
        with pytest.raises(redis.ResponseError, match="syntax error"):
            client.execute_command("STATUS", "SIMPLE", "m2/redis", "MAXAGE", "1", "MAXAGE", "1")
        assert client.execute_command("STATUS", "SIMPLE", "m2/redis", "MAXAGE", "60000") == (
            "running")
        time.sleep(0.05)
        with pytest.raises(redis.ResponseError, match=r"^unknown \(1 service named m2/redis"):
            client.execute_command("STATUS", "SIMPLE", "m2/redis", "MAXAGE", "1")
    finally:
        client.close()


def test_redis_cli_shows_the_verdict_and_refuses_bad_maxage(server: ServerProcess) -> None:
    cli = require_tool("redis-cli")
    port = str(server.port)
    simple = run([cli, "-p", port, "-e", "STATUS", "SIMPLE"])
    assert simple.returncode == 1
    assert "unknown (3 services; not all running: m1/redis unknown (node pfail since " in (
        simple.stdout + simple.stderr)
    node = run([cli, "-p", port, "-3", "--no-raw", "STATUS", "NODE", "m1"])
    assert '"nodeState" => "ERROR"' in node.stdout
    assert '"isReady" => (false)' in node.stdout
    bad = run([cli, "-p", port, "--no-raw", "STATUS", "SERVICES", "MAXAGE", "-1"])
    assert bad.stdout.strip() == "(error) ERR MAXAGE is negative"
    junk = run([cli, "-p", port, "--no-raw", "HEALTH", "MAXAGE", "soon"])
    assert junk.stdout.strip() == "(error) ERR value is not an integer or out of range"
