"""HEALTH EXPLAIN and HEALTH SAFE-TO-STOP in-process at N demo-shaped nodes (issue 24).

    PYTHONPATH=. .venv/bin/python benchmarks/explain_bench.py --nodes 1000,10000

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

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from views_inproc import build

from clusterwatch.resp import encode


def timed(call: Callable[[], object], before: Callable[[], object], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        before()
        start = time.process_time_ns()
        call()
        times.append((time.process_time_ns() - start) / 1e6)
    return times


def bench(count: int, reps: int) -> None:
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
        return lambda: encode(run(*argv), 2)  # type: ignore[arg-type]

    cases = {
        "explain": resp("HEALTH", "EXPLAIN"),
        "explain node": resp("HEALTH", "EXPLAIN", "NODE", victim),
        "safe-to-stop 1": resp("HEALTH", "SAFE-TO-STOP", masters[1]),
        "safe-to-stop 64": resp("HEALTH", "SAFE-TO-STOP", *masters[1:65]),
    }
    for name, call in cases.items():
        times = timed(call, one_beat, reps)
        print(f"{count:>6} nodes  {name:<16} median {statistics.median(times):7.3f} ms  "
              f"worst {max(times):7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,10000")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} ({sys.executable}), "
          f"{platform.python_implementation()} {' '.join(platform.python_build())}")
    for count in (int(n) for n in args.nodes.split(",")):
        bench(count, args.reps)


if __name__ == "__main__":
    main()
