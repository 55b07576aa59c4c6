"""Memory per node: a real ``python -m clusterwatch serve`` fed N demo-shaped nodes over its bus.

    PYTHONPATH=. .venv/bin/python benchmarks/memory_bench.py                 # 1k, 10k, 100k
    PYTHONPATH=. .venv/bin/python benchmarks/memory_bench.py --nodes 1000,10000 --tag before
    PYTHONPATH=. .venv/bin/python benchmarks/memory_bench.py --inproc 10000  # tracemalloc

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

import argparse
import json
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench  # noqa: E402
from cluster_bench import stop_server  # noqa: E402

TARGET_BYTES = 4096  # issue 11: at most 4 KB per node at 10k and 100k
NODE_TIMEOUT_MS = 3_600_000
CHUNK = 500  # messages per BUS PUBLISH
DEPTH = 8  # BUS PUBLISH requests in flight

QUERIES: tuple[tuple[str, ...], ...] = (
    ("CLUSTER", "INFO"), ("CLUSTER", "NODES"), ("CLUSTER", "SHARDS"), ("CLUSTER", "SLOTS"),
    ("CLUSTER", "STATUS"), ("STATUS", "SERVICES"), ("STATUS", "SERVICES", "LEVEL", "debug"),
    ("STATUS", "SIMPLE"), ("HEALTH", "READY"), ("INFO",),
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the nodes


def demo_cluster(count: int) -> Any:
    """A ``Simulation`` of `count` demo-shaped nodes (its checks cap masters at 16384 and
    ports at one host's range, so the nodes are laid out here, over many hosts)."""
    from clusterwatch.agent.simulate import NUM_SLOTS, SimNode, Simulation
    from clusterwatch.cluster.ids import derive_id

    sim = Simulation(masters=1, replicas=0, node_timeout_ms=NODE_TIMEOUT_MS,
                     scope="clusterwatch-membench")
    sim.nodes.clear()
    by_ref: dict[str, SimNode] = {}
    masters = max(1, count // 2)
    with_slots = min(masters, NUM_SLOTS)
    index = 0

    def add(name: str, role: Any, replicaof: str | None, epoch: int) -> SimNode:
        nonlocal index
        host = f"10.{index // 65000}.{index // 250 % 260}.1"
        port = 30001 + index % 250
        node = SimNode(name, derive_id(host, port, scope=sim.scope), host, port, index,
                       role, replicaof, epoch)
        sim.nodes.append(node)
        by_ref[name] = by_ref[node.id] = node
        index += 1
        return node

    for m in range(masters):
        master = add(f"m{m + 1}", "master", None, m + 1)
        if m < with_slots:
            first = m * NUM_SLOTS // with_slots
            last = (m + 1) * NUM_SLOTS // with_slots - 1
            master.slots = set(range(first, last + 1))
            master.claimed = True
        if index < count:
            add(f"m{m + 1}r1", "replica", master.id, m + 1)
    sim._by_ref = by_ref  # the bench lays the nodes out itself
    return sim


def one_beat_each(sim: Any) -> list[bytes]:
    """One more heartbeat per node (the simulator's step, every node due)."""
    for node in sim.nodes:
        node.next_beat = 0.0
    return list(sim.step(1.0))


# --------------------------------------------------------------------------- RESP


def command(*args: str | bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Conn:
    def __init__(self, port: int) -> None:
        import hiredis

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120.0)
        self.reader: Any = hiredis.Reader()

    def close(self) -> None:
        self.sock.close()

    def read(self, errors_ok: bool = False) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, Exception) and not errors_ok:
                    raise RuntimeError(f"server error: {reply}")
                return reply
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.reader.feed(chunk)

    def call(self, *args: str | bytes, errors_ok: bool = False) -> Any:
        self.sock.sendall(command(*args))
        return self.read(errors_ok)

    def publish(self, messages: Sequence[bytes]) -> None:
        """Pipelined BUS PUBLISH, DEPTH requests in flight; every message must apply."""
        chunks = [messages[i:i + CHUNK] for i in range(0, len(messages), CHUNK)]
        sent = 0
        for done in range(len(chunks)):
            while sent < len(chunks) and sent < done + DEPTH:
                self.sock.sendall(command("BUS", "PUBLISH", *chunks[sent]))
                sent += 1
            bad = [o for o in self.read() if o != b"applied"]
            if bad:
                raise RuntimeError(f"BUS PUBLISH: {len(bad)} not applied, first {bad[0]!r}")


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def run_queries(c: Conn, protocols: Sequence[str] = ("2", "3")) -> dict[str, int]:
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


def measure(count: int, fleet: bench.Fleet, workdir: Path, pin: bool, python: str,
            settle: float, protocols: Sequence[str]) -> dict[str, Any]:
    t0 = time.monotonic()
    sim = demo_cluster(count)
    initial = sim.initial()
    second = one_beat_each(sim)
    gen_s = time.monotonic() - t0
    server = bench.start_server(fleet, f"clusterwatch-mem-{count}", workdir, python, pin,
                                extra=("--node-timeout", str(NODE_TIMEOUT_MS),
                                       "--max-nodes", str(max(10_000, count * 2)),
                                       # CLUSTER STATUS is ~70 MB at 100k nodes
                                       "--output-buffer-limit", str(1 << 30),
                                       "--log-level", "warning"))
    c = Conn(server.port)
    try:
        run_queries(c)
        time.sleep(settle)
        empty = vm_rss_kib(server.pid)
        t1 = time.monotonic()
        c.publish(initial)
        time.sleep(settle)
        populated = vm_rss_kib(server.pid)
        c.publish(second)
        feed_s = time.monotonic() - t1
        sizes = run_queries(c, protocols)
        run_queries(c, protocols)  # a second round: replies served from caches
        time.sleep(settle)
        steady = vm_rss_kib(server.pid)
        flat = c.call("BUS", "INFO")
        info = {k.decode(): v for k, v in zip(flat[::2], flat[1::2], strict=True)}
    finally:
        c.close()
        stop_server(fleet, server)
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

    from clusterwatch.commands._context import CommandContext, Session
    from clusterwatch.resp import encode
    from clusterwatch.server.app import Server
    from clusterwatch.server.config import ServerConfig

    sim = demo_cluster(count)
    initial = sim.initial()
    second = one_beat_each(sim)
    tracemalloc.start(4)
    server = Server(ServerConfig(port=0, node_timeout=NODE_TIMEOUT_MS, max_nodes=count * 2))
    ctx = CommandContext(session=Session(id=1, allowed=server.table.catalog.everything),
                         server=server, table=server.table)

    def run(*argv: str | bytes) -> bytes:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        return encode(server.table.dispatch(ctx, args), ctx.session.protocol)  # type: ignore

    gc.collect()
    snap = tracemalloc.take_snapshot()
    for batch in (initial, second):
        for i in range(0, len(batch), CHUNK):
            run("BUS", "PUBLISH", *batch[i:i + CHUNK])
    del initial, second, batch
    for proto in (2, 3):
        ctx.session.protocol = proto
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
    lines = [f"## Memory per node — {tag or 'run'} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
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
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", default="1000,10000,100000",
                   type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--quick", action="store_true", help="1000 and 10000 nodes only")
    p.add_argument("--tag", default="")
    p.add_argument("--protocols", default="2,3",
                   help="the protocols the steady-state queries use (2,3: both; 2: RESP2 "
                        "only, as redis-cli and redis-py by default)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds before each RSS read")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python")
                   if (REPO / ".venv").exists() else sys.executable)
    p.add_argument("--repo", type=Path, default=REPO,
                   help="the clusterwatch tree to run (e.g. a worktree of an older commit)")
    p.add_argument("--inproc", type=int, default=0, metavar="N")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    if args.inproc:
        inproc(args.inproc, args.top)
        return 0
    counts = [1000, 10000] if args.quick else args.nodes
    bench.REPO = args.repo.resolve()  # start_server puts it on the server's PYTHONPATH
    pin = not args.no_pin and bench.pinning_available()
    facts = bench.git_facts()  # of bench.REPO
    facts.update(bench.machine_facts())
    fleet = bench.Fleet()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="cw-mem-") as tmp:
            for count in counts:
                row = measure(count, fleet, Path(tmp), pin, args.python, args.settle,
                              args.protocols.split(","))
                row.update(tag=args.tag, commit=facts.get("commit"),
                           ts=datetime.now(UTC).isoformat(timespec="seconds"))
                rows.append(row)
                log(f"{count:>7,} nodes: RSS {row['rss_empty_kib'] / 1024:.1f} -> "
                    f"{row['rss_populated_kib'] / 1024:.1f} -> "
                    f"{row['rss_steady_kib'] / 1024:.1f} MiB; "
                    f"{row['per_node_populated']:,} / {row['per_node_steady']:,} B/node "
                    f"(gen {row['gen_s']} s, feed {row['feed_s']} s)"
                    + (f"  {row['error']}" if row["error"] else ""))
    finally:
        fleet.stop_all()
    text = summary(rows, facts, args.tag)
    print(text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / ("memory-quick.md" if args.quick else "memory-latest.md")).write_text(text)
    with open(results / "memory.jsonl", "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    log(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
