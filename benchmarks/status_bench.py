"""Status and health benchmarks (issue 4): probes next to PING, status views at 100/1000 nodes.

    .venv/bin/python -m benchmarks.status_bench           # full run, ~4-5 min
    .venv/bin/python -m benchmarks.status_bench --quick   # smoke run, < 30 s
    .venv/bin/python -m benchmarks.status_bench --stages probes --runs 5

Two stages (``--stages probes,model``):

1. **probes**: one ``serve --demo`` server (6 nodes, one heartbeat a second each). ``PING``,
   ``HEALTH READY``, ``HEALTH`` and ``STATUS SIMPLE`` with redis-benchmark (-c 50, -P 1 and
   16); each probe's requests/s and server µs CPU/request next to PING's on the same server.
   redis-cli checks first that the demo answers PONG, UP, UP and running (redis-benchmark
   stops at an error reply); a probe that answers an error is reported, not measured.
2. **model**: servers populated through ``BUS PUBLISH`` with 100 and 1000 nodes (``--nodes``;
   10000 fits the default ``--max-nodes``) (hello, the
   masters' slots, then a heartbeat with a realistic status payload: three services with
   critical/info/debug status, three partitions, three ksqlDB queries with active or standby
   partitions and stores, store lags, thread pool and request stats), ``--node-timeout`` one
   hour so they stay alive with no heartbeats. ``STATUS SERVICES LEVEL debug``,
   ``CLUSTER STATUS`` and ``CLUSTER NODES`` at -P 1 and 16 (``--pipelines``), each twice:
   on a still model, and with a heartbeat
   stream (``--stream-rate``, 1000/s by default: a publisher process sending changing
   payloads round-robin over the nodes), so the model changes between calls. The stream's
   own server CPU is measured alone on each server and subtracted for a "net" µs/request.
   redis-server's ``INFO`` is run in the same loop as an absolute reference point.

Method (as bench.py): servers pinned to CPU 1, redis-benchmark, the publisher and this driver
to CPU 0 (skipped without taskset or CPU 1). Within a cell (command and -P) the variants
(commands on one server in stage 1; servers and stream on/off in stage 2) run interleaved
with the order rotated every repetition; medians of ``--reps``. Server CPU is the
utime+stime delta from /proc/PID/stat over the run. ``other CPU%`` is the rest of the
machine's busy time (/proc/stat) during the run: other processes on this shared box.
Every process started here is stopped by PID on exit, error, Ctrl-C or SIGTERM.
Processes, CPU, redis-benchmark and the RESP client: benchmarks/harness/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness.nodes import heartbeat
from benchmarks.harness.procs import (
    CLIENT_CPU,
    REPO,
    RESULTS_DIR,
    BenchError,
    Fleet,
    ServerProc,
    default_python,
    fleet_in_tempdir,
    pin_prefix,
    pinning_available,
    require_tools,
    start_server,
)
from benchmarks.harness.redis_benchmark import Cell, csv_float, run_benchmark
from benchmarks.harness.resp import CHUNK as PUBLISH_CHUNK
from benchmarks.harness.resp import Client, command, reply_and_size
from benchmarks.harness.runner import (
    fmt_rps,
    fmt_us,
    log,
    med,
    now_iso,
    results_file,
    run_id,
    signals_as_interrupt,
)
from benchmarks.harness.system import (
    cpu_seconds,
    git_facts,
    machine_busy_s,
    machine_facts,
    other_benchmarks,
    wait_for_other_benchmarks,
)

SCOPE = "clusterwatch-status-bench"
NODE_TIMEOUT_MS = 3_600_000
# STATUS SERVICES LEVEL debug at 1000 nodes is about 1 MB; 50 clients x 16 in flight would
# pass the default 32 MB output buffer limit, so the populated servers get more room.
OUTPUT_BUFFER_LIMIT = 512 * 1024 * 1024
CLIENTS = 50
PIPELINES = (1, 16)

PROBES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("PING", ("PING",), "PONG"),
    ("HEALTH READY", ("HEALTH", "READY"), "UP"),
    ("HEALTH", ("HEALTH",), "UP"),
    ("STATUS SIMPLE", ("STATUS", "SIMPLE"), "running"),
)
MODEL_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("STATUS SERVICES LEVEL debug", ("STATUS", "SERVICES", "LEVEL", "debug")),
    ("CLUSTER STATUS", ("CLUSTER", "STATUS")),
    ("CLUSTER NODES", ("CLUSTER", "NODES")),
)
# (query id, source topic, state store), ksqlDB naming.
QUERIES = (
    ("CTAS_ORDERS_BY_REGION_3", "orders", "Aggregate-Aggregate-Materialize"),
    ("CTAS_PAYMENTS_PER_MINUTE_7", "payments", "Aggregate-GroupBy-repartition-store"),
    ("CSAS_SHIPMENTS_ENRICHED_11", "shipments", "KSTREAM-JOINTHIS-0000000016-store"),
)
PAYLOAD_VARIANTS = 8  # distinct payloads per node the publisher cycles through


# --------------------------------------------------------------------------- node messages


def make_sim(count: int) -> Any:
    """`count` nodes (count/2 masters with one replica each), ids fixed by SCOPE."""
    from clusterwatch.agent.simulate import Simulation

    return Simulation(masters=max(1, count // 2), replicas=1 if count > 1 else 0,
                      node_timeout_ms=NODE_TIMEOUT_MS, scope=SCOPE)


def status_fields(sim: Any, node: Any, beat: int) -> dict[str, Any]:
    """A heartbeat's status payload (~2 KB of JSON): what a busy node would report."""
    per_master = sim.replicas_per_master + 1
    master = node if node.replicaof is None else sim.node(node.replicaof)
    part = master.index // per_master
    masters = sim.masters
    active = node.role == "master"
    load = (beat * 7 + node.index * 13) % 50
    services: dict[str, Any] = {
        "api": {"version": "1.4.2", "status_version": 1, "state": "running",
                "status": {"critical": {"listening": True},
                           "info": {"connections": 10 + load,
                                    "requests_per_second": 95.5 + load},
                           "debug": {"handlers": {"status": load % 4, "bus": 1 + load % 3,
                                                  "admin": 0},
                                     "open_files": 120 + load, "uptime_s": 86_400 + beat}}},
        "storage": {"version": "1.4.2", "status_version": 1, "state": "running",
                    "status": {"critical": {"writable": active},
                               "info": {"used_bytes": 1_000_000_000 + 4096 * load,
                                        "free_bytes": 20_000_000_000 - 4096 * load},
                               "debug": {"wal_segments": 3 + load % 5,
                                         "compactions": beat // 10,
                                         "last_flush_ms": 1_763_000_000_000 + beat * 1000}}},
        "replication": {"version": "1.4.2", "status_version": 1, "state": "running",
                        "status": {"critical": {"link_up": True},
                                   "info": {"offset": 5_000_000 + beat * 4096,
                                            "lag_ms": 0 if active else load},
                                   "debug": {"backlog_bytes": 1_048_576,
                                             "acked_offset": 5_000_000 + beat * 4096 - load,
                                             "peers": sim.replicas_per_master}}},
    }
    if node.index % 50 == 7:
        services["storage"]["alerts"] = [{"severity": "warning", "message": "disk 81% full"}]
    partitions = [{"id": part, "role": "leader" if active else "follower",
                   "health": "healthy"}]
    partitions += [{"id": (part + k) % masters, "role": "follower", "health": "healthy"}
                   for k in (1, 2) if (part + k) % masters != part]
    end = 10_000 + beat * 25
    behind = 0 if active else load % 12
    queries: dict[str, Any] = {}
    lags: dict[str, Any] = {}
    for query, topic, store in QUERIES:
        tp = [{"topic": topic, "partition": part}]
        queries[query] = {"active_stores": [store] if active else [],
                          "active_partitions": tp if active else [],
                          "standby_stores": [] if active else [store],
                          "standby_partitions": [] if active else tp}
        lags[store] = {str(part): {"current_offset": end - behind, "end_offset": end,
                                   "offset_lag": behind}}
    return {
        "node_state": "RUNNING", "config_state": "CONFIGURED",
        "transaction_id": f"tx-{node.epoch}-{len(node.slots)}", "serving": True,
        "plugins_initialized": True, "service_role": node.role,
        "services": services, "partitions": partitions, "queries": queries,
        "store_lags": lags,
        "thread_pool": {"active": load % 16, "max": 16, "queued": 0},
        "requests": {"active": load % 8, "max": 100, "total": beat * 100 + load,
                     "per_second": round(100 + load / 4, 2)},
    }


def heartbeat_body(sim: Any, node: Any, beat: int) -> bytes:
    """The payload as `,"k":v,...` to append after the heartbeat's header fields."""
    return b"," + json.dumps(status_fields(sim, node, beat), separators=(",", ":")).encode()[1:-1]


def populate(port: int, count: int) -> dict[str, int]:
    """hello + slots + simulate's heartbeat per node, then our richer heartbeat."""
    sim = make_sim(count)
    first = sim.initial()
    rich = [heartbeat(n.id, n.epoch, n.seq + 1, heartbeat_body(sim, n, 0)) for n in sim.nodes]
    with Client(port) as c:
        c.publish(first)
        c.publish(rich)
        info = c.call("CLUSTER", "INFO")
    fields = dict(line.split(b":", 1) for line in info.split(b"\r\n") if b":" in line)
    if fields.get(b"cluster_state") != b"ok":
        raise BenchError(f"cluster_state is not ok after populating {count} nodes")
    return {"known_nodes": int(fields[b"cluster_known_nodes"]),
            "heartbeat_bytes": round(statistics.mean(len(m) for m in rich))}


def redis_cli(port: int, args: Sequence[str]) -> str:
    """What `redis-cli --no-raw` prints (errors as `(error) ...`); hiredis without it."""
    if shutil.which("redis-cli"):
        out = subprocess.run(["redis-cli", "--no-raw", "-h", "127.0.0.1", "-p", str(port),
                              *args], capture_output=True, text=True, timeout=10, check=False)
        return (out.stdout.strip() or out.stderr.strip()).splitlines()[0] if (
            out.stdout.strip() or out.stderr.strip()) else ""
    reply, _ = reply_and_size(port, *args, timeout=10)
    if isinstance(reply, Exception):
        return f"(error) {reply}"
    return reply.decode(errors="replace") if isinstance(reply, bytes) else repr(reply)


# --------------------------------------------------------------------------- publisher


def publisher_main(port: int, count: int, rate: float, batch: int, max_seconds: float) -> int:
    """Child process: `rate` heartbeats/s round-robin over the nodes, `batch` per BUS PUBLISH
    (1: every heartbeat is its own request, as independent nodes would send them), each
    with the next of PAYLOAD_VARIANTS payloads, until SIGTERM or `max_seconds`. Requests
    are written every millisecond without waiting for replies; replies are read as they
    come. Prints `ready`, then a JSON summary line."""
    import hiredis

    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sim = make_sim(count)
    nodes = [(n.id, n.epoch) for n in sim.nodes]
    bodies = [[heartbeat_body(sim, n, beat + 1) for beat in range(PAYLOAD_VARIANTS)]
              for n in sim.nodes]
    base = time.time_ns() // 1000  # µs: above every ms-clock seq the populate step used
    reader: Any = hiredis.Reader()
    sent = requests = replies = applied = 0
    cpu0 = time.process_time()

    def drain(wait: float) -> None:
        """Read what has arrived, waiting up to `wait` seconds for something."""
        nonlocal replies, applied
        if not select.select([sock], [], [], wait)[0]:
            return
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise BenchError("server closed the publisher's connection")
        reader.feed(chunk)
        while (reply := reader.gets()) is not False:
            replies += 1
            if isinstance(reply, list):
                applied += sum(1 for o in reply if o == b"applied")

    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as sock:
        sock.setblocking(False)
        print("ready", flush=True)
        t0 = time.monotonic()
        deadline = t0 + max_seconds
        while not stop and time.monotonic() < deadline:
            now = time.monotonic()
            due = min(int((now - t0) * rate) - sent, PUBLISH_CHUNK)
            due -= due % batch
            if due > 0:
                frames = []
                for first in range(sent, sent + due, batch):
                    msgs = []
                    for k in range(first, first + batch):
                        i = k % len(nodes)
                        node_id, epoch = nodes[i]
                        msgs.append(heartbeat(node_id, epoch, base + k,
                                              bodies[i][(k // len(nodes)) % PAYLOAD_VARIANTS]))
                    frames.append(command("BUS", "PUBLISH", *msgs))
                data = memoryview(b"".join(frames))
                while data:  # non-blocking: wait for room, reading replies meanwhile
                    if not select.select([], [sock], [], 10.0)[1]:
                        raise BenchError("publisher: server not reading for 10 s")
                    data = data[sock.send(data):]
                    drain(0.0)
                sent += due
                requests += len(frames)
            drain(0.0)
            time.sleep(max(0.0, 0.001 - (time.monotonic() - now)))
        elapsed = time.monotonic() - t0
        end = time.monotonic() + 10.0
        while replies < requests and time.monotonic() < end:
            drain(max(0.0, end - time.monotonic()))
    print(json.dumps({"sent": sent, "applied": applied, "requests": requests,
                      "seconds": round(elapsed, 3),
                      "rate": round(sent / elapsed, 1) if elapsed else 0.0,
                      "cpu_s": round(time.process_time() - cpu0, 3)}), flush=True)
    return 0


@dataclass(slots=True)
class Publisher:
    fleet: Fleet
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, fleet: Fleet, opts: Options, port: int, count: int,
              lifetime: float) -> Publisher:
        argv = [*pin_prefix(CLIENT_CPU, opts.pin), opts.python, "-m", "benchmarks.status_bench",
                "--publisher", "--port", str(port), "--nodes-count", str(count),
                "--stream-rate", str(opts.stream_rate), "--stream-batch", str(opts.stream_batch),
                "--max-seconds", str(lifetime)]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        proc = fleet.spawn(argv, stdout=subprocess.PIPE, env=env, cwd=REPO)
        pub = cls(fleet, proc)
        line = pub.readline(30.0)
        if line != "ready":
            pub.stop()
            raise BenchError(f"publisher did not start (got {line!r})")
        return pub

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().decode().strip() if ready else ""

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then its summary line (SIGKILL if it does not finish in 5 s)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        line = self.readline(5.0)
        self.fleet.stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        try:
            return dict(json.loads(line))
        except ValueError:
            return {"error": f"no summary (rc={self.proc.returncode}, got {line!r})"}


# --------------------------------------------------------------------------- servers


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Options:
    stages: list[str]
    pipelines: list[int]
    reps: int
    quick: bool
    pin: bool
    python: str
    nodes: list[int]
    stream_rate: float
    stream_batch: int
    stream_seconds: float
    target_seconds: float
    run_timeout: float
    max_seconds: float
    wait_others: float
    redis: bool
    out: Path | None
    markdown: Path | None


@dataclass(slots=True)
class Session:
    opts: Options
    fleet: Fleet
    workdir: Path
    run_id: str
    facts: dict[str, str]
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    out: Any = None

    def record(self, **fields: Any) -> dict[str, Any]:
        rec = {"run_id": self.run_id, "ts": now_iso(),
               "quick": self.opts.quick, "pinned": self.opts.pin,
               "commit": self.facts.get("commit"), "dirty": self.facts.get("dirty"), **fields}
        self.records.append(rec)
        if self.out is not None:
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        return rec

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.opts.max_seconds


@dataclass(frozen=True, slots=True)
class Variant:
    """One thing measured in a cell: a server, optionally with the heartbeat stream."""

    label: str
    server: str
    stream: bool = False
    nodes: int = 0


def cell_for(name: str, args: Sequence[str], pipeline: int) -> Cell:
    return Cell(f"{name} P{pipeline}", tuple(args), pipeline, CLIENTS, "none",
                100_000 if pipeline == 1 else 500_000)


def calibrate(s: Session, server: ServerProc, cell: Cell) -> tuple[int, str]:
    """-n for a run of about --target-seconds: probe runs from 100 requests, x5 until one
    lasts 0.3 s (--quick: 0.1 s). -n is at least c*P, so every client fills its pipeline
    (--quick: at least c). The probes double as warm-up and error check. Returns (n, error)."""
    opts = s.opts
    n = 100
    while True:
        r = run_benchmark(s.fleet, server, cell, n, opts.pin, opts.run_timeout, s.workdir)
        if r.error:
            return 0, r.error
        rps = csv_float(r.csv_row, "rps") or 0.0
        if r.wall_s >= min(0.3, opts.target_seconds / 2) or n >= 10_000_000:
            break
        n *= 5
    want = int(rps * opts.target_seconds)
    step = 10 ** max(1, len(str(max(want, 1))) - 2)
    floor = cell.clients * (1 if opts.quick else cell.pipeline)
    return max(floor, round(want / step) * step), ""


def measure(s: Session, stage: str, cell: Cell, variant: Variant, rep: int, n: int,
            shape: dict[str, Any]) -> dict[str, Any]:
    """One redis-benchmark run (with the heartbeat stream around it if asked). One request
    first, so a reply still cached from before is not charged to this run: the first call
    after a change of every node is a full re-render (see `cold_calls`)."""
    opts = s.opts
    server = s.fleet.servers[variant.server]
    reply_and_size(server.port, *cell.test)
    pub = None
    if variant.stream:
        pub = Publisher.start(s.fleet, opts, server.port, variant.nodes,
                              lifetime=opts.run_timeout + 30)
    try:
        busy0 = machine_busy_s()
        r = run_benchmark(s.fleet, server, cell, n, opts.pin, opts.run_timeout, s.workdir)
        busy = machine_busy_s() - busy0
    finally:
        stream = pub.stop() if pub is not None else {}
    rps = None if r.error else csv_float(r.csv_row, "rps")
    error = r.error or stream.get("error") or (
        f"stream: {stream['sent'] - stream['applied']} heartbeats not applied"
        if stream and stream["sent"] != stream["applied"] else "")
    rec = s.record(
        stage=stage, cell=cell.name, command=" ".join(cell.test), pipeline=cell.pipeline,
        clients=cell.clients, variant=variant.label, server=variant.server,
        nodes=variant.nodes, stream=variant.stream, rep=rep, n=n, argv=r.argv, rps=rps,
        p50_ms=csv_float(r.csv_row, "p50_latency_ms"), wall_s=round(r.wall_s, 4),
        server_cpu_s=round(r.server_cpu_s, 3),
        server_cpu_pct=round(100 * r.server_cpu_s / r.wall_s, 1) if r.wall_s else None,
        us_cpu_per_req=round(r.server_cpu_s / n * 1e6, 3) if not error else None,
        bench_cpu_pct=round(100 * r.bench_cpu_s / r.wall_s, 1) if r.wall_s else None,
        other_cpu_pct=round(max(0.0, busy - r.server_cpu_s - r.bench_cpu_s
                                - float(stream.get("cpu_s", 0.0))) / r.wall_s * 100, 1)
        if r.wall_s else None,
        stream_rate=stream.get("rate"), stream_sent=stream.get("sent"),
        error=error or None, **shape)
    log(f"  {cell.name:<31} rep {rep} {variant.label:<18} "
        + (f"n/a ({error})" if error else
           f"n={n:<8} {rps or 0:>10,.0f} rps  {rec['us_cpu_per_req']:7.2f} µs/req  "
           f"srv {rec['server_cpu_pct']:5.1f}%  bench {rec['bench_cpu_pct']:5.1f}%  "
           f"other {rec['other_cpu_pct']:5.1f}%"
           + (f"  stream {stream.get('rate', 0):.0f}/s" if variant.stream else "")))
    return rec


def measure_stream_alone(s: Session, variant: Variant, rep: int) -> None:
    """The heartbeat stream with no requests: its own server CPU (cores, µs/heartbeat)."""
    server = s.fleet.servers[variant.server]
    seconds = s.opts.stream_seconds
    pub = Publisher.start(s.fleet, s.opts, server.port, variant.nodes,
                          lifetime=seconds + 30)
    try:
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        time.sleep(seconds)
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.perf_counter() - t0
    finally:
        stream = pub.stop()
    error = stream.get("error") or ("" if stream["sent"] == stream["applied"] else
                                    f"{stream['sent'] - stream['applied']} not applied")
    rate = float(stream.get("rate") or 0.0)
    rec = s.record(stage="stream", cell="stream alone", variant=variant.label,
                   server=variant.server, nodes=variant.nodes, rep=rep, wall_s=round(wall, 4),
                   server_cpu_s=round(cpu, 3), server_cpu_pct=round(100 * cpu / wall, 1),
                   stream_rate=rate, stream_sent=stream.get("sent"),
                   us_per_heartbeat=round(cpu / (rate * wall) * 1e6, 2) if rate else None,
                   error=error or None)
    log(f"  {'stream alone':<31} rep {rep} {variant.label:<18} "
        + (f"n/a ({error})" if error else
           f"{rate:,.0f} hb/s  srv {rec['server_cpu_pct']:5.1f}%  "
           f"{rec['us_per_heartbeat']} µs/heartbeat"))


@dataclass(frozen=True, slots=True)
class Slot:
    cell: Cell
    variant: Variant
    n: int
    shape: dict[str, Any]


class OutOfTimeError(Exception):
    """--max-seconds reached: stop starting runs, summarize what was measured."""


def cold_calls(s: Session, variant: Variant, rep: int) -> None:
    """Right after the stream (every node's heartbeat changed): one call of each model
    command (a full re-render), then the same call again (the cached reply). Client wall
    time and server CPU of each."""
    server = s.fleet.servers[variant.server]
    for label, args in MODEL_COMMANDS:
        for kind in ("cold", "warm"):
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            reply, size = reply_and_size(server.port, *args)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
            error = str(reply) if isinstance(reply, Exception) else None
            s.record(stage="cold", cell=label, kind=kind, variant=variant.label,
                     server=variant.server, nodes=variant.nodes, rep=rep,
                     wall_ms=round(wall * 1000, 2), server_cpu_ms=round(cpu * 1000, 1),
                     reply_bytes=size, error=error)
            log(f"  {label:<31} rep {rep} {variant.label:<18} {kind} call: "
                f"{wall * 1000:7.1f} ms, server CPU {cpu * 1000:5.0f} ms")


def run_slots(s: Session, stage: str, slots: Sequence[Slot]) -> None:
    """--reps repetitions of every slot, the order rotated each repetition; a slot that
    fails once is not run again."""
    broken: set[int] = set()
    for rep in range(s.opts.reps):
        others = other_benchmarks()
        if others:
            names = sorted({o.split(" ", 1)[1] for o in others})
            note = f"another benchmark ran during the {stage} stage: {'; '.join(names)}"
            if note not in s.notes:
                log(f"  warning: {note}")
                s.notes.append(note)
        shift = rep % len(slots) if slots else 0
        for i in [*range(shift, len(slots)), *range(shift)]:
            if s.out_of_time():
                raise OutOfTimeError
            if i in broken:
                continue
            slot = slots[i]
            if measure(s, stage, slot.cell, slot.variant, rep, slot.n, slot.shape)["error"]:
                broken.add(i)


def size_or_record(s: Session, stage: str, cell: Cell, variant: Variant,
                   shape: dict[str, Any]) -> int:
    """Calibrated -n; 0 (and an error record for the summary) if the command fails."""
    if s.out_of_time():
        raise OutOfTimeError
    n, error = calibrate(s, s.fleet.servers[variant.server], cell)
    if error:
        log(f"  {cell.name:<31} {variant.label:<18} n/a ({error})")
        s.record(stage=stage, cell=cell.name, command=" ".join(cell.test),
                 pipeline=cell.pipeline, variant=variant.label, server=variant.server,
                 nodes=variant.nodes, stream=variant.stream, rep=-1, rps=None,
                 error=error, **shape)
    return n


def stage_probes(s: Session) -> None:
    server = start_server(s.fleet, "demo", s.workdir, s.opts.python, s.opts.pin,
                                timeout=30.0, extra=("--log-level", "warning", "--demo"))
    s.facts["cw_version"] = server.version
    log(f"probes: demo server pid {server.pid} port {server.port} version {server.version}")
    deadline = time.monotonic() + 15.0
    while True:
        answers = {name: redis_cli(server.port, args) for name, args, _ in PROBES}
        good = {name for name, _, want in PROBES if answers[name] == want}
        if len(good) == len(PROBES) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name, args, want in PROBES:
        s.record(stage="check", cell=name, command=" ".join(args), answer=answers[name],
                 expected=want, ok=name in good)
        log(f"  redis-cli {' '.join(args):<14} -> {answers[name]}"
            + ("" if name in good else f"   (expected {want}: not measured)"))
    demo = Variant("demo (6 nodes)", "demo", nodes=6)
    for pipeline in s.opts.pipelines:
        slots: list[Slot] = []
        for name, args, _ in PROBES:
            cell = cell_for(name, args, pipeline)
            if name not in good:
                s.record(stage="probes", cell=cell.name, command=" ".join(args),
                         pipeline=pipeline, variant=demo.label, server="demo", nodes=6,
                         stream=False, rep=-1, rps=None, error=f"answers {answers[name]!r}")
                continue
            n = size_or_record(s, "probes", cell, demo, {})
            if n:
                slots.append(Slot(cell, demo, n, {}))
        run_slots(s, "probes", slots)
    s.fleet.stop(server)


def stage_model(s: Session) -> None:
    opts = s.opts
    shapes: dict[str, dict[str, Any]] = {}
    servers: list[Variant] = []
    for count in opts.nodes:
        name = f"nodes-{count}"
        server = start_server(
            s.fleet, name, s.workdir, opts.python, opts.pin, timeout=30.0,
            extra=("--log-level", "warning", "--node-timeout", str(NODE_TIMEOUT_MS),
                   "--output-buffer-limit", str(OUTPUT_BUFFER_LIMIT)))
        t0 = time.monotonic()
        shape: dict[str, Any] = dict(populate(server.port, count))
        shape["populate_s"] = round(time.monotonic() - t0, 2)
        for label, args in MODEL_COMMANDS:
            reply, size = reply_and_size(server.port, *args)
            if isinstance(reply, Exception):
                raise BenchError(f"{name}: {label} answered an error: {reply}")
            shape[f"reply_bytes_{label}"] = size
        shapes[name] = shape
        s.facts["cw_version"] = server.version
        servers.append(Variant(f"{count} nodes", name, nodes=count))
        log(f"model: {name} pid {server.pid} port {server.port}: {shape}")
    if opts.redis and shutil.which("redis-server"):
        try:
            redis = start_server(s.fleet, "redis", s.workdir, opts.python, opts.pin)
            log(f"model: redis-server pid {redis.pid} port {redis.port} (INFO reference)")
        except BenchError as exc:
            log(f"  redis-server: {exc} (no INFO reference)")
    # The stream's own cost on each server, interleaved over the repetitions.
    for rep in range(opts.reps):
        for v in servers[rep % len(servers):] + servers[:rep % len(servers)]:
            if s.out_of_time():
                raise OutOfTimeError
            measure_stream_alone(s, v, rep)
            cold_calls(s, v, rep)
    for label, args in MODEL_COMMANDS:
        for pipeline in opts.pipelines:
            cell = cell_for(label, args, pipeline)
            slots: list[Slot] = []
            for v in servers:
                shape = {"reply_bytes": shapes[v.server][f"reply_bytes_{label}"],
                         "known_nodes": shapes[v.server]["known_nodes"]}
                n = size_or_record(s, "model", cell, v, shape)
                if n:
                    streamed = Variant(f"{v.label} +stream", v.server, True, v.nodes)
                    slots += [Slot(cell, v, n, shape), Slot(cell, streamed, n, shape)]
            run_slots(s, "model", slots)
    if "redis" in s.fleet.servers:
        ref = Variant("redis-server", "redis")
        slots = []
        for pipeline in opts.pipelines:
            cell = cell_for("INFO", ("INFO",), pipeline)
            n = size_or_record(s, "reference", cell, ref, {})
            if n:
                slots.append(Slot(cell, ref, n, {}))
        run_slots(s, "reference", slots)
    for name in [*(v.server for v in servers), "redis"]:
        if name in s.fleet.servers:
            s.fleet.stop(s.fleet.servers[name])


# --------------------------------------------------------------------------- summary


def ok_runs(records: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())
            and not r.get("error") and r.get("rep", -1) >= 0]


def first_error(records: Sequence[dict[str, Any]], **match: Any) -> str | None:
    for r in records:
        if all(r.get(k) == v for k, v in match.items()) and r.get("error"):
            return str(r["error"])
    return None


def spread(xs: Sequence[float], fmt: Any) -> str:
    return f"{fmt(min(xs))}-{fmt(max(xs))}" if xs else "-"


def summarize(s: Session, elapsed: float) -> str:
    recs = s.records
    f = s.facts
    lines = [
        f"## Status and health: run {s.run_id}", "",
        f"{datetime.now(UTC):%Y-%m-%d}. {f['nproc']} CPUs ({f['cpu']}), kernel {f['kernel']}, "
        f"Python {f['python']}, redis-server/redis-benchmark {f['redis']}; clusterwatch "
        f"{f.get('cw_version') or '?'} at commit "
        f"{f.get('commit') or '?'}{' (dirty tree)' if f.get('dirty') == 'yes' else ''}. "
        f"redis-benchmark -c {CLIENTS}, -P {' and '.join(map(str, s.opts.pipelines))}, "
        f"{s.opts.reps} interleaved rep(s)"
        f"{', --quick' if s.opts.quick else ''}, medians; pinning "
        f"{'server CPU 1 / clients CPU 0' if s.opts.pin else 'off'}; took {elapsed:.0f} s.",
    ]
    checks = [r for r in recs if r.get("stage") == "check"]
    if checks:
        lines += ["", "### Probes next to PING (one `serve --demo` server, 6 nodes)", "",
                  "redis-cli first: " + ", ".join(
                      f"`{r['command']}` → `{r['answer']}`" for r in checks) + ".", "",
                  "| command | P | runs | n | median rps | rps ÷ PING | rps min-max | "
                  "µs CPU/req | CPU ÷ PING | µs min-max | srv CPU% | bench CPU% | other CPU% "
                  "| p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for pipeline in s.opts.pipelines:
            base = ok_runs(recs, stage="probes", cell=f"PING P{pipeline}")
            base_rps = med([r["rps"] for r in base])
            base_us = med([r["us_cpu_per_req"] for r in base])
            for name, _, _ in PROBES:
                cell = f"{name} P{pipeline}"
                runs = ok_runs(recs, stage="probes", cell=cell)
                if not runs:
                    err = first_error(recs, stage="probes", cell=cell) or "not run"
                    lines.append(f"| {name} | {pipeline} | 0 | - | n/a ({err}) |" + " - |" * 9)
                    continue
                rps = [r["rps"] for r in runs]
                us = [r["us_cpu_per_req"] for r in runs]
                lines.append(
                    f"| {name} | {pipeline} | {len(runs)} | {runs[0]['n']:,} | "
                    f"{fmt_rps(med(rps))} | {med(rps) / base_rps:.2f} | "
                    f"{spread(rps, fmt_rps)} | {fmt_us(med(us))} | {med(us) / base_us:.2f} | "
                    f"{spread(us, fmt_us)} | {med([r['server_cpu_pct'] for r in runs]):.0f} | "
                    f"{med([r['bench_cpu_pct'] for r in runs]):.0f} | "
                    f"{med([r['other_cpu_pct'] for r in runs]):.0f} | "
                    f"{med([r['p50_ms'] for r in runs]):.3f} |")
    streams = [r for r in recs if r.get("stage") == "stream"]
    stream_cores: dict[str, float] = {}
    if streams:
        lines += ["", "### The heartbeat stream alone (no requests)", "",
                  "| server | runs | heartbeats/s | server CPU% | µs server CPU/heartbeat |",
                  "|---|---|---|---|---|"]
        for label in dict.fromkeys(r["variant"] for r in streams):
            runs = ok_runs(recs, stage="stream", variant=label)
            if not runs:
                lines.append(f"| {label} | 0 | n/a "
                             f"({first_error(recs, stage='stream', variant=label)}) | - | - |")
                continue
            stream_cores[runs[0]["server"]] = med([r["server_cpu_s"] / r["wall_s"]
                                                   for r in runs])
            lines.append(f"| {label} | {len(runs)} | {med([r['stream_rate'] for r in runs]):,.0f}"
                         f" | {med([r['server_cpu_pct'] for r in runs]):.1f} | "
                         f"{fmt_us(med([r['us_per_heartbeat'] for r in runs]))} |")
    cold = [r for r in recs if r.get("stage") == "cold" and not r.get("error")]
    if cold:
        lines += ["", "### One call right after the stream (every node changed), then again",
                  "", "Client wall time of one request (reply transfer included) and the "
                  "server CPU it took (10 ms ticks), median of the repetitions.", "",
                  "| command | nodes | reply bytes | cold call ms | cold server CPU ms | "
                  "cached call ms | cached server CPU ms |", "|---|---|---|---|---|---|---|"]
        for label, _ in MODEL_COMMANDS:
            for nodes in dict.fromkeys(r["nodes"] for r in cold):
                by_kind = {k: [r for r in cold if r["cell"] == label
                               and r["nodes"] == nodes and r["kind"] == k]
                           for k in ("cold", "warm")}
                if not by_kind["cold"] or not by_kind["warm"]:
                    continue
                lines.append(
                    f"| {label} | {nodes} | {by_kind['cold'][0]['reply_bytes']:,} | "
                    + " | ".join(f"{med([r[key] for r in by_kind[k]]):.1f}"
                                 for k in ("cold", "warm")
                                 for key in ("wall_ms", "server_cpu_ms")) + " |")
    model = [r for r in recs if r.get("stage") == "model"]
    if model:
        counts = " and ".join(str(n) for n in s.opts.nodes)
        lines += ["", f"### The model's commands at {counts} nodes, still and with the stream",
                  "",
                  "| command | P | nodes | stream | reply bytes | runs | n | median rps | "
                  "rps ÷ still | rps min-max | µs CPU/req | net µs/req | net ÷ still | "
                  "µs min-max | srv CPU% | other CPU% | p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, _ in MODEL_COMMANDS:
            for pipeline in s.opts.pipelines:
                cell = f"{label} P{pipeline}"
                still_rps: dict[str, float] = {}
                still_us: dict[str, float] = {}
                for variant in dict.fromkeys(r["variant"] for r in model if r["cell"] == cell):
                    runs = ok_runs(recs, stage="model", cell=cell, variant=variant)
                    sample = next(r for r in model if r["cell"] == cell
                                  and r["variant"] == variant)
                    stream = bool(sample.get("stream"))
                    head = (f"| {label} | {pipeline} | {sample['nodes']} | "
                            f"{'yes' if stream else 'no'} | {sample.get('reply_bytes', 0):,} |")
                    if not runs:
                        why = first_error(recs, stage="model", cell=cell, variant=variant)
                        lines.append(f"{head} 0 | - | n/a ({why}) |" + " - |" * 9)
                        continue
                    rps = [r["rps"] for r in runs]
                    us = [r["us_cpu_per_req"] for r in runs]
                    if not stream:
                        still_rps[sample["server"]] = med(rps)
                        still_us[sample["server"]] = med(us)
                    cores = stream_cores.get(sample["server"], 0.0) if stream else 0.0
                    net = [(r["server_cpu_s"] - cores * r["wall_s"]) / r["n"] * 1e6
                           for r in runs]
                    ratio = (f"{med(rps) / still_rps[sample['server']]:.2f}"
                             if stream and sample["server"] in still_rps else "-")
                    cpu_ratio = (f"{med(net) / still_us[sample['server']]:.2f}"
                                 if stream and cores and still_us.get(sample["server"])
                                 else "-")
                    lines.append(
                        f"{head} {len(runs)} | {runs[0]['n']:,} | {fmt_rps(med(rps))} | "
                        f"{ratio} | {spread(rps, fmt_rps)} | {fmt_us(med(us))} | "
                        f"{fmt_us(med(net)) if stream and cores else '-'} | {cpu_ratio} | "
                        f"{spread(us, fmt_us)} | "
                        f"{med([r['server_cpu_pct'] for r in runs]):.0f} | "
                        f"{med([r['other_cpu_pct'] for r in runs]):.0f} | "
                        f"{med([r['p50_ms'] for r in runs]):.3f} |")
    ref = ok_runs(recs, stage="reference")
    if ref:
        lines += ["", "### Reference: redis-server INFO in the same run", "",
                  "| command | P | runs | median rps | µs CPU/req | srv CPU% | p50 ms |",
                  "|---|---|---|---|---|---|---|"]
        for pipeline in s.opts.pipelines:
            runs = [r for r in ref if r["pipeline"] == pipeline]
            if runs:
                lines.append(f"| INFO | {pipeline} | {len(runs)} | "
                             f"{fmt_rps(med([r['rps'] for r in runs]))} | "
                             f"{fmt_us(med([r['us_cpu_per_req'] for r in runs]))} | "
                             f"{med([r['server_cpu_pct'] for r in runs]):.0f} | "
                             f"{med([r['p50_ms'] for r in runs]):.3f} |")
    lines += ["", "µs CPU/req: server utime+stime over the run ÷ requests (lower is better). "
              "÷ PING: the probe's median over PING's on the same server. net µs/req: "
              "minus the stream's own server CPU (the table above) over the run's wall time. "
              "rps ÷ still: with the stream over without; net ÷ still: net µs/req with the "
              "stream over µs/req without. other CPU%: the rest of the "
              "machine's busy time during the run (other processes on the box)."]
    if s.notes:
        lines += ["", *[f"Note: {note}" for note in s.notes]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 100,1000") from None
    if not values or min(values) < 2 or max(values) > 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: node counts must be 2..10000")
    return values


def pipeline_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 1,16") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: pipelines must be 1 or more")
    return values


STAGES = ("probes", "model")


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="1 rep, runs of ~0.2 s, no redis-server: a smoke run under 30 s")
    p.add_argument("--runs", "--reps", dest="reps", type=int, default=None,
                   help="repetitions (default 3, --quick 1)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma list from {', '.join(STAGES)}")
    p.add_argument("--nodes", type=int_list, default=[100, 1000],
                   help="node counts for the model stage (default 100,1000)")
    p.add_argument("--pipelines", type=pipeline_list, default=list(PIPELINES),
                   help="redis-benchmark -P values (default 1,16)")
    p.add_argument("--stream-rate", type=float, default=1000.0,
                   help="heartbeats/s of the background stream (default 1000)")
    p.add_argument("--stream-batch", type=int, default=1,
                   help="heartbeats per BUS PUBLISH in the stream (default 1)")
    p.add_argument("--stream-seconds", type=float, default=None,
                   help="length of each 'stream alone' window (default 3, --quick 0.5); a "
                        "full collection of a large heap moves a 3 s reading by ~70 us")
    p.add_argument("--target-seconds", type=float, default=None,
                   help="calibrated run length (default 2, --quick 0.2)")
    p.add_argument("--run-timeout", type=float, default=60.0,
                   help="seconds one redis-benchmark may take (default 60)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop starting runs after this (default 900, --quick 40)")
    p.add_argument("--wait-others", type=float, default=900.0,
                   help="wait up to this long for other benchmarks to finish (default 900)")
    p.add_argument("--no-redis", action="store_true",
                   help="no redis-server INFO reference (never with --quick)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--python", default=None, help="interpreter for clusterwatch and the "
                   "publisher (default: the repo's .venv, else this one)")
    p.add_argument("--out", type=Path, default=None, help="JSON lines file to append every run "
                   "to (default benchmarks/results/status-results.jsonl; none with --quick)")
    p.add_argument("--markdown", type=Path, default=None, help="summary file (default "
                   "benchmarks/results/status-latest.md, status-<stages>.md when only some "
                   "stages run; none with --quick)")
    # The publisher child.
    p.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--nodes-count", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    stages = [x.strip() for x in args.stages.split(",") if x.strip()]
    if not stages or set(stages) - set(STAGES):
        p.error(f"--stages: choose from {', '.join(STAGES)}")
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1 or args.stream_rate <= 0 or args.stream_batch < 1:
        p.error("--reps, --stream-rate and --stream-batch must be positive")
    python = args.python or default_python()
    opts = Options(
        stages=stages, pipelines=args.pipelines, reps=reps, quick=args.quick,
        pin=not args.no_pin and pinning_available(), python=python, nodes=args.nodes,
        stream_rate=args.stream_rate, stream_batch=args.stream_batch,
        stream_seconds=args.stream_seconds or (0.5 if args.quick else 3.0),
        target_seconds=args.target_seconds or (0.2 if args.quick else 2.0),
        run_timeout=args.run_timeout,
        max_seconds=args.max_seconds or (40.0 if args.quick else 900.0),
        wait_others=args.wait_others, redis=not (args.no_redis or args.quick),
        out=args.out or (None if args.quick else RESULTS_DIR / "status-results.jsonl"),
        markdown=args.markdown or (None if args.quick else RESULTS_DIR / (
            # A run of some stages must not replace the full run's tables.
            "status-latest.md" if set(stages) == set(STAGES)
            else f"status-{'-'.join(stages)}.md")))
    return opts, args


def main(argv: Sequence[str] | None = None) -> int:
    opts, args = parse_args(argv)
    if args.publisher:
        return publisher_main(args.port, args.nodes_count, opts.stream_rate, opts.stream_batch,
                              opts.max_seconds)
    missing = require_tools("redis-benchmark")
    if missing:
        log(f"status_bench: {missing}")
        return 2
    others = wait_for_other_benchmarks(opts.wait_others)
    if opts.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    run = run_id()
    s = Session(opts, Fleet(), Path("."), run, machine_facts() | git_facts(), time.monotonic())
    if others:
        s.notes.append(f"other benchmarks were still running at the start: {'; '.join(others)}")
    if not opts.pin:
        s.notes.append("not pinned (taskset or CPU 1 unavailable, or --no-pin)")
    log(f"run {run}: stages {', '.join(opts.stages)}; {opts.reps} rep(s); pinning "
        f"{'on' if opts.pin else 'off'}")
    status = 0
    with signals_as_interrupt(), fleet_in_tempdir("cw-status-") as (fleet, workdir), \
            results_file(opts.out) as out:
        s.fleet, s.workdir, s.out = fleet, workdir, out
        try:
            for stage in opts.stages:
                {"probes": stage_probes, "model": stage_model}[stage](s)
        except OutOfTimeError:
            log(f"--max-seconds {opts.max_seconds:.0f} reached; summarizing what was measured")
            s.notes.append(f"stopped early at --max-seconds {opts.max_seconds:.0f}")
        except KeyboardInterrupt:
            log("interrupted; stopping every process")
            status = 130
        except (BenchError, OSError) as exc:
            log(f"status_bench: {exc}")
            status = 1
    if not s.records:
        return status or 1
    text = summarize(s, time.monotonic() - s.started)
    print(text)
    if opts.markdown is not None and status == 0:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text, encoding="utf-8")
        log(f"wrote {opts.markdown}" + (f" and appended {len(s.records)} records to {opts.out}"
                                        if opts.out else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
