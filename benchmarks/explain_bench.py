"""HEALTH EXPLAIN and HEALTH SAFE-TO-STOP in-process at N demo-shaped nodes (issue 24).

    .venv/bin/python -m benchmarks.explain_bench [--nodes 1000,10000] [--runs 30] [--quick]

A built (never started) server is fed N nodes (half masters serving slots, each with one
replica) over ``BUS PUBLISH`` as ``views_inproc.py`` feeds them; each command then goes
through the command table and the RESP2 encoder. The model changes between calls (one
heartbeat), so nothing is answered from a cache. Cases:

    explain            HEALTH EXPLAIN (the HEALTH probe and the cluster's evidence)
    explain node       HEALTH EXPLAIN NODE <a master> with every other master reporting it
                       (a heartbeat `failing` list each: the quorum's worst common case)
    safe-to-stop 1     HEALTH SAFE-TO-STOP <a master>
    safe-to-stop 64    HEALTH SAFE-TO-STOP with 64 masters (the cap)

CPU time of this process (one core), median and worst of ``--reps`` calls.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from benchmarks.harness.inproc import encode, fed_server
from benchmarks.harness.runner import add_common, finish, parser
from benchmarks.harness.system import describe_interpreter


def build(count: int, needed: int) -> tuple[Any, Callable[..., object], list[bytes]]:
    """A server fed `count` nodes, and at least `needed` further heartbeats, in order."""
    return fed_server(count, needed)


def timed(call: Callable[[], object], before: Callable[[], object], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        before()
        start = time.process_time_ns()
        call()
        times.append((time.process_time_ns() - start) / 1e6)
    return times


def bench(count: int, reps: int) -> list[tuple[str, list[float]]]:
    server, run, later = build(count, reps * 8)
    masters = [n.id for n in server.model.nodes() if n.slots_owned]
    victim = masters[0]
    reporters = [msgspec.json.encode({
        "v": 1, "type": "heartbeat", "node": m, "epoch": 10**6, "seq": 10**12,
        "failing": [victim]}) for m in masters[1:]]
    for i in range(0, len(reporters), 500):
        run("BUS", "PUBLISH", *reporters[i:i + 500])
    beats = iter(later)

    def one_beat() -> object:
        return run("BUS", "PUBLISH", next(beats))

    def resp(*argv: str) -> Callable[[], object]:
        return lambda: encode(run(*argv), 2)

    cases = {
        "explain": resp("HEALTH", "EXPLAIN"),
        "explain node": resp("HEALTH", "EXPLAIN", "NODE", victim),
        "safe-to-stop 1": resp("HEALTH", "SAFE-TO-STOP", masters[1]),
        "safe-to-stop 64": resp("HEALTH", "SAFE-TO-STOP", *masters[1:65]),
    }
    return [(name, timed(call, one_beat, reps)) for name, call in cases.items()]


def main() -> None:
    p = parser(__doc__)
    add_common(p, "explain", runs=30, quick="1000 nodes, 5 calls each")
    p.add_argument("--nodes", default=None, help="node counts (default 1000,10000)")
    args = p.parse_args()
    nodes = args.nodes or ("1000" if args.quick else "1000,10000")
    reps = 5 if args.quick and args.runs == 30 else args.runs
    lines = [describe_interpreter(sys.executable), "",
             "| nodes | case | median ms | worst ms |", "|---|---|---|---|"]
    records = []
    for count in (int(n) for n in nodes.split(",")):
        for name, times in bench(count, reps):
            lines.append(f"| {count} | {name} | {statistics.median(times):.3f} | "
                         f"{max(times):.3f} |")
            records.append({"bench": "explain", "nodes": count, "case": name, "ms": times})
    finish(args, "\n".join(lines) + "\n", records)


if __name__ == "__main__":
    main()
