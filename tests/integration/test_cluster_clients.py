"""Real clients read our CLUSTER replies: redis-py, prometheus redis_exporter, redis-cli."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import ServerProcess, free_port, require_tool

from .cluster_helpers import THIRDS, A, info_fields, message, poll, three_masters
from .helpers import run

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]
EXPORTER = "/usr/bin/prometheus-redis-exporter"


@pytest.fixture
def demo(server_factory: Factory) -> ServerProcess:
    return server_factory("--demo")


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_parses_cluster_info_nodes_and_slots(demo: ServerProcess, protocol: int) -> None:
    r = redis.Redis(port=demo.port, protocol=protocol)
    info = r.cluster("info")
    assert info["cluster_state"] == "ok"
    assert info["cluster_known_nodes"] == "6" and info["cluster_size"] == "3"
    assert info["cluster_slots_assigned"] == "16384" and info["cluster_slots_ok"] == "16384"
    nodes = r.cluster("nodes")
    myself = nodes.pop(f"127.0.0.1:{demo.port}")
    assert myself["flags"] == "myself,master" and myself["slots"] == []
    assert myself["node_id"] == r.cluster("myid").decode()
    assert len(nodes) == 6
    masters = {addr: n for addr, n in nodes.items() if n["flags"] == "master"}
    replicas = {addr: n for addr, n in nodes.items() if n["flags"] == "slave"}
    assert len(masters) == 3 and len(replicas) == 3
    master_ids = {n["node_id"] for n in masters.values()}
    assert {n["master_id"] for n in replicas.values()} == master_ids
    assert sorted(tuple(map(int, n["slots"][0])) for n in masters.values()) == list(THIRDS)
    assert all(n["connected"] for n in nodes.values())
    slots = r.cluster("slots")
    assert sorted((row[0], row[1]) for row in slots) == list(THIRDS)
    for row in slots:
        host, port, node_id, metadata = row[2]
        assert masters[f"{host.decode()}:{port}"]["node_id"] == node_id.decode()
        assert metadata in ({}, [])
        assert len(row) == 4  # one live replica each
    assert len(r.cluster("myid")) == 40


@pytest.fixture
def self_addressed(server_factory: Factory) -> ServerProcess:
    """Three masters that all announce the server's own address, so a cluster client that
    connects to every node it learns about reaches only clusterwatch."""
    server = server_factory("--node-timeout", "3600000")
    batch = three_masters(host="127.0.0.1", ports=(server.port,) * 6)
    assert redis.Redis(port=server.port).execute_command("BUS", "PUBLISH", *batch) == \
        [b"applied"] * 6
    return server


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_cluster_client_reads_cluster_info(self_addressed: ServerProcess,
                                                    protocol: int) -> None:
    rc = RedisCluster(host="127.0.0.1", port=self_addressed.port, protocol=protocol)
    try:
        assert rc.cluster_info()["cluster_state"] == "ok"
        assert len(rc.cluster_nodes()) == 1  # three node ids, one address
        assert set(rc.cluster_slots()) == set(THIRDS)
        assert rc.cluster_keyslot("foo") == 12182
    finally:
        rc.close()


# --- redis_exporter -------------------------------------------------------------------------


class Exporter:
    def __init__(self, server: ServerProcess, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [require_tool(EXPORTER), "-redis.addr", f"redis://127.0.0.1:{server.port}",
                 "-web.listen-address", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                    timeout=20) as response:
            return str(response.read().decode())

    def metric(self, text: str, name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert match, f"no {name} in scrape:\n{text[:3000]}"
        return float(match.group(1))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[[ServerProcess], Exporter]]:
    started: list[Exporter] = []

    def start(server: ServerProcess) -> Exporter:
        exp = Exporter(server, tmp_path / f"exporter-{len(started)}.log")
        started.append(exp)
        poll(lambda: exp.log.read_text(errors="replace"),
             lambda text: "Providing metrics at" in text or exp.proc.poll() is not None,
             timeout=20, what="exporter start")
        assert exp.proc.poll() is None, exp.log.read_text()
        return exp

    yield start
    for exp in started:
        exp.stop()


def test_exporter_exports_the_models_cluster_metrics(
        demo: ServerProcess, exporter: Callable[[ServerProcess], Exporter]) -> None:
    exp = exporter(demo)
    text = exp.scrape()
    assert exp.metric(text, "redis_up") == 1
    assert exp.metric(text, "redis_cluster_enabled") == 1
    assert exp.metric(text, "redis_cluster_state") == 1
    fields = info_fields(redis.Redis(port=demo.port).execute_command("CLUSTER", "INFO"))
    for name in ("slots_assigned", "slots_ok", "slots_pfail", "slots_fail", "known_nodes",
                 "size", "current_epoch", "my_epoch"):
        assert exp.metric(text, f"redis_cluster_{name}") == float(fields[f"cluster_{name}"])
    assert exp.metric(text, "redis_cluster_slots_assigned") == 16384
    assert exp.metric(text, "redis_cluster_known_nodes") == 6
    assert exp.metric(text, "redis_cluster_size") == 3
    assert exp.metric(text, "redis_cluster_messages_received_total") > 0
    assert "error" not in exp.log.read_text(errors="replace").lower()


def test_exporter_follows_a_cluster_failure(
        server_factory: Factory, exporter: Callable[[ServerProcess], Exporter]) -> None:
    server = server_factory("--node-timeout", "300", "--fail-after", "300")
    redis.Redis(port=server.port).execute_command(
        "BUS", "PUBLISH", message("hello", A, 1, 1, addr="10.0.0.1:7000"),
        message("slots", A, 1, 2, ranges=[[0, 16383]]))
    exp = exporter(server)
    text = poll(exp.scrape, lambda t: "redis_cluster_slots_fail 16384" in t, what="fail")
    assert exp.metric(text, "redis_cluster_state") == 0
    assert exp.metric(text, "redis_cluster_slots_ok") == 0
    assert exp.metric(text, "redis_cluster_known_nodes") == 1


# --- redis-cli ------------------------------------------------------------------------------

# How redis-cli's cluster manager reads a CLUSTER NODES line (clusterManagerNodeLoadInfo):
# space-separated id, ip:port@cport[,hostname], flags, master, ping, pong, epoch, link state,
# then slot ranges; every line, the last included, ends in "\n".
NODE_LINE = re.compile(r"(?P<id>[0-9a-f]{40}) (?P<ip>[^:\s]+):(?P<port>\d+)@(?P<cport>\d+)"
                       r"(,\S+)? (?P<flags>[a-z?,]+) (?P<master>-|[0-9a-f]{40}) \d+ \d+ \d+ "
                       r"(connected|disconnected)(?P<slots>( \d+(-\d+)?)*)")


def test_redis_cli_cluster_nodes_text_is_in_the_cluster_tools_format(demo: ServerProcess) -> None:
    cli = require_tool("redis-cli")
    result = run([cli, "-p", str(demo.port), "CLUSTER", "NODES"])
    assert result.returncode == 0, result.stderr
    raw = redis.Redis(port=demo.port).execute_command("CLUSTER", "NODES")
    assert raw.endswith(b"\n") and b"\r" not in raw
    assert raw.count(b"\n") == 7  # six monitored nodes and clusterwatch's myself line
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    assert sum("myself" in line for line in lines) == 1
    matches = [NODE_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    slots = sum(int(b) - int(a) + 1 for m in matches if m for r in m["slots"].split()
                for a, _, b in [r.partition("-")] if b)
    assert slots == 16384
    resp3 = run([cli, "-3", "-p", str(demo.port), "CLUSTER", "INFO"])
    assert resp3.returncode == 0 and resp3.stdout.startswith("cluster_state:ok")


def test_redis_cli_cluster_info_parses_our_nodes(demo: ServerProcess) -> None:
    """``redis-cli --cluster info`` checks INFO for cluster_enabled:1, parses CLUSTER NODES and
    connects to every node listed. The demo's nodes are simulated (nothing listens on their
    ports), so it reports each unreachable address, drops it, and ends with clusterwatch's
    own slot-less ``myself`` master: proof that it parsed all seven lines."""
    cli = require_tool("redis-cli")
    addrs = {f"{m['ip']}:{m['port']}" for line in redis.Redis(port=demo.port).execute_command(
        "CLUSTER", "NODES").decode().splitlines()
        if (m := NODE_LINE.fullmatch(line)) and "myself" not in line}
    result = run([cli, "--cluster", "info", f"127.0.0.1:{demo.port}"], timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is not configured as a cluster node" not in output
    tried = set(re.findall(r"Could not connect to Redis at (\S+): Connection refused", output))
    assert tried == addrs and len(addrs) == 6
    assert "[OK] 0 keys in 1 masters." in output


def test_redis_cli_cluster_check_runs_through_clusterwatch(demo: ServerProcess) -> None:
    """``redis-cli --cluster check`` needs a ``myself`` line (without one redis-cli 7.0
    crashes with SIGSEGV). With clusterwatch's slot-less line it runs the whole check: the
    slot configuration agrees, and since the demo's nodes are simulated it cannot reach
    them and reports the slots as uncovered, exiting 1."""
    cli = require_tool("redis-cli")
    result = run([cli, "--cluster", "check", f"127.0.0.1:{demo.port}"], timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, (result.returncode, output)
    assert "Performing Cluster Check" in output
    assert "All nodes agree about slots configuration" in output
    assert "Not all 16384 slots are covered by nodes" in output

