"""Faults in a real Redis Cluster: how long clusterwatch takes to show what the cluster settles on.

    .venv/bin/python -m benchmarks.fault_bench [--runs 3] [--period 0.02] [--quick]

Root is needed (a network namespace and iptables, as in the tests). The cluster is the one of
tests/integration/test_cluster_faults.py (tests/integration/fault_cluster.py): 3 masters and
3 replicas on their own loopback addresses in a network namespace, ``cluster-node-timeout``
1000 ms, one agent per node every ``--interval`` (0.2 s), clusterwatch ``--node-timeout
1000``. Each run makes every fault in turn on the same cluster:

    fault                       settled when the witness (a majority-side master) shows
    master cut off              the master fail, its replica promoted, state ok
      healed                    no flag, state ok, the old master its replica's replica
    master + replica cut off    both fail (state fail: their slots have no live owner)
      healed                    no flag, state ok
    reshard 100 / 1000 slots    ``redis-cli --cluster reshard`` done, every node's map equal
    add-node (empty master)     every node knowing it (a master at epoch 0)
    del-node                    no node listing it (the node and its agent then stopped)

t=0 is the moment the fault is made. Sampling every ``--period``: ``real`` is the first
sample from which the witness's view stays the settled one, ``ours`` the first from which
clusterwatch's CLUSTER INFO and node table (tests/integration/real_cluster.py's comparison)
equal it; lag = ours - real, 0 when clusterwatch got there first. ``untrue`` counts the
samples where clusterwatch said fail and no real node had within an agent interval, and the
majority-side outages clusterwatch never showed; for reshards, ``gaps`` the samples where
clusterwatch had a slot without an owner. Reports median and worst per fault.

Writes ``benchmarks/results/fault-latest.md`` (``--quick``: ``fault-quick.md``) and JSON lines
to ``results/fault.jsonl``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness.runner import add_common, finish, log, parser
from tests.integration.fault_cluster import (
    INTERVAL,
    PERIOD,
    FaultCluster,
    Node,
    Phase,
)
from tests.integration.real_cluster import View

Row = tuple[float, float, float, int]  # real, ours, lag, untrue


def healed(view: View) -> bool:
    return view.state == "ok" and all(row[4] == "" for row in view.nodes.values())


def converged(cluster: FaultCluster) -> bool:
    maps = [{i: row[3] for i, row in View.of_node(n.client()).nodes.items()}
            for n in cluster.running]
    return all(m == maps[0] for m in maps)


class Bench:
    def __init__(self, cluster: FaultCluster, period: float) -> None:
        self.cluster = cluster
        self.period = period
        self.rows: dict[str, list[Row]] = defaultdict(list)

    def record(self, name: str, phase: Phase, majority: list[Node], extra: int = 0) -> None:
        untrue = len(phase.untruths([n.node_id for n in majority],
                                    grace=self.cluster.interval + self.period)) + extra
        self.rows[name].append((phase.real_at, phase.ours_at, phase.lag, untrue))
        log(f"  {name:28} real {phase.real_at:6.2f} s  ours {phase.ours_at:6.2f} s  "
            f"lag {phase.lag:5.2f} s  untrue {untrue}")

    def follow(self, witness: Node, settled: Callable[[View], bool], since: float,
               during: subprocess.Popen[bytes] | None = None) -> Phase:
        return self.cluster.follow(witness, settled, since=since, during=during,
                                   period=self.period)

    def cut(self, group: list[Node], name: str,
            settled: Callable[[View], bool], heal_settled: Callable[[View], bool]) -> None:
        cluster = self.cluster
        masters, _ = cluster.roles()
        witness = next(m for m in masters if m not in group)
        rest = [n for n in cluster.running if n not in group]
        since = time.monotonic()
        cluster.ns.cut([n.host for n in group], [n.host for n in rest])
        self.record(name, self.follow(witness, settled, since=since), rest)
        since = time.monotonic()
        cluster.ns.heal()
        self.record(f"{name}, healed", self.follow(witness, heal_settled, since=since),
                    cluster.running)

    def master_cut_off(self) -> None:
        masters, replicas = self.cluster.roles()
        victim, heir = masters[0], replicas[masters[0].node_id]
        self.cut([victim], "master cut off",
                 lambda v: (v.nodes[victim.node_id][4] == "fail"
                            and v.nodes[heir.node_id][0] == "master" and v.state == "ok"),
                 lambda v: healed(v) and v.nodes[victim.node_id][:2] == ("slave", heir.node_id))

    def pair_cut_off(self) -> None:
        masters, replicas = self.cluster.roles()
        pair = [masters[0], replicas[masters[0].node_id]]
        self.cut(pair, "master + replica cut off",
                 lambda v: all(v.nodes[n.node_id][4] == "fail" for n in pair),
                 lambda v: healed(v) and v.nodes[pair[0].node_id][0] == "master")

    def reshard(self, count: int) -> None:
        cluster = self.cluster
        masters, _ = cluster.roles()
        a, b = masters[0], masters[1]
        log = cluster.workdir / f"reshard-{count}.log"
        since = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["redis-cli", "--cluster", "reshard", a.process.address, "--cluster-from",
                 a.node_id, "--cluster-to", b.node_id, "--cluster-slots", str(count),
                 "--cluster-yes"], stdout=out, stderr=subprocess.STDOUT)
        phase = self.follow(a, lambda v: converged(cluster), since=since, during=proc)
        if proc.wait() != 0:
            raise RuntimeError(log.read_text(errors="replace")[-2000:])
        gaps = sum(1 for s in phase.samples
                   if s.ours.info.get("cluster_slots_assigned") != "16384")
        self.record(f"reshard {count} slots", phase, cluster.running, extra=gaps)

    def add_and_delete(self) -> None:
        cluster = self.cluster
        entry = cluster.running[0]
        node = cluster.spawn_node()
        cluster.start_agent(node)
        agent = node.agent
        assert agent is not None
        cluster.wait(lambda: "in no cluster" in cluster.agents.log(agent),
                     "the new node's agent holding back")
        since = time.monotonic()
        subprocess.run(["redis-cli", "--cluster", "add-node", node.process.address,
                        entry.process.address], capture_output=True, check=True, timeout=30)
        cluster.wait(lambda: all(node.node_id in View.of_node(n.client()).nodes
                                 for n in cluster.running), "every node knowing the new one")
        self.record("add-node", self.follow(entry, lambda v: node.node_id in v.nodes
                                            and healed(v), since=since), cluster.running)
        since = time.monotonic()
        subprocess.run(["redis-cli", "--cluster", "del-node", entry.process.address,
                        node.node_id], capture_output=True, check=True, timeout=30)
        cluster.agents.stop([agent])
        node.process.stop()
        others = [n for n in cluster.running if n is not node]
        self.record("del-node", self.follow(entry, lambda v: node.node_id not in v.nodes
                                            and healed(v), since=since), others)


def report(bench: Bench, runs: int, period: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Faults in a real Redis Cluster: {stamp}", "",
             f"{runs} runs; 3 masters + 3 replicas, node timeout 1000 ms, agents every "
             f"{bench.cluster.interval} s, samples every {period * 1000:.0f} ms. Seconds from "
             "the fault; median (worst).", "",
             "| fault | real cluster settled | clusterwatch matched | lag | untrue |",
             "|---|---|---|---|---|"]
    for name, rows in bench.rows.items():
        cells = []
        for column in range(3):
            values = [row[column] for row in rows]
            cells.append(f"{statistics.median(values):.2f} ({max(values):.2f})")
        lines.append(f"| {name} | {' | '.join(cells)} | {sum(row[3] for row in rows)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = parser(__doc__.splitlines()[0], full_doc=False)
    add_common(p, "fault", runs=3, quick="1 run of the master cut off and healed only")
    p.add_argument("--period", type=float, default=PERIOD / 5)
    p.add_argument("--interval", type=float, default=INTERVAL)
    args = p.parse_args()
    runs = 1 if args.quick and args.runs == 3 else args.runs
    with tempfile.TemporaryDirectory(prefix="fault-bench-") as tmp:
        cluster = FaultCluster(Path(tmp), interval=args.interval)
        try:
            with cluster.ns.entered():
                cluster.start()
                bench = Bench(cluster, args.period)
                for run in range(runs):
                    log(f"run {run + 1}/{runs}")
                    bench.master_cut_off()
                    if args.quick:
                        continue
                    bench.pair_cut_off()
                    bench.reshard(100)
                    bench.reshard(1000)
                    bench.add_and_delete()
        finally:
            with cluster.ns.entered():
                cluster.stop()
    finish(args, report(bench, runs, args.period),
           [{"bench": "fault", "fault": name, "real_s": row[0], "ours_s": row[1],
             "lag_s": row[2], "untrue": row[3]} for name, rows in bench.rows.items()
            for row in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
