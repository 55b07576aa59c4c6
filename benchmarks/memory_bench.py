"""Memory per node: a real ``python -m clusterwatch serve`` fed N demo-shaped nodes over its bus.

    .venv/bin/python -m benchmarks.memory_bench                 # 1k, 10k, 100k
    .venv/bin/python -m benchmarks.memory_bench --nodes 1000,10000 --tag before
    .venv/bin/python -m benchmarks.memory_bench --inproc 10000  # tracemalloc

Nodes are shaped as ``serve --demo`` and ``clusterwatch simulate`` make them (the
simulator's own message code is used): N/2 masters with one replica each, every node a
``hello``, the masters (up to 16384 of them) their share of the slots, every node
heartbeats carrying services, partitions, thread pool, requests and ksqlDB queries and
store lags. Node addresses are spread over hosts ``10.<k>.<j>.1`` so any N fits.

For each N a fresh server (``--max-nodes`` above N, nodes that never time out, pinned to
CPU 1 as bench.py does) gets, over pipelined ``BUS PUBLISH``:

* `empty`: its VmRSS after a few of the queries below on an empty model (one-off costs);
* `populated`: after every node's hello, slots and first heartbeat;
* `steady`: after a second heartbeat per node and the queries a dashboard would send:
  CLUSTER INFO / NODES / SHARDS / SLOTS, CLUSTER STATUS, STATUS SERVICES (and LEVEL debug),
  STATUS SIMPLE, HEALTH READY, INFO, in RESP2 and in RESP3 (caches built).

Bytes per node = (RSS at N - RSS empty) / N. ``--inproc N`` instead builds the model in
this process and prints tracemalloc's top allocation sites after populating and after the
views, for finding what to cut. Results: the markdown table on stdout and in
``results/memory-latest.md`` (``--quick``: ``results/memory-quick.md``), one JSON line per
run in ``results/memory.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.inproc import built_server
from benchmarks.harness.nodes import NODE_TIMEOUT_MS, demo_cluster, one_beat_each
from benchmarks.harness.procs import (
    REPO,
    Fleet,
    fleet_in_tempdir,
    pinning_available,
    start_server,
)
from benchmarks.harness.resp import CHUNK, Client
from benchmarks.harness.runner import add_common, finish, log, now_iso, parser
from benchmarks.harness.system import git_facts, machine_facts, vm_rss_kib

TARGET_BYTES = 4096  # issue 11: at most 4 KB per node at 10k and 100k
DEPTH = 8  # BUS PUBLISH requests in flight

QUERIES: tuple[tuple[str, ...], ...] = (
    ("CLUSTER", "INFO"), ("CLUSTER", "NODES"), ("CLUSTER", "SHARDS"), ("CLUSTER", "SLOTS"),
    ("CLUSTER", "STATUS"), ("STATUS", "SERVICES"), ("STATUS", "SERVICES", "LEVEL", "debug"),
    ("STATUS", "SIMPLE"), ("HEALTH", "READY"), ("INFO",),
)


def run_queries(c: Client, protocols: Sequence[str] = ("2", "3")) -> dict[str, int]:
    """Every query once in each protocol; reply sizes (RESP2 payload bytes, approx.)."""
    sizes: dict[str, int] = {}
    for proto in protocols:
        c.call("HELLO", proto)
        for q in QUERIES:
            reply = c.call(*q, errors_ok=True)  # HEALTH READY is an error when empty
            if proto == "2":
                sizes[" ".join(q)] = _size(reply)
    c.call("HELLO", "2")
    return sizes


def _size(reply: Any) -> int:
    if isinstance(reply, bytes):
        return len(reply)
    if isinstance(reply, list):
        return sum(_size(r) for r in reply)
    return 8


# --------------------------------------------------------------------------- one run


def measure(count: int, fleet: Fleet, workdir: Path, pin: bool, python: str,
            settle: float, protocols: Sequence[str], repo: Path = REPO) -> dict[str, Any]:
    t0 = time.monotonic()
    sim = demo_cluster(count)
    initial = sim.initial()
    second = one_beat_each(sim)
    gen_s = time.monotonic() - t0
    server = start_server(fleet, f"clusterwatch-mem-{count}", workdir, python, pin, repo=repo,
                          extra=("--node-timeout", str(NODE_TIMEOUT_MS),
                                 "--max-nodes", str(max(10_000, count * 2)),
                                 # CLUSTER STATUS is ~70 MB at 100k nodes
                                 "--output-buffer-limit", str(1 << 30),
                                 "--log-level", "warning"))
    c = Client(server.port, timeout=120.0)
    try:
        run_queries(c)
        time.sleep(settle)
        empty = vm_rss_kib(server.pid)
        t1 = time.monotonic()
        c.publish(initial, CHUNK, DEPTH)
        time.sleep(settle)
        populated = vm_rss_kib(server.pid)
        c.publish(second, CHUNK, DEPTH)
        feed_s = time.monotonic() - t1
        sizes = run_queries(c, protocols)
        run_queries(c, protocols)  # a second round: replies served from caches
        time.sleep(settle)
        steady = vm_rss_kib(server.pid)
        info = c.bus_info()
    finally:
        c.close()
        fleet.stop(server)
    error = None if info.get("nodes") == count else f"server knows {info.get('nodes')} nodes"
    return {
        "nodes": count, "messages": len(initial) + len(second),
        "heartbeat_bytes": len(second[-1]), "rss_empty_kib": empty,
        "rss_populated_kib": populated, "rss_steady_kib": steady,
        "per_node_populated": round((populated - empty) * 1024 / count),
        "per_node_steady": round((steady - empty) * 1024 / count),
        "gen_s": round(gen_s, 2), "feed_s": round(feed_s, 2),
        "reply_bytes": sizes, "protocols": ",".join(protocols), "error": error,
    }


# --------------------------------------------------------------------------- in process


def inproc(count: int, top: int) -> None:
    """tracemalloc's view, in this process, of a built (never started) server: after
    populating it through BUS PUBLISH, then after each query, RESP2 then RESP3."""
    import gc
    import tracemalloc

    sim = demo_cluster(count)
    initial = sim.initial()
    second = one_beat_each(sim)
    tracemalloc.start(4)
    built = built_server(port=0, node_timeout=NODE_TIMEOUT_MS, max_nodes=count * 2)
    run = built.encoded

    gc.collect()
    snap = tracemalloc.take_snapshot()
    for batch in (initial, second):
        for i in range(0, len(batch), CHUNK):
            run("BUS", "PUBLISH", *batch[i:i + CHUNK])
    del initial, second, batch
    for proto in (2, 3):
        built.ctx.session.protocol = proto
        for q in (None, *QUERIES):
            if q is not None:
                run(*q)
            gc.collect()
            now = tracemalloc.take_snapshot()
            _show(f"RESP{proto} {' '.join(q) if q else 'populated'}", now, snap, count, top)
            snap = now


def _show(label: str, snap: Any, base: Any, count: int, top: int) -> None:
    stats = snap.compare_to(base, "lineno")
    total = sum(s.size_diff for s in stats)
    log(f"{label}: {total / count:,.0f} B/node traced ({total / 1e6:.1f} MB)")
    for s in stats[:top]:
        frame = s.traceback[0]
        log(f"  {s.size_diff / count:8,.0f} B/node  {s.count_diff / count:6.2f} obj/node  "
            f"{Path(frame.filename).name}:{frame.lineno}")


# --------------------------------------------------------------------------- summary


def summary(rows: list[dict[str, Any]], facts: dict[str, str], tag: str) -> str:
    lines = [f"## Memory per node — {tag or 'run'} {now_iso()[:16].replace('T', ' ')} UTC", "",
             f"clusterwatch commit {facts.get('commit', '?')}"
             f"{' (dirty)' if facts.get('dirty') == 'yes' else ''}; "
             f"{facts.get('python', '')} {facts.get('cpu', '')}", "",
             "Fresh server per row, fed over pipelined BUS PUBLISH. `populated`: each node's "
             "hello, the masters' slots, one heartbeat (services, partitions, queries, store "
             "lags...); `steady`: a second heartbeat each and every dashboard query twice in "
             f"RESP{' and RESP'.join(rows[0]['protocols'].split(',')) if rows else '2'} "
             "(caches built). Bytes per node = (RSS - RSS empty) / N.", "",
             "| nodes | heartbeat bytes | RSS empty | RSS populated | RSS steady | "
             "B/node populated | B/node steady | target ≤ 4096 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "-" if r["nodes"] < 10_000 else (
            "PASS" if r["per_node_steady"] <= TARGET_BYTES else "MISS")
        lines.append(
            f"| {r['nodes']:,} | {r['heartbeat_bytes']} | {r['rss_empty_kib'] / 1024:.1f} MiB | "
            f"{r['rss_populated_kib'] / 1024:.1f} MiB | {r['rss_steady_kib'] / 1024:.1f} MiB | "
            f"{r['per_node_populated']:,} | {r['per_node_steady']:,} | {ok} |"
            + (f" {r['error']}" if r["error"] else ""))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__, full_doc=False)
    add_common(p, "memory", quick="1000 and 10000 nodes only", with_runs=False)
    p.add_argument("--nodes", default="1000,10000,100000",
                   type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--tag", default="")
    p.add_argument("--protocols", default="2,3",
                   help="the protocols the steady-state queries use (2,3: both; 2: RESP2 "
                        "only, as redis-cli and redis-py by default)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds before each RSS read")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--python", default=None)
    p.add_argument("--repo", type=Path, default=REPO,
                   help="the clusterwatch tree to run (e.g. a worktree of an older commit)")
    p.add_argument("--inproc", type=int, default=0, metavar="N")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    if args.inproc:
        inproc(args.inproc, args.top)
        return 0
    counts = [1000, 10000] if args.quick else args.nodes
    repo = args.repo.resolve()  # put on the server's PYTHONPATH
    pin = not args.no_pin and pinning_available()
    facts = git_facts(repo) | machine_facts()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with fleet_in_tempdir("cw-mem-") as (fleet, workdir):
        for count in counts:
            row = measure(count, fleet, workdir, pin, args.python, args.settle,
                          args.protocols.split(","), repo)
            row.update(tag=args.tag, commit=facts.get("commit"), ts=now_iso())
            rows.append(row)
            log(f"{count:>7,} nodes: RSS {row['rss_empty_kib'] / 1024:.1f} -> "
                f"{row['rss_populated_kib'] / 1024:.1f} -> "
                f"{row['rss_steady_kib'] / 1024:.1f} MiB; "
                f"{row['per_node_populated']:,} / {row['per_node_steady']:,} B/node "
                f"(gen {row['gen_s']} s, feed {row['feed_s']} s)"
                + (f"  {row['error']}" if row["error"] else ""))
    finish(args, summary(rows, facts, args.tag), rows)
    log(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
