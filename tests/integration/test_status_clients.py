"""STATUS, HEALTH and CLUSTER STATUS over real sockets: redis-cli 7.0 (RESP2, -3, --raw,
piped help) and redis-py 8 (RESP2 and RESP3 decode to the documented Python types), against
``serve --demo`` servers whose simulated cluster reports services, partitions, queries and
store lags."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess, require_tool

from .helpers import run, wait_for

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]


@pytest.fixture
def cli() -> str:
    return require_tool("redis-cli")


@pytest.fixture
def demo(server_factory: Factory) -> ServerProcess:
    server = server_factory("--demo")
    probe = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
    try:
        assert wait_for(lambda: probe.execute_command("HEALTH", "READY") == b"UP", timeout=10)
        assert wait_for(lambda: probe.execute_command("STATUS", "SIMPLE") == b"running")
    finally:
        probe.close()
    return server


def _cli(cli: str, server: ServerProcess, *args: str) -> Any:
    return run([cli, "-p", str(server.port), *args])


# --- redis-cli ------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [[], ["-3"]])
def test_redis_cli_plain_probes(cli: str, demo: ServerProcess, proto: list[str]) -> None:
    for argv, out in ((["HEALTH", "READY"], "UP\n"), (["health"], "UP\n"),
                      (["HEALTH", "LIVE"], "UP\n"), (["STATUS", "SIMPLE"], "running\n"),
                      (["STATUS", "SIMPLE", "api"], "running\n")):
        result = _cli(cli, demo, *proto, "-e", *argv)
        assert (result.returncode, result.stdout, result.stderr) == (0, out, ""), argv
    missing = _cli(cli, demo, *proto, "-e", "STATUS", "SIMPLE", "nosuch")
    assert missing.returncode == 1
    assert "ERR not found: nosuch" in missing.stdout + missing.stderr


def test_redis_cli_health_is_an_exec_probe(cli: str, server: ServerProcess) -> None:
    """No node known: not ready. `redis-cli -e` exits 1 and prints the status first."""
    result = _cli(cli, server, "-e", "HEALTH", "READY")
    assert result.returncode == 1
    assert (result.stdout + result.stderr).startswith("DOWN ready: ")
    verbose = _cli(cli, server, "-3", "HEALTH", "READY", "VERBOSE")
    assert verbose.returncode == 0 and verbose.stdout.startswith("status DOWN\n")


def test_redis_cli_renders_maps_booleans_and_doubles(cli: str, demo: ServerProcess) -> None:
    resp3 = _cli(cli, demo, "-3", "--no-raw", "STATUS", "NODE").stdout
    assert ' 1# "isReady" => (true)\n' in resp3
    assert '"utilizationRate" => (double) 1' in resp3
    resp2 = _cli(cli, demo, "--no-raw", "STATUS", "NODE").stdout
    assert ' 1) "isReady"\n 2) (integer) 1\n' in resp2
    health = _cli(cli, demo, "-3", "--no-raw", "HEALTH", "VERBOSE").stdout
    assert health.startswith('1# "status" => "UP"\n2# "components" =>')
    services = _cli(cli, demo, "-3", "--no-raw", "STATUS", "SERVICES").stdout
    assert "\n    1# \"service_version\" => \"1.4.2\"\n" in services


@pytest.mark.parametrize("proto", [[], ["-3"]])
def test_redis_cli_raw_json_documents(cli: str, demo: ServerProcess, proto: list[str]) -> None:
    services = json.loads(_cli(cli, demo, *proto, "--raw", "STATUS", "SERVICES", "LEVEL",
                               "debug", "FORMAT", "JSON").stdout)
    assert len(services) == 12
    assert {entry["state"] for entry in services.values()} == {"running"}
    assert all(entry["detail_level"] == "debug" for entry in services.values())
    cluster = json.loads(_cli(cli, demo, *proto, "--raw", "CLUSTER", "STATUS", "FORMAT",
                              "JSON").stdout)
    hosts = cluster["clusterStatus"]
    assert len(hosts) == 6 and all(host["hostAlive"] for host in hosts.values())
    assert all(host["activeStandbyPerQuery"] and host["hostStoreLags"]["stateStoreLags"]
               for host in hosts.values())
    node = json.loads(_cli(cli, demo, *proto, "--raw", "STATUS", "NODE", "FORMAT",
                           "JSON").stdout)
    assert node["isReady"] is True and node["nodeState"] == "RUNNING"
    health = json.loads(_cli(cli, demo, *proto, "--raw", "HEALTH", "VERBOSE", "FORMAT",
                             "JSON").stdout)
    assert health["status"] == "UP" and health["components"]["partitions"]["status"] == "UP"


def test_redis_cli_help_in_piped_mode(cli: str, server: ServerProcess) -> None:
    result = run([cli, "-p", str(server.port)], stdin="help status\nhelp health\n")
    out = result.stdout
    assert "STATUS SERVICES" in out and "[LEVEL critical|info|debug]" in out
    assert "Returns the status of every service of every node" in out
    assert "STATUS SIMPLE" in out and "group:" in out and "status" in out
    assert "HEALTH" in out and "[STARTUP|READY|LIVE|HEALTH] [NODE node-id] [VERBOSE]" in out
    assert "0.1.0" in out


def test_redis_cli_health_without_auth(cli: str, server_factory: Factory) -> None:
    server = server_factory("--requirepass", "pw")
    plain = _cli(cli, server, "HEALTH", "READY")
    assert plain.stdout.startswith("DOWN ready (AUTH for details)")
    assert "NOAUTH" in _cli(cli, server, "HEALTH", "VERBOSE").stdout
    assert "NOAUTH" in _cli(cli, server, "STATUS", "SIMPLE").stdout
    authed = _cli(cli, server, "-a", "pw", "--no-auth-warning", "-3", "HEALTH", "VERBOSE")
    assert authed.stdout.startswith("status DOWN")


# --- redis-py -------------------------------------------------------------------------------


def test_redis_py_resp3_types(demo: ServerProcess) -> None:
    r = redis.Redis(port=demo.port, protocol=3, socket_timeout=10)
    try:
        assert r.execute_command("HEALTH", "READY") == b"UP"
        assert r.execute_command("STATUS", "SIMPLE") == b"running"
        node = r.execute_command("STATUS", "NODE")
        assert isinstance(node, dict)
        assert node[b"isReady"] is True and node[b"isServing"] is True
        assert isinstance(node[b"threadPool"][b"utilizationRate"], float)
        assert isinstance(node[b"httpRequests"][b"total"], int)
        health = r.execute_command("HEALTH", "VERBOSE")
        assert health[b"status"] == b"UP" and isinstance(health[b"components"], dict)
        services = r.execute_command("STATUS", "SERVICES", "LEVEL", "critical")
        assert len(services) == 12
        entry = next(iter(services.values()))
        assert entry[b"state"] == b"running" and entry[b"active_alerts"] == []
        assert isinstance(entry[b"status"][b"listening" if b"listening" in entry[b"status"]
                                           else b"writable"], bool)
        cluster = r.execute_command("CLUSTER", "STATUS")
        host = cluster[b"127.0.0.1:30001"]
        assert host[b"hostAlive"] is True
        assert isinstance(host[b"hostStoreLags"][b"stateStoreLags"], dict)
        doc = r.execute_command("CLUSTER", "STATUS", "FORMAT", "JSON")
        assert isinstance(doc, bytes) and list(json.loads(doc)) == ["clusterStatus"]
        with pytest.raises(redis.ResponseError, match="not found: nosuch"):
            r.execute_command("STATUS", "SIMPLE", "nosuch")
        with pytest.raises(redis.ResponseError, match="Invalid level: loud"):
            r.execute_command("STATUS", "SERVICES", "LEVEL", "loud")
        with pytest.raises(redis.ResponseError, match="syntax error"):
            r.execute_command("HEALTH", "VERBOSE", "VERBOSE")
    finally:
        r.close()


def test_redis_py_resp2_types(demo: ServerProcess) -> None:
    r = redis.Redis(port=demo.port, protocol=2, socket_timeout=10)
    try:
        node = r.execute_command("STATUS", "NODE")
        assert isinstance(node, list) and node[:2] == [b"isReady", 1]
        pool = node[node.index(b"threadPool") + 1]
        assert pool[pool.index(b"utilizationRate") + 1] == b"1"
        health = r.execute_command("HEALTH", "VERBOSE")
        assert health[:2] == [b"status", b"UP"] and isinstance(health[3], list)
        cluster = r.execute_command("CLUSTER", "STATUS")
        assert isinstance(cluster, list) and len(cluster) == 12
        assert cluster[1][:2] == [b"hostAlive", 1]
    finally:
        r.close()


def test_redis_py_probe_errors_start_with_the_status(server: ServerProcess) -> None:
    r = redis.Redis(port=server.port, protocol=3, socket_timeout=10)
    try:
        with pytest.raises(redis.ResponseError) as info:
            r.execute_command("HEALTH", "READY")
        assert str(info.value).startswith("DOWN ready: clusterAwareness DOWN")
        assert r.execute_command("STATUS", "SIMPLE") == b"unknown"  # Puppet: no services, 200
    finally:
        r.close()
