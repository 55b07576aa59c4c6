"""HEALTH SAFE-TO-STOP and HEALTH EXPLAIN against a real Redis Cluster (issue 24): 3 masters
and 3 replicas, one agent per node (tests/integration/fault_cluster.py, a cluster of this
module's own, so no other module's cluster is touched).

SAFE-TO-STOP says what a human would: safe for a master with an in-sync replica, not safe
for a master whose replica is down (its slots would be uncovered) nor for two masters at
once (no majority left). Then the master it declared safe is killed: the real cluster
fails it over and is ok again, clusterwatch agrees, and HEALTH EXPLAIN NODE on the dead
master names the masters that report it and the rule. Every node killed is restarted and
the cluster healed before the next test.

Needs root (``ip netns``), as ``make test`` runs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import require_tool

from .fault_cluster import FaultCluster, Node, started_cluster
from .real_cluster import View

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with started_cluster(tmp_path_factory.mktemp("safe-to-stop")) as faults:
        yield faults


@pytest.fixture(autouse=True)
def inside(cluster: FaultCluster) -> Iterator[None]:
    with cluster.ns.entered():
        cluster.agree()
        yield


def resp3(cluster: FaultCluster) -> redis.Redis:
    assert cluster.server is not None
    return redis.Redis(host=cluster.server.host, port=cluster.server.port, protocol=3,
                       socket_timeout=20, decode_responses=True)


def ask(cluster: FaultCluster, *ids: str) -> dict[str, Any]:
    answer: dict[str, Any] = resp3(cluster).execute_command("HEALTH", "SAFE-TO-STOP", *ids)
    return answer


def ask_until(cluster: FaultCluster, verdict: str, *ids: str,
              timeout: float = 15.0) -> dict[str, Any]:
    """The answer once it is `verdict` (the agents report every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = ask(cluster, *ids)
        if answer["verdict"] == verdict:
            return answer
        assert time.monotonic() < deadline, f"never {verdict}: {answer}"
        time.sleep(0.1)


def finding(answer: dict[str, Any], rule: str) -> dict[str, str]:
    return next(f for f in answer["findings"] if f["rule"] == rule)


def restart(cluster: FaultCluster, node: Node) -> None:
    node.process.start()
    cluster.wait(lambda: node.client().ping(), f"{node.host} answering")


def test_a_master_with_an_in_sync_replica_is_safe(cluster: FaultCluster) -> None:
    masters, replicas = cluster.roles()
    master, replica = masters[0], replicas[masters[0].node_id]
    answer = ask_until(cluster, "safe", master.node_id)
    assert answer["safe"] is True and answer["cluster_state"] == "ok"
    coverage = finding(answer, "coverage")
    assert f"in-sync replica to promote: {replica.node_id} (link up" in coverage["reason"]
    assert finding(answer, "majority")["reason"].startswith(
        "2 of 3 slot-serving masters would be left reachable")
    cli = require_tool("redis-cli")
    assert cluster.server is not None
    out = subprocess.run([cli, "-h", cluster.server.host, "-p", str(cluster.server.port),
                          "HEALTH", "SAFE-TO-STOP", master.node_id],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    assert out.splitlines()[:4] == ["safe", "1", "verdict", "safe"]


def test_two_masters_at_once_leave_no_majority(cluster: FaultCluster) -> None:
    masters, _ = cluster.roles()
    answer = ask(cluster, masters[0].node_id, masters[1].node_id)
    assert (answer["safe"], answer["verdict"]) == (False, "unsafe")
    assert finding(answer, "majority") == {
        "rule": "majority", "verdict": "unsafe",
        "reason": "1 of 3 slot-serving masters would be left reachable; a majority is 2: "
                  "none could be failed over and cluster_state goes fail"}


def test_a_master_whose_replica_is_down_is_not_safe(cluster: FaultCluster) -> None:
    masters, replicas = cluster.roles()
    master, replica = masters[1], replicas[masters[1].node_id]
    replica.process.stop(signal.SIGKILL)
    try:
        answer = ask_until(cluster, "unsafe", master.node_id)
        coverage = finding(answer, "coverage")
        assert coverage["verdict"] == "unsafe"
        assert "would be uncovered: no replica to promote" in coverage["reason"]
        assert replica.node_id in coverage["reason"]
        assert answer["cluster_state"] == "ok"  # a replica down: the cluster itself is ok
    finally:
        restart(cluster, replica)
    cluster.agree()
    ask_until(cluster, "safe", master.node_id)


def test_the_master_declared_safe_is_killed_and_the_cluster_is_ok_again(
        cluster: FaultCluster) -> None:
    masters, replicas = cluster.roles()
    victim, heir = masters[0], replicas[masters[0].node_id]
    others = [m for m in masters if m is not victim]
    assert ask_until(cluster, "safe", victim.node_id)["safe"] is True
    since = time.monotonic()
    victim.process.stop(signal.SIGKILL)
    try:
        witness = others[0]

        def promoted(view: View) -> bool:
            return (view.nodes[victim.node_id][4] == "fail"
                    and view.nodes[heir.node_id][0] == "master" and view.state == "ok")

        phase = cluster.follow(witness, promoted, since=since)
        # The real cluster and clusterwatch agree that it is ok again, the heir master.
        assert phase.final.real.state == phase.final.ours.state == "ok"
        outage = [s.t for s in phase.samples if s.real.state != "ok"]
        print(f"real cluster_state fail for {len(outage)} samples (failover), ok again at "
              f"{phase.real_at:.2f} s; clusterwatch matched at {phase.ours_at:.2f} s")

        explained: dict[str, Any] = resp3(cluster).execute_command(
            "HEALTH", "EXPLAIN", "NODE", victim.node_id)
        assert explained["state"] == "fail"
        assert explained["fail_rule"] == "redis"
        assert explained["decided_by"] == "quorum"
        counted = {r["reporter"] for r in explained["reports"] if r["counts"]}
        assert {m.node_id for m in others} <= counted
        assert all(r["source"] == "failing" and r["age_ms"] < 2_000
                   for r in explained["reports"])
        needed = explained["quorum"]["needed"]
        assert explained["quorum"]["sentinel"] == (
            f"#quorum {explained['quorum']['reporters_counted']}/{needed}")
        assert explained["symptom"].endswith(f"(#quorum {len(counted)}/{needed})")
        cluster_doc = resp3(cluster).execute_command("HEALTH", "EXPLAIN")
        assert cluster_doc["cluster"]["cluster_state"] == "ok"
    finally:
        restart(cluster, victim)
    # Healed: the old master is back, as a replica of its heir.
    cluster.follow(others[0], lambda view: view.state == "ok"
                   and all(row[4] == "" for row in view.nodes.values())
                   and view.nodes[victim.node_id][:2] == ("slave", heir.node_id),
                   since=time.monotonic())


def test_every_view_agrees_at_every_sample_of_a_failover(cluster: FaultCluster) -> None:
    """A master killed: from the fault to the end of its failover, every 200 ms, one MULTI
    reads CLUSTER NODES, STATUS SERVICES, STATUS NODE and HEALTH NODE of every node and
    CLUSTER STATUS. A node CLUSTER NODES flags `fail?` or `fail` is unreachable in every
    other view (its services not running, Curity not ready nor serving nor RUNNING, ksqlDB
    not alive, its HEALTH not UP); one it does not flag is alive in all, its services in the
    state its node reports."""
    masters, replicas = cluster.roles()
    victim, heir = masters[0], replicas[masters[0].node_id]
    ids = [n.node_id for n in cluster.running]
    hosts = {n.node_id: f"{n.host}:{n.process.port}" for n in cluster.running}
    client = resp3(cluster)
    victim.process.stop(signal.SIGKILL)
    unreachable_seen = 0
    try:
        deadline = time.monotonic() + 30
        settled_at: float | None = None
        while settled_at is None or time.monotonic() < settled_at + 1.0:
            assert time.monotonic() < deadline, "the failover never ended"
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("CLUSTER", "NODES")
            pipe.execute_command("STATUS", "SERVICES")
            pipe.execute_command("CLUSTER", "STATUS")
            for node_id in ids:
                pipe.execute_command("STATUS", "NODE", node_id)
                pipe.execute_command("HEALTH", "NODE", node_id)
            nodes_text, services, hosts_doc, *per_node = pipe.execute(raise_on_error=False)
            flags = {line.split()[0]: line.split()[2].split(",")
                     for line in nodes_text.splitlines()}
            for index, node_id in enumerate(ids):
                curity, health = per_node[2 * index], per_node[2 * index + 1]
                state = services[f"{node_id}/redis"]["state"]
                alive = hosts_doc[hosts[node_id]]["hostAlive"]
                where = f"{node_id[:8]} flags {flags[node_id]}"
                if {"fail", "fail?"} & set(flags[node_id]):
                    unreachable_seen += node_id == victim.node_id
                    assert state != "running", where
                    assert (curity["isReady"], curity["isServing"]) == (False, False), where
                    assert curity["nodeState"] != "RUNNING", where
                    assert alive is False, where
                    assert health != "UP", where
                else:
                    # Reachable: its own state (a replica whose master died says `error`).
                    assert state != "unknown", f"{where}: {services[f'{node_id}/redis']}"
                    assert alive is True, where
                    assert curity["nodeState"] != "ERROR", where
            if settled_at is None and "master" in flags[heir.node_id] and "fail" in flags[
                    victim.node_id] and client.execute_command(
                        "CLUSTER", "INFO").startswith("cluster_state:ok"):
                settled_at = time.monotonic()
            time.sleep(0.2)
    finally:
        restart(cluster, victim)
    assert unreachable_seen >= 3, "the dead master was never seen unreachable"
    cluster.follow(masters[1], lambda view: view.state == "ok"
                   and all(row[4] == "" for row in view.nodes.values()),
                   since=time.monotonic())
