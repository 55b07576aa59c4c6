"""What who-may-publish costs end to end (issue 23): server CPU per message of pipelined
``BUS PUBLISH`` (16 heartbeats per call, 16 calls in flight, 1000 nodes) against a tree
before the checks and a tree with them, the two alternating run by run, as the default user
(no ACL file: every message still passes the binding and key checks in the tree with them).

    .venv/bin/python -m benchmarks.publish_rights_e2e --before DIR --after DIR [--runs 5]

DIR is a clusterwatch checkout (``git worktree add --detach DIR <commit>``). The server is
started from each tree (on its PYTHONPATH) and pinned to the server CPU; the generator is
the harness's (``harness/loadgen.py``), pinned to the client CPU.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from benchmarks.harness.loadgen import run_worker
from benchmarks.harness.procs import Fleet, fleet_in_tempdir, pinning_available, start_server
from benchmarks.harness.runner import add_common, finish, parser
from benchmarks.harness.system import cpu_seconds, describe_interpreter

NODES = 1000


def one_run(fleet: Fleet, tree: Path, workdir: Path, messages: int, seq: int,
            pin: bool) -> float:
    """Server CPU µs per message for one run against a fresh server from `tree`."""
    server = start_server(fleet, "clusterwatch", workdir, pin=pin, repo=tree,
                          extra=["--max-nodes", str(NODES * 2)], label=f"cw-{seq}")
    try:
        nodes = [[f"node-{n}", 1] for n in range(NODES)]
        warm = {"mode": "publish", "batch": 16, "pipeline": 16, "base_seq": 1,
                "timeout": 120, "conns": [{"port": server.port, "nodes": nodes,
                                           "messages": NODES * 4}]}
        run_worker(fleet, sys.executable, pin, warm, 120)
        spec = {**warm, "base_seq": 10, "conns": [{"port": server.port, "nodes": nodes,
                                                    "messages": messages}]}
        before: list[float] = []
        result = run_worker(fleet, sys.executable, pin, spec, 300,
                            on_go=lambda: before.append(cpu_seconds(server.pid)))
        if result.get("error"):
            raise RuntimeError(result["error"])
        return (cpu_seconds(server.pid) - before[0]) / int(result["messages"]) * 1e6
    finally:
        fleet.stop(server)


def main() -> None:
    p = parser(__doc__)
    add_common(p, "publish-rights-e2e", runs=5, quick="1 run of 64k messages")
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--messages", type=int, default=256_000)
    args = p.parse_args()
    runs = 1 if args.quick and args.runs == 5 else args.runs
    messages = 64_000 if args.quick else args.messages
    pin = pinning_available()
    found: dict[str, list[float]] = {"before": [], "after": []}
    with fleet_in_tempdir("cw-pub-") as (fleet, tmp):
        for run in range(runs):
            order = ("before", "after") if run % 2 == 0 else ("after", "before")
            for name in order:
                tree = args.before if name == "before" else args.after
                found[name].append(one_run(fleet, tree, tmp, messages,
                                           len(found["before"]) * 2 + len(found["after"]),
                                           pin))
    before, after = statistics.median(found["before"]), statistics.median(found["after"])
    lines = [describe_interpreter(sys.executable), "",
             f"{messages} heartbeats of {NODES} nodes per run, BUS PUBLISH of 16, 16 in "
             f"flight, as the default user; server CPU µs per message, medians of {runs}", "",
             "| tree | µs per message | runs |", "|---|---|---|",
             f"| before ({args.before}) | {before:.2f} | "
             f"{', '.join(f'{v:.2f}' for v in found['before'])} |",
             f"| after ({args.after}) | {after:.2f} | "
             f"{', '.join(f'{v:.2f}' for v in found['after'])} |",
             "", f"after / before: {after / before:.3f}"]
    finish(args, "\n".join(lines) + "\n",
           [{"bench": "publish-rights-e2e", "tree": k, "us_per_message": v}
            for k, v in found.items()])


if __name__ == "__main__":
    main()
