"""The tools that feed the bus: the simulator (pure, then as `clusterwatch simulate`), the
agent sidecar, and `serve --demo`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from clusterwatch.agent.respclient import RespClient
from clusterwatch.agent.sidecar import Agent, AgentConfig
from clusterwatch.agent.simulate import Fault, Simulation, parse_fault, parse_script
from clusterwatch.cluster import ClusterModel, ModelConfig, decode_message
from clusterwatch.cluster.ids import derive_id
from tests.conftest import ROOT, ServerProcess, free_port, raw_exchange

from .cluster_helpers import info_fields, node_flags, poll

Factory = Callable[..., ServerProcess]
T0 = 1_700_000_000_000


# --- the simulation itself, driven by hand ----------------------------------------------------


class Clocked:
    """A simulation applied to a model, with one hand-driven clock for both."""

    def __init__(self, sim: Simulation, timeout_ms: int = 1000, fail_after_ms: int = 3_600_000):
        self.sim = sim
        self.model = ClusterModel(ModelConfig(node_timeout_ms=timeout_ms,
                                              fail_after_ms=fail_after_ms))
        self.t = 0.0
        self.apply(sim.initial())

    def apply(self, batch: list[bytes]) -> None:
        for data in batch:
            outcome = self.model.publish(data, T0 + int(self.t * 1000))
            assert outcome.kind == "applied", (outcome, data)

    def run_until(self, t: float, step: float = 0.05) -> None:
        while self.t < t:
            self.t = round(self.t + step, 6)
            self.apply(self.sim.step(self.t))

    def info(self) -> dict[str, str]:
        return info_fields(self.model.cluster_info_text(T0 + int(self.t * 1000)))

    def flags(self) -> dict[str, str]:
        return node_flags(self.model.cluster_nodes_text(T0 + int(self.t * 1000)))


def seq_clock() -> Callable[[], int]:
    counter = iter(range(1, 10**9))
    return lambda: next(counter)


def make(faults: str = "", **kwargs: object) -> Simulation:
    return Simulation(faults=parse_script(faults), seq_clock=seq_clock(),  # type: ignore[arg-type]
                      **kwargs)


def test_parse_faults() -> None:
    assert parse_fault("stop m1 at 5") == Fault("stop", 5.0, ("m1",))
    assert parse_fault("  partition m1,m2r1  at 500ms for 2s ") == \
        Fault("partition", 0.5, ("m1", "m2r1"), duration=2.0)
    assert parse_fault("migrate 0-99,200 from m1 to m2 at 3") == \
        Fault("migrate", 3.0, ("m1", "m2"), slots=((0, 99), (200, 200)))
    assert parse_fault("failover m2 at 1.5").kind == "failover"
    for bad in ("stop m1", "explode m1 at 3", "migrate 0-99999 from m1 to m2 at 1",
                "partition m1 at 3"):
        with pytest.raises(ValueError):
            parse_fault(bad)
    assert parse_script("# comment\n\nstop m1 at 1  # trailing\nresume m1 at 2\n") == [
        Fault("stop", 1.0, ("m1",)), Fault("resume", 2.0, ("m1",))]
    with pytest.raises(ValueError, match="line 2"):
        parse_script("stop m1 at 1\nstop m1 at soon\n")
    with pytest.raises(ValueError, match="unknown node"):
        make("stop m9 at 1")
    with pytest.raises(ValueError, match="not a master"):
        make("failover m1r1 at 1")


def test_initial_state_is_a_healthy_cluster_split_like_redis_cli() -> None:
    run = Clocked(make(masters=3, replicas=1))
    info = run.info()
    assert (info["cluster_state"], info["cluster_known_nodes"], info["cluster_size"]) == \
        ("ok", "6", "3")
    assert info["cluster_current_epoch"] == "3"
    rows = run.model.cluster_slots(T0)
    assert [(r.start, r.end) for r in rows] == [(0, 5460), (5461, 10922), (10923, 16383)]
    assert all(len(r.replicas) == 1 for r in rows)
    assert rows[0].master.id == derive_id("127.0.0.1", 30001, scope="clusterwatch-simulate")
    node = run.model.node(rows[0].master.id)
    assert node is not None and node.heartbeat is not None
    assert node.heartbeat.services and node.heartbeat.partitions
    run.run_until(10)  # heartbeats keep everyone alive
    assert run.info()["cluster_slots_ok"] == "16384"
    assert all(flag in ("master", "slave") for flag in run.flags().values())


def test_many_masters_cover_every_slot() -> None:
    run = Clocked(make(masters=100, replicas=0))
    info = run.info()
    assert (info["cluster_slots_assigned"], info["cluster_size"]) == ("16384", "100")


def test_stop_then_reports_fail_the_master_and_resume_clears_it() -> None:
    sim = make("stop m1 at 1\nresume m1 at 8", rate=5, node_timeout_ms=1000)
    run = Clocked(sim, timeout_ms=1000)
    m1 = sim.node("m1").id
    run.run_until(2.5)  # silent for 1.5 s: pfail, and the other masters report it
    assert run.flags()[m1] == "master,fail"
    assert run.model.count_failure_reports(m1, T0 + 2500) == 2
    assert run.info()["cluster_state"] == "fail"
    run.run_until(8.5)
    assert run.flags()[m1] == "master" and run.info()["cluster_state"] == "ok"


def test_failover_moves_slots_with_a_higher_epoch() -> None:
    sim = make("stop m1 at 1\nfailover m1 at 3\nresume m1 at 5", rate=5,
               node_timeout_ms=1000)
    run = Clocked(sim, timeout_ms=1000)
    m1, m1r1 = sim.node("m1").id, sim.node("m1r1").id
    run.run_until(2.9)
    assert run.info()["cluster_state"] == "fail"
    run.run_until(3.5)
    info = run.info()
    assert (info["cluster_state"], info["cluster_current_epoch"]) == ("ok", "4")
    assert run.model.cluster_slots(T0 + 3500)[0].master.id == m1r1
    run.run_until(6)  # the old master comes back as a replica of the new one
    old = run.model.node(m1)
    assert old is not None and old.role == "replica" and old.replicaof == m1r1
    assert run.flags()[m1] == "slave"


def test_partition_and_migration() -> None:
    sim = make("partition m2,m2r1 at 1 for 3\nmigrate 0-99 from m1 to m3 at 2", rate=5,
               node_timeout_ms=1000)
    run = Clocked(sim, timeout_ms=1000)
    m2, m3 = sim.node("m2").id, sim.node("m3").id
    run.run_until(3)
    assert run.flags()[m2] == "master,fail"
    rows = run.model.cluster_slots(T0 + 3000)
    assert (rows[0].start, rows[0].end, rows[0].master.id) == (0, 99, m3)
    assert run.info()["cluster_current_epoch"] == "4"
    run.run_until(5)
    info = run.info()
    assert (info["cluster_state"], info["cluster_slots_ok"]) == ("ok", "16384")
    assert run.flags()[m2] == "master"


def test_leave_removes_the_node() -> None:
    sim = make("leave m3r1 at 1")
    run = Clocked(sim)
    run.run_until(1.5)
    assert run.info()["cluster_known_nodes"] == "5"
    assert run.model.node(sim.node("m3r1").id) is None


# --- as processes -----------------------------------------------------------------------------


@pytest.fixture
def tool(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m clusterwatch <args>`; every process is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"tool-{len(started)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "clusterwatch", *args], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        proc.log_path = Path(log.name)  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tool_log(proc: subprocess.Popen[bytes]) -> str:
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def cluster_info(server: ServerProcess) -> dict[str, str]:
    return info_fields(redis.Redis(port=server.port).execute_command("CLUSTER", "INFO"))


@pytest.mark.integration
def test_simulate_makes_a_healthy_cluster_and_a_scripted_stop_fails_it(
        server_factory: Factory, tool: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    server = server_factory("--node-timeout", "1000", "--fail-after", "3600000")
    script = tmp_path / "faults.txt"
    script.write_text("# m1 goes silent; m2 and m3 report it after their node timeout\n"
                      "stop m1 at 5\n")
    sim = tool("simulate", "--server", f"127.0.0.1:{server.port}", "--rate", "10",
               "--node-timeout", "1000", "--script", str(script), "--duration", "120")
    info = poll(lambda: cluster_info(server),
                lambda f: f["cluster_known_nodes"] == "6" and f["cluster_state"] == "ok",
                what="simulated cluster ok")
    assert (info["cluster_size"], info["cluster_slots_ok"]) == ("3", "16384")
    info = poll(lambda: cluster_info(server), lambda f: f["cluster_state"] == "fail",
                what="cluster fail after the stop")
    assert info["cluster_slots_fail"] in ("5461", "0") and sim.poll() is None
    poll(lambda: cluster_info(server), lambda f: f["cluster_slots_fail"] == "5461",
         what="m1's slots fail")
    flags = node_flags(redis.Redis(port=server.port).execute_command("CLUSTER", "NODES"))
    assert sorted(flags.values()).count("master,fail") == 1
    assert "rejected" not in tool_log(sim)


@pytest.mark.integration
def test_simulate_once_and_list(server: ServerProcess,
                                tool: Callable[..., subprocess.Popen[bytes]]) -> None:
    listing = tool("simulate", "--masters", "2", "--replicas", "2", "--list")
    assert listing.wait(30) == 0
    lines = tool_log(listing).splitlines()
    assert [line.split()[0] for line in lines] == ["m1", "m1r1", "m1r2", "m2", "m2r1", "m2r2"]
    once = tool("simulate", "--server", f"127.0.0.1:{server.port}", "--masters", "2",
                "--replicas", "2", "--once")
    assert once.wait(30) == 0, tool_log(once)
    info = cluster_info(server)
    assert (info["cluster_known_nodes"], info["cluster_state"]) == ("6", "ok")
    bad = tool("simulate", "--fault", "stop m7 at 1")
    assert bad.wait(30) == 2 and "unknown node" in tool_log(bad)


@pytest.mark.integration
def test_agent_registers_a_node_with_status_from_file_command_and_flags(
        server: ServerProcess, tool: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"node_state": "WAITING", "serving": False,
                                  "services": {"db": {"state": "running"}}}))
    agent = tool("agent", "--server", f"127.0.0.1:{server.port}", "--addr", "10.1.2.3:6379",
                 "--slots", "0-16383", "--interval", "0.05", "--status-file", str(status),
                 "--status-command", "echo '{\"transaction_id\": \"tx-9\"}'",
                 "--node-state", "RUNNING", "--count", "5")
    assert agent.wait(60) == 0, tool_log(agent)
    node_id = derive_id("10.1.2.3", 6379)
    r = redis.Redis(port=server.port)
    lines = [line for line in r.execute_command("CLUSTER", "NODES").decode().splitlines()
             if "myself" not in line]
    assert len(lines) == 1
    fields = lines[0].split(" ")
    assert fields[:3] == [node_id, "10.1.2.3:6379@16379", "master"] and fields[-1] == "0-16383"
    info = info_fields(r.execute_command("CLUSTER", "INFO"))
    assert info["cluster_state"] == "ok"
    assert info["cluster_stats_messages_heartbeat_received"] == "5"
    bus = r.execute_command("BUS", "INFO")  # a dict: redis-py 8 speaks RESP3
    assert bus[b"rejected"] == 0 and bus[b"stale"] == 0
    assert "registered" in tool_log(agent)


async def test_agent_heartbeat_fields_precedence(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"node_state": "WAITING", "serving": False, "seq": 5,
                                  "transaction_id": "from-file"}))
    config = AgentConfig(node_id="n1", addr="10.0.0.1:7000", status_file=str(status),
                         status_command="echo '{\"transaction_id\": \"from-command\"}'",
                         fields={"node_state": "RUNNING"}, slots=[[0, 99]])
    agent = Agent(config, RespClient("127.0.0.1", 1))
    beat = msgspec.json.decode(await agent.heartbeat())
    assert beat["type"] == "heartbeat" and beat["node"] == "n1" and beat["seq"] > 5
    assert (beat["node_state"], beat["serving"], beat["transaction_id"]) == \
        ("RUNNING", False, "from-command")
    decode_message(await agent.heartbeat(), max_size=65536)  # valid schema v1
    first, second = (msgspec.json.decode(m) for m in agent.hello_batch())
    assert (first["type"], second["type"], second["ranges"]) == ("hello", "slots", [[0, 99]])
    assert second["seq"] > first["seq"] > beat["seq"]


@pytest.mark.integration
def test_agent_keeps_beating_when_its_status_source_breaks(
        server: ServerProcess, tool: Callable[..., subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text("{not json")
    agent = tool("agent", "--server", f"127.0.0.1:{server.port}", "--addr", "10.9.9.9:7000",
                 "--node-id", "custom-node-1", "--interval", "0.05", "--status-file",
                 str(status), "--count", "3")
    assert agent.wait(60) == 0, tool_log(agent)
    text = redis.Redis(port=server.port).execute_command("CLUSTER", "NODES").decode()
    assert "\ncustom-node-1 10.9.9.9:7000@17000 master" in text  # after clusterwatch's line
    assert "status unavailable" in tool_log(agent) and "not JSON" in tool_log(agent)


@pytest.mark.integration
def test_agent_reregisters_after_the_server_restarts(
        server_factory: Factory, tool: Callable[..., subprocess.Popen[bytes]]) -> None:
    port = free_port()
    first = server_factory("--port", str(port))
    agent = tool("agent", "--server", f"127.0.0.1:{port}", "--addr", "10.7.7.7:6379",
                 "--interval", "0.1")
    node_id = derive_id("10.7.7.7", 6379).encode()
    nodes = lambda: redis.Redis(port=port).execute_command("CLUSTER", "NODES")  # noqa: E731
    poll(nodes, lambda text: b"\n" + node_id + b" " in text, what="registered")
    first.stop()
    second = server_factory("--port", str(port))
    assert cluster_info(second)["cluster_known_nodes"] in ("0", "1")
    text = poll(nodes, lambda t: b"\n" + node_id + b" " in t and b"@16379 master" in t,
                what="registered again")
    assert b"noaddr" not in text  # the hello came again, not only heartbeats
    assert agent.poll() is None
    assert "server unreachable, retrying" in tool_log(agent)


@pytest.mark.integration
def test_serve_demo_answers_cluster_state_ok_at_once(server_factory: Factory) -> None:
    demo = server_factory("--demo")
    # The very first request, as soon as the server listens.
    reply = raw_exchange(demo.port, b"CLUSTER INFO\r\n", timeout=10.0)
    assert reply.startswith(b"$") and b"\r\ncluster_state:ok\r\n" in reply
    assert b"cluster_known_nodes:6\r\n" in reply and b"cluster_size:3\r\n" in reply
    assert "demo cluster running" in demo.logs()
