"""The Redis-stream bus against a real redis-server: several instances hold one model.

Each test starts its own redis-server and clusterwatch instances with ``--bus redis://...``.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from clusterwatch.agent.simulate import Simulation, parse_script
from tests.conftest import ROOT, ServerProcess, free_port, require_tool, start_server

from .cluster_helpers import A, poll, three_masters
from .helpers import read_until_closed
from .redis_procs import (
    RedisProcess,
    agreed_views,
    bus_info,
    bus_redis,  # noqa: F401  (fixture)
    connect,
    info_cluster,
    published_ids,
    redis_factory,  # noqa: F401  (fixture)
)
from .test_bus_publish import BAD_MESSAGES

pytestmark = pytest.mark.integration

Instances = Callable[..., list[ServerProcess]]
STREAM = "clusterwatch:bus"


@pytest.fixture
def instances(tmp_path: Path, bus_redis: RedisProcess) -> Iterator[Instances]:  # noqa: F811
    """Start clusterwatch instances on ``bus_redis``; all stopped at the end."""
    started: list[ServerProcess] = []

    def start(count: int, *args: str) -> list[ServerProcess]:
        new = [start_server(tmp_path, "--bus", bus_redis.url, "--node-timeout", "5000",
                            *args) for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for server in started:
        server.stop()


def wait_ready(server: ServerProcess, timeout: float = 30.0) -> None:
    """Started: listening, and the replay of the bus done (READY also needs nodes)."""
    poll(lambda: probe(server, "STARTUP"), lambda status: status == "UP", timeout=timeout)


def simulation(faults: str = "", rate: float = 20) -> Simulation:
    return Simulation(masters=3, replicas=1, rate=rate, faults=parse_script(faults),
                      node_timeout_ms=5000, seq_clock=itertools.count(1).__next__)


def probe(server: ServerProcess, which: str) -> str:
    """The probe's status word: UP, or the first word of the error (DOWN ...)."""
    try:
        return str(connect(server).execute_command("HEALTH", which).decode())
    except redis.ResponseError as exc:
        return str(exc).split()[0]


def publish(server: ServerProcess, batch: list[bytes]) -> list[bytes]:
    replies = connect(server).execute_command("BUS", "PUBLISH", *batch)
    assert all(reply == b"applied" for reply in replies), replies
    return list(replies)


def test_three_instances_hold_one_model_through_a_failover(instances: Instances) -> None:
    servers = instances(3)
    for server in servers:
        wait_ready(server)
    script = "failover m1 at 1\nmigrate 0-99 from m2 to m3 at 2\nleave m3r1 at 3"
    sim = simulation(script, rate=4)
    publish(servers[0], sim.initial())
    first = agreed_views(servers)
    assert b"cluster_state:ok" in first[0]
    seen = [first]
    for step, t in enumerate((0.5, 1.0, 1.5, 2.0, 2.5, 3.0)):
        batch = sim.step(t)
        if batch:
            publish(servers[step % 3], batch)  # through every instance in turn
        seen.append(agreed_views(servers))
    # The steps happened: the failover moved slots 0-5460, the replica left.
    assert seen[-1] != first
    assert seen[-1][0].count(b"cluster_known_nodes:5") == 1
    assert b"cluster_current_epoch:4" in seen[-1][0]


def test_the_bundled_simulator_and_agent_publish_through_any_instance(
        instances: Instances, tmp_path: Path) -> None:
    servers = instances(3)
    for server in servers:
        wait_ready(server)
    tool = [sys.executable, "-m", "clusterwatch"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    simulate = subprocess.run([*tool, "simulate", "--server", f"127.0.0.1:{servers[0].port}",
                               "--once"], env=env, capture_output=True, timeout=60, check=False)
    assert simulate.returncode == 0, simulate.stderr
    agent = subprocess.run([*tool, "agent", "--server", f"127.0.0.1:{servers[1].port}",
                            "--addr", "10.7.7.7:6379", "--count", "2", "--interval", "0.1"],
                           env=env, capture_output=True, timeout=60, check=False)
    assert agent.returncode == 0, agent.stderr
    assert b"rejected" not in agent.stderr and b"stale" not in agent.stderr
    nodes = poll(lambda: connect(servers[2]).execute_command("CLUSTER", "NODES"),
                 lambda text: b"10.7.7.7:6379" in text)
    assert nodes.count(b"\n") == 1 + 6 + 1  # myself, the simulated six, the agent's node
    assert b"cluster_state:ok" in connect(servers[2]).execute_command("CLUSTER", "INFO")


def test_bus_info_and_info_cluster_name_the_bus(instances: Instances,
                                                bus_redis: RedisProcess) -> None:  # noqa: F811
    [server] = instances(1, "--bus-stream", "cw:test")
    wait_ready(server)
    publish(server, three_masters())
    info = poll(lambda: bus_info(server), lambda i: i["bus_length"] >= 6)
    assert info["bus"] == b"redis-stream"
    assert info["bus_address"] == bus_redis.url.encode()
    assert info["bus_stream"] == b"cw:test"
    assert info["bus_state"] == b"up"
    assert info["bus_lag_entries"] >= 0 and info["bus_lag_ms"] >= 0
    assert info["bus_last_id"] != b"0-0"
    fields = info_cluster(server)
    assert fields["clusterwatch_bus"] == "redis-stream"
    assert fields["clusterwatch_bus_stream"] == "cw:test"
    assert bus_redis.client().xlen("cw:test") >= 6


def test_password_is_not_shown(redis_factory: Callable[..., RedisProcess],  # noqa: F811
                               tmp_path: Path) -> None:
    protected = redis_factory("--requirepass", "s3cret")
    url = f"redis://default:s3cret@127.0.0.1:{protected.port}/0"
    server = start_server(tmp_path, "--bus", url)
    try:
        wait_ready(server)
        info = bus_info(server)
        assert info["bus_address"] == f"redis://default@127.0.0.1:{protected.port}/0".encode()
        assert b"s3cret" not in connect(server).execute_command("INFO", "cluster")
        publish(server, three_masters())
    finally:
        server.stop()


def test_rediss_bus_over_tls(redis_factory: Callable[..., RedisProcess],  # noqa: F811
                             tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   capture_output=True, check=True, timeout=60)
    tls_port = free_port()
    secure = redis_factory("--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                           "--tls-auth-clients", "no")
    url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
    server = start_server(tmp_path, "--bus", url)
    try:
        wait_ready(server)
        publish(server, three_masters())
        assert bus_info(server)["bus_address"] == url.encode()
        assert len(published_ids(secure.client())) == 6  # read back over the plain port
    finally:
        server.stop()


@pytest.mark.parametrize(("data", "code", "text"), BAD_MESSAGES)
def test_bad_messages_get_the_memory_bus_errors_and_are_never_appended(
        instances: Instances, bus_redis: RedisProcess,  # noqa: F811
        data: bytes, code: str, text: str) -> None:
    [server] = instances(1, "--max-message-size", "512")
    wait_ready(server)
    r = connect(server)
    good = three_masters()
    [before, reply, after] = r.execute_command("BUS", "PUBLISH", good[0], data, good[1])
    assert (before, after) == (b"applied", b"applied")
    assert isinstance(reply, redis.ResponseError)
    assert str(reply).startswith(f"invalid message: {text}"), str(reply)
    assert published_ids(bus_redis.client()) == [good[0], good[1]]
    rejected = bus_info(server)["rejected_by_reason"]
    assert dict(zip(rejected[::2], rejected[1::2], strict=True))[code.encode()] == 1


def test_a_foreign_entry_is_counted_and_skipped(instances: Instances,
                                                bus_redis: RedisProcess) -> None:  # noqa: F811
    [server] = instances(1)
    wait_ready(server)
    client = bus_redis.client()
    client.xadd(STREAM, {"something": "else"})
    client.xadd(STREAM, {"m": "{not json"})
    publish(server, three_masters())
    info = poll(lambda: bus_info(server), lambda i: i["bus_foreign_entries"] == 1)
    assert info["applied"] == 6
    rejected = dict(zip(info["rejected_by_reason"][::2], info["rejected_by_reason"][1::2],
                        strict=True))
    assert rejected[b"json"] == 1
    assert b"cluster_known_nodes:3" in connect(server).execute_command("CLUSTER", "INFO")


def test_requests_pipelined_behind_a_publish_wait_for_its_reply(instances: Instances) -> None:
    [server] = instances(1)
    wait_ready(server)
    hello = three_masters()[0]
    frames = [b"BUS", b"PUBLISH", hello]
    request = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in frames)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + b"PING\r\n" + request + b"QUIT\r\n")
        data, closed = read_until_closed(sock, 10)
    assert closed
    assert data == b"*1\r\n+applied\r\n+PONG\r\n*1\r\n+stale: have epoch 1 seq 1\r\n+OK\r\n"


def test_publish_inside_multi_is_refused_not_hung(instances: Instances) -> None:
    [server] = instances(1)
    wait_ready(server)
    r = connect(server)
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("BUS", "PUBLISH", three_masters()[0])
    pipe.execute_command("PING")
    with pytest.raises(redis.ResponseError, match="cannot run inside MULTI"):
        pipe.execute()
    assert r.ping()


def test_kill_9_during_publishes_then_restart_replays_before_ready(
        instances: Instances, bus_redis: RedisProcess, tmp_path: Path) -> None:  # noqa: F811
    servers = instances(3, "--bus-snapshot-interval", "600000")
    for server in servers:
        wait_ready(server)
    sim = simulation()
    publish(servers[0], sim.initial())
    # Enough history that the replay takes a while: heartbeats straight into the stream.
    client = bus_redis.client()
    t = 0.0
    for _ in range(10):
        pipe = client.pipeline(transaction=False)
        for _ in range(1000):
            t += 0.05
            for message in sim.step(t):
                pipe.xadd(STREAM, {"m": message})
        pipe.execute()
    victim = servers[2]
    for step in range(20):  # publishes keep coming while one instance dies
        t += 0.05
        publish(servers[step % 2], sim.step(t))
        if step == 10:
            victim.stop(9)
    assert victim.proc.returncode == -9
    entries = client.xlen(STREAM)
    assert entries > 60_000
    reborn = start_server(tmp_path, *victim.args)
    try:
        assert (probe(reborn, "STARTUP"), probe(reborn, "READY")) == ("DOWN", "DOWN")
        # The first READY that is UP comes after every entry there was at the restart.
        poll(lambda: probe(reborn, "READY"), lambda status: status == "UP", timeout=60)
        assert bus_info(reborn)["bus_entries_read"] >= entries
        assert probe(reborn, "STARTUP") == "UP"
        assert agreed_views([servers[0], servers[1], reborn])
    finally:
        reborn.stop()


def test_trimmed_stream_then_restart_rebuilds_the_same_model(
        instances: Instances, bus_redis: RedisProcess, tmp_path: Path) -> None:  # noqa: F811
    servers = instances(2, "--bus-maxlen", "100", "--bus-snapshot-interval", "200")
    for server in servers:
        wait_ready(server)
    sim = simulation()
    publish(servers[0], sim.initial())
    lone = three_masters(host="10.9.9.9")[0]  # says hello once, never again
    publish(servers[1], [lone])
    t = 0.0
    for step in range(60):  # 60 x 8 heartbeats: the hellos are long trimmed away
        t += 0.05
        publish(servers[step % 2], sim.step(t))
    client = bus_redis.client()
    assert client.xlen(STREAM) < 400
    assert lone not in published_ids(client) and sim.initial()[0] not in published_ids(client)
    poll(lambda: bus_info(servers[0]), lambda i: i["bus_snapshots_written"] >= 1)
    client.xtrim(STREAM, maxlen=100, approximate=False)
    expected = agreed_views(servers)
    servers[1].stop(9)
    reborn = start_server(tmp_path, *servers[1].args)
    try:
        wait_ready(reborn)
        assert agreed_views([servers[0], reborn]) == expected
        assert bus_info(reborn)["bus_lost_entries"] == 0
        assert A.encode() in connect(reborn).execute_command("CLUSTER", "NODES")
    finally:
        reborn.stop()


def test_retention_by_age_trims_with_minid(instances: Instances,
                                           bus_redis: RedisProcess) -> None:  # noqa: F811
    # Node A's heartbeats alone (no hello): the rule before --require-hello.
    [server] = instances(1, "--bus-retention-ms", "400", "--bus-snapshot-interval", "200",
                         "--require-hello", "no")
    wait_ready(server)
    beats = [json.dumps({"v": 1, "type": "heartbeat", "node": A, "epoch": 1, "seq": seq})
             .encode() for seq in range(1, 301)]
    publish(server, beats[:200])  # XADD's "~" trims whole stream nodes of 100 entries
    client = bus_redis.client()
    first = client.xrange(STREAM, count=1)[0][0]
    time.sleep(0.6)
    publish(server, beats[200:])
    assert client.xrange(STREAM, count=1)[0][0] != first  # older entries trimmed
    assert client.xlen(STREAM) < 300
    assert json.loads(client.xrange(STREAM)[-1][1][b"m"])["seq"] == 300
