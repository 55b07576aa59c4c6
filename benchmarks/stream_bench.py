"""Redis-Streams bus benchmarks: ingest per instance, cross-instance latency, replay.

    .venv/bin/python -m benchmarks.stream_bench           # full run, ~2 min
    .venv/bin/python -m benchmarks.stream_bench --quick   # smoke run, ~25 s
    .venv/bin/python -m benchmarks.stream_bench --stages ingest --runs 9

One redis-server (``--save '' --appendonly no``, temp dir, free port) carries the streams.
Three stages (``--stages ingest,latency,replay``):

1. **ingest**: heartbeats applied per second by each instance. Three groups, one after
   another (an idle 1000-node instance costs ~6% of a core, so none idles beside a measured
   one): one ``--bus memory`` instance; one instance on a stream; three instances on another
   stream. Each is populated with the same 1000 simulated nodes. Loads: pipelined ``BUS
   PUBLISH`` (K connections spread over the group's instances, P requests of B heartbeats in
   flight on each; harness/loadgen.py's pre-encoded GenConn, every reply must be all
   ``applied``) and, for the stream groups, raw ``XADD <stream> * m <json>`` pipelined
   straight into Redis (the instances only read); the two loads alternate, 5 reps. Every
   heartbeat carries its node's next seq, so all must be applied; applied/stale per instance
   are reported. An instance's rate = stream entries it read for the load / (first publish ->
   its bus last id reaches the stream's last id), polled every 10 ms from ``INFO cluster``
   (BUS INFO costs ~6 ms of server CPU per call at 1000 nodes) once the generator is done.
   Each instance's and redis-server's CPU from /proc, the generator's from itself.
2. **latency**: single heartbeats (one per request) published via instance A at a modest
   rate; instance B's ``CLUSTER INFO`` (a cached reply whose
   ``cluster_stats_messages_received`` counts every node message B applied) is polled back to
   back from the moment of the publish until it counts the message. The first poll reply that
   shows it bounds B's apply time from above; the poll round trip (reported) is the
   resolution. A's own reply (sent once A's reader applied the entry) and the memory bus's
   BUS PUBLISH round trip are measured in the same loop.
3. **replay**: a stream filled with ~1M heartbeat entries by raw XADD pipelines (1000
   nodes), no snapshot; a fresh instance's replay time (its log line and ``bus_replay_ms``,
   plus spawn -> ready seen by polling INFO cluster) and VmRSS. That instance runs with
   ``--bus-snapshot-interval 1000``: once its snapshot covers the stream's last id it is
   stopped, the stream is trimmed to 1000 entries and a second fresh instance measures the
   compacted restart. redis-server's memory for the stream is reported.

Pinning (when taskset and CPU 1 exist): the clusterwatch instances on CPU 1; redis-server,
the load generator and this driver on CPU 0 (``--redis-cpu 1`` moves redis-server to the
instances' core). Every process started here is stopped by PID on exit, error, Ctrl-C or
SIGTERM. Processes, CPU, the RESP client and the load generator: benchmarks/harness/.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness.loadgen import run_worker
from benchmarks.harness.nodes import NODE_TIMEOUT_MS, SimCluster, heartbeat
from benchmarks.harness.procs import (
    CLIENT_CPU,
    REPO,
    RESULTS_DIR,
    SERVER_CPU,
    BenchError,
    Fleet,
    ServerProc,
    default_python,
    fleet_in_tempdir,
    pinning_available,
    require_tools,
    start_server,
)
from benchmarks.harness.resp import Client, command, pairs, text
from benchmarks.harness.runner import (
    fmt_rps,
    fmt_us,
    log,
    med,
    now_iso,
    percentile,
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

STREAM_PREFIX = "cwbench"
INGEST_TARGET = 100_000  # messages/s applied by each of 3 instances (the target)
# An ingest run during which processes this benchmark did not start used more than this
# share of a core is "noisy": it is reported but left out of the medians (if any run is left).
NOISY_PCT = 25.0
# INFO cluster poll interval while waiting for instances to reach the tail: a resolution of
# <= 0.4% of a 2.5 s run, for ~0.2 ms of each instance's CPU per poll (~2%).
POLL_S = 0.01
LOG_TS = re.compile(rb"^ts=(\S+) ")


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


# --------------------------------------------------------------------------- options


@dataclass(slots=True)
class Options:
    stages: list[str]
    quick: bool
    reps: int
    pin: bool
    python: str
    redis_cpu: int
    nodes: int
    instances: int
    conns: int
    batch: int
    pipeline: int
    target_seconds: float
    latency_samples: int
    latency_rate: float
    replay_entries: int
    run_timeout: float
    max_seconds: float
    wait_quiet: float
    out: Path | None
    markdown: Path | None


STAGES = ("ingest", "latency", "replay")


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma list from {','.join(STAGES)} (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="1 rep, small fixed sizes, no probes: under 60 s")
    p.add_argument("--runs", "--reps", dest="reps", type=int, default=None,
                   help="ingest repetitions (default 5, --quick 1)")
    p.add_argument("--nodes", type=int, default=1000, help="simulated nodes (default 1000)")
    p.add_argument("--instances", type=int, default=3,
                   help="instances in the multi-instance group (default 3)")
    p.add_argument("--conns", type=int, default=6,
                   help="generator connections, spread over the group's instances (default 6)")
    p.add_argument("--batch", type=int, default=16, help="heartbeats per BUS PUBLISH (16)")
    p.add_argument("--pipeline", type=int, default=16,
                   help="requests in flight per connection (default 16); an XADD connection "
                   "keeps batch x pipeline XADDs in flight")
    p.add_argument("--target-seconds", type=float, default=2.5,
                   help="length of a calibrated ingest run (default 2.5)")
    p.add_argument("--latency-samples", type=int, default=None,
                   help="latency samples per path (default 500, --quick 100)")
    p.add_argument("--latency-rate", type=float, default=200.0,
                   help="single-message publishes per second (default 200)")
    p.add_argument("--replay-entries", type=int, default=None,
                   help="heartbeat entries in the replay stream (default 1000000, "
                   "--quick 50000)")
    p.add_argument("--redis-cpu", type=int, choices=(0, 1), default=CLIENT_CPU,
                   help="CPU for redis-server when pinning (default 0, with the generator)")
    p.add_argument("--run-timeout", type=float, default=None,
                   help="seconds one run may take (default 60, --quick 20)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop starting runs after this many seconds (default 600, --quick 90)")
    p.add_argument("--wait-quiet", type=float, default=None,
                   help="at start, wait up to this many seconds for a 3 s window with other "
                   "load below 25%% of a core (default 120, --quick 0)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset / affinity")
    p.add_argument("--python", default=None,
                   help="interpreter for the servers and generator (default: the repo's .venv)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "results.jsonl",
                   help="JSON lines file to append to (default results/results.jsonl)")
    p.add_argument("--no-out", action="store_true", help="append no JSON lines")
    p.add_argument("--markdown", type=Path, default=None,
                   help="summary file (default results/stream-latest.md, --quick: "
                   "results/stream-quick.md)")
    p.add_argument("--no-markdown", action="store_true", help="print the summary only")
    args = p.parse_args(argv)
    stages = [x.strip() for x in args.stages.split(",") if x.strip()]
    if not stages or set(stages) - set(STAGES):
        p.error(f"--stages: choose from {','.join(STAGES)}")
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    if reps < 1 or args.instances < 2 or args.conns < 1 or args.nodes < 2:
        p.error("--reps >= 1, --instances >= 2, --conns >= 1 and --nodes >= 2 please")
    python = args.python or default_python()
    return Options(
        stages=stages, quick=args.quick, reps=reps,
        pin=not args.no_pin and pinning_available(), python=python, redis_cpu=args.redis_cpu,
        nodes=args.nodes, instances=args.instances, conns=args.conns, batch=args.batch,
        pipeline=args.pipeline, target_seconds=args.target_seconds,
        latency_samples=args.latency_samples or (100 if args.quick else 500),
        latency_rate=args.latency_rate,
        replay_entries=args.replay_entries or (50_000 if args.quick else 1_000_000),
        run_timeout=args.run_timeout or (20.0 if args.quick else 60.0),
        max_seconds=args.max_seconds or (90.0 if args.quick else 600.0),
        wait_quiet=args.wait_quiet if args.wait_quiet is not None else (
            0.0 if args.quick else 120.0),
        out=None if args.no_out else args.out,
        markdown=None if args.no_markdown else (args.markdown or RESULTS_DIR / (
            "stream-quick.md" if args.quick else markdown_name(stages, args.nodes))))


def markdown_name(stages: list[str], nodes: int) -> str:
    """stream-latest.md for the full run; a partial or other-size run gets its own file so
    the full run's table stays (stream-latency-n6.md, ...)."""
    parts = [] if set(stages) == set(STAGES) else sorted(stages)
    if nodes != 1000:
        parts.append(f"n{nodes}")
    return f"stream-{'-'.join(parts) or 'latest'}.md"


# --------------------------------------------------------------------------- session


@dataclass(slots=True)
class Session:
    opts: Options
    fleet: Fleet
    workdir: Path
    run_id: str
    facts: dict[str, str]
    started: float
    cluster: SimCluster
    redis: ServerProc | None = None
    groups: list[Group] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    out: Any = None

    def record(self, stage: str, **fields: Any) -> dict[str, Any]:
        rec = {"run_id": self.run_id, "bench": "stream", "stage": stage,
               "ts": now_iso(),
               "quick": self.opts.quick, "pinned": self.opts.pin,
               "redis_cpu": self.opts.redis_cpu if self.opts.pin else None,
               "commit": self.facts.get("commit"), "dirty": self.facts.get("dirty"),
               "diff_sha1": self.facts.get("diff_sha1"), **fields}
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

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return f"redis://127.0.0.1:{self.redis.port}"

    def redis_client(self) -> Client:
        assert self.redis is not None
        return Client(self.redis.port)


def wait_quiet(limit: float) -> float:
    """Wait (up to `limit` s) for a 3 s window in which the machine is < NOISY_PCT busy; the
    busy share of the last window, in % of one core."""
    deadline = time.monotonic() + limit
    while True:
        busy0, t0 = machine_busy_s(), time.monotonic()
        time.sleep(3.0)
        pct_busy = 100 * (machine_busy_s() - busy0) / (time.monotonic() - t0)
        if pct_busy < NOISY_PCT or time.monotonic() >= deadline:
            return pct_busy
        log(f"  machine {pct_busy:.0f}% busy (other work); waiting for it to go quiet")


def start_redis(s: Session) -> ServerProc:
    return start_server(s.fleet, "redis", s.workdir, pin=s.opts.pin, cpu=s.opts.redis_cpu,
                        timeout=10)


def start_instance(s: Session, name: str, stream: str | None,
                   extra: Sequence[str] = ()) -> ServerProc:
    """A clusterwatch instance on the memory bus (stream None) or on `stream`, pinned to the
    server CPU; nodes stay alive for an hour, as in cluster_bench.py."""
    args = ["--node-timeout", str(NODE_TIMEOUT_MS), "--log-level", "info", *extra]
    if stream is not None:
        args += ["--bus", s.redis_url, "--bus-stream", stream]
    return start_server(s.fleet, name, s.workdir, s.opts.python, s.opts.pin, extra=args)


def stop_instance(s: Session, srv: ServerProc, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` s; a slow graceful stop is noted in the report."""
    t0 = time.monotonic()
    pid = srv.pid if srv.proc is not None else 0
    if not s.fleet.stop(srv, grace=grace):
        s.notes.append(f"{srv.name} (pid {pid}) had not exited {grace:.0f} s after "
                       "SIGTERM and was killed (see the README: a bus task can swallow "
                       "its cancellation, and shutdown waits for it without a bound)")
        log(f"  {srv.name}: no exit {time.monotonic() - t0:.1f}s after SIGTERM; killed")


def stream_info(redis: Client, key: str) -> dict[str, Any]:
    try:
        flat = redis.call("XINFO", "STREAM", key)
    except BenchError as exc:
        if "no such key" in str(exc).lower():
            return {"length": 0, "last-generated-id": b"0-0"}
        raise
    return pairs(flat)


def stream_last_id(redis: Client, key: str) -> str:
    return text(stream_info(redis, key)["last-generated-id"])


def redis_used_memory(redis: Client) -> int:
    info = text(redis.call("INFO", "memory"))
    for line in info.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    return 0


def bus_fields(c: Client) -> dict[str, Any]:
    """The bus fields of ``INFO cluster`` (``clusterwatch_bus_`` / ``clusterwatch_`` dropped;
    numbers as int). Polled instead of BUS INFO, which at 1000 nodes costs the server ~6.8 ms
    a call (it builds every node's view to count them); INFO cluster costs ~0.2 ms."""
    fields: dict[str, Any] = {}
    for line in text(c.call("INFO", "cluster")).splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.removeprefix("clusterwatch_").removeprefix("bus_")
        fields[name] = int(value) if value.lstrip("-").isdigit() else value
    return fields


def wait_caught_up(s: Session, controls: Sequence[Client], key: str,
                   timeout: float = 30.0) -> tuple[str, list[dict[str, Any]]]:
    """Wait until every instance has read the stream to its last id; their bus fields."""
    deadline = time.monotonic() + timeout
    with s.redis_client() as redis:
        while True:
            last = id_key(stream_last_id(redis, key))
            infos = [bus_fields(c) for c in controls]
            if all(id_key(i["last_id"]) >= last for i in infos):
                return text(infos[0]["last_id"]), infos
            if time.monotonic() > deadline:
                raise BenchError(f"instances not caught up on {key} within {timeout:.0f}s: "
                                 f"{[i['last_id'] for i in infos]}")
            time.sleep(0.01)


# --------------------------------------------------------------------------- stage 1: ingest


@dataclass(slots=True)
class Group:
    name: str  # memory, stream-1, stream-3
    stream: str | None
    servers: list[ServerProc]
    controls: list[Client]


@dataclass(frozen=True, slots=True)
class IngestConfig:
    group: str
    mode: str  # publish | xadd

    @property
    def name(self) -> str:
        return f"{self.group} {'BUS PUBLISH' if self.mode == 'publish' else 'raw XADD'}"


def ingest_run(s: Session, g: Group, mode: str, total: int) -> dict[str, Any]:
    opts = s.opts
    assert s.redis is not None
    nodes = s.cluster.nodes
    k = opts.conns
    window = opts.batch * opts.pipeline
    per_conn = max(1, math.ceil(total / k / window)) * window
    node_groups = [[list(n) for n in nodes[c::k]] for c in range(k)]
    base = s.cluster.next_seq
    s.cluster.next_seq += max(math.ceil(per_conn / len(ng)) for ng in node_groups) + 1
    if mode == "publish":
        ports = [g.servers[c % len(g.servers)].port for c in range(k)]
    else:
        ports = [s.redis.port] * k
    spec = {"mode": mode, "key": g.stream, "batch": opts.batch, "pipeline": opts.pipeline,
            "base_seq": base, "timeout": opts.run_timeout,
            "conns": [{"port": ports[c], "nodes": node_groups[c], "messages": per_conn}
                      for c in range(k)]}
    if g.stream is not None:
        _, before = wait_caught_up(s, g.controls, g.stream)
    else:
        before = [bus_fields(c) for c in g.controls]
    snap: dict[str, Any] = {}

    def on_go() -> None:
        snap["busy"] = machine_busy_s()
        snap["driver"] = time.process_time()
        snap["cpu"] = [cpu_seconds(srv.pid) for srv in g.servers]
        snap["redis"] = cpu_seconds(s.redis.pid) if s.redis is not None else 0.0

    result = run_worker(s.fleet, s.opts.python, s.opts.pin, spec, s.opts.run_timeout,
                        on_go=on_go)
    t0 = float(result["t_start"])
    n = len(g.servers)
    t_done: list[float | None] = [None] * n
    cpu_done: list[float] = [0.0] * n
    after: list[dict[str, Any]] = [{}] * n
    errors = [result["error"]] if result.get("error") else []
    last = ""
    if g.stream is None:
        now = time.monotonic()
        for i, c in enumerate(g.controls):
            t_done[i], cpu_done[i], after[i] = now, cpu_seconds(g.servers[i].pid), bus_fields(c)
    else:
        with s.redis_client() as redis:
            last = stream_last_id(redis, g.stream)
        target = id_key(last)
        deadline = time.monotonic() + opts.run_timeout
        while any(t is None for t in t_done) and time.monotonic() < deadline:
            for i, c in enumerate(g.controls):
                if t_done[i] is not None:
                    continue
                info = bus_fields(c)
                if id_key(info["last_id"]) >= target:
                    t_done[i], cpu_done[i], after[i] = (time.monotonic(),
                                                        cpu_seconds(g.servers[i].pid), info)
            time.sleep(POLL_S)
        if any(t is None for t in t_done):
            errors.append(f"not every instance reached {last} within {opts.run_timeout:.0f}s")
            for i, c in enumerate(g.controls):
                if t_done[i] is None:
                    t_done[i], cpu_done[i], after[i] = (time.monotonic(),
                                                        cpu_seconds(g.servers[i].pid),
                                                        bus_fields(c))
    t_end = max(t for t in t_done if t is not None)
    redis_cpu = cpu_seconds(s.redis.pid) - snap["redis"]
    busy = machine_busy_s() - snap["busy"]
    driver_cpu = time.process_time() - snap["driver"]
    wall = t_end - t0
    per_instance = []
    for i, srv in enumerate(g.servers):
        b, a = before[i], after[i]
        done_at = t_done[i]
        assert done_at is not None
        secs = done_at - t0
        applied = a["messages_applied"] - b["messages_applied"]
        stale = a["messages_stale"] - b["messages_stale"]
        entries = (a["entries_read"] - b["entries_read"] if g.stream is not None
                   else applied + stale)
        cpu = cpu_done[i] - snap["cpu"][i]
        if applied + stale < result["messages"] or stale:
            errors.append(f"{srv.name}: applied +{applied}, stale +{stale} for "
                          f"{result['messages']} sent")
        per_instance.append({
            "name": srv.name, "pid": srv.pid, "entries": entries, "applied": applied,
            "stale": stale, "rejected": a["messages_rejected"] - b["messages_rejected"],
            "secs": round(secs, 4), "per_s": round(entries / secs) if secs > 0 else None,
            "cpu_s": round(cpu, 3), "cpu_pct": round(100 * cpu / secs, 1) if secs else None,
            "us_per_entry": round(cpu / entries * 1e6, 3) if entries else None,
            "rss_kib": vm_rss_kib(srv.pid)})
    inst_cpu = sum(p["cpu_s"] for p in per_instance)
    gen_cpu = float(result["cpu_s"])
    rates = [p["per_s"] or 0 for p in per_instance]
    return {
        "config": IngestConfig(g.name, mode).name, "group": g.name, "mode": mode,
        "bus": "memory" if g.stream is None else "redis-stream", "stream": g.stream,
        "instances": n, "conns": k, "batch": opts.batch if mode == "publish" else 1,
        "pipeline": opts.pipeline if mode == "publish" else window,
        "sent": result["messages"], "stream_last_id": last or None,
        "gen_wall_s": round(float(result["wall_s"]), 4), "wall_s": round(wall, 4),
        "gen_cpu_s": round(gen_cpu, 3), "gen_cpu_pct": round(100 * gen_cpu / wall, 1),
        "redis_cpu_s": round(redis_cpu, 3), "redis_cpu_pct": round(100 * redis_cpu / wall, 1),
        "instances_cpu_s": round(inst_cpu, 3),
        "instances_cpu_pct": round(100 * inst_cpu / wall, 1),
        "driver_cpu_pct": round(100 * driver_cpu / wall, 1),
        "other_cpu_pct": round(max(0.0, busy - inst_cpu - gen_cpu - redis_cpu - driver_cpu)
                               / wall * 100, 1),
        "min_per_s": min(rates), "max_per_s": max(rates), "per_instance": per_instance,
        "error": "; ".join(errors) or None}


def trim_stream(s: Session, key: str) -> None:
    with s.redis_client() as redis:
        redis.call("XTRIM", key, "MAXLEN", 0)


def start_group(s: Session, name: str, key: str | None, count: int) -> Group:
    """`count` instances on `key` (None: one memory-bus instance), populated with the nodes'
    hello, slots and first heartbeat through BUS PUBLISH on the first one."""
    if key is not None:
        with s.redis_client() as redis:
            redis.call("DEL", key, f"{key}:snapshot")
    g = Group(name, key, [], [])
    s.groups.append(g)
    for i in range(count):
        g.servers.append(start_instance(s, f"cw-{name}-{i}", key))
        g.controls.append(Client(g.servers[-1].port))
    g.controls[0].publish(s.cluster.initial)
    if key is not None:
        wait_caught_up(s, g.controls, key)
    for c in g.controls:
        if bus_fields(c)["nodes_known"] != s.opts.nodes:
            raise BenchError(f"{name}: an instance does not know {s.opts.nodes} nodes")
    log(f"group {name}: " + ", ".join(f"{srv.name} pid {srv.pid} port {srv.port}"
                                      for srv in g.servers)
        + (f"; stream {key}" if key else "; memory bus"))
    return g


def stop_group(s: Session, g: Group) -> None:
    for c in g.controls:
        with contextlib.suppress(OSError):
            c.close()
    for srv in g.servers:
        stop_instance(s, srv)
    if g in s.groups:
        s.groups.remove(g)


def stage_ingest(s: Session, g: Group) -> None:
    """Calibrate, then the group's loads interleaved (order rotated each rep)."""
    opts = s.opts
    configs = [IngestConfig(g.name, "publish")]
    if g.stream is not None:
        configs.append(IngestConfig(g.name, "xadd"))
    sizes: dict[IngestConfig, int] = {}
    for cfg in configs:
        if opts.quick:
            sizes[cfg] = 100_000 if g.stream is None else 40_000
            continue
        probe = ingest_run(s, g, cfg.mode, 200_000 if g.stream is None else 40_000)
        if g.stream is not None:
            trim_stream(s, g.stream)
        if probe["error"]:
            raise BenchError(f"ingest probe {cfg.name}: {probe['error']}")
        rate = probe["sent"] / probe["wall_s"]
        sizes[cfg] = int(min(max(rate * opts.target_seconds, 20_000), 2_000_000))
        log(f"  probe {cfg.name}: {rate:,.0f} msg/s -> {sizes[cfg]:,} per run")
    for rep in range(opts.reps):
        shift = rep % len(configs)
        for cfg in configs[shift:] + configs[:shift]:
            if s.out_of_time():
                return
            result = ingest_run(s, g, cfg.mode, sizes[cfg])
            if g.stream is not None:
                trim_stream(s, g.stream)
            rec = s.record("ingest", rep=rep, nodes=opts.nodes, **result)
            rates = "/".join(fmt_rps(p["per_s"] or 0) for p in rec["per_instance"])
            us = "/".join(fmt_us(p["us_per_entry"] or 0) for p in rec["per_instance"])
            log(f"  ingest rep {rep} {cfg.name:<22} sent {rec['sent']:>9,}  applied/s per "
                f"instance {rates}  µs/entry {us}  inst CPU {rec['instances_cpu_pct']}%  "
                f"redis {rec['redis_cpu_pct']}%  gen {rec['gen_cpu_pct']}%  "
                f"other {rec['other_cpu_pct']}%  wall {rec['wall_s']:.2f}s"
                f"{'  ERROR ' + rec['error'] if rec['error'] else ''}")


def run_groups(s: Session) -> None:
    """The groups one after another (an idle 1000-node instance costs ~6% of a core, so
    none idles beside a measured one): ingest, then the latency runs they serve."""
    opts = s.opts
    multi = f"stream-{opts.instances}"
    layout: list[tuple[str, str | None, int]] = [
        ("memory", None, 1), ("stream-1", f"{STREAM_PREFIX}:ingest1", 1),
        (multi, f"{STREAM_PREFIX}:ingest{opts.instances}", opts.instances)]
    if "ingest" not in opts.stages:
        layout = [layout[0], layout[2]]
    for name, key, count in layout:
        if s.out_of_time():
            return
        g = start_group(s, name, key, count)
        try:
            if "ingest" in opts.stages:
                stage_ingest(s, g)
            if "latency" in opts.stages and name in ("memory", multi) and not s.out_of_time():
                stage_latency(s, g)
        finally:
            stop_group(s, g)
        if g.stream is not None:
            with s.redis_client() as redis:
                redis.call("DEL", g.stream, f"{g.stream}:snapshot")


# --------------------------------------------------------------------------- stage 2: latency


def Conn(port: int) -> Client:  # noqa: N802 - the latency loop's raw connection
    """A connection for the latency loop: Nagle off, replies read with ``pump``."""
    return Client(port, timeout=5, nodelay=True)


CLUSTER_INFO = command("CLUSTER", "INFO")
RECEIVED = b"cluster_stats_messages_received:"


def received_count(reply: Any) -> int:
    data = reply if isinstance(reply, bytes) else str(reply).encode()
    at = data.find(RECEIVED)
    if at < 0:
        raise BenchError(f"CLUSTER INFO without {RECEIVED!r}")
    start = at + len(RECEIVED)
    end = data.find(b"\r\n", start)
    return int(data[start:end if end >= 0 else None])


def latency_run(s: Session, a_port: int, b_port: int | None, samples: int,
                warmup: int) -> dict[str, Any]:
    """Publish one heartbeat per request via A every 1/rate s; time A's reply and, with B,
    the first CLUSTER INFO poll of B that counts it."""
    nodes = s.cluster.nodes
    base = s.cluster.next_seq
    total = samples + warmup
    s.cluster.next_seq += total // len(nodes) + 2
    a = Conn(a_port)
    b = Conn(b_port) if b_port is not None else None
    a_ms: list[float] = []
    b_ms: list[float] = []
    rtts: list[float] = []
    polls = 0
    try:
        expected = 0
        if b is not None:
            b.sock.sendall(CLUSTER_INFO)
            while (reply := b.pump()) is False:
                pass
            expected = received_count(reply)
        interval = 1.0 / s.opts.latency_rate
        next_at = time.perf_counter()
        for i in range(total):
            next_at += interval
            node, epoch = nodes[i % len(nodes)]
            cmd = command("BUS", "PUBLISH", heartbeat(node, epoch, base + i // len(nodes)))
            expected += 1
            t_send = time.perf_counter()
            a.sock.sendall(cmd)
            got_a: float | None = None
            got_b: float | None = None if b is not None else t_send
            poll_at = 0.0
            if b is not None:
                poll_at = time.perf_counter()
                b.sock.sendall(CLUSTER_INFO)
            deadline = t_send + 5.0
            while got_a is None or got_b is None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise BenchError(f"latency sample {i}: no answer within 5 s")
                socks = [a.sock] if got_a is None else []
                if b is not None and got_b is None:
                    socks.append(b.sock)
                ready, _, _ = select.select(socks, [], [], remaining)
                now = time.perf_counter()
                if a.sock in ready and (reply := a.pump()) is not False:
                    if reply != [b"applied"]:
                        raise BenchError(f"BUS PUBLISH answered {reply!r}")
                    got_a = now
                if b is not None and b.sock in ready:
                    reply = b.pump()
                    if reply is not False:
                        rtts.append(now - poll_at)
                        polls += 1
                        if received_count(reply) >= expected:
                            got_b = now
                        else:
                            poll_at = time.perf_counter()
                            b.sock.sendall(CLUSTER_INFO)
            assert got_a is not None and got_b is not None
            if i >= warmup:
                a_ms.append((got_a - t_send) * 1e3)
                if b is not None:
                    b_ms.append((got_b - t_send) * 1e3)
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.perf_counter()
    finally:
        a.close()
        if b is not None:
            b.close()
    return {"a_ms": a_ms, "b_ms": b_ms, "poll_rtt_ms": [x * 1e3 for x in rtts],
            "polls": polls}


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 3), "p90_ms": round(percentile(values, 90), 3),
            "p99_ms": round(percentile(values, 99), 3), "max_ms": round(max(values), 3),
            "mean_ms": round(statistics.fmean(values), 3)}


def stage_latency(s: Session, g: Group) -> None:
    opts = s.opts
    warmup = 20
    common = {"samples": opts.latency_samples, "rate": opts.latency_rate,
              "instances": len(g.servers), "nodes": opts.nodes}
    if g.stream is None:
        res = latency_run(s, g.servers[0].port, None, opts.latency_samples, warmup)
        path = "memory bus: BUS PUBLISH reply (applied on the same instance)"
        rec = s.record("latency", path=path, **common, **latency_summary(res["a_ms"]))
        log(f"  {path}: p50 {rec['p50_ms']:.3f} ms  p99 {rec['p99_ms']:.3f} ms")
        return
    a_srv, b_srv = g.servers[0], g.servers[1]
    wait_caught_up(s, g.controls, g.stream)
    log(f"latency: {opts.latency_samples} samples (+{warmup} warm-up) at "
        f"{opts.latency_rate:.0f}/s: publish via {a_srv.name}, applied on {b_srv.name}")
    cpu0 = [cpu_seconds(srv.pid) for srv in g.servers]
    t0 = time.monotonic()
    res = latency_run(s, a_srv.port, b_srv.port, opts.latency_samples, warmup)
    wall = time.monotonic() - t0
    cpu = [cpu_seconds(srv.pid) - c for srv, c in zip(g.servers, cpu0, strict=True)]
    rtt = res["poll_rtt_ms"]
    for path, values in (("stream: publish via A, applied on B (B's CLUSTER INFO poll)",
                          res["b_ms"]),
                         ("stream: publish via A, A's BUS PUBLISH reply (applied on A)",
                          res["a_ms"])):
        rec = s.record("latency", path=path, **common, **latency_summary(values),
                       poll_rtt_p50_ms=round(percentile(rtt, 50), 3),
                       poll_rtt_p99_ms=round(percentile(rtt, 99), 3), polls=res["polls"],
                       instance_cpu_pct=[round(100 * c / wall, 1) for c in cpu])
        log(f"  {path}: p50 {rec['p50_ms']:.3f} ms  p99 {rec['p99_ms']:.3f} ms  max "
            f"{rec['max_ms']:.3f} ms (poll rtt p50 {rec['poll_rtt_p50_ms']:.3f} ms)")


# --------------------------------------------------------------------------- stage 3: replay


def log_event(path: Path, marker: bytes) -> tuple[float, bytes] | None:
    """(wall-clock time, line) of the first log line holding `marker`."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    for line in data.splitlines():
        if marker in line:
            m = LOG_TS.match(line)
            if m is None:
                return None
            ts = datetime.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
            return ts.replace(tzinfo=UTC).timestamp(), line
    return None


def log_field(line: bytes, name: str) -> int | None:
    m = re.search(rb"\b" + name.encode() + rb"=(\d+)", line)
    return int(m.group(1)) if m else None


def measure_replay(s: Session, name: str, key: str, extra: Sequence[str]) -> dict[str, Any]:
    """Start a fresh instance on `key`; time it to listening, ready and replayed; its RSS."""
    with s.redis_client() as redis:
        target = stream_last_id(redis, key)
        length = int(stream_info(redis, key)["length"])
    assert s.redis is not None
    redis_cpu0 = cpu_seconds(s.redis.pid)
    redis_cpu = 0.0
    spawn_wall, spawn = time.time(), time.monotonic()
    srv = start_instance(s, name, key, extra)
    t_ping = time.monotonic() - spawn
    ready_s: float | None = None
    rss_ready = cpu_ready = 0.0
    info: dict[str, Any] = {}
    deadline = time.monotonic() + s.opts.run_timeout
    with Client(srv.port) as c:
        while time.monotonic() < deadline:
            info = bus_fields(c)
            if info["state"] == "up" and id_key(info["last_id"]) >= id_key(target):
                ready_s = time.monotonic() - spawn
                rss_ready, cpu_ready = vm_rss_kib(srv.pid), cpu_seconds(srv.pid)
                redis_cpu = cpu_seconds(s.redis.pid) - redis_cpu0
                break
            time.sleep(0.01)
        replayed = None
        while time.monotonic() < deadline:
            replayed = log_event(srv.log_path, b'msg="redis-stream bus replayed"')
            if replayed is not None:
                break
            time.sleep(0.02)
        time.sleep(1.0)
        info = bus_fields(c)
    listening = log_event(srv.log_path, b"msg=listening")
    rss_settled = vm_rss_kib(srv.pid)
    error = None
    if ready_s is None:
        error = f"not ready within {s.opts.run_timeout:.0f}s"
    elif replayed is None:
        error = "no 'redis-stream bus replayed' log line"
    return {
        "server": srv, "stream_length": length, "target_id": target,
        "entries_read_at_replay": log_field(replayed[1], "entries") if replayed else None,
        "replay_ms_log": log_field(replayed[1], "replay_ms") if replayed else None,
        "bus_replay_ms": info.get("replay_ms"),
        "spawn_to_listening_ms": round((listening[0] - spawn_wall) * 1e3) if listening
        else None,
        "spawn_to_ping_ms": round(t_ping * 1e3),
        "spawn_to_ready_ms": round(ready_s * 1e3) if ready_s is not None else None,
        "spawn_to_replayed_log_ms": round((replayed[0] - spawn_wall) * 1e3) if replayed
        else None,
        "rss_ready_kib": rss_ready, "rss_settled_kib": rss_settled,
        "cpu_s_at_ready": round(cpu_ready, 3), "redis_cpu_s_to_ready": round(redis_cpu, 3),
        "nodes": info.get("nodes_known"),
        "applied": info.get("messages_applied"), "stale": info.get("messages_stale"),
        "snapshot_covers": info.get("snapshot_covers"),
        "error": error}


def fill_stream(s: Session, key: str, heartbeats: int) -> dict[str, Any]:
    """The cluster's initial messages, then `heartbeats` heartbeats (raw XADD pipelines)."""
    assert s.redis is not None
    with s.redis_client() as redis:
        redis.call("DEL", key, f"{key}:snapshot")
        mem0 = redis_used_memory(redis)
        for i in range(0, len(s.cluster.initial), 1000):
            chunk = s.cluster.initial[i:i + 1000]
            redis.sock.sendall(b"".join(command("XADD", key, "*", "m", m) for m in chunk))
            for _ in chunk:
                redis.read()
    conns, window = 2, 500
    per_conn = math.ceil(heartbeats / conns / window) * window
    nodes = s.cluster.nodes
    node_groups = [[list(n) for n in nodes[c::conns]] for c in range(conns)]
    base = s.cluster.next_seq
    s.cluster.next_seq += max(math.ceil(per_conn / len(ng)) for ng in node_groups) + 1
    spec = {"mode": "xadd", "key": key, "batch": 1, "pipeline": window, "base_seq": base,
            "timeout": s.opts.run_timeout,
            "conns": [{"port": s.redis.port, "nodes": node_groups[c], "messages": per_conn}
                      for c in range(conns)]}
    cpu0: list[float] = []
    result = run_worker(s.fleet, s.opts.python, s.opts.pin, spec, s.opts.run_timeout,
                        on_go=lambda: cpu0.append(cpu_seconds(s.redis.pid)
                                                  if s.redis else 0.0))
    if result.get("error"):
        raise BenchError(f"filling {key}: {result['error']}")
    redis_cpu = cpu_seconds(s.redis.pid) - cpu0[0]
    with s.redis_client() as redis:
        info = stream_info(redis, key)
        mem1 = redis_used_memory(redis)
        usage = int(redis.call("MEMORY", "USAGE", key, "SAMPLES", 0))
    wall = float(result["wall_s"])
    return {"heartbeats": result["messages"], "entries": int(info["length"]),
            "fill_wall_s": round(wall, 3), "fill_per_s": round(result["messages"] / wall),
            "fill_redis_cpu_pct": round(100 * redis_cpu / wall, 1),
            "fill_gen_cpu_pct": round(100 * float(result["cpu_s"]) / wall, 1),
            "redis_used_memory_delta": mem1 - mem0, "stream_memory_usage": usage}


def stage_replay(s: Session) -> None:
    opts = s.opts
    key = f"{STREAM_PREFIX}:replay"
    heartbeats = opts.replay_entries
    log(f"replay: filling {key} with {len(s.cluster.initial):,} initial messages + "
        f"{heartbeats:,} heartbeats ({opts.nodes} nodes), raw XADD")
    fill = fill_stream(s, key, heartbeats)
    log(f"  filled: {fill['entries']:,} entries in {fill['fill_wall_s']:.1f}s "
        f"({fill['fill_per_s']:,}/s, redis CPU {fill['fill_redis_cpu_pct']}%); stream "
        f"{fill['stream_memory_usage'] / 2**20:.1f} MiB (MEMORY USAGE)")
    # 1. From scratch: no snapshot. This instance also writes the snapshot for step 2.
    full = measure_replay(s, "cw-replay-full", key, ("--bus-snapshot-interval", "1000"))
    srv = full.pop("server")
    rec = s.record("replay", case="full stream, no snapshot", **fill, **full)
    log_replay(rec)
    # Wait for a snapshot that covers the stream's last id, then stop the writer.
    covered = False
    covers = last = ""
    written = 0
    info: dict[str, Any] = {}
    t_wait = time.monotonic()
    deadline = t_wait + (8.0 if opts.quick else 15.0)
    with Client(srv.port) as c, s.redis_client() as redis:
        while time.monotonic() < deadline:
            info = bus_fields(c)
            covers, written = str(info["snapshot_covers"]), info["snapshots_written"]
            last = stream_last_id(redis, key)
            if written >= 1 and covers == last:
                covered = True
                break
            time.sleep(0.05)
    waited = time.monotonic() - t_wait
    writer_state = {k: info.get(k) for k in ("state", "down_reason", "reconnects", "ticks",
                                              "last_id", "snapshots_written")}
    if not covered:
        s.notes.append(f"replay: after {waited:.0f} s no snapshot of {srv.name} covered the "
                       f"stream's last id {last} (covers {covers}); its bus fields then: "
                       f"{writer_state}")
    # Stop the writer at once: an idle instance appends a tick entry every second.
    stop_instance(s, srv, grace=1.0)
    with s.redis_client() as redis:
        last_after = stream_last_id(redis, key)
        snapshot_bytes = int(redis.call("HSTRLEN", f"{key}:snapshot", "data"))
        after_covers = len(redis.call("XRANGE", key, f"({covers}" if covers else "-", "+",
                                      "COUNT", 1000)) if covers else -1
        trimmed = int(redis.call("XTRIM", key, "MAXLEN", 1000))
        usage = int(redis.call("MEMORY", "USAGE", key, "SAMPLES", 0))
        snap_usage = int(redis.call("MEMORY", "USAGE", f"{key}:snapshot", "SAMPLES", 0) or 0)
        length = int(stream_info(redis, key)["length"])
    note = (f"snapshot covers {covers} = stream last id" if covered and last_after == covers
            else f"snapshot covers {covers}; stream last id {last_after}, {after_covers} "
            "entries (ticks) after it")
    log(f"  snapshot: {written} written in {waited:.1f}s ({writer_state}), "
        f"{snapshot_bytes:,} bytes; {note}; XTRIM MAXLEN 1000 "
        f"removed {trimmed:,}; stream now {length} entries, {usage / 1024:.0f} KiB")
    if not written:
        raise BenchError("replay: no snapshot was written")
    # 2. Compacted restart: the snapshot plus the trimmed stream.
    compact = measure_replay(s, "cw-replay-compacted", key, ())
    srv2 = compact.pop("server")
    rec = s.record("replay", case="snapshot + stream trimmed to 1000", heartbeats=0,
                   entries=length, snapshot_bytes=snapshot_bytes,
                   snapshot_covers_last=covered and last_after == covers,
                   entries_after_covers=after_covers, trimmed=trimmed,
                   stream_memory_usage=usage, snapshot_memory_usage=snap_usage, **compact)
    log_replay(rec)
    stop_instance(s, srv2)
    with s.redis_client() as redis:
        redis.call("DEL", key, f"{key}:snapshot")


def log_replay(rec: dict[str, Any]) -> None:
    log(f"  replay [{rec['case']}]: stream {rec['stream_length']:,} entries; replay_ms "
        f"{rec['replay_ms_log']} (bus_replay_ms {rec['bus_replay_ms']}); spawn -> listening "
        f"{rec['spawn_to_listening_ms']} ms, ready {rec['spawn_to_ready_ms']} ms, replayed "
        f"line {rec['spawn_to_replayed_log_ms']} ms; RSS {rec['rss_ready_kib'] / 1024:.1f} / "
        f"{rec['rss_settled_kib'] / 1024:.1f} MiB; CPU {rec['cpu_s_at_ready']} s"
        f"{'  ERROR ' + rec['error'] if rec['error'] else ''}")


# --------------------------------------------------------------------------- summary


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def bound_of(cpu1: float, cpu0: float, shared: bool) -> str:
    if shared:
        return f"one core ({max(cpu0, cpu1):.0f}% busy) shared by everything"
    if cpu1 >= 90 and cpu1 >= cpu0:
        return f"CPU 1: the instance(s), {cpu1:.0f}%"
    if cpu0 >= 90:
        return f"CPU 0: redis-server + generator, {cpu0:.0f}%"
    return f"no core saturated (CPU 1 {cpu1:.0f}%, CPU 0 {cpu0:.0f}%): round trips"


def summarize(s: Session, elapsed: float) -> str:
    opts, recs, f = s.opts, s.records, s.facts
    pin_text = (f"instances on CPU {SERVER_CPU}, redis-server on CPU {opts.redis_cpu}, "
                f"generator and driver on CPU {CLIENT_CPU}" if opts.pin else "off")
    dirty = (f" (dirty tree, `git diff HEAD` sha1 {f['diff_sha1']})" if f.get("diff_sha1")
             else "")
    lines = [
        f"## Redis-stream bus — run {s.run_id}", "",
        f"Date {now_iso()[:16].replace('T', ' ')} UTC. {f['nproc']} vCPUs "
        f"({f['cpu']}), kernel {f['kernel']}, Python {platform.python_version()}, "
        f"redis-server {f['redis']}; clusterwatch commit {f.get('commit') or '?'}"
        f"{dirty}. {opts.nodes} nodes; "
        f"{opts.reps} rep(s){', --quick' if opts.quick else ''}; pinning {pin_text}; took "
        f"{elapsed:.0f} s; load average at start {f.get('loadavg', '?')}"
        f"{', machine ' + f['busy_at_start'] + ' busy just before' if 'busy_at_start' in f else ''}"
        ".", ""]
    targets: list[tuple[str, str, bool]] = []
    ingest = [r for r in recs if r["stage"] == "ingest"]
    if ingest:
        lines += summarize_ingest(s, ingest, targets)
    latency = sorted((r for r in recs if r["stage"] == "latency"),
                     key=lambda r: r["path"].startswith("memory"))
    if latency:
        lines += [f"### 2. Publish-to-applied latency ({latency[0]['samples']} samples at "
                  f"{latency[0]['rate']:.0f}/s, one heartbeat per BUS PUBLISH)", "",
                  "| path | p50 ms | p90 ms | p99 ms | max ms | mean ms |",
                  "|---|---|---|---|---|---|"]
        for r in latency:
            lines.append(f"| {r['path']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                         f"{r['p99_ms']:.3f} | {r['max_ms']:.3f} | {r['mean_ms']:.3f} |")
        polled = [r for r in latency if "poll_rtt_p50_ms" in r]
        if polled:
            r = polled[0]
            lines += ["", f"B is polled with back-to-back `CLUSTER INFO` from the publish on; "
                      f"a poll round trip takes {r['poll_rtt_p50_ms']:.3f} ms (p50; p99 "
                      f"{r['poll_rtt_p99_ms']:.3f}), the resolution of B's figures "
                      f"({r['polls']:,} polls). Instances' CPU during the stage: "
                      f"{', '.join(f'{x:.0f}%' for x in r['instance_cpu_pct'])}."]
        lines.append("")
    replay = [r for r in recs if r["stage"] == "replay"]
    if replay:
        lines += summarize_replay(replay)
    if s.notes:
        lines += ["### Notes", ""] + [f"* {n}" for n in s.notes] + [""]
    if targets:
        lines += ["### Target (issue)", "", "| target | measured | result |", "|---|---|---|"]
        lines += [f"| {what} | {got} | {verdict(ok)} |" for what, got, ok in targets]
        lines.append("")
    return "\n".join(lines)


def summarize_ingest(s: Session, recs: list[dict[str, Any]],
                     targets: list[tuple[str, str, bool]]) -> list[str]:
    opts = s.opts
    shared = not opts.pin or opts.redis_cpu == SERVER_CPU
    lines = [
        "### 1. Ingest: messages applied per second by each instance", "",
        f"K={opts.conns} generator connections (spread round-robin over the group's instances "
        f"for BUS PUBLISH), P={opts.pipeline} requests of B={opts.batch} heartbeats in flight "
        f"on each; raw XADD: K connections with {opts.batch * opts.pipeline} XADDs in flight. "
        "Per instance: stream entries read for the run / (first publish -> its bus_last_id "
        "reaches the stream's last id); memory bus: applied / generator wall. Medians over the "
        f"reps (runs with `other` > {NOISY_PCT:.0f}% left out when any run is left); "
        "per-instance figures as slowest-fastest. `CPU 1` = the instances' CPU summed "
        "(100% = one core); `CPU 0` = redis-server + generator; `other` = load from outside "
        "this benchmark.", "",
        "| config | runs | sent/run | applied/s per instance | vs memory | applied / stale per "
        "instance | µs CPU/entry per instance | 1 core at | CPU 1 (instances) | redis CPU | "
        "gen CPU | other | bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    us_med: dict[str, float] = {}
    mem_ok = [r for r in recs if r["group"] == "memory" and not r["error"]]
    mem_rate = med([r["min_per_s"] for r in (
        [r for r in mem_ok if r["other_cpu_pct"] <= NOISY_PCT] or mem_ok)])
    for name in dict.fromkeys(r["config"] for r in recs):
        rs = [r for r in recs if r["config"] == name]
        ok = [r for r in rs if not r["error"]]
        if not ok:
            lines.append(f"| {name} | {len(rs)} | | n/a ({rs[0]['error']}) | | | | | | | | | |")
            continue
        failed = len(rs) - len(ok)
        quiet = [r for r in ok if r["other_cpu_pct"] <= NOISY_PCT]
        noisy = len(ok) - len(quiet)
        ok = quiet or ok
        runs = f"{len(rs)}" + (f" ({noisy} noisy, left out)" if noisy and quiet else
                               f" (all {noisy} noisy)" if noisy else "")
        lo, hi = med([r["min_per_s"] for r in ok]), med([r["max_per_s"] for r in ok])
        n = ok[0]["instances"]
        us_all = [[p["us_per_entry"] for p in r["per_instance"]] for r in ok]
        us_inst = [med([u[i] for u in us_all]) for i in range(n)]
        applied = "; ".join(f"{p['applied']:,} / {p['stale']}" for p in ok[-1]["per_instance"])
        cpu1 = med([r["instances_cpu_pct"] for r in ok])
        cpu0 = med([r["redis_cpu_pct"] + r["gen_cpu_pct"] for r in ok])
        us_med[name] = max(us_inst)
        rate_text = fmt_rps(lo) if n == 1 else f"{fmt_rps(lo)}-{fmt_rps(hi)}"
        us_text = (fmt_us(us_inst[0]) if n == 1
                   else f"{fmt_us(min(us_inst))}-{fmt_us(max(us_inst))}")
        lines.append(
            f"| {name} | {runs} | {med([r['sent'] for r in ok]):,.0f} | {rate_text} | "
            f"{lo / mem_rate:.2f} | {applied} | {us_text} | {fmt_rps(1e6 / max(us_inst))}/s | "
            f"{cpu1:.0f}% | {med([r['redis_cpu_pct'] for r in ok]):.0f}% | "
            f"{med([r['gen_cpu_pct'] for r in ok]):.0f}% | "
            f"{med([r['other_cpu_pct'] for r in ok]):.0f}% | {bound_of(cpu1, cpu0, shared)} |"
            + (f" ({failed} failed)" if failed else ""))
        if n == opts.instances:
            targets.append((f"≥ {fmt_rps(INGEST_TARGET)} msg/s applied by each of {n} "
                            f"instances on one stream ({name}), measured here",
                            f"slowest instance {fmt_rps(lo)}/s", lo >= INGEST_TARGET))
            proj = 1e6 / max(us_inst)
            targets.append((f"same, projected with a core per instance (1e6 / slowest "
                            f"instance's µs CPU per entry, {name})",
                            f"{fmt_rps(proj)}/s ({fmt_us(max(us_inst))} µs/entry)",
                            proj >= INGEST_TARGET))
    read_us = us_med.get(IngestConfig("stream-1", "xadd").name)
    both_us = us_med.get(IngestConfig("stream-1", "publish").name)
    n = opts.instances
    if read_us and both_us:
        publish_us = max(0.0, both_us - read_us)
        for what, us in ((f"BUS PUBLISH spread over {n}: read {fmt_us(read_us)} + publish "
                          f"{fmt_us(publish_us)}/{n}", read_us + publish_us / n),
                         (f"raw XADD: read {fmt_us(read_us)}", read_us)):
            targets.append((f"same, projected from the 1-instance runs with a core per instance "
                            f"(µs/entry, {what})", f"{fmt_rps(1e6 / us)}/s ({fmt_us(us)} µs)",
                            1e6 / us >= INGEST_TARGET))
    lines += ["", "`1 core at` = 1e6 / the slowest instance's µs CPU per entry: the rate each "
              "instance would reach with a core to itself, if redis-server and the generator "
              "kept up. `vs memory` compares the slowest instance with the memory bus. The "
              f"{n} instances of the multi-instance group share CPU 1, so each gets a third of "
              "a core, and each costs more per entry than a lone instance (context switches, "
              "three heaps in one core's caches): the target table also projects from the "
              "1-instance runs (reading costs the raw XADD run's µs/entry; publishing, the BUS "
              "PUBLISH run's µs/entry minus that).", ""]
    return lines


def summarize_replay(recs: list[dict[str, Any]]) -> list[str]:
    lines = ["### 3. Replay at start-up", "",
             "| case | stream entries | read after snapshot | replay_ms (log) | bus_replay_ms | "
             "spawn -> listening | spawn -> ready (polled) | spawn -> replayed line | "
             "RSS at ready | RSS +1 s | CPU s to ready | redis CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        lines.append(
            f"| {r['case']} | {r['stream_length']:,} | {r['entries_read_at_replay']} | "
            f"{r['replay_ms_log']} | {r['bus_replay_ms']} | {r['spawn_to_listening_ms']} ms | "
            f"{r['spawn_to_ready_ms']} ms | {r['spawn_to_replayed_log_ms']} ms | "
            f"{mib(r['rss_ready_kib'])} | {mib(r['rss_settled_kib'])} | {r['cpu_s_at_ready']} | "
            f"{r['redis_cpu_s_to_ready']} |"
            + (f" {r['error']}" if r.get("error") else ""))
    lines.append("")
    full = [r for r in recs if "fill_per_s" in r]
    comp = [r for r in recs if "snapshot_bytes" in r]
    if full:
        r = full[0]
        per_entry = r["stream_memory_usage"] / max(1, r["entries"])
        lines.append(f"* Fill: {r['entries']:,} entries by raw XADD pipelines (2 connections, "
                     f"500 in flight each) at {fmt_rps(r['fill_per_s'])}/s, redis-server "
                     f"{r['fill_redis_cpu_pct']:.0f}% / generator {r['fill_gen_cpu_pct']:.0f}% "
                     "CPU. redis-server's memory for the stream: "
                     f"{r['stream_memory_usage'] / 2**20:.1f} MiB (MEMORY USAGE, "
                     f"{per_entry:.0f} B/entry); used_memory grew "
                     f"{r['redis_used_memory_delta'] / 2**20:.1f} MiB.")
    if comp:
        r = comp[0]
        lines.append(f"* Compacted: snapshot {r['snapshot_bytes']:,} bytes (hash "
                     f"{r['snapshot_memory_usage'] / 1024:.0f} KiB), "
                     + ("covering the stream's last id" if r["snapshot_covers_last"] else
                        f"{r['entries_after_covers']} stream entries after what it covers "
                        "(tick entries appended while its writer stopped)")
                     + f"; XTRIM MAXLEN 1000 removed {r['trimmed']:,} entries; the trimmed "
                     f"stream takes {r['stream_memory_usage'] / 1024:.0f} KiB.")
    lines += ["* `replay_ms` is the server's own figure (log line = BUS INFO `bus_replay_ms`; "
              "it counts from the bus object's creation, after the interpreter and imports). "
              "`spawn -> ...` are measured here from the process spawn: listening and replayed "
              "from the log's timestamps, ready = the first `INFO cluster` poll (every 10 ms) "
              "with bus state `up` at the stream's last id.", ""]
    return lines


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    missing = require_tools("redis-server")
    if missing:
        log(f"stream_bench: {missing}")
        return 2
    if opts.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    run = run_id()
    started = time.monotonic()
    status = 0
    facts = machine_facts() | git_facts()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD"], capture_output=True,
                              timeout=10, check=False).stdout
        facts["diff_sha1"] = hashlib.sha1(diff).hexdigest()[:12] if diff else ""
    facts["loadavg"] = loadavg()
    with signals_as_interrupt(), fleet_in_tempdir("cw-sbench-") as (fleet, workdir), \
            results_file(opts.out) as out:
        session = Session(opts, fleet, workdir, run, facts, started,
                          SimCluster.make(opts.nodes), out=out)
        log(f"run {run}: stages {','.join(opts.stages)}; pinning "
            f"{'on' if opts.pin else 'off'}")
        try:
            if opts.wait_quiet > 0:
                busy = wait_quiet(opts.wait_quiet)
                facts["busy_at_start"] = f"{busy:.0f}%"
                log(f"machine {busy:.0f}% busy at start")
            session.redis = start_redis(session)
            log(f"redis-server pid {session.redis.pid} port {session.redis.port}")
            if "ingest" in opts.stages or "latency" in opts.stages:
                run_groups(session)
            if "replay" in opts.stages and not session.out_of_time():
                stage_replay(session)
        except KeyboardInterrupt:
            log("interrupted; stopping every process started")
            status = 130
        except (BenchError, OSError) as exc:
            log(f"stream_bench: {exc}")
            status = 1
        finally:
            for g in session.groups:
                for c in g.controls:
                    with contextlib.suppress(OSError):
                        c.close()
            fleet.stop_all()
    if not session.records:
        return status or 1
    text_out = summarize(session, time.monotonic() - started)
    print(text_out)
    if opts.markdown is not None and status == 0:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text_out, encoding="utf-8")
        log(f"wrote {opts.markdown}; appended {len(session.records)} records to {opts.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
