"""Views in-process at N demo-shaped nodes: a reply's first render, a repeated call on a
still model, and a call after each single heartbeat (the heartbeat's own cost taken out).

    PYTHONPATH=. .venv/bin/python benchmarks/views_inproc.py --nodes 1000,10000

A built (never started) server is fed the nodes over ``BUS PUBLISH`` as
``memory_bench.py`` feeds them; each query then goes through the command table and the
RESP2 encoder, or, for the HTTP documents, through the functions the HTTP routes call.
CPU time of this process (one core); medians of ``--reps`` rounds of ``--beats``
heartbeats. No redis-server here: these views have no Redis counterpart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_bench import CHUNK, NODE_TIMEOUT_MS, demo_cluster, one_beat_each

from clusterwatch.commands._context import CommandContext, Session
from clusterwatch.resp import encode
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig

QUERIES: tuple[tuple[str, ...], ...] = (
    ("STATUS", "SIMPLE"),
    ("STATUS", "SERVICES", "LEVEL", "debug"),
    ("CLUSTER", "STATUS"),
    ("CLUSTER", "NODES"),
    ("HEALTH", "VERBOSE"),
    ("HTTP", "/status/v1/services"),
    ("HTTP", "/clusterStatus"),
)


def build(count: int, needed: int) -> tuple[Server, Callable[..., object], list[bytes]]:
    """A server fed `count` nodes, and at least `needed` further heartbeats, in order."""
    sim = demo_cluster(count)
    batches = [sim.initial(), one_beat_each(sim)]
    server = Server(ServerConfig(port=0, node_timeout=NODE_TIMEOUT_MS, max_nodes=count * 2))
    ctx = CommandContext(session=Session(id=1, allowed=server.table.catalog.everything),
                         server=server, table=server.table)

    def run(*argv: str | bytes) -> object:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        return server.table.dispatch(ctx, args)

    for batch in batches:
        for i in range(0, len(batch), CHUNK):
            run("BUS", "PUBLISH", *batch[i:i + CHUNK])
    later: list[bytes] = []
    while len(later) < needed:
        later += one_beat_each(sim)
    return server, run, later


def query(server: Server, run: Callable[..., object], q: tuple[str, ...]) -> Callable[[], object]:
    if q[0] != "HTTP":
        return lambda: encode(run(*q), 2)  # type: ignore[arg-type]
    try:
        from clusterwatch.commands.status import cluster_status_document, services_document
    except ImportError:  # a tree from before the routes shared the parts: what they did
        return partial(_whole_document, server, q[1])
    if q[1] == "/status/v1/services":
        return lambda: services_document(server, "info", None)
    return lambda: cluster_status_document(server)


def _whole_document(server: Server, path: str) -> tuple[int, bytes]:
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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1000,10000")
    parser.add_argument("--beats", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print("| query | nodes | first call ms | still µs | after one heartbeat µs |")
    print("|---|---|---|---|---|")
    for count in (int(n) for n in args.nodes.split(",")):
        for name, first, still, flowing in measure(count, args.beats, args.reps):
            print(f"| {name} | {count} | {first:,.1f} | {still:,.1f} | {flowing:,.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
