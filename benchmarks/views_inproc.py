"""Views in-process at N demo-shaped nodes: a reply's first render, a repeated call on a
still model, and a call after each single heartbeat (the heartbeat's own cost taken out).

    .venv/bin/python -m benchmarks.views_inproc --nodes 1000,10000

A built (never started) server is fed the nodes over ``BUS PUBLISH`` as
``memory_bench.py`` feeds them (``harness/nodes.py``); each query then goes through the
command table and the RESP2 encoder, or, for the HTTP documents, through the functions the
HTTP routes call. CPU time of this process (one core); medians of ``--runs`` rounds of ``--beats``
heartbeats. No redis-server here: these views have no Redis counterpart.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

from benchmarks.harness.inproc import encode, fed_server
from benchmarks.harness.runner import add_common, finish, parser

QUERIES: tuple[tuple[str, ...], ...] = (
    ("STATUS", "SIMPLE"),
    ("STATUS", "SERVICES", "LEVEL", "debug"),
    ("CLUSTER", "STATUS"),
    ("CLUSTER", "NODES"),
    ("HEALTH", "VERBOSE"),
    ("HTTP", "/status/v1/services"),
    ("HTTP", "/clusterStatus"),
)


def build(count: int, needed: int) -> tuple[Any, Callable[..., object], list[bytes]]:
    """A server fed `count` nodes, and at least `needed` further heartbeats, in order."""
    return fed_server(count, needed)


def query(server: Any, run: Callable[..., object], q: tuple[str, ...]) -> Callable[[], object]:
    if q[0] != "HTTP":
        return lambda: encode(run(*q), 2)
    try:
        from clusterwatch.commands.status import cluster_status_document, services_document
    except ImportError:  # a tree from before the routes shared the parts: what they did
        return partial(_whole_document, server, q[1])
    if q[1] == "/status/v1/services":
        return lambda: services_document(server, "info", None)
    return lambda: cluster_status_document(server)


def _whole_document(server: Any, path: str) -> tuple[int, bytes]:
    now = server.model_now_ms()
    if path == "/status/v1/services":
        report = server.services.services(now, level="info")
        return report.http_status, msgspec.json.encode(report.to_json())
    return 200, msgspec.json.encode(server.cluster_status.cluster_status(now))


def measure(count: int, beats: int, reps: int) -> list[tuple[str, float, float, float]]:
    server, run, heartbeats = build(count, 2 * beats * reps * len(QUERIES))
    rows = []
    for q in QUERIES:
        call = query(server, run, q)
        started = time.process_time()
        call()
        first = time.process_time() - started
        still: list[float] = []
        flowing: list[float] = []
        for _ in range(reps):
            call()  # catches up with the heartbeats of the round before
            started = time.process_time()
            for _ in range(beats):
                call()
            still.append((time.process_time() - started) / beats)
            chunk, heartbeats = heartbeats[:beats], heartbeats[beats:]
            started = time.process_time()
            for beat in chunk:
                run("BUS", "PUBLISH", beat)
            alone = time.process_time() - started
            chunk, heartbeats = heartbeats[:beats], heartbeats[beats:]
            started = time.process_time()
            for beat in chunk:
                run("BUS", "PUBLISH", beat)
                call()
            flowing.append((time.process_time() - started - alone) / beats)
        rows.append((" ".join(q), first * 1e3, statistics.median(still) * 1e6,
                     statistics.median(flowing) * 1e6))
    return rows


def main() -> None:
    p = parser(__doc__)
    add_common(p, "views", runs=3, quick="1000 nodes, 10 heartbeats a round, 1 run")
    p.add_argument("--nodes", default=None, help="node counts (default 1000,10000)")
    p.add_argument("--beats", type=int, default=None, help="heartbeats a round (default 50)")
    args = p.parse_args()
    nodes = args.nodes or ("1000" if args.quick else "1000,10000")
    beats = args.beats or (10 if args.quick else 50)
    runs = 1 if args.quick and args.runs == 3 else args.runs
    lines = ["| query | nodes | first call ms | still µs | after one heartbeat µs |",
             "|---|---|---|---|---|"]
    records = []
    print("\n".join(lines), flush=True)
    for count in (int(n) for n in nodes.split(",")):
        for name, first, still, flowing in measure(count, beats, runs):
            lines.append(f"| {name} | {count} | {first:,.1f} | {still:,.1f} | "
                         f"{flowing:,.1f} |")
            print(lines[-1], flush=True)
            records.append({"bench": "views", "query": name, "nodes": count,
                            "first_ms": first, "still_us": still, "flowing_us": flowing})
    # The table went out row by row; the summary file gets it whole.
    finish(args, "\n".join(lines) + "\n", records, echo=False)


if __name__ == "__main__":
    main()
