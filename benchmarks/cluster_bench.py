"""Cluster-model benchmarks: node messages in, CLUSTER replies out, memory per node.

    .venv/bin/python -m benchmarks.cluster_bench           # full run, ~3-4 min
    .venv/bin/python -m benchmarks.cluster_bench --quick   # smoke run, < 30 s
    .venv/bin/python -m benchmarks.cluster_bench --stages bus --runs 5

Four stages (``--stages model,bus,cluster,memory``):

1. **model**: heartbeats/s through ``ClusterModel.publish()`` alone, at 6, 100 and 1000 nodes
   (pre-encoded heartbeat bytes with increasing seq; this process, one core; median of reps).
2. **bus**: heartbeats applied/s through pipelined ``BUS PUBLISH`` to a real server: K
   connections, each with P requests in flight carrying B heartbeats each. Every message has
   the next seq of its node, so every one must be applied: each reply is compared byte for
   byte with the all-``applied`` answer, and ``BUS INFO`` must show applied rising by exactly
   what was sent, with stale and rejected unchanged. The load generator is a separate process
   (``harness/loadgen.py``: selectors, non-blocking sockets, requests pre-encoded before the
   clock starts) pinned to CPU 0, with its own CPU time measured so a client bottleneck is visible.
3. **cluster**: ``CLUSTER INFO`` and ``CLUSTER NODES`` with redis-benchmark (-c 50, -P 1 and
   16) against three clusterwatch servers holding 6, 100 and 1000 nodes and a cluster-enabled
   redis-server (one node, as bench.py), interleaved; server µs CPU/request from /proc.
4. **memory**: the server's VmRSS before and after publishing N nodes (hello, slots, a
   heartbeat with a status payload), per node, at 1000 and 10000 nodes (a fresh server each).

Servers are pinned to CPU 1, clients and this driver to CPU 0 (skipped without taskset or
CPU 1). Every process started here is stopped by PID on exit, error, Ctrl-C or SIGTERM.
Processes, CPU, the RESP client, redis-benchmark and the load generator: benchmarks/harness/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness.loadgen import read_lines, reap_workers, spawn_workers
from benchmarks.harness.nodes import NODE_TIMEOUT_MS, SimCluster, heartbeat, status_payload
from benchmarks.harness.procs import (
    CLIENT_CPU,
    RESULTS_DIR,
    BenchError,
    Fleet,
    ServerProc,
    default_python,
    fleet_in_tempdir,
    pinning_available,
    require_tools,
    start_server,
)
from benchmarks.harness.redis_benchmark import Cell, calibrated_n, csv_float, run_benchmark
from benchmarks.harness.resp import Client
from benchmarks.harness.runner import (
    fmt_rps,
    fmt_us,
    log,
    med,
    now_iso,
    results_file,
    run_id,
    signals_as_interrupt,
    verdict,
)
from benchmarks.harness.system import (
    cpu_seconds,
    git_facts,
    loadavg,
    machine_busy_s,
    machine_facts,
    vm_rss_kib,
)

# Targets from issue 3.
BUS_TARGET = 100_000  # heartbeats/s applied on one core through pipelined BUS PUBLISH
INFO_SCALE_TARGET = 0.90  # CLUSTER INFO rps at 1000 nodes / at 6 nodes
INFO_REDIS_TARGET = 3.0  # CLUSTER INFO rps / redis-server's, -P 16


# --------------------------------------------------------------------------- stage 1: model


@dataclass(slots=True)
class Session:
    opts: Options
    fleet: Fleet
    workdir: Path
    run_id: str
    facts: dict[str, str]
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    out: Any = None

    def record(self, stage: str, **fields: Any) -> dict[str, Any]:
        rec = {"run_id": self.run_id, "stage": stage,
               "ts": now_iso(),
               "quick": self.opts.quick, "pinned": self.opts.pin,
               "commit": self.facts.get("commit"), "dirty": self.facts.get("dirty"), **fields}
        self.records.append(rec)
        if self.out is not None:
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        return rec

    def out_of_time(self) -> bool:
        if time.monotonic() - self.started > self.opts.max_seconds:
            log(f"--max-seconds {self.opts.max_seconds:.0f} reached; skipping the rest")
            return True
        return False


def start_clusterwatch(fleet: Fleet, name: str, workdir: Path, opts: Options) -> ServerProc:
    """clusterwatch with nodes that stay alive for the whole run and a quiet log."""
    return start_server(fleet, name, workdir, opts.python, opts.pin, extra=(
        "--node-timeout", str(NODE_TIMEOUT_MS), "--log-level", "warning"))


def stage_model(s: Session) -> None:
    from clusterwatch.cluster import ClusterModel, ModelConfig

    opts = s.opts
    count = 100_000 if opts.quick else 400_000
    variants = [(n, False) for n in opts.nodes] + [(max(opts.nodes), True)]
    log(f"model: {count:,} heartbeats per run, nodes {opts.nodes} (+ status payload at "
        f"{max(opts.nodes)}), {opts.reps} reps")
    payload = status_payload()
    for rep in range(opts.reps):
        for nodes, with_payload in variants:
            if s.out_of_time():
                return
            cluster = SimCluster.make(nodes)
            model = ClusterModel(ModelConfig(node_timeout_ms=NODE_TIMEOUT_MS))
            now_ms = time.time_ns() // 1_000_000
            for data in cluster.initial:
                if model.publish(data, now_ms).kind != "applied":
                    raise BenchError("model: populating failed")
            extra = payload if with_payload else b""
            per_node = cluster.nodes
            n = len(per_node)
            base = cluster.next_seq
            msgs = [heartbeat(per_node[k % n][0], per_node[k % n][1], base + k // n, extra)
                    for k in range(count)]
            publish = model.publish
            applied_before = model.counters().applied
            cpu0, t0 = time.process_time(), time.perf_counter()
            for data in msgs:
                publish(data, now_ms)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            applied = model.counters().applied - applied_before
            error = None if applied == count else f"only {applied} of {count} applied"
            rec = s.record("model", rep=rep, nodes=nodes, payload=with_payload,
                           messages=count, msg_bytes=len(msgs[-1]), wall_s=round(wall, 4),
                           cpu_s=round(cpu, 4), per_s=round(count / wall),
                           us_per_msg=round(wall / count * 1e6, 3), error=error)
            log(f"  model rep {rep} nodes {nodes:>5}{' +payload' if with_payload else ''}: "
                f"{rec['per_s']:>10,} msg/s  {rec['us_per_msg']:.2f} µs/msg"
                f"{'  ' + error if error else ''}")
            del msgs


# --------------------------------------------------------------------------- stage 2: bus


@dataclass(frozen=True, slots=True)
class BusConfig:
    conns: int
    batch: int
    pipeline: int

    @property
    def name(self) -> str:
        return f"K={self.conns} B={self.batch} P={self.pipeline}"

    @property
    def window(self) -> int:
        """Messages in flight per connection."""
        return self.batch * self.pipeline


@dataclass(slots=True)
class BusTarget:
    server: ServerProc
    control: Client
    cluster: SimCluster


def bus_run(s: Session, t: BusTarget, cfg: BusConfig, total: int) -> dict[str, Any]:
    """One timed run of about `total` heartbeats; returns the measurements."""
    nodes = t.cluster.nodes
    per_conn = max(1, math.ceil(total / cfg.conns / cfg.window)) * cfg.window
    groups = [nodes[c::cfg.conns] for c in range(cfg.conns)]
    base = t.cluster.next_seq
    t.cluster.next_seq += max(math.ceil(per_conn / len(g)) for g in groups) + 1
    procs = max(1, min(s.opts.gen_procs, cfg.conns))
    specs = [{"port": t.server.port, "batch": cfg.batch, "pipeline": cfg.pipeline,
              "base_seq": base, "timeout": s.opts.run_timeout,
              "conns": [{"nodes": groups[c], "messages": per_conn}
                        for c in range(p, cfg.conns, procs)]} for p in range(procs)]
    before = t.control.bus_info()
    workers = spawn_workers(s.fleet, s.opts.python, s.opts.pin, procs)
    try:
        for w, spec in zip(workers, specs, strict=True):
            w.send(json.dumps(spec))
        for line in read_lines(workers, 60.0):
            if line != "ready":
                raise BenchError(f"load generator: {line}")
        busy0 = machine_busy_s()
        cpu0, t0 = cpu_seconds(t.server.pid), time.perf_counter()
        for w in workers:
            w.send("go")
        results = [json.loads(line) for line in read_lines(workers, s.opts.run_timeout + 10)]
        wall = time.perf_counter() - t0
        server_cpu = cpu_seconds(t.server.pid) - cpu0
        busy = machine_busy_s() - busy0
    finally:
        reap_workers(s.fleet, workers)
    after = t.control.bus_info()
    sent = sum(r["messages"] for r in results)
    applied = after["applied"] - before["applied"]
    stale = after["stale"] - before["stale"]
    rejected = after["rejected"] - before["rejected"]
    errors = [r["error"] for r in results if r.get("error")]
    if applied != sent or stale or rejected:
        errors.append(f"BUS INFO: applied +{applied} for {sent} sent, stale +{stale}, "
                      f"rejected +{rejected}")
    gen_cpu = sum(r["cpu_s"] for r in results)
    return {"config": cfg.name, "conns": cfg.conns, "batch": cfg.batch,
            "pipeline": cfg.pipeline, "gen_procs": procs, "sent": sent, "applied": applied,
            "stale": stale, "rejected": rejected, "wall_s": round(wall, 4),
            "per_s": round(applied / wall) if wall else None,
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_pct": round(100 * server_cpu / wall, 1),
            "us_per_msg": round(server_cpu / applied * 1e6, 3) if applied else None,
            "gen_cpu_s": round(gen_cpu, 3), "gen_cpu_pct": round(100 * gen_cpu / wall, 1),
            "other_cpu_pct": round(max(0.0, busy - server_cpu - gen_cpu) / wall * 100, 1),
            "error": "; ".join(errors) or None}


def stage_bus(s: Session) -> None:
    opts = s.opts
    configs = [BusConfig(k, b, opts.pipeline) for b in opts.batches for k in opts.conns]
    server = start_clusterwatch(s.fleet, "clusterwatch-bus", s.workdir, opts)
    try:
        cluster = SimCluster.make(opts.bus_nodes)
        with Client(server.port) as control:
            control.publish(cluster.initial)
            target = BusTarget(server, control, cluster)
            log(f"bus: server pid {server.pid} port {server.port}, {opts.bus_nodes} nodes; "
                f"configs {', '.join(c.name for c in configs)}; {opts.gen_procs} generator "
                f"process(es), {opts.reps} reps")
            sizes: dict[BusConfig, int] = {}
            for cfg in configs:
                if opts.quick:
                    sizes[cfg] = 100_000 if cfg.batch == 1 else 300_000
                    continue
                probe = bus_run(s, target, cfg, 30_000 if cfg.batch == 1 else 100_000)
                if probe["error"]:
                    raise BenchError(f"bus probe {cfg.name}: {probe['error']}")
                want = probe["per_s"] * opts.target_seconds
                sizes[cfg] = int(min(max(want, 20_000), 2_000_000))
                log(f"  probe {cfg.name}: {probe['per_s']:,} msg/s -> {sizes[cfg]:,} per run")
            for rep in range(opts.reps):
                shift = rep % len(configs)
                for cfg in configs[shift:] + configs[:shift]:
                    if s.out_of_time():
                        return
                    result = bus_run(s, target, cfg, sizes[cfg])
                    rec = s.record("bus", rep=rep, nodes=opts.bus_nodes, **result)
                    log(f"  bus rep {rep} {cfg.name:<16} {rec['per_s']:>9,} applied/s  "
                        f"{rec['us_per_msg']} µs/msg  srv {rec['server_cpu_pct']}%  "
                        f"gen {rec['gen_cpu_pct']}%  other {rec['other_cpu_pct']}%  "
                        f"wall {rec['wall_s']:.2f}s"
                        f"{'  ERROR ' + rec['error'] if rec['error'] else ''}")
    finally:
        s.fleet.stop(server)


# --------------------------------------------------------------------------- stage 3: CLUSTER


def cluster_cells(clients: int) -> list[Cell]:
    return [
        Cell("CLUSTER INFO P1", ("CLUSTER", "INFO"), 1, clients, "redis-cluster", 100_000),
        Cell("CLUSTER INFO P16", ("CLUSTER", "INFO"), 16, clients, "redis-cluster", 1_000_000),
        Cell("CLUSTER NODES P1", ("CLUSTER", "NODES"), 1, clients, "redis-cluster", 50_000),
        Cell("CLUSTER NODES P16", ("CLUSTER", "NODES"), 16, clients, "redis-cluster", 300_000),
    ]


def populate(server: ServerProc, cluster: SimCluster) -> dict[str, int]:
    with Client(server.port) as c:
        c.publish(cluster.initial)
        info = c.call("CLUSTER", "INFO")
        nodes = c.call("CLUSTER", "NODES")
    fields = dict(line.split(b":", 1) for line in info.split(b"\r\n") if b":" in line)
    if fields.get(b"cluster_state") != b"ok":
        raise BenchError(f"{server.name}: cluster_state is not ok after populating")
    return {"known_nodes": int(fields[b"cluster_known_nodes"]), "info_bytes": len(info),
            "nodes_bytes": len(nodes)}


def stage_cluster(s: Session) -> None:
    opts = s.opts
    fleet = s.fleet
    names: list[str] = []
    shapes: dict[str, dict[str, int]] = {}
    try:
        server = start_server(fleet, "redis-cluster", s.workdir, opts.python, opts.pin)
        names.append(server.name)
        with Client(server.port) as c:
            shapes[server.name] = {"known_nodes": 1,
                                   "info_bytes": len(c.call("CLUSTER", "INFO")),
                                   "nodes_bytes": len(c.call("CLUSTER", "NODES"))}
    except BenchError as exc:
        log(f"  redis-cluster: {exc} (measuring clusterwatch only)")
    for count in opts.nodes:
        name = f"clusterwatch-{count}"
        server = start_clusterwatch(fleet, name, s.workdir, opts)
        shapes[name] = populate(server, SimCluster.make(count))
        names.append(name)
    for name in names:
        srv = fleet.servers[name]
        log(f"cluster: {name} pid {srv.pid} port {srv.port}: {shapes[name]}")
    cells = cluster_cells(opts.clients)
    for cell in cells:
        sizes: dict[str, int] = {}
        for name in names:
            if opts.quick:
                sizes[name] = max(2_000, cell.n_full // 10)
                continue
            probe = run_benchmark(fleet, fleet.servers[name], cell,
                                  max(2_000, cell.n_full // 20), opts.pin, opts.run_timeout,
                                  s.workdir)
            rps = csv_float(probe.csv_row, "rps")
            if probe.error or not rps:
                raise BenchError(f"{cell.name} probe on {name}: {probe.error or 'no rps'}")
            sizes[name] = calibrated_n(cell, rps, opts.target_seconds)
        for rep in range(opts.reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                if s.out_of_time():
                    return
                srv = fleet.servers[name]
                n = sizes[name]
                busy0 = machine_busy_s()
                r = run_benchmark(fleet, srv, cell, n, opts.pin, opts.run_timeout, s.workdir)
                busy = machine_busy_s() - busy0
                rps = None if r.error else csv_float(r.csv_row, "rps")
                rec = s.record(
                    "cluster", cell=cell.name, server=name, rep=rep, n=n,
                    clients=cell.clients, pipeline=cell.pipeline, argv=r.argv, rps=rps,
                    p50_ms=csv_float(r.csv_row, "p50_latency_ms"),
                    wall_s=round(r.wall_s, 4), server_cpu_s=round(r.server_cpu_s, 3),
                    server_cpu_pct=round(100 * r.server_cpu_s / r.wall_s, 1) if r.wall_s
                    else None,
                    us_cpu_per_req=round(r.server_cpu_s / n * 1e6, 3) if not r.error else None,
                    bench_cpu_pct=round(100 * r.bench_cpu_s / r.wall_s, 1) if r.wall_s
                    else None,
                    other_cpu_pct=round(max(0.0, busy - r.server_cpu_s - r.bench_cpu_s)
                                        / r.wall_s * 100, 1) if r.wall_s else None,
                    error=r.error or None, **shapes[name])
                log(f"  {cell.name:<18} rep {rep} {name:<19} "
                    + (f"n/a ({r.error})" if r.error else
                       f"n={n:<8} {rps or 0:>10,.0f} rps  {rec['us_cpu_per_req']:6.2f} µs/req  "
                       f"srv {rec['server_cpu_pct']:5.1f}%  bench {rec['bench_cpu_pct']:5.1f}%  "
                       f"other {rec['other_cpu_pct']:5.1f}%"))
    for name in names:
        fleet.stop(fleet.servers[name])


# --------------------------------------------------------------------------- stage 4: memory


def stage_memory(s: Session) -> None:
    opts = s.opts
    for count in opts.memory_nodes:
        if s.out_of_time():
            return
        cluster = SimCluster.make(count)
        server = start_clusterwatch(s.fleet, f"clusterwatch-mem-{count}", s.workdir, opts)
        try:
            with Client(server.port) as c:
                # Warm the paths the measurement uses, so their one-off costs are in `before`.
                c.call("CLUSTER", "INFO")
                c.call("CLUSTER", "NODES")
                c.bus_info()
                time.sleep(0.3)
                before = vm_rss_kib(server.pid)
                c.publish(cluster.initial)
                time.sleep(0.3)
                populated = vm_rss_kib(server.pid)
                c.publish(cluster.step_heartbeats())
                for command in (("CLUSTER", "INFO"), ("CLUSTER", "NODES"),
                                ("CLUSTER", "SHARDS"), ("CLUSTER", "SLOTS")):
                    c.call(*command)
                info = c.bus_info()
                time.sleep(0.3)
                steady = vm_rss_kib(server.pid)
        finally:
            s.fleet.stop(server)
        error = None if info["nodes"] == count else f"server knows {info['nodes']} nodes"
        rec = s.record("memory", nodes=count, messages=len(cluster.initial) + count,
                       hello_bytes=len(cluster.initial[0]),
                       heartbeat_bytes=len(cluster.step_heartbeats()[0]),
                       rss_before_kib=before, rss_populated_kib=populated,
                       rss_steady_kib=steady,
                       bytes_per_node_populated=round((populated - before) * 1024 / count),
                       bytes_per_node_steady=round((steady - before) * 1024 / count),
                       error=error)
        log(f"  memory {count:>6} nodes: RSS {before / 1024:.1f} -> {populated / 1024:.1f} -> "
            f"{steady / 1024:.1f} MiB; {rec['bytes_per_node_steady']:,} B/node"
            f"{'  ' + error if error else ''}")


# --------------------------------------------------------------------------- summary


def summarize(s: Session, elapsed: float) -> str:
    opts, recs = s.opts, s.records
    f = s.facts
    lines = [
        f"## Cluster model — run {s.run_id}", "",
        f"Date {now_iso()[:16].replace('T', ' ')} UTC. {f['nproc']} vCPUs "
        f"({f['cpu']}), kernel {f['kernel']}, Python {platform.python_version()}, "
        f"redis-server {f['redis']}; clusterwatch commit {f.get('commit') or '?'}"
        f"{' (dirty tree)' if f.get('dirty') == 'yes' else ''}. {opts.reps} rep(s)"
        f"{', --quick' if opts.quick else ''}, pinning "
        f"{'server CPU 1 / clients CPU 0' if opts.pin else 'off'}, took {elapsed:.0f} s; "
        f"load average at start {f.get('loadavg', '?')}. Medians over the reps; min-max in "
        "brackets. `other CPU%` is CPU used during a run by processes this benchmark did not "
        "start (from /proc/stat; 100% = one core), a sign of a shared, noisy machine.", ""]
    targets: list[tuple[str, str, bool]] = []

    model = [r for r in recs if r["stage"] == "model" and not r.get("error")]
    if model:
        lines += ["### 1. Model alone: `ClusterModel.publish()`, one core", "",
                  "| nodes | message | bytes | heartbeats/s | µs/msg |", "|---|---|---|---|---|"]
        for key in sorted({(r["nodes"], r["payload"]) for r in model}, key=lambda k: (k[1], k[0])):
            rs = [r for r in model if (r["nodes"], r["payload"]) == key]
            per_s = [r["per_s"] for r in rs]
            lines.append(f"| {key[0]} | {'with status payload' if key[1] else 'bare heartbeat'} "
                         f"| {rs[0]['msg_bytes']} | {fmt_rps(med(per_s))} "
                         f"[{fmt_rps(min(per_s))}-{fmt_rps(max(per_s))}] "
                         f"| {fmt_us(med([r['us_per_msg'] for r in rs]))} |")
        lines.append("")

    bus = [r for r in recs if r["stage"] == "bus"]
    if bus:
        lines += ["### 2. Through the server: pipelined `BUS PUBLISH` (bare heartbeats)", "",
                  f"{bus[0]['nodes']} nodes; K connections, P requests in flight on each, B "
                  f"heartbeats per request; {bus[0]['gen_procs']} generator process(es) on "
                  "CPU 0. Every run checked: every reply `applied`, BUS INFO applied = sent, "
                  "stale and rejected +0.", "",
                  "| config | runs | applied/s | server µs CPU/msg | server CPU% | "
                  "generator CPU% | other CPU% | 1 core at µs/msg | checks |",
                  "|---|---|---|---|---|---|---|---|---|"]
        best: dict[int, tuple[float, str]] = {}
        for name in dict.fromkeys(r["config"] for r in bus):
            rs = [r for r in bus if r["config"] == name]
            ok = [r for r in rs if not r["error"]]
            if not ok:
                lines.append(f"| {name} | {len(rs)} | n/a ({rs[0]['error']}) | | | | | | FAIL |")
                continue
            per_s, us = [r["per_s"] for r in ok], [r["us_per_msg"] for r in ok]
            if med(per_s) > best.get(ok[0]["batch"], (0.0, ""))[0]:
                best[ok[0]["batch"]] = (med(per_s), name)
            lines.append(
                f"| {name} | {len(rs)} | {fmt_rps(med(per_s))} [{fmt_rps(min(per_s))}-"
                f"{fmt_rps(max(per_s))}] | {fmt_us(med(us))} | "
                f"{med([r['server_cpu_pct'] for r in ok]):.0f} | "
                f"{med([r['gen_cpu_pct'] for r in ok]):.0f} | "
                f"{med([r['other_cpu_pct'] for r in ok]):.0f} | {fmt_rps(1e6 / med(us))}/s | "
                f"{'ok' if len(ok) == len(rs) else f'{len(rs) - len(ok)} failed'} |")
        lines.append("")
        for batch, (per_s_best, name) in sorted(best.items()):
            targets.append((f"≥ {fmt_rps(BUS_TARGET)} heartbeats/s applied through pipelined "
                            f"BUS PUBLISH, server on one core ({batch} per request)",
                            f"{fmt_rps(per_s_best)}/s ({name})", per_s_best >= BUS_TARGET))

    cluster = [r for r in recs if r["stage"] == "cluster"]
    if cluster:
        lines += ["### 3. `CLUSTER INFO` / `CLUSTER NODES` (redis-benchmark -c "
                  f"{opts.clients})", "",
                  "| cell | server | nodes | reply bytes | rps | µs CPU/req | srv CPU% | "
                  "bench CPU% | other CPU% |", "|---|---|---|---|---|---|---|---|---|"]
        rps_med: dict[tuple[str, str], float] = {}
        us_med: dict[tuple[str, str], float] = {}
        for cell in dict.fromkeys(r["cell"] for r in cluster):
            for name in dict.fromkeys(r["server"] for r in cluster):
                rs = [r for r in cluster if r["cell"] == cell and r["server"] == name]
                if not rs:
                    continue
                ok = [r for r in rs if not r["error"]]
                size = rs[0]["info_bytes" if "INFO" in cell else "nodes_bytes"]
                if not ok:
                    lines.append(f"| {cell} | {name} | {rs[0]['known_nodes']} | {size} | "
                                 f"n/a ({rs[0]['error']}) | | | | |")
                    continue
                rps, us = [r["rps"] for r in ok], [r["us_cpu_per_req"] for r in ok]
                rps_med[cell, name], us_med[cell, name] = med(rps), med(us)
                lines.append(
                    f"| {cell} | {name} | {rs[0]['known_nodes']} | {size:,} | "
                    f"{fmt_rps(med(rps))} [{fmt_rps(min(rps))}-{fmt_rps(max(rps))}] | "
                    f"{fmt_us(med(us))} | {med([r['server_cpu_pct'] for r in ok]):.0f} | "
                    f"{med([r['bench_cpu_pct'] for r in ok]):.0f} | "
                    f"{med([r['other_cpu_pct'] for r in ok]):.0f} |")
        lines += ["", "redis-cluster is a single cluster-enabled redis-server with no slots "
                  "(its CLUSTER NODES is one line), as in bench.py. Ratios of medians:", "",
                  "| cell | ratio | rps | µs CPU/req |", "|---|---|---|---|"]
        hi, lo = f"clusterwatch-{max(opts.nodes)}", f"clusterwatch-{min(opts.nodes)}"
        for cell in dict.fromkeys(r["cell"] for r in cluster):
            pairs = [(hi, lo)] + [(f"clusterwatch-{n}", "redis-cluster") for n in opts.nodes]
            for a, b in pairs:
                if (cell, a) in rps_med and (cell, b) in rps_med:
                    lines.append(f"| {cell} | {a} / {b} | {rps_med[cell, a] / rps_med[cell, b]:.2f}"
                                 f" | {us_med[cell, a] / us_med[cell, b]:.2f} |")
        for cell in ("CLUSTER INFO P16", "CLUSTER INFO P1"):
            if (cell, hi) in rps_med and (cell, lo) in rps_med:
                ratio = rps_med[cell, hi] / rps_med[cell, lo]
                targets.append((f"{cell}: rps at {max(opts.nodes)} nodes within "
                                f"{100 - INFO_SCALE_TARGET * 100:.0f}% of {min(opts.nodes)} "
                                "nodes", f"{ratio:.2f}x", ratio >= INFO_SCALE_TARGET))
        cell = "CLUSTER INFO P16"
        for name in (hi, lo):
            if (cell, name) in rps_med and (cell, "redis-cluster") in rps_med:
                ratio = rps_med[cell, name] / rps_med[cell, "redis-cluster"]
                targets.append((f"{cell}: {name} ≥ {INFO_REDIS_TARGET:.0f}x redis-server's "
                                "rps", f"{ratio:.2f}x", ratio >= INFO_REDIS_TARGET))
        lines.append("")

    memory = [r for r in recs if r["stage"] == "memory"]
    if memory:
        lines += ["### 4. Memory per node (server VmRSS)", "",
                  "Fresh server per row; `populated` = after each node's hello, the masters' "
                  "slots and one heartbeat with a status payload; `steady` = after a second "
                  "heartbeat per node and one CLUSTER INFO/NODES/SHARDS/SLOTS (cached views "
                  "built).", "",
                  "| nodes | heartbeat bytes | RSS before | RSS populated | RSS steady | "
                  "bytes/node populated | bytes/node steady |", "|---|---|---|---|---|---|---|"]
        for r in memory:
            lines.append(f"| {r['nodes']:,} | {r['heartbeat_bytes']} | "
                         f"{r['rss_before_kib'] / 1024:.1f} MiB | "
                         f"{r['rss_populated_kib'] / 1024:.1f} MiB | "
                         f"{r['rss_steady_kib'] / 1024:.1f} MiB | "
                         f"{r['bytes_per_node_populated']:,} | {r['bytes_per_node_steady']:,} |"
                         + (f" {r['error']}" if r.get("error") else ""))
        lines.append("")

    if targets:
        lines += ["### Targets (issue 3)", "", "| target | measured | result |",
                  "|---|---|---|"]
        lines += [f"| {what} | {got} | {verdict(ok)} |" for what, got, ok in targets]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


@dataclass(slots=True)
class Options:
    stages: list[str]
    quick: bool
    reps: int
    pin: bool
    python: str
    nodes: list[int]
    memory_nodes: list[int]
    bus_nodes: int
    conns: list[int]
    batches: list[int]
    pipeline: int
    gen_procs: int
    clients: int
    target_seconds: float
    run_timeout: float
    max_seconds: float
    out: Path
    markdown: Path | None


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


STAGES = ("model", "bus", "cluster", "memory")


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma list from {','.join(STAGES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="1 rep, small fixed sizes, no probes: "
                   "under ~30 s")
    p.add_argument("--runs", "--reps", dest="reps", type=int, default=None,
                   help="repetitions (default 3, --quick 1)")
    p.add_argument("--nodes", type=int_list, default=[6, 100, 1000],
                   help="node counts for the model and CLUSTER stages (default 6,100,1000)")
    p.add_argument("--memory-nodes", type=int_list, default=[1000, 10000],
                   help="node counts for the memory stage (default 1000,10000)")
    p.add_argument("--bus-nodes", type=int, default=1000,
                   help="nodes the heartbeats come from in the bus stage (default 1000)")
    p.add_argument("--conns", type=int_list, default=None,
                   help="bus stage connections K (default 8,16; --quick 16)")
    p.add_argument("--batches", type=int_list, default=[1, 16],
                   help="bus stage heartbeats per BUS PUBLISH B (default 1,16)")
    p.add_argument("--pipeline", type=int, default=16,
                   help="bus stage requests in flight per connection P (default 16)")
    p.add_argument("--gen-procs", type=int, default=1,
                   help="load generator processes, all on CPU 0 (default 1)")
    p.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    p.add_argument("--target-seconds", type=float, default=2.0,
                   help="length of a calibrated run (default 2)")
    p.add_argument("--run-timeout", type=float, default=None,
                   help="seconds one run may take (default 60, --quick 20)")
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="stop starting runs after this many seconds (default 900)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset / affinity")
    p.add_argument("--python", default=None,
                   help="interpreter for the servers and generator (default: the repo's .venv)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "cluster-results.jsonl",
                   help="JSON lines file to append to")
    p.add_argument("--markdown", type=Path, default=None,
                   help="summary file (default results/cluster-latest.md, "
                   "--quick: results/cluster-quick.md)")
    p.add_argument("--no-markdown", action="store_true", help="print the summary only")
    args = p.parse_args(argv)
    stages = [x.strip() for x in args.stages.split(",") if x.strip()]
    if not stages or set(stages) - set(STAGES):
        p.error(f"--stages: choose from {','.join(STAGES)}")
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1:
        p.error("--reps must be at least 1")
    python = args.python or default_python()
    return Options(
        stages=stages, quick=args.quick, reps=reps,
        pin=not args.no_pin and pinning_available(), python=python, nodes=sorted(args.nodes),
        memory_nodes=args.memory_nodes, bus_nodes=args.bus_nodes,
        conns=args.conns or ([16] if args.quick else [8, 16]), batches=args.batches,
        pipeline=args.pipeline, gen_procs=max(1, args.gen_procs), clients=args.clients,
        target_seconds=args.target_seconds,
        run_timeout=args.run_timeout or (20.0 if args.quick else 60.0),
        max_seconds=args.max_seconds, out=args.out,
        markdown=None if args.no_markdown else (args.markdown or RESULTS_DIR / (
            "cluster-quick.md" if args.quick else "cluster-latest.md")))


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    missing = require_tools("redis-benchmark", "redis-server") if "cluster" in opts.stages \
        else None
    if missing:
        log(f"cluster_bench: {missing}")
        return 2
    if opts.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    run = run_id()
    started = time.monotonic()
    status = 0
    facts = machine_facts() | git_facts()
    facts["loadavg"] = loadavg()
    stage_fns: dict[str, Callable[[Session], None]] = {
        "model": stage_model, "bus": stage_bus, "cluster": stage_cluster,
        "memory": stage_memory}
    with signals_as_interrupt(), fleet_in_tempdir("cw-cbench-") as (fleet, workdir), \
            results_file(opts.out) as out:
        session = Session(opts, fleet, workdir, run, facts, started, out=out)
        log(f"run {run}: stages {','.join(opts.stages)}; pinning "
            f"{'on' if opts.pin else 'off'}")
        try:
            for stage in opts.stages:
                if session.out_of_time():
                    break
                stage_fns[stage](session)
        except KeyboardInterrupt:
            log("interrupted; stopping every process started")
            status = 130
        except (BenchError, OSError) as exc:
            log(f"cluster_bench: {exc}")
            status = 1
    if not session.records:
        return status or 1
    text = summarize(session, time.monotonic() - started)
    print(text)
    if opts.markdown is not None and status == 0:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text, encoding="utf-8")
        log(f"wrote {opts.markdown}; appended {len(session.records)} records to {opts.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
