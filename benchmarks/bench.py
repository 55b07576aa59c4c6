"""End-to-end benchmark: clusterwatch vs redis-server, driven by redis-benchmark.

    python benchmarks/bench.py                 # full matrix, 3 interleaved repetitions
    python benchmarks/bench.py --quick         # seconds-long smoke run
    python benchmarks/bench.py --servers clusterwatch,redis --reps 5
    python benchmarks/bench.py --cell "HEALTH READY P16=-P 16 HEALTH READY"

Method (see benchmarks/README.md): every server runs for the whole session pinned to CPU 1,
redis-benchmark (and this driver) to CPU 0. Each cell is a separate redis-benchmark run; the
loop order is cell -> repetition -> server, with the server order rotated every repetition.
Server CPU is the utime+stime delta of the server process (all threads) from /proc/PID/stat
over the run; redis-benchmark CPU comes from wait4() rusage. Summaries use medians and compare
each clusterwatch variant with the matching redis-server (the cluster-enabled one for CLUSTER
INFO). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = 1
CLIENT_CPU = 0
# Commands the issue sets targets for: clusterwatch's server CPU per PING within 1.5x of
# redis-server's, and its requests/s at least 0.8x.
PING_CPU_TARGET = 1.5
PING_RPS_TARGET = 0.8

BASELINE_KINDS = ("redis", "redis-cluster")
# The Python floor (benchmarks/pong_floor.py): PONG to anything, PING cells only.
FLOOR = "floor"
ALL_SERVERS = ("redis", "redis-cluster", "clusterwatch", "clusterwatch-asyncio", FLOOR)
DEFAULT_SERVERS = ("redis", "redis-cluster", "clusterwatch")


class BenchError(RuntimeError):
    """A server could not be started, or the environment lacks a tool."""


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True, slots=True)
class Cell:
    """One redis-benchmark configuration, run against every applicable server."""

    name: str
    test: tuple[str, ...]  # `-t ping_mbulk` or a custom command such as `INFO`
    pipeline: int
    clients: int
    baseline: str  # "redis", "redis-cluster" or "none"
    n_full: int  # -n for a full run before calibration (and the calibration probe's basis)
    fixed_n: int | None = None  # -n given explicitly: never calibrated or scaled

    @property
    def is_ping(self) -> bool:
        return any(word.lower().startswith("ping") for word in self.test)


def default_cells(clients: int) -> list[Cell]:
    """The issue's matrix; -n from the study so a run takes about 1-6 s on this box."""
    cells: list[Cell] = []
    for test, label in (("ping_inline", "PING_INLINE"), ("ping_mbulk", "PING_MBULK")):
        cells.append(Cell(f"{label} P1", ("-t", test), 1, clients, "redis", 200_000))
        cells.append(Cell(f"{label} P16", ("-t", test), 16, clients, "redis", 2_000_000))
    cells.append(Cell("INFO P1", ("INFO",), 1, clients, "redis", 100_000))
    cells.append(Cell("INFO P16", ("INFO",), 16, clients, "redis", 300_000))
    cells.append(Cell("CLUSTER INFO P1", ("CLUSTER", "INFO"), 1, clients, "redis-cluster",
                      100_000))
    cells.append(Cell("CLUSTER INFO P16", ("CLUSTER", "INFO"), 16, clients, "redis-cluster",
                      1_000_000))
    return cells


def parse_cell(spec: str, clients: int) -> Cell:
    """`NAME[@BASELINE]=redis-benchmark args`, e.g. `HEALTH P16@none=-P 16 HEALTH READY`.

    -n, -c and -P are taken out of the args (defaults: calibrated, --clients, 1); everything
    else is passed through. BASELINE is redis (default), redis-cluster or none.
    """
    if "=" not in spec:
        raise argparse.ArgumentTypeError(f"--cell {spec!r}: expected NAME=redis-benchmark args")
    name, _, rest = spec.partition("=")
    name, _, baseline = name.strip().partition("@")
    baseline = baseline.strip() or "redis"
    if baseline not in (*BASELINE_KINDS, "none"):
        raise argparse.ArgumentTypeError(f"--cell {spec!r}: baseline must be redis, "
                                         "redis-cluster or none")
    tokens = shlex.split(rest)
    values: dict[str, int] = {}
    test: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-n", "-c", "-P") and i + 1 < len(tokens) and not values.get(token):
            try:
                values[token] = int(tokens[i + 1])
            except ValueError:
                raise argparse.ArgumentTypeError(f"--cell {spec!r}: {token} needs a number") \
                    from None
            i += 2
            continue
        if token in ("-h", "-p", "--csv", "-q"):
            raise argparse.ArgumentTypeError(f"--cell {spec!r}: {token} is set by bench.py")
        test.append(token)
        i += 1
    if not name or not test:
        raise argparse.ArgumentTypeError(f"--cell {spec!r}: needs a name and a command")
    pipeline = values.get("-P", 1)
    return Cell(name=name, test=tuple(test), pipeline=pipeline,
                clients=values.get("-c", clients), baseline=baseline,
                n_full=100_000 if pipeline == 1 else 500_000, fixed_n=values.get("-n"))


# --------------------------------------------------------------------------- processes


def pinning_available() -> bool:
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def pin_prefix(cpu: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if pin else []


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(with_bus: bool = False) -> int:
    """A free loopback port. A cluster-enabled redis also binds port+10000 for its bus and
    refuses ports above 55535, so those get a port from 20000-55535 with both free."""
    if not with_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randint(20_000, 55_535)
        if port_free(port) and port_free(port + 10_000):
            return port
    raise BenchError("no free port pair for the cluster-enabled redis-server")


def ping(port: int, timeout: float = 0.5) -> bool:
    """The server answers: PONG, or NOAUTH from one that has a password."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass(slots=True)
class ServerProc:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    version: str = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class Fleet:
    """Every process this script started, so each can be stopped by PID whatever happens."""

    servers: dict[str, ServerProc] = field(default_factory=dict)
    children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A new session keeps a terminal's Ctrl-C away from the children: this script gets it
        # and stops them in order. `taskset` execs, so the PID is the server's own.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                **kwargs)
        self.children[proc.pid] = proc
        return proc

    def reaped(self, pid: int) -> None:
        self.children.pop(pid, None)

    def stop_all(self) -> None:
        procs = [p for p in self.children.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
            except ChildProcessError:
                pass
        self.children.clear()


def server_argv(name: str, port: int, workdir: Path, python: str) -> list[str]:
    if name in BASELINE_KINDS:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
        if name == "redis-cluster":
            argv += ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(workdir / f"nodes-{port}.conf")]
        else:
            argv += ["--cluster-enabled", "no"]
        return argv
    if name == FLOOR:
        return [python, str(REPO / "benchmarks" / "pong_floor.py"), str(port)]
    argv = [python, "-m", "clusterwatch", "serve", "--port", str(port), "--bind", "127.0.0.1"]
    if name == "clusterwatch-asyncio":
        argv += ["--event-loop", "asyncio"]
    return argv


def start_server(fleet: Fleet, name: str, workdir: Path, python: str, pin: bool,
                 timeout: float = 20.0, extra: Sequence[str] = ()) -> ServerProc:
    """Start a server (``redis``/``redis-cluster``, or clusterwatch under any other name,
    with ``extra`` flags), pinned to the server CPU, and wait until it answers PING."""
    port = free_port(with_bus=name == "redis-cluster")
    log_path = workdir / f"{name}.log"
    server = ServerProc(name, port, pin_prefix(SERVER_CPU, pin) +
                        server_argv(name, port, workdir, python) + list(extra), log_path)
    env = dict(os.environ)
    if name not in BASELINE_KINDS:
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with open(log_path, "wb") as log:
        server.proc = fleet.spawn(server.argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  cwd=workdir)
    fleet.servers[name] = server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{name} exited at start-up:\n{server.log_tail()}")
        # clusterwatch logs `msg=listening ... port=N`, but a PING is the real test (and
        # survives a change of log format).
        if ping(port):
            server.version = server_version(name, port)
            return server
        time.sleep(0.05)
    # Stop it now: a wedged process on CPU 1 would skew every other server's numbers.
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGKILL)
    server.proc.wait()
    fleet.reaped(server.pid)
    raise BenchError(f"{name} not answering PING on port {port} after {timeout:.0f}s:\n"
                     f"{server.log_tail()}")


def server_version(name: str, port: int) -> str:
    """redis-server's from ``--version``; clusterwatch's from INFO (any log level)."""
    if name in BASELINE_KINDS:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout
        return out.split()[2].removeprefix("v=") if len(out.split()) > 2 else out.strip()
    if name == FLOOR:
        return "-"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = b""
            while not reply.endswith(b"\r\n\r\n") and len(reply) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
                header, _, body = reply.partition(b"\r\n")
                if header.startswith(b"$") and len(body) >= int(header[1:]) + 2:
                    break
    except (OSError, ValueError):
        return "?"
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("clusterwatch_version:"):
            return line.split(":", 1)[1].strip()
    return "?"


# --------------------------------------------------------------------------- one run


@dataclass(slots=True)
class RunResult:
    argv: list[str]
    rc: int | None
    wall_s: float
    server_cpu_s: float
    bench_cpu_s: float
    csv_row: dict[str, str]
    error: str


def wait_pid(pid: int, timeout: float) -> tuple[int, Any] | None:
    """Reap `pid` with wait4() (for its rusage); None on timeout. Uses a pidfd so the
    driver sleeps instead of polling, falling back to a short poll loop."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        if pidfd >= 0:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                if time.monotonic() >= deadline:
                    return None
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        while True:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                return status, usage
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def run_benchmark(fleet: Fleet, server: ServerProc, cell: Cell, n: int, pin: bool,
                  timeout: float, workdir: Path) -> RunResult:
    argv = [
        *pin_prefix(CLIENT_CPU, pin), "redis-benchmark", "-h", "127.0.0.1",
        "-p", str(server.port), "-n", str(n),
        "-c", str(cell.clients), "-P", str(cell.pipeline), "--csv", *cell.test]
    out_path, err_path = workdir / "bench.out", workdir / "bench.err"
    if not server.alive():
        return RunResult(argv, None, 0.0, 0.0, 0.0, {}, "server exited")
    cpu0 = cpu_seconds(server.pid)
    t0 = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = fleet.spawn(argv, stdout=out, stderr=err)
    waited = wait_pid(proc.pid, timeout)
    wall = time.perf_counter() - t0
    server_cpu = cpu_seconds(server.pid) - cpu0 if server.alive() else 0.0
    if waited is None:
        os.kill(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        timed_out = True
    else:
        (status, usage), timed_out = waited, False
    proc.returncode = os.waitstatus_to_exitcode(status)
    fleet.reaped(proc.pid)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    rows = list(csv.DictReader(io.StringIO(stdout)))
    row = rows[0] if rows else {}
    error = ""
    server_errors = [line for line in (stdout + stderr).splitlines()
                     if line.startswith(("Error", "ERR", "WRONGTYPE"))]
    if timed_out:
        error = f"timeout after {timeout:.0f}s"
    elif proc.returncode != 0 or server_errors or not row.get("rps"):
        detail = (server_errors or stderr.strip().splitlines() or [f"rc={proc.returncode}"])[0]
        error = f"error: {detail.strip()[:160]}"
    if not server.alive():
        error = error or "server exited"
    return RunResult(argv, proc.returncode, wall, server_cpu, usage.ru_utime + usage.ru_stime,
                     row, error)


def _float(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


# --------------------------------------------------------------------------- the session


@dataclass(slots=True)
class Options:
    servers: list[str]
    cells: list[Cell]
    reps: int
    quick: bool
    pin: bool
    python: str
    out: Path
    markdown: Path | None
    n_override: int | None
    target_seconds: float
    run_timeout: float
    max_seconds: float
    tag: str
    calibrate: bool
    demo: bool = False


def servers_for(cell: Cell, servers: Sequence[str]) -> list[str]:
    """The cell's own redis baseline (if selected), then the clusterwatch variants."""
    base = [cell.baseline] if cell.baseline in servers else []
    floor = [FLOOR] if FLOOR in servers and cell.is_ping else []
    return base + [s for s in servers if s.startswith("clusterwatch")] + floor


def n_quick(cell: Cell) -> int:
    return max(1_000, cell.n_full // 10)


def calibrated_n(cell: Cell, probe_rps: float, target_seconds: float) -> int:
    # Short probes under-read pipelined rates (connection set-up dominates), so aim on the
    # generous side and clamp to a sane band around the study's sizes.
    want = probe_rps * target_seconds
    lower, upper = max(2_000, cell.n_full // 20), cell.n_full * 3
    n = int(min(max(want, lower), upper))
    step = 10_000 if n >= 100_000 else 1_000
    return max(step, round(n / step) * step)


def git_facts() -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=5, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": "yes" if git("status", "--porcelain", "--untracked-files=no") else "no"}


def machine_facts() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_version = "?"
    with contextlib.suppress(OSError, IndexError):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout
        redis_version = out.split()[2].removeprefix("v=")
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "redis": redis_version,
            "interpreter": describe_interpreter(sys.executable)}


_DESCRIBE = """
import platform, sys, sysconfig, timeit
flags = sysconfig.get_config_var("CONFIG_ARGS") or ""
pgo = "--enable-optimizations" in flags
lto = "--with-lto" in flags
build = ("PGO+LTO" if pgo and lto else "PGO" if pgo else "LTO" if lto else
         "no PGO/LTO flags" if flags else "flags unknown")
def work():
    d = {}
    for i in range(200):
        d[i & 15] = b"*%d\\r\\n" % i
        len(d); d.get(i)
probe = min(timeit.repeat(work, number=200, repeat=5)) / 200 * 1e6
print(f"{platform.python_implementation()} {platform.python_version()} ({sys.executable}, "
      f"{build} in CONFIG_ARGS, {platform.python_compiler()}, probe loop {probe:.1f} us)")
"""


def describe_interpreter(python: str) -> str:
    """The interpreter a benchmark ran on: version, path, the build flags its configure
    recorded (Debian's build runs PGO and LTO through its own make targets, so its
    CONFIG_ARGS do not say so), and the time of ``scripts/pick_python.py``'s probe loop,
    which shows what the build is worth."""
    done = subprocess.run([python, "-c", _DESCRIBE], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout.strip() or f"{python}: {done.stderr.strip()[-200:]}"


def run_session(opts: Options, fleet: Fleet, workdir: Path, run_id: str,
                records: list[dict[str, Any]]) -> None:
    """Start the servers and run the matrix, appending to `records` and to --out as it goes
    (so an interrupted session still has its finished runs)."""
    started = time.monotonic()
    facts = machine_facts() | git_facts()
    needed = [s for s in opts.servers if any(s in servers_for(c, opts.servers)
                                              for c in opts.cells)]
    log(f"run {run_id}: servers {', '.join(needed)}; {len(opts.cells)} cells x {opts.reps} "
        f"reps; pinning {'on' if opts.pin else 'off (taskset or CPU 1 unavailable)'}")
    failed: dict[str, str] = {}
    for name in needed:
        try:
            extra = ("--demo",) if opts.demo and name.startswith("clusterwatch") else ()
            server = start_server(fleet, name, workdir, opts.python, opts.pin, extra=extra)
        except BenchError as exc:
            # Keep going: the other servers' cells are still worth measuring.
            log(f"  {name}: {exc}")
            failed[name] = "did not start"
            fleet.servers[name] = ServerProc(name, 0, [], workdir / f"{name}.log")
            continue
        log(f"  {name}: pid {server.pid} port {server.port} version {server.version}")

    opts.out.parent.mkdir(parents=True, exist_ok=True)
    with open(opts.out, "a", encoding="utf-8") as out:
        for cell in opts.cells:
            order = servers_for(cell, needed)
            sizes: dict[str, int] = {}
            broken: dict[str, str] = dict(failed)
            for name in order:
                if name not in broken:
                    sizes[name] = size_for(opts, fleet, cell, name, workdir, broken)
            for rep in range(opts.reps):
                shift = rep % len(order) if order else 0
                for name in order[shift:] + order[:shift]:
                    if time.monotonic() - started > opts.max_seconds:
                        log(f"--max-seconds {opts.max_seconds:.0f} reached; stopping early")
                        return
                    if name in broken:
                        record = make_record(opts, run_id, facts, cell, name, rep, None,
                                             fleet.servers[name], 0, broken[name])
                    else:
                        result = run_benchmark(fleet, fleet.servers[name], cell, sizes[name],
                                               opts.pin, opts.run_timeout, workdir)
                        record = make_record(opts, run_id, facts, cell, name, rep, result,
                                             fleet.servers[name], sizes[name], result.error)
                        if result.error:
                            broken[name] = result.error
                    records.append(record)
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                    log(describe(record))


def size_for(opts: Options, fleet: Fleet, cell: Cell, name: str, workdir: Path,
             broken: dict[str, str]) -> int:
    """-n for this cell and server; a probe run doubles as warm-up and error check."""
    if opts.n_override:
        return opts.n_override
    if cell.fixed_n:
        return cell.fixed_n
    if opts.quick or not opts.calibrate:
        return n_quick(cell) if opts.quick else cell.n_full
    probe_n = max(2_000, cell.n_full // 20)
    probe = run_benchmark(fleet, fleet.servers[name], cell, probe_n, opts.pin,
                          opts.run_timeout, workdir)
    rps = _float(probe.csv_row, "rps")
    if probe.error or not rps:
        broken[name] = probe.error or "error: no rps in probe"
        return 0
    return calibrated_n(cell, rps, opts.target_seconds)


def make_record(opts: Options, run_id: str, facts: dict[str, str], cell: Cell, name: str,
                rep: int, result: RunResult | None, server: ServerProc, n: int,
                error: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id, "tag": opts.tag, "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": name, "server_version": server.version, "cell": cell.name, "rep": rep,
        "n": n, "clients": cell.clients, "pipeline": cell.pipeline, "baseline": cell.baseline,
        "pinned": opts.pin, "quick": opts.quick, "error": error or None,
        "commit": facts.get("commit"), "dirty": facts.get("dirty"),
    }
    if result is None:
        return record | {"argv": None, "rps": None}
    row = result.csv_row
    rps = None if error else _float(row, "rps")
    record |= {
        "argv": result.argv, "rc": result.rc, "rps": rps,
        "p50_ms": _float(row, "p50_latency_ms"), "avg_ms": _float(row, "avg_latency_ms"),
        "p99_ms": _float(row, "p99_latency_ms"),
        "wall_s": round(result.wall_s, 4), "server_cpu_s": round(result.server_cpu_s, 3),
        "server_cpu_pct": round(100 * result.server_cpu_s / result.wall_s, 1)
        if result.wall_s else None,
        "us_cpu_per_req": round(result.server_cpu_s / n * 1e6, 3) if n and not error else None,
        "bench_cpu_s": round(result.bench_cpu_s, 3),
        "bench_cpu_pct": round(100 * result.bench_cpu_s / result.wall_s, 1)
        if result.wall_s else None,
    }
    return record


def describe(r: dict[str, Any]) -> str:
    head = f"  {r['cell']:<18} rep {r['rep']} {r['server']:<21}"
    if r.get("error"):
        return f"{head} n/a ({r['error']})"
    return (f"{head} n={r['n']:<8} {r['rps']:>10,.0f} rps  {r['us_cpu_per_req']:6.2f} us/req  "
            f"srv {r['server_cpu_pct']:5.1f}%  bench {r['bench_cpu_pct']:5.1f}%  "
            f"wall {r['wall_s']:.2f}s")


# --------------------------------------------------------------------------- summary


def fmt_rps(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k" if x >= 1e5 else f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


@dataclass(slots=True)
class Stat:
    rps: list[float]
    us: list[float]
    srv_pct: list[float]
    bench_pct: list[float]
    p50: list[float]
    errors: list[str]
    n: int

    @property
    def ok(self) -> bool:
        return bool(self.rps)


def collect(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Stat]:
    stats: dict[tuple[str, str], Stat] = {}
    for r in records:
        s = stats.setdefault((r["cell"], r["server"]), Stat([], [], [], [], [], [], 0))
        if r.get("error"):
            s.errors.append(r["error"])
            continue
        s.rps.append(r["rps"])
        s.n = r["n"]
        if r.get("us_cpu_per_req") is not None:
            s.us.append(r["us_cpu_per_req"])
        for attr, key in (("srv_pct", "server_cpu_pct"), ("bench_pct", "bench_cpu_pct"),
                          ("p50", "p50_ms")):
            if r.get(key) is not None:
                getattr(s, attr).append(r[key])
    return stats


def summarize(records: Sequence[dict[str, Any]], cells: Sequence[Cell], servers: Sequence[str],
              header: str) -> str:
    stats = collect(records)
    med = statistics.median
    lines = [header, "",
             "| cell | server | runs | n | median rps | rps ratio | rps min-max | "
             "µs CPU/req | CPU ratio | µs min-max | srv CPU% | bench CPU% | p50 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    targets: list[str] = []
    for cell in cells:
        base = stats.get((cell.name, cell.baseline))
        for name in servers_for(cell, servers):
            s = stats.get((cell.name, name))
            if s is None:
                continue
            runs = len(s.rps) + len(s.errors)
            if not s.ok:
                err = s.errors[0] if s.errors else "no runs"
                kind = "n/a (error)" if err.startswith("error") else f"n/a ({err})"
                lines.append(f"| {cell.name} | {name} | {runs} | - | {kind} |" + " - |" * 8)
                continue
            rps, us = med(s.rps), med(s.us) if s.us else float("nan")
            is_base = name == cell.baseline
            rps_ratio = us_ratio = None
            if not is_base and base is not None and base.ok and base.us:
                rps_ratio, us_ratio = rps / med(base.rps), us / med(base.us)
            note = f" ({len(s.errors)} failed)" if s.errors else ""
            lines.append(
                f"| {cell.name} | {name} | {runs}{note} | {s.n:,} | {fmt_rps(rps)} | "
                f"{'1.00' if is_base else (f'{rps_ratio:.2f}' if rps_ratio else '-')} | "
                f"{fmt_rps(min(s.rps))}-{fmt_rps(max(s.rps))} | {fmt_us(us)} | "
                f"{'1.00' if is_base else (f'{us_ratio:.2f}' if us_ratio else '-')} | "
                f"{fmt_us(min(s.us))}-{fmt_us(max(s.us))} | {med(s.srv_pct):.0f} | "
                f"{med(s.bench_pct):.0f} | {med(s.p50):.3f} |")
            if cell.is_ping and name != FLOOR and not is_base and rps_ratio and us_ratio:
                ok = us_ratio <= PING_CPU_TARGET and rps_ratio >= PING_RPS_TARGET
                targets.append(f"| {cell.name} | {name} | {us_ratio:.2f} | {rps_ratio:.2f} | "
                               f"{'PASS' if ok else 'FAIL'} |")
    lines.append("")
    lines.append("Ratios compare medians with the matching redis-server (the cluster-enabled one "
                 "for CLUSTER INFO); for CPU/req lower is better. srv/bench CPU% = server / "
                 "redis-benchmark CPU time over the run's wall time (~100% = one core busy).")
    if targets:
        lines += ["", f"PING targets: server CPU/request at most {PING_CPU_TARGET}x "
                  f"redis-server's, requests/s at least {PING_RPS_TARGET}x.", "",
                  "| cell | server | CPU/req ratio | rps ratio | target |",
                  "|---|---|---|---|---|", *targets]
    return "\n".join(lines) + "\n"


def header_for(run_id: str, opts: Options, elapsed: float) -> str:
    f = machine_facts() | git_facts()
    return (f"## clusterwatch vs redis-server — run {run_id}\n\n"
            f"{f['nproc']} CPUs ({f['cpu']}), kernel {f['kernel']}, clusterwatch on "
            f"{describe_interpreter(opts.python or sys.executable)}, redis-server "
            f"{f['redis']}; clusterwatch commit "
            f"{f['commit'] or '?'}{' (dirty tree)' if f['dirty'] == 'yes' else ''}. "
            f"{opts.reps} interleaved rep(s){', --quick' if opts.quick else ''}, pinning "
            f"{'server CPU 1 / client CPU 0' if opts.pin else 'off'}, redis-benchmark -c "
            f"{'/'.join(sorted({str(c.clients) for c in opts.cells}))}, "
            f"took {elapsed:.0f} s.")


# --------------------------------------------------------------------------- main


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                   help=f"comma list from {', '.join(ALL_SERVERS)} or 'all' "
                   f"(default: {','.join(DEFAULT_SERVERS)})")
    p.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3, "
                   "--quick 1)")
    p.add_argument("--quick", action="store_true", help="small -n, 1 rep, no calibration: "
                   "a smoke run of a few seconds")
    p.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    p.add_argument("--cells", default="", help="only cells whose name contains one of these "
                   "comma-separated words (case-insensitive), e.g. 'PING,CLUSTER'")
    p.add_argument("--cell", action="append", default=[], metavar="NAME[@BASE]=ARGS",
                   help="extra cell: NAME=redis-benchmark args, e.g. "
                   "'HEALTH READY P16=-P 16 HEALTH READY'; BASE is redis (default), "
                   "redis-cluster or none. Repeatable.")
    p.add_argument("--no-default-cells", action="store_true", help="run only --cell cells")
    p.add_argument("-n", dest="n", type=int, default=None, help="fixed -n for every cell")
    p.add_argument("--no-calibrate", action="store_true", help="use the built-in -n table "
                   "instead of sizing each cell/server from a probe run")
    p.add_argument("--target-seconds", type=float, default=2.0,
                   help="calibrated run length (default 2)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--demo", action="store_true",
                   help="start clusterwatch with --demo (six healthy nodes and their "
                   "heartbeats), so HEALTH READY answers UP: e.g. --cell "
                   "'HEALTH READY P1@none=-P 1 HEALTH READY'")
    p.add_argument("--python", default=None, help="interpreter for clusterwatch (default: "
                   "the repo's .venv, else this one)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "results.jsonl",
                   help="JSON lines file to append to (default benchmarks/results/results.jsonl)")
    p.add_argument("--markdown", type=Path, default=None,
                   help="where to write the summary (default benchmarks/results/latest.md, "
                   "or quick.md with --quick so a smoke run keeps the last full table)")
    p.add_argument("--no-markdown", action="store_true", help="print the summary only")
    p.add_argument("--tag", default="", help="free-form label stored with every run")
    p.add_argument("--run-timeout", type=float, default=None,
                   help="seconds one redis-benchmark may take (default 60, --quick 20)")
    p.add_argument("--max-seconds", type=float, default=1800.0,
                   help="stop starting runs after this many seconds (default 1800)")
    args = p.parse_args(argv)

    servers = list(ALL_SERVERS) if args.servers == "all" else \
        [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(ALL_SERVERS))
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(ALL_SERVERS)}")
    cells = [] if args.no_default_cells else default_cells(args.clients)
    if args.cells:
        words = [w.strip().lower() for w in args.cells.split(",") if w.strip()]
        cells = [c for c in cells if any(w in c.name.lower() for w in words)]
    try:
        cells += [parse_cell(spec, args.clients) for spec in args.cell]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if not cells:
        p.error("no cells selected")
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1:
        p.error("--reps must be at least 1")
    venv_python = REPO / ".venv" / "bin" / "python"
    python = args.python or (str(venv_python) if venv_python.exists() else sys.executable)
    return Options(
        servers=servers, cells=cells, reps=reps, quick=args.quick,
        pin=not args.no_pin and pinning_available(), python=python, out=args.out,
        markdown=None if args.no_markdown else (
            args.markdown or RESULTS_DIR / ("quick.md" if args.quick else "latest.md")),
        n_override=args.n,
        target_seconds=args.target_seconds,
        run_timeout=args.run_timeout or (20.0 if args.quick else 60.0),
        max_seconds=args.max_seconds, tag=args.tag, calibrate=not args.no_calibrate,
        demo=args.demo)


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    # SIGINT too: a shell without job control starts background jobs with SIGINT ignored.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    for tool in ("redis-benchmark", *(["redis-server"] if any(
            s in BASELINE_KINDS for s in opts.servers) else [])):
        if shutil.which(tool) is None:
            log(f"bench.py: {tool} not found (apt-get install redis-server redis-tools)")
            return 2
    if opts.pin:
        # The driver shares the client's CPU, as in the study, so it never steals the server's.
        os.sched_setaffinity(0, {CLIENT_CPU})
    fleet = Fleet()
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    status = 0
    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        try:
            run_session(opts, fleet, Path(tmp), run_id, records)
        except KeyboardInterrupt:
            log("interrupted; stopping servers")
            status = 130
        except BenchError as exc:
            log(f"bench.py: {exc}")
            status = 1
        finally:
            fleet.stop_all()
    if not records:
        return status or 1
    text = summarize(records, opts.cells, opts.servers,
                     header_for(run_id, opts, time.monotonic() - started))
    print(text)
    if opts.markdown is not None and status == 0:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text, encoding="utf-8")
        log(f"wrote {opts.markdown} and appended {len(records)} runs to {opts.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
