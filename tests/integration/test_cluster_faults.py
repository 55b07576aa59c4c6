"""clusterwatch against a real Redis Cluster under faults (issue 22): a master cut off by the
network, a master and its replica cut off together, reshards, a migrating slot, an empty
master added and nodes removed. One cluster serves the module (tests/integration/
fault_cluster.py): each test starts from a healed cluster on which both sides agree.

At each settled checkpoint clusterwatch's CLUSTER INFO and every node's role, master, epoch,
slots and failure flag equal those of a real node on the majority side; sampled every
100 ms meanwhile, clusterwatch never says ``fail`` where no real node does, and shows every
outage of the majority side. It matches within ``LAG_BOUND`` of the real cluster settling, a
generous bound; ``-s`` prints each phase's times, and benchmarks/fault_bench.py measures
them finely against the real cluster's own settling.

Needs root (``ip netns``, iptables), as ``make test`` runs.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_tool

from .fault_cluster import INTERVAL, PERIOD, FaultCluster, Node, Phase, started_cluster
from .real_cluster import View

pytestmark = pytest.mark.integration

GRACE = INTERVAL + PERIOD
# How far behind the real cluster's settling clusterwatch may match: generous (the agents
# read their nodes every 0.2 s; benchmarks/fault_bench.py measures the lags), it only catches
# a view that waits for a timer of its own instead of the cluster's evidence.
LAG_BOUND = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with started_cluster(tmp_path_factory.mktemp("faults")) as faults:
        yield faults


@pytest.fixture(autouse=True)
def inside(cluster: FaultCluster) -> Iterator[None]:
    """Each test runs in the cluster's namespace, healed and agreed at the start."""
    with cluster.ns.entered():
        if cluster.ns.partitioned:  # a test before failed half-way
            cluster.ns.heal()
        cluster.agree()
        yield


def settled_phase(phase: Phase, majority: list[Node], what: str) -> None:
    """The truth checks over a phase's samples, and its timing for the report."""
    untrue = phase.untruths([n.node_id for n in majority], grace=GRACE)
    assert not untrue, f"{what}:\n" + "\n".join(untrue)
    assert phase.lag <= LAG_BOUND, (
        f"{what}: clusterwatch matched {phase.lag:.2f} s after the real cluster settled")
    print(f"{what}: real settled at {phase.real_at:.2f} s, clusterwatch matched at "
          f"{phase.ours_at:.2f} s (lag {phase.lag:.2f} s, {len(phase.samples)} samples)")


def cut_off(cluster: FaultCluster, group: list[Node]) -> tuple[float, list[Node]]:
    rest = [n for n in cluster.running if n not in group]
    cluster.ns.cut([n.host for n in group], [n.host for n in rest])
    return time.monotonic(), rest


def healed(view: View) -> bool:
    return view.state == "ok" and all(row[4] == "" for row in view.nodes.values())


def test_a_master_cut_off_from_every_other_node(cluster: FaultCluster) -> None:
    """The majority fails it and promotes its replica, though its agent still speaks: so
    does clusterwatch, outage before the promotion included; healed, it rejoins as a
    replica."""
    masters, replicas = cluster.roles()
    victim, heir = masters[0], replicas[masters[0].node_id]
    since, majority = cut_off(cluster, [victim])
    witness = masters[1]

    def promoted(view: View) -> bool:
        return (view.nodes[victim.node_id][4] == "fail"
                and view.nodes[heir.node_id][0] == "master" and view.state == "ok")

    phase = cluster.follow(witness, promoted, since=since)
    settled_phase(phase, majority, "master cut off")
    cluster.ns.heal()
    phase = cluster.follow(witness, lambda view: healed(view)
                           and view.nodes[victim.node_id][:2] == ("slave", heir.node_id),
                           since=time.monotonic())
    settled_phase(phase, cluster.running, "master cut off, healed")


def test_a_master_and_its_replica_cut_off(cluster: FaultCluster) -> None:
    """No replica is left to promote: every real node says fail (the majority with the
    pair's slots fail, the pair with no majority), and so must clusterwatch; healed, the
    master comes back with its slots."""
    masters, replicas = cluster.roles()
    victim, replica = masters[0], replicas[masters[0].node_id]
    since, majority = cut_off(cluster, [victim, replica])
    witness = masters[1]

    def lost(view: View) -> bool:
        return all(view.nodes[n.node_id][4] == "fail" for n in (victim, replica))

    phase = cluster.follow(witness, lost, since=since)
    settled_phase(phase, majority, "master and replica cut off")
    final = phase.final.real
    lost_slots = len(_slots(final.nodes[victim.node_id][3]))
    assert (final.state, final.info["cluster_slots_fail"]) == ("fail", str(lost_slots))
    assert all(state == "fail" for state in phase.final.states.values())
    cluster.ns.heal()
    phase = cluster.follow(witness, lambda view: healed(view)
                           and view.nodes[victim.node_id][0] == "master",
                           since=time.monotonic())
    settled_phase(phase, cluster.running, "master and replica cut off, healed")


def test_reshards_never_unassign_a_slot(cluster: FaultCluster) -> None:
    """``redis-cli --cluster reshard`` moving 100 slots, then 1000 back the other way: no
    moment, sampled or in clusterwatch's own journal, without an owner for every slot."""
    cli = require_tool("redis-cli")
    masters, _ = cluster.roles()
    a, b = masters[0], masters[1]
    start_index = _model_index(cluster)
    for source, target, count in ((a, b, 100), (b, a, 1000)):
        output = cluster.workdir / f"reshard-{count}.log"
        with output.open("wb") as log:
            reshard = subprocess.Popen(
                [cli, "--cluster", "reshard", a.process.address, "--cluster-from",
                 source.node_id, "--cluster-to", target.node_id, "--cluster-slots", str(count),
                 "--cluster-yes"], stdout=log, stderr=subprocess.STDOUT)
        phase = cluster.follow(a, lambda view: _converged(cluster), during=reshard)
        assert reshard.wait() == 0, output.read_text(errors="replace")[-2000:]
        gaps = [(s.t, s.ours.info) for s in phase.samples
                if s.ours.state != "ok" or s.ours.info["cluster_slots_assigned"] != "16384"]
        assert not gaps, f"reshard of {count} slots: clusterwatch lost slots: {gaps}"
        settled_phase(phase, cluster.running, f"reshard of {count} slots")
    journal = _journal(cluster, start_index)
    flaps = [entry for entry in journal
             if entry[2] == "__cluster__:state" or re.search(r" to=- ", entry[3])]
    assert not flaps, f"clusterwatch's journal shows slots without an owner: {flaps}"


def test_a_migrating_slot_shows_as_on_its_node(cluster: FaultCluster) -> None:
    """CLUSTER SETSLOT MIGRATING / IMPORTING by hand: clusterwatch's CLUSTER NODES shows
    ``[slot->-id]`` and ``[slot-<-id]`` on the two nodes' lines as each shows on its own;
    SETSLOT NODE ends it and moves the slot."""
    masters, _ = cluster.roles()
    source, target = masters[0], masters[1]
    slot = _slots(View.of_node(source.client()).nodes[source.node_id][3])[0]
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    try:
        migrating = f"[{slot}->-{target.node_id}]"
        importing = f"[{slot}-<-{source.node_id}]"
        assert migrating in _own_line(source), "the real node shows its migrating slot"
        assert importing in _own_line(target)
        cluster.wait(lambda: migrating in _line(cluster, source.node_id)
                     and importing in _line(cluster, target.node_id),
                     f"clusterwatch's CLUSTER NODES with {migrating} and {importing}",
                     timeout=10)
    except BaseException:
        for node in (source, target):  # leave no open slot behind for the next test
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        raise
    for node in [target, source, *(m for m in masters if m not in (source, target))]:
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
    cluster.agree(source)
    assert "[" not in _line(cluster, source.node_id) + _line(cluster, target.node_id)
    assert slot in _slots(cluster.ours().nodes[target.node_id][3])


def test_an_empty_master_added_then_deleted(cluster: FaultCluster) -> None:
    """A new node's agent says nothing while its node is in no cluster; ``--cluster
    add-node`` makes it an empty master at config epoch 0, shown as 0; ``--cluster
    del-node`` (FORGET on every node, CLUSTER RESET on it), then the node and its agent
    stopped, leaves no ghost."""
    cli = require_tool("redis-cli")
    entry = cluster.running[0]
    node = cluster.spawn_node()
    cluster.start_agent(node)
    assert node.agent is not None
    cluster.wait(lambda: "in no cluster" in cluster.agents.log(node.agent),
                 "the new node's agent holding back", timeout=15)
    cluster.agree()  # the lone node is nobody's yet
    added = subprocess.run([cli, "--cluster", "add-node", node.process.address,
                            entry.process.address], capture_output=True, text=True,
                           timeout=30, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    cluster.wait(lambda: all(node.node_id in View.of_node(n.client()).nodes
                             for n in cluster.running), "every node knowing the new one")
    cluster.agree()
    assert cluster.ours().nodes[node.node_id] == ("master", "-", "0", "", "")

    deleted = subprocess.run([cli, "--cluster", "del-node", entry.process.address,
                              node.node_id], capture_output=True, text=True, timeout=30,
                             check=False)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    cluster.agents.stop([node.agent])
    node.process.stop()
    phase = cluster.agree()
    assert node.node_id not in phase.final.ours.nodes


def test_a_replica_forgotten_by_every_node_then_shut_down(cluster: FaultCluster) -> None:
    """Removed by hand (CLUSTER FORGET on every other node, then SHUTDOWN, as redis-cli
    did before 7.0): its agent is still running and its node still lists the others, but
    the cluster forgot it: so does clusterwatch, and no ghost stays."""
    cli = require_tool("redis-cli")
    masters, _ = cluster.roles()
    entry = cluster.running[0]
    node = cluster.spawn_node()
    cluster.start_agent(node)
    added = subprocess.run([cli, "--cluster", "add-node", node.process.address,
                            entry.process.address, "--cluster-slave", "--cluster-master-id",
                            masters[0].node_id], capture_output=True, text=True, timeout=30,
                           check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    cluster.wait(lambda: all(node.node_id in View.of_node(n.client()).nodes
                             for n in cluster.running), "every node knowing the new one")
    phase = cluster.agree()
    assert phase.final.ours.nodes[node.node_id][:2] == ("slave", masters[0].node_id)

    for other in cluster.running:
        if other is not node:
            other.client().execute_command("CLUSTER", "FORGET", node.node_id)
    node.process.stop(signal.SIGTERM)
    phase = cluster.agree()
    assert node.node_id not in phase.final.ours.nodes
    assert node.agent is not None
    cluster.agents.stop([node.agent])


def _slots(text: str) -> list[int]:
    slots: list[int] = []
    for item in text.split():
        start, _, end = item.partition("-")
        slots.extend(range(int(start), int(end or start) + 1))
    return slots


def _own_line(node: Node) -> str:
    text = node.client().execute_command("CLUSTER", "NODES")
    return next(line for line in text.splitlines() if "myself" in line)


def _line(cluster: FaultCluster, node_id: str) -> str:
    text = cluster.client().execute_command("CLUSTER", "NODES").decode()
    return next((line for line in text.splitlines() if line.startswith(node_id)), "")


def _converged(cluster: FaultCluster) -> bool:
    """Every running node has the same slot map (as ``redis-cli --cluster check`` wants)."""
    maps = [{i: row[3] for i, row in View.of_node(n.client()).nodes.items()}
            for n in cluster.running]
    return all(m == maps[0] for m in maps)


def _model_index(cluster: FaultCluster) -> int:
    flat = cluster.client().execute_command("BUS", "INFO")
    info = {k.decode(): v for k, v in zip(flat[::2], flat[1::2], strict=True)}
    return int(info["model_version"])


def _journal(cluster: FaultCluster, since: int) -> list[tuple[int, int, str, str]]:
    entries = cluster.client().execute_command("BUS", "JOURNAL", "SINCE", since,
                                               "COUNT", 100000)
    found = []
    for entry in entries:
        fields = {entry[i].decode(): entry[i + 1] for i in range(0, len(entry), 2)}
        found.append((int(fields["index"]), int(fields["time"]),
                      fields["channel"].decode(), fields["message"].decode()))
    return found
