"""The agent reading real Redis nodes: a Redis Cluster of 3 masters and 3 replicas on
loopback, one agent per node, and clusterwatch's answers against the cluster's own, at
steady state, after a master is killed and its replica promoted, and after a replica is
killed; and a standalone Redis with a replica."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from clusterwatch.agent.sources.redis import parse_myself
from clusterwatch.cluster.ids import derive_id
from tests.conftest import ServerProcess, require_tool, start_server

from .real_cluster import Agents, info_of, nodes_of, side_by_side
from .redis_procs import RedisProcess, bus_info, connect, redis_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, as Redis needs."""
    for _ in range(200):
        port = random.randrange(20000, 55000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


def clusterwatch_nodes(server: ServerProcess) -> dict[str, tuple[str, ...]]:
    text = connect(server).execute_command("CLUSTER", "NODES").decode()
    return nodes_of("\n".join(line for line in text.splitlines() if "myself" not in line))


def both_views(live: list[RedisProcess], server: ServerProcess) -> tuple[
        dict[str, str], dict[str, tuple[str, ...]], dict[str, str], dict[str, tuple[str, ...]]]:
    """CLUSTER INFO fields and node table as a live master sees them, then as
    clusterwatch does."""
    master = next(n for n in live if n.client().info("replication")["role"] == "master")
    client = master.client(decode_responses=True)
    return (info_of(client.execute_command("CLUSTER", "INFO")),
            nodes_of(client.execute_command("CLUSTER", "NODES")),
            info_of(connect(server).execute_command("CLUSTER", "INFO").decode()),
            clusterwatch_nodes(server))


def agree(cluster: list[RedisProcess], server: ServerProcess, *, timeout: float = 30.0) -> None:
    """Poll until clusterwatch's CLUSTER INFO fields and node table equal the real cluster's
    (as a live master sees it); print both side by side if they never do."""
    deadline = time.monotonic() + timeout
    real_info = ours_info = {}
    real_nodes = ours_nodes = {}
    while time.monotonic() < deadline:
        live = [n for n in cluster if n.proc is not None and n.proc.poll() is None]
        real_info, real_nodes, ours_info, ours_nodes = both_views(live, server)
        settled = all(state[4] != "fail?" for state in real_nodes.values())
        if settled and real_info == ours_info and real_nodes == ours_nodes:
            return
        time.sleep(0.1)
    raise AssertionError(f"clusterwatch never matched the cluster:\n"
                         f"real {real_info}\nours {ours_info}\n"
                         f"{side_by_side(real_nodes, ours_nodes)}")


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    running = Agents(tmp_path)
    yield running.start
    running.stop()


def start_cluster(redis_factory: Callable[..., RedisProcess]) -> list[RedisProcess]:  # noqa: F811
    """A Redis Cluster of 3 masters and 3 replicas (node timeout 1 s), state ok."""
    cli = require_tool("redis-cli")
    cluster = [redis_factory("--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                             "--appendonly", "no", name=f"node{i}", port=cluster_port())
               for i in range(6)]
    create = subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster),
         "--cluster-replicas", "1", "--cluster-yes"],
        capture_output=True, text=True, timeout=60, check=False)
    assert create.returncode == 0, create.stdout + create.stderr
    for node in cluster:
        deadline = time.monotonic() + 30
        while b"cluster_state:ok" not in node.client().execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the Redis cluster never became ok"
            time.sleep(0.1)
    return cluster


def watched_cluster(redis_factory: Callable[..., RedisProcess],  # noqa: F811
                    agents: Callable[..., subprocess.Popen[bytes]],
                    tmp_path: Path) -> tuple[list[RedisProcess], ServerProcess]:
    """A real 3+3 cluster, a server with a 1 s node timeout, and an agent per node."""
    cluster = start_cluster(redis_factory)
    server = start_server(tmp_path, "--node-timeout", "1000")
    for node in cluster:
        agents("--server", f"127.0.0.1:{server.port}", "--source",
               f"redis://127.0.0.1:{node.port}", "--interval", "0.1")
    return cluster, server


def test_a_redis_cluster_as_clusterwatch_sees_it(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    cluster, server = watched_cluster(redis_factory, agents, tmp_path)
    try:
        agree(cluster, server)

        # A master dies; its replica is promoted at a new epoch with its slots.
        victim = next(n for n in cluster if n.client().info("replication")["role"] == "master")
        victim.stop(signal.SIGKILL)
        agree(cluster, server, timeout=60)

        # A replica dies.
        replica = next(n for n in cluster if n.proc is not None and n.proc.poll() is None
                       and n.client().info("replication")["role"] == "slave")
        replica.stop(signal.SIGKILL)
        agree(cluster, server, timeout=60)
    finally:
        server.stop()


def test_losing_two_of_three_masters_and_their_replicas_keeps_them_fail_maybe(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    """Issue 12: no majority of masters is left to agree on FAIL, so the survivors keep the
    lost nodes `fail?` forever; clusterwatch (default `--fail-rule auto`, which the agents'
    fail reports turn to `redis`) must say the same, and its current epoch must be Redis's."""
    cluster, server = watched_cluster(redis_factory, agents, tmp_path)
    try:
        agree(cluster, server)  # includes cluster_current_epoch (6 after --cluster create)
        real_epoch = info_of(cluster[0].client(decode_responses=True)
                             .execute_command("CLUSTER", "INFO"))["cluster_current_epoch"]
        assert int(real_epoch) >= 6

        by_id = {n.client(decode_responses=True).execute_command("CLUSTER", "MYID"): n
                 for n in cluster}
        table = nodes_of(cluster[0].client(decode_responses=True)
                         .execute_command("CLUSTER", "NODES"))
        masters = sorted(node for node, row in table.items() if row[0] == "master")
        lost = set(masters[:2])
        lost |= {node for node, row in table.items() if row[0] == "slave" and row[1] in lost}
        assert len(lost) == 4
        for node in lost:
            by_id[node].stop(signal.SIGKILL)
        survivors = [by_id[node] for node in by_id if node not in lost]

        # Steady state: both sides agree, and keep agreeing well past the timer's fail-after
        # (pfail at 1 s + 2 s): 5 s of consecutive matches.
        deadline = time.monotonic() + 60
        matched_since: float | None = None
        real_info = ours_info = {}
        real_nodes = ours_nodes = {}
        while True:
            real_info, real_nodes, ours_info, ours_nodes = both_views(survivors, server)
            settled = all(real_nodes[node][4] == "fail?" for node in lost)
            now = time.monotonic()
            if settled and real_info == ours_info and real_nodes == ours_nodes:
                matched_since = matched_since or now
                if now - matched_since >= 5.0:
                    break
            else:
                matched_since = None
            assert now < deadline, (f"clusterwatch never matched the cluster:\n"
                                    f"real {real_info}\nours {ours_info}\n"
                                    f"{side_by_side(real_nodes, ours_nodes)}")
            time.sleep(0.1)
        # 10922 or 10923 slots pfail (which two masters were killed), none fail.
        lost_slots = 16384 - int(ours_info["cluster_slots_ok"])
        assert lost_slots in (10922, 10923)
        assert (ours_info["cluster_state"], ours_info["cluster_slots_pfail"],
                ours_info["cluster_slots_fail"]) == ("fail", str(lost_slots), "0")
        assert all(ours_nodes[node][4] == "fail?" for node in lost)
        assert ours_info["cluster_current_epoch"] == real_info["cluster_current_epoch"]
        bus = bus_info(server)
        assert (bus["fail_rule"], bus["fail_rule_setting"]) == (b"redis", b"auto")
    finally:
        server.stop()


def test_standalone_redis_with_a_replica(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    master = redis_factory(name="master")
    replica = redis_factory("--replicaof", "127.0.0.1", str(master.port), name="replica")
    server = start_server(tmp_path, "--node-timeout", "1000")
    try:
        for node in (master, replica):
            agents("--server", f"127.0.0.1:{server.port}", "--source",
                   f"redis://127.0.0.1:{node.port}", "--interval", "0.1")
        r = connect(server, protocol=3)

        def redis_service(node: str) -> dict[bytes, object]:
            entry = r.execute_command("STATUS", "SERVICE", f"{node}/redis", "LEVEL", "debug")
            return dict(entry)

        replica_id = derive_id("127.0.0.1", replica.port)
        master_id = derive_id("127.0.0.1", master.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                entry = redis_service(replica_id)
                status = entry[b"status"]
                if entry[b"state"] == b"running" and status[b"master_link_status"] == b"up":
                    break
            except redis.ResponseError:
                pass
            assert time.monotonic() < deadline, "the replica's status never showed"
            time.sleep(0.1)
        assert status[b"role"] == b"slave" and b"replication_lag" in status
        assert redis_service(master_id)[b"status"][b"role"] == b"master"
        nodes = r.execute_command("CLUSTER", "NODES").decode()
        assert f"slave {master_id}" in nodes
        # No cluster bus, and none invented (issue 24: it showed port + 10000).
        assert f" 127.0.0.1:{master.port}@0 " in nodes
        assert f"@{master.port + 10000}" not in nodes

        master.stop(signal.SIGKILL)  # the replica's link drops
        deadline = time.monotonic() + 30
        while redis_service(replica_id)[b"state"] != b"error":
            assert time.monotonic() < deadline, "the replica's lost link never showed"
            time.sleep(0.1)
        status = redis_service(replica_id)[b"status"]
        assert status[b"master_link_status"] == b"down"
    finally:
        server.stop()


def test_parse_myself_reads_identity_and_failure_flags() -> None:
    text = (
        "aa 127.0.0.1:7001@17001,node-a myself,master - 0 0 7 connected 0-5460 "
        "[5461->-bb] [16000-<-ee]\n"
        "bb 127.0.0.1:7002@17002 master,fail? - 0 0 2 connected 5461-10922\n"
        "cc 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected\n"
        "dd 127.0.0.1:7004@17004 slave aa 0 0 7 connected\n"
        "ff 127.0.0.1:7005@17005 handshake - 0 0 0 connected\n")
    view = parse_myself(text, "10.0.0.1", 7001)
    assert (view.node_id, view.addr, view.hostname, view.role, view.epoch) == (
        "aa", "127.0.0.1:7001@17001", "node-a", "master", 7)
    assert view.slots == [[0, 5460]]
    assert view.cluster is not None
    assert view.cluster.failing == ["bb", "cc"]
    assert view.cluster.failed == ["cc"]
    assert view.cluster.peers == ["bb", "cc", "dd"]
    assert view.cluster.taken == [[5461, 10922]]
    assert (view.cluster.migrating, view.cluster.importing) == ({5461: "bb"}, {16000: "ee"})
    assert view.cluster.joined
    replica = parse_myself("dd :7004@0 myself,slave aa 0 0 7 connected\n", "10.0.0.4", 7004)
    assert (replica.role, replica.replicaof, replica.addr, replica.slots) == (
        "replica", "aa", "10.0.0.4:7004", [])
    assert replica.cluster is not None and not replica.cluster.joined  # alone, no slots


def test_the_agent_survives_its_source_and_the_server_restarting(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    node = redis_factory(name="node")
    node_id = derive_id("127.0.0.1", node.port)
    server = start_server(tmp_path, "--node-timeout", "1000")
    try:
        agent = agents("--server", f"127.0.0.1:{server.port}", "--source",
                       f"redis://127.0.0.1:{node.port}", "--interval", "0.1")

        def state() -> str:
            for line in connect(server).execute_command("CLUSTER", "NODES").decode().split("\n"):
                if line.startswith(node_id):
                    flags = line.split(" ")[2]
                    return "down" if "fail" in flags else "up"
            return "unknown"

        def wait(expected: str) -> None:
            deadline = time.monotonic() + 30
            while state() != expected:
                assert time.monotonic() < deadline, f"node never {expected}"
                time.sleep(0.05)

        wait("up")
        node.stop(signal.SIGKILL)  # the source goes away: heartbeats stop, the node fails
        wait("down")
        node.start()
        wait("up")
        server.stop()  # then the server restarts; the agent registers again
        server = start_server(tmp_path, *server.args, "--port", str(server.port))
        wait("up")
        assert agent.poll() is None
    finally:
        server.stop()


def test_one_acl_user_per_node_through_a_failover_and_forged_reports(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        agents: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    """Issue 23: each agent publishes as its own ACL user, restricted to its node's id (the
    README's lines). The view matches the real cluster through a failover; another agent's
    credential can neither speak for a node nor fail one, and the model is unchanged."""
    cluster = start_cluster(redis_factory)
    ids = [str(n.client(decode_responses=True).execute_command("CLUSTER", "MYID"))
           for n in cluster]
    users = ["user default on nopass ~* &* +@all"] + [
        f"user agent-{i} on >pw-{i} ~{node_id} resetchannels -@all +@publish +@connection"
        for i, node_id in enumerate(ids)]
    (tmp_path / "users.acl").write_text("\n".join(users) + "\n")
    server = start_server(tmp_path, "--node-timeout", "1000",
                          "--aclfile", str(tmp_path / "users.acl"))
    try:
        for i, node in enumerate(cluster):
            agents("--server", f"127.0.0.1:{server.port}", "--source",
                   f"redis://127.0.0.1:{node.port}", "--interval", "0.1",
                   "--user", f"agent-{i}", "--password", f"pw-{i}")
        agree(cluster, server)
        admin = connect(server)
        assert admin.execute_command("ACL", "LOG") == []  # no agent was ever refused
        for i, node_id in enumerate(ids):
            assert _publisher(admin, node_id) == f"agent-{i}"

        # Agent 0's credential forges for others: every message is refused as a key.
        masters = [i for i, n in enumerate(cluster)
                   if n.client().info("replication")["role"] == "master"]
        thief = masters[0]
        others = [i for i in masters if i != thief]
        target = ids[others[0]]
        forged = redis.Redis(port=server.port, username=f"agent-{thief}",
                             password=f"pw-{thief}", socket_timeout=10)
        epoch = 10**6
        def model() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
            return (info_of(admin.execute_command("CLUSTER", "INFO").decode()),
                    clusterwatch_nodes(server))

        before = model()
        speakers = [i for i in range(len(ids)) if i not in (thief, others[0])]
        for speaker in speakers:
            replies = forged.execute_command("BUS", "PUBLISH", json.dumps(
                {"v": 1, "type": "fail_report", "node": ids[speaker], "epoch": epoch,
                 "seq": epoch, "target": target, "state": "fail"}))
            assert isinstance(replies[0], redis.ResponseError)
            assert "no permissions to access one of the keys" in str(replies[0])
        replies = forged.execute_command("BUS", "PUBLISH", json.dumps(
            {"v": 1, "type": "leave", "node": target, "epoch": epoch, "seq": epoch}))
        assert isinstance(replies[0], redis.ResponseError)
        # Its own node's report is one master's vote: not a majority, nothing fails.
        own_epoch = int(clusterwatch_nodes(server)[ids[thief]][2])
        own = forged.execute_command("BUS", "PUBLISH", json.dumps(
            {"v": 1, "type": "fail_report", "node": ids[thief], "epoch": own_epoch,
             "seq": time.time_ns() // 1_000_000 + 1000, "target": target, "state": "fail"}))
        assert own == [b"applied"]
        log = admin.execute_command("ACL", "LOG")
        assert {_field(entry, b"reason") for entry in log} == {b"key"}
        refused = {ids[s].encode() for s in speakers}
        assert {_field(entry, b"object") for entry in log} >= refused
        assert model() == before
        agree(cluster, server)

        # A real failover: the replica's own agent carries its promotion.
        victim = cluster[others[1]]
        victim.stop(signal.SIGKILL)
        agree(cluster, server, timeout=60)
        assert _publisher(admin, ids[others[1]]) == f"agent-{others[1]}"
        assert all(_field(entry, b"reason") == b"key"
                   for entry in admin.execute_command("ACL", "LOG"))
    finally:
        server.stop()


def _field(entry: list[object], name: bytes) -> object:
    return dict(zip(entry[::2], entry[1::2], strict=True))[name]


def _publisher(admin: redis.Redis, node_id: str) -> str:
    reply = admin.execute_command("BUS", "NODE", node_id)
    record = dict(zip(reply[::2], reply[1::2], strict=True))
    return str(record[b"publisher"].decode())
