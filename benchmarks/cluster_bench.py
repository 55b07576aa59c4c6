"""Cluster-model benchmarks: node messages in, CLUSTER replies out, memory per node.

    PYTHONPATH=. .venv/bin/python benchmarks/cluster_bench.py           # full run, ~3-4 min
    PYTHONPATH=. .venv/bin/python benchmarks/cluster_bench.py --quick   # smoke run, < 30 s
    PYTHONPATH=. .venv/bin/python benchmarks/cluster_bench.py --stages bus --reps 5

Four stages (``--stages model,bus,cluster,memory``):

1. **model**: heartbeats/s through ``ClusterModel.publish()`` alone, at 6, 100 and 1000 nodes
   (pre-encoded heartbeat bytes with increasing seq; this process, one core; median of reps).
2. **bus**: heartbeats applied/s through pipelined ``BUS PUBLISH`` to a real server: K
   connections, each with P requests in flight carrying B heartbeats each. Every message has
   the next seq of its node, so every one must be applied: each reply is compared byte for
   byte with the all-``applied`` answer, and ``BUS INFO`` must show applied rising by exactly
   what was sent, with stale and rejected unchanged. The load generator is a separate process
   (``--gen-worker``: selectors, non-blocking sockets, requests pre-encoded before the clock
   starts) pinned to CPU 0, with its own CPU time measured so a client bottleneck is visible.
3. **cluster**: ``CLUSTER INFO`` and ``CLUSTER NODES`` with redis-benchmark (-c 50, -P 1 and
   16) against three clusterwatch servers holding 6, 100 and 1000 nodes and a cluster-enabled
   redis-server (one node, as bench.py), interleaved; server µs CPU/request from /proc.
4. **memory**: the server's VmRSS before and after publishing N nodes (hello, slots, a
   heartbeat with a status payload), per node, at 1000 and 10000 nodes (a fresh server each).

Servers are pinned to CPU 1, clients and this driver to CPU 0 (skipped without taskset or
CPU 1). Every process started here is stopped by PID on exit, error, Ctrl-C or SIGTERM.
Reuses bench.py's process, CPU and redis-benchmark helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import select
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench  # noqa: E402
from bench import (  # noqa: E402
    CLIENT_CPU,
    BenchError,
    Cell,
    Fleet,
    ServerProc,
    calibrated_n,
    cpu_seconds,
    fmt_rps,
    fmt_us,
    git_facts,
    machine_facts,
    pin_prefix,
    pinning_available,
    run_benchmark,
    signals_as_interrupt,
)

RESULTS_DIR = HERE / "results"
# Nodes go pfail after this long without a message; the servers here get an hour so the
# populated clusters stay `cluster_state:ok` (and their replies stable) for the whole run.
NODE_TIMEOUT_MS = 3_600_000
PUBLISH_CHUNK = 500  # messages per BUS PUBLISH when populating

# Targets from issue 3.
BUS_TARGET = 100_000  # heartbeats/s applied on one core through pipelined BUS PUBLISH
INFO_SCALE_TARGET = 0.90  # CLUSTER INFO rps at 1000 nodes / at 6 nodes
INFO_REDIS_TARGET = 3.0  # CLUSTER INFO rps / redis-server's, -P 16


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- messages


def heartbeat(node: str, epoch: int, seq: int, payload: bytes = b"") -> bytes:
    """A schema v1 heartbeat; `payload` is extra JSON members (`,"k":v...`) or empty."""
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":%d,"seq":%d%s}' % (
        node.encode(), epoch, seq, payload)


def status_payload() -> bytes:
    """The status fields `clusterwatch simulate` sends with each heartbeat (~600 bytes)."""
    fields = {
        "node_state": "RUNNING", "transaction_id": "tx-3-5461", "serving": True,
        "services": {
            "api": {"version": "1.4.2", "state": "running",
                    "status": {"critical": {"listening": True}, "info": {"connections": 17}}},
            "storage": {"version": "1.4.2", "state": "running",
                        "status": {"critical": {"writable": True},
                                   "info": {"used_bytes": 1_069_632}}},
        },
        "partitions": [{"id": 2, "role": "leader", "health": "healthy"}],
        "thread_pool": {"active": 1, "max": 16, "queued": 0},
        "requests": {"active": 1, "max": 100, "total": 1717},
    }
    return b"," + json.dumps(fields, separators=(",", ":")).encode()[1:-1]


@dataclass(slots=True)
class SimCluster:
    """N nodes (N/2 masters with one replica each, slots split evenly) as `simulate` makes
    them; `initial` is every hello, the masters' slots and a first heartbeat."""

    nodes: list[tuple[str, int]]  # (id, epoch)
    initial: list[bytes]
    next_seq: int  # above every seq `initial` used

    @classmethod
    def make(cls, count: int) -> SimCluster:
        from clusterwatch.agent.simulate import Simulation

        masters = max(1, count // 2)
        sim = Simulation(masters=masters, replicas=1 if count > 1 else 0,
                         node_timeout_ms=NODE_TIMEOUT_MS, scope="clusterwatch-bench")
        initial = sim.initial()
        return cls([(n.id, n.epoch) for n in sim.nodes], initial,
                   max(n.seq for n in sim.nodes) + 1)

    def step_heartbeats(self) -> list[bytes]:
        """One more heartbeat per node, with the status payload."""
        payload = status_payload()
        seq = self.next_seq
        self.next_seq += 1
        return [heartbeat(node, epoch, seq, payload) for node, epoch in self.nodes]


# --------------------------------------------------------------------------- RESP client


def resp_command(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Client:
    """A blocking RESP client for set-up and checks (not for load)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        import hiredis

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader: Any = hiredis.Reader()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: bytes | str | int) -> Any:
        self.sock.sendall(resp_command(*args))
        return self.read()

    def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, Exception):
                    raise BenchError(f"server error: {reply}")
                return reply
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise BenchError("server closed the connection")
            self.reader.feed(chunk)

    def publish(self, messages: Sequence[bytes]) -> None:
        """BUS PUBLISH in chunks; every message must be applied."""
        for i in range(0, len(messages), PUBLISH_CHUNK):
            chunk = messages[i:i + PUBLISH_CHUNK]
            outcomes = self.call("BUS", "PUBLISH", *chunk)
            bad = [o for o in outcomes if o != b"applied"]
            if bad:
                raise BenchError(f"BUS PUBLISH: {len(bad)} of {len(chunk)} not applied, "
                                 f"first: {bad[0]!r}")

    def bus_info(self) -> dict[str, Any]:
        flat = self.call("BUS", "INFO")
        return {k.decode(): v for k, v in zip(flat[::2], flat[1::2], strict=True)}


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat), to spot other load."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / bench.CLK_TCK


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------- servers


def start_clusterwatch(fleet: Fleet, name: str, workdir: Path, opts: Options) -> ServerProc:
    """clusterwatch with nodes that stay alive for the whole run and a quiet log."""
    return bench.start_server(fleet, name, workdir, opts.python, opts.pin, extra=(
        "--node-timeout", str(NODE_TIMEOUT_MS), "--log-level", "warning"))


def stop_server(fleet: Fleet, server: ServerProc) -> None:
    proc = server.proc
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=2.0)
    fleet.reaped(proc.pid)
    fleet.servers.pop(server.name, None)


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
               "ts": datetime.now(UTC).isoformat(timespec="seconds"),
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
class Worker:
    proc: subprocess.Popen[bytes]
    buf: bytes = b""

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def read_lines(workers: Sequence[Worker], timeout: float) -> list[str]:
    """One line from each worker, or BenchError on timeout or early exit."""
    lines: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(lines) < len(workers):
        pending = {w.fd: i for i, w in enumerate(workers) if i not in lines}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"load generator: no answer within {timeout:.0f}s")
        ready, _, _ = select.select(list(pending), [], [], remaining)
        for fd in ready:
            i = pending[fd]
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BenchError(f"load generator {i} exited: rc={workers[i].proc.poll()}")
            workers[i].buf += chunk
            if b"\n" in workers[i].buf:
                line, _, workers[i].buf = workers[i].buf.partition(b"\n")
                lines[i] = line.decode()
    return [lines[i] for i in range(len(workers))]


def spawn_workers(s: Session, count: int) -> list[Worker]:
    argv = [*pin_prefix(CLIENT_CPU, s.opts.pin), s.opts.python, str(Path(__file__).resolve()),
            "--gen-worker"]
    workers = []
    for _ in range(count):
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                start_new_session=True)
        s.fleet.children[proc.pid] = proc
        workers.append(Worker(proc))
    return workers


def reap_workers(s: Session, workers: Sequence[Worker]) -> None:
    for w in workers:
        with contextlib.suppress(OSError):
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        try:
            w.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.proc.pid, signal.SIGKILL)
            w.proc.wait(timeout=2.0)
        if w.proc.stdout is not None:
            w.proc.stdout.close()
        s.fleet.reaped(w.proc.pid)


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
    workers = spawn_workers(s, procs)
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
        reap_workers(s, workers)
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
        stop_server(s.fleet, server)


# --------------------------------------------------------------------------- gen worker


def gen_worker() -> int:
    """The load generator (a child process): spec on stdin, `ready`, `go`, result JSON."""
    line = sys.stdin.readline()
    if not line:
        return 0
    try:
        spec = json.loads(line)
        conns = [GenConn(spec["port"], c["nodes"], spec["base_seq"], c["messages"],
                         spec["batch"], spec["pipeline"]) for c in spec["conns"]]
    except Exception as exc:  # report anything: the driver prints it
        print(f"error: {exc!r}", flush=True)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    error = drive(conns, float(spec["timeout"]))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"messages": sum(c.done for c in conns), "wall_s": wall, "cpu_s": cpu,
                      "error": error}), flush=True)
    for conn in conns:
        conn.sock.close()
    return 0


class GenConn:
    """One connection: pre-encoded windows of `pipeline` BUS PUBLISH requests, one window in
    flight; each reply must equal the all-`applied` reply byte for byte."""

    def __init__(self, port: int, nodes: list[list[Any]], base_seq: int, messages: int,
                 batch: int, pipeline: int) -> None:
        n = len(nodes)
        window = batch * pipeline
        head = b"*%d\r\n$3\r\nBUS\r\n$7\r\nPUBLISH\r\n" % (batch + 2)
        self.windows: list[bytes] = []
        for w in range(messages // window):
            parts: list[bytes] = []
            for r in range(pipeline):
                parts.append(head)
                for m in range(batch):
                    k = w * window + r * batch + m
                    node, epoch = nodes[k % n]
                    data = heartbeat(node, epoch, base_seq + k // n)
                    parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            self.windows.append(b"".join(parts))
        self.expected = (b"*%d\r\n" % batch + b"+applied\r\n" * batch) * pipeline
        self.window_msgs = window
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.index = 0
        self.out = memoryview(b"")
        self.buf = bytearray()
        self.done = 0

    def start(self) -> bool:
        """Send the next window as far as the socket takes it; True if all of it went."""
        self.out = memoryview(self.windows[self.index])
        self.buf.clear()
        return self.flush()

    def flush(self) -> bool:
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            sent = 0
        self.out = self.out[sent:]
        return not self.out

    def feed(self, chunk: bytes) -> str | bool:
        self.buf += chunk
        expected = self.expected
        if len(self.buf) < len(expected):
            if memoryview(expected)[:len(self.buf)] != self.buf:
                return first_not_applied(bytes(self.buf))
            return False
        if self.buf != expected:
            return first_not_applied(bytes(self.buf))
        self.done += self.window_msgs
        return True


class Window(Protocol):
    """A generator connection that sends pre-encoded windows and checks their replies."""

    sock: socket.socket
    windows: list[bytes]
    index: int

    def start(self) -> bool: ...

    def flush(self) -> bool: ...

    def feed(self, chunk: bytes) -> str | bool:
        """Reply bytes in: an error text, True when the window's replies are complete."""
        ...


def drive(conns: Sequence[Window], timeout: float) -> str | None:
    """Send every connection's windows, one in flight each, until done or an error."""
    sel = selectors.DefaultSelector()
    live = 0
    for c in conns:
        if c.windows:
            sel.register(c.sock, selectors.EVENT_READ if c.start()
                         else selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            live += 1
    deadline = time.monotonic() + timeout
    while live:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"timeout after {timeout:.0f}s with {live} connections busy"
        for key, mask in sel.select(remaining):
            conn: Window = key.data
            if mask & selectors.EVENT_WRITE and conn.flush():
                sel.modify(conn.sock, selectors.EVENT_READ, conn)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                chunk = conn.sock.recv(1 << 18)
            except BlockingIOError:
                continue
            if not chunk:
                return "the server closed a connection"
            outcome = conn.feed(chunk)
            if isinstance(outcome, str):
                return outcome
            if not outcome:
                continue
            conn.index += 1
            if conn.index == len(conn.windows):
                sel.unregister(conn.sock)
                live -= 1
            elif not conn.start():
                sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
    return None


def first_not_applied(data: bytes) -> str:
    import hiredis

    reader = hiredis.Reader()
    reader.feed(data)
    while (reply := reader.gets()) is not False:
        items = reply if isinstance(reply, list) else [reply]
        for item in items:
            if item != b"applied":
                return f"not applied: {item!r:.200}"
    return f"unexpected reply bytes: {data[:200]!r}"


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
        server = bench.start_server(fleet, "redis-cluster", s.workdir, opts.python, opts.pin)
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
            rps = bench._float(probe.csv_row, "rps")
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
                rps = None if r.error else bench._float(r.csv_row, "rps")
                rec = s.record(
                    "cluster", cell=cell.name, server=name, rep=rep, n=n,
                    clients=cell.clients, pipeline=cell.pipeline, argv=r.argv, rps=rps,
                    p50_ms=bench._float(r.csv_row, "p50_latency_ms"),
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
        stop_server(fleet, fleet.servers[name])


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
            stop_server(s.fleet, server)
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


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def summarize(s: Session, elapsed: float) -> str:
    opts, recs = s.opts, s.records
    f = s.facts
    lines = [
        f"## Cluster model — run {s.run_id}", "",
        f"Date {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. {f['nproc']} vCPUs "
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
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3, --quick 1)")
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
    venv_python = REPO / ".venv" / "bin" / "python"
    python = args.python or (str(venv_python) if venv_python.exists() else sys.executable)
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


@contextlib.contextmanager
def results_file(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        yield fh


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--gen-worker"]:
        return gen_worker()
    opts = parse_args(argv)
    if "cluster" in opts.stages:
        for tool in ("redis-benchmark", "redis-server"):
            if not shutil.which(tool):
                log(f"cluster_bench.py: {tool} not found (apt-get install redis-server "
                    "redis-tools)")
                return 2
    if opts.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fleet = Fleet()
    started = time.monotonic()
    status = 0
    facts = machine_facts() | git_facts()
    with contextlib.suppress(OSError):
        facts["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    stage_fns: dict[str, Callable[[Session], None]] = {
        "model": stage_model, "bus": stage_bus, "cluster": stage_cluster,
        "memory": stage_memory}
    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="cw-cbench-") as tmp, \
            results_file(opts.out) as out:
        session = Session(opts, fleet, Path(tmp), run_id, facts, started, out=out)
        log(f"run {run_id}: stages {','.join(opts.stages)}; pinning "
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
            log(f"cluster_bench.py: {exc}")
            status = 1
        finally:
            fleet.stop_all()
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
