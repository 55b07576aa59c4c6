"""The agent against real Redis: its CPU per heartbeat, and how long a failover takes to show.

    .venv/bin/python -m benchmarks.agent_bench [--failovers 20] [--interval 0.1] [--quick]

1. CPU per heartbeat: one agent reads one cluster-enabled redis-server (INFO, CLUSTER NODES,
   CLUSTER INFO) and publishes to clusterwatch every ``--beat-interval`` seconds for
   ``--seconds``; the agent's CPU (``/proc/<pid>/stat``) over the heartbeats clusterwatch
   received (BUS INFO).
2. Failover to clusterwatch: a 3-master, 3-replica Redis Cluster (``redis-cli --cluster
   create``), one agent per node at ``--interval``. Repeatedly, ``CLUSTER FAILOVER`` on a
   replica; t0 = the first poll (every 1 ms) of the replica's own ``CLUSTER NODES`` that
   shows it ``myself,master``; t1 = the first poll of clusterwatch's ``CLUSTER NODES`` that
   shows it master. Reports p50/p99 of t1 - t0. The agent's interval bounds it: the agent
   reads its node once an interval.

Writes ``benchmarks/results/agent-latest.md`` (``--quick``: ``agent-quick.md``) and a JSON
line to ``results/agent.jsonl``. Everything binds 127.0.0.1 and is stopped at
the end.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from benchmarks.harness.procs import (
    Fleet,
    fleet_in_tempdir,
    redis_version,
    start_server,
    wait_until,
)
from benchmarks.harness.runner import add_common, finish, log, parser, percentile, run_id
from benchmarks.harness.system import cpu_seconds


class Agents:
    """A Redis Cluster's nodes, clusterwatch and agents, in one fleet."""

    def __init__(self, fleet: Fleet, workdir: Path) -> None:
        self.fleet = fleet
        self.workdir = workdir

    def redis(self, name: str, *args: str) -> int:
        return start_server(self.fleet, "redis-cluster", self.workdir, extra=args,
                            label=name, timeout=10).port

    def clusterwatch(self) -> int:
        return start_server(self.fleet, "clusterwatch", self.workdir, sys.executable,
                            extra=["--node-timeout", "1000"]).port

    def agent(self, name: str, server: int, node: int, interval: float) -> int:
        proc = self.fleet.spawn_python(
            [sys.executable, "-m", "clusterwatch", "agent", "--server", f"127.0.0.1:{server}",
             "--source", f"redis://127.0.0.1:{node}", "--interval", str(interval)],
            self.workdir / f"{name}.log")
        return proc.pid


@contextmanager
def fleet() -> Iterator[Agents]:
    with fleet_in_tempdir("agent-bench-") as (processes, workdir):
        yield Agents(processes, workdir)


def make_cluster(f: Agents) -> list[int]:
    ports = [f.redis(f"node{i}", "--cluster-node-timeout", "1000",
                     "--repl-diskless-sync-delay", "0") for i in range(6)]
    subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas", "1", "--cluster-yes"], capture_output=True,
                   check=True, timeout=60)
    for port in ports:
        wait_until(lambda p=port: b"cluster_state:ok" in redis.Redis(port=p).execute_command(
            "CLUSTER", "INFO"), 30, "cluster ok")
    return ports


def heartbeat_cost(seconds: float, interval: float) -> dict[str, float]:
    with fleet() as f:
        ports = make_cluster(f)
        server = f.clusterwatch()
        pid = f.agent("agent", server, ports[0], interval)
        cw = redis.Redis(port=server, protocol=2)

        def beats() -> int:
            flat = cw.execute_command("BUS", "INFO")
            info = dict(zip(flat[::2], flat[1::2], strict=True))
            received = dict(zip(info[b"received"][::2], info[b"received"][1::2], strict=True))
            return int(received[b"heartbeat"])

        wait_until(lambda: beats() > 5, 30, "first heartbeats")
        cpu0, beats0, t0 = cpu_seconds(pid), beats(), time.monotonic()
        time.sleep(seconds)
        cpu1, beats1, t1 = cpu_seconds(pid), beats(), time.monotonic()
    count = beats1 - beats0
    return {"heartbeats": count, "per_second": count / (t1 - t0),
            "cpu_ms_per_heartbeat": (cpu1 - cpu0) * 1000 / max(count, 1),
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0)}


def role_in(text: str, node_id: str) -> str:
    for line in text.splitlines():
        if line.startswith(node_id):
            return "master" if "master" in line.split(" ")[2] else "replica"
    return "unknown"


def failover_latency(count: int, interval: float) -> list[float]:
    samples: list[float] = []
    with fleet() as f:
        ports = make_cluster(f)
        server = f.clusterwatch()
        for i, port in enumerate(ports):
            f.agent(f"agent{i}", server, port, interval)
        cw = redis.Redis(port=server, decode_responses=True)
        wait_until(lambda: "cluster_state:ok" in cw.execute_command("CLUSTER", "INFO")
                   and cw.execute_command("CLUSTER", "INFO").count("known_nodes:6") == 1,
                   30, "clusterwatch sees the cluster")
        for _ in range(count):
            replica = next(p for p in ports
                           if redis.Redis(port=p).info("replication")["role"] == "slave")
            node = redis.Redis(port=replica, decode_responses=True)
            node_id = node.execute_command("CLUSTER", "MYID")
            wait_until(lambda n=node: n.info("replication").get("master_link_status") == "up",
                       30, "the replica in sync")
            deadline = time.monotonic() + 30
            retry_at = 0.0
            while "myself,master" not in node.execute_command("CLUSTER", "NODES").split(
                    node_id, 1)[1].split("\n", 1)[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the failover did not happen")
                if time.monotonic() >= retry_at:  # a manual failover gives up after 5 s
                    node.execute_command("CLUSTER", "FAILOVER")
                    retry_at = time.monotonic() + 6
                time.sleep(0.001)
            t0 = time.monotonic()
            while role_in(cw.execute_command("CLUSTER", "NODES"), node_id) != "master":
                if time.monotonic() > t0 + 30:
                    raise RuntimeError(f"clusterwatch never showed {node_id} master")
                time.sleep(0.001)
            samples.append((time.monotonic() - t0) * 1000)
            log(f"failover {len(samples)}: {samples[-1]:.0f} ms")
            time.sleep(1.0)  # let the cluster and every agent settle before the next one
    return samples


def main() -> int:
    p = parser(__doc__)
    add_common(p, "agent", with_runs=False, quick="2 failovers, 3 s of heartbeats")
    p.add_argument("--failovers", type=int, default=None, help="(default 20)")
    p.add_argument("--interval", type=float, default=0.1,
                   help="the agents' heartbeat interval in the failover stage")
    p.add_argument("--seconds", type=float, default=None, help="(default 10)")
    p.add_argument("--beat-interval", type=float, default=0.01)
    args = p.parse_args()
    args.failovers = args.failovers or (2 if args.quick else 20)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    run = run_id()
    cost = heartbeat_cost(args.seconds, args.beat_interval)
    log(f"heartbeat cost: {cost}")
    samples = failover_latency(args.failovers, args.interval)
    lines = [
        f"## Agent against Redis — run {run}", "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, Redis server "
        f"v={redis_version()}.",
        "",
        "| measure | value |", "|---|---|",
        f"| heartbeats measured (interval {args.beat_interval} s, {args.seconds:.0f} s) | "
        f"{cost['heartbeats']:.0f} ({cost['per_second']:.0f}/s) |",
        f"| agent CPU per heartbeat (INFO + CLUSTER NODES + CLUSTER INFO, then BUS PUBLISH) |"
        f" {cost['cpu_ms_per_heartbeat']:.2f} ms |",
        f"| agent CPU at that rate | {cost['cpu_pct']:.0f}% of a core |",
        f"| failovers (CLUSTER FAILOVER on a replica, agents every {args.interval} s) | "
        f"{len(samples)} |",
        f"| promotion in the node's own CLUSTER NODES -> clusterwatch's, p50 | "
        f"{statistics.median(samples):.0f} ms |",
        f"| same, p99 | {percentile(samples, 0.99):.0f} ms |",
        f"| same, max | {max(samples):.0f} ms |", "",
    ]
    finish(args, "\n".join(lines), [{"bench": "agent", "run_id": run, **cost,
                                      "failover_ms": samples}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
