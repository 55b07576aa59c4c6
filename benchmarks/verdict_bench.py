"""The per-heartbeat cost of the one liveness verdict (issue 24), against the tree before it.

Two cases, at 1000 and 10000 nodes, in-process, pure Python:

    publish   `ClusterModel.publish` of one heartbeat (a running `redis` service, RUNNING),
              the nodes taking turns: the hot path every message takes
    views     the same, and every 16 heartbeats the reads a server makes as it serves
              probes and its 10 Hz tick (`STATUS SIMPLE`'s `simple`, the service-state
              watch's `states`, `CLUSTER STATUS`'s `hosts`), per heartbeat

A measurement is the CPU time of the process (`time.process_time_ns`: time spent waiting
for a shared CPU does not count), the best of 3 passes. Each measurement runs in a fresh
interpreter whose `clusterwatch` is either this checkout
or the base tree (`git archive <base> | tar -x -C <dir>`, made when missing), the two
alternating run by run; the median and the minimum of the runs are reported, with their
ratios to the base (on a shared machine the minimum is the steadier figure).

    .venv/bin/python -m benchmarks.verdict_bench [--nodes 1000 10000] [--runs 5]
        [--base-commit 9f734c1] [--base-dir /tmp/base24] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness.system import describe_interpreter

ROOT = Path(__file__).resolve().parent.parent
SEED = 1_700_000_000_000


def _beat(node: str, seq: int) -> bytes:
    return json.dumps({"v": 1, "type": "heartbeat", "node": node, "epoch": 1, "seq": seq,
                       "node_state": "RUNNING", "serving": True,
                       "services": {"redis": {"state": "running", "version": "7.2"}}}
                      ).encode()


def worker(nodes: int, heartbeats: int, case: str) -> float:
    """ns per heartbeat for `case` at `nodes` nodes, with the `clusterwatch` on sys.path."""
    from clusterwatch.cluster import ClusterModel, ModelConfig
    from clusterwatch.cluster.clusterstatus import ClusterStatusView
    from clusterwatch.cluster.services import ServiceStatusView

    model = ClusterModel(ModelConfig(node_timeout_ms=3_600_000, max_nodes=max(nodes, 10_000)))
    ids = [f"n{i:05d}" for i in range(nodes)]
    now = SEED
    for i, node in enumerate(ids):
        hello = {"v": 1, "type": "hello", "node": node, "epoch": 1, "seq": 1,
                 "addr": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:6379"}
        model.publish(json.dumps(hello).encode(), now)
        model.publish(_beat(node, 2), now)
    services = ServiceStatusView(model)
    hosts = ClusterStatusView(model)
    services.simple(now)
    services.states(now)
    hosts.hosts(now)
    publish = model.publish
    views = case == "views"
    best = float("inf")
    seq = 3
    for _repeat in range(3):
        batch = [_beat(ids[i % nodes], seq + i // nodes) for i in range(heartbeats)]
        seq += heartbeats // nodes + 1
        started = time.process_time_ns()
        for i, data in enumerate(batch):
            now += 1
            publish(data, now)
            if views and i % 16 == 15:
                services.simple(now)
                services.states(now)
                hosts.hosts(now)
        best = min(best, (time.process_time_ns() - started) / heartbeats)
    return best


def _ensure_base(commit: str, where: Path) -> None:
    if (where / "clusterwatch" / "cluster" / "model.py").exists():
        return
    where.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)


def _measure(tree: Path, nodes: int, heartbeats: int, case: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                          "--nodes", str(nodes), "--heartbeats", str(heartbeats),
                          "--case", case], cwd=tree, env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heartbeats", type=int, default=50_000)
    parser.add_argument("--base-commit", default="9f734c1")
    parser.add_argument("--base-dir", type=Path, default=Path("/tmp/base24"))
    parser.add_argument("--quick", action="store_true", help="1 run of 5000 heartbeats")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", default="publish", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(worker(args.nodes[0], args.heartbeats, args.case))
        return
    if args.quick:
        args.runs, args.heartbeats = 1, 5_000
    _ensure_base(args.base_commit, args.base_dir)
    trees = {"base": args.base_dir, "this": ROOT}
    print(f"# per-heartbeat cost, base {args.base_commit} vs this checkout")
    print(f"# {describe_interpreter(sys.executable)}; {args.runs} runs of {args.heartbeats} "
          "heartbeats each")
    print("| case | nodes | base ns/heartbeat (median, min) | this ns/heartbeat (median, min) "
          "| this / base (median, min) |")
    print("|---|---|---|---|---|")
    for case in ("publish", "views"):
        for nodes in args.nodes:
            found: dict[str, list[float]] = {"base": [], "this": []}
            for run in range(args.runs):
                order = ("base", "this") if run % 2 == 0 else ("this", "base")
                for name in order:
                    found[name].append(_measure(trees[name], nodes, args.heartbeats, case))
            base, this = statistics.median(found["base"]), statistics.median(found["this"])
            base_min, this_min = min(found["base"]), min(found["this"])
            print(f"| {case} | {nodes} | {base:.0f}, {base_min:.0f} | {this:.0f}, "
                  f"{this_min:.0f} | {this / base:.3f}, {this_min / base_min:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
