"""redis-benchmark: one run against a server (pinned to the client CPU), the server's CPU
over it from /proc, the tool's own from wait4()'s rusage, and its ``--csv`` output."""

from __future__ import annotations

import csv
import io
import os
import select
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import CLIENT_CPU, Fleet, ServerProc, pin_prefix
from .system import cpu_seconds


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


@dataclass(slots=True)
class RunResult:
    argv: list[str]
    rc: int | None
    wall_s: float
    server_cpu_s: float
    bench_cpu_s: float
    csv_row: dict[str, str]
    error: str

    def value(self, key: str) -> float | None:
        """A number of the CSV row (`rps`, `p50_latency_ms`...), None when absent."""
        return csv_float(self.csv_row, key)

    @property
    def rps(self) -> float | None:
        return None if self.error else self.value("rps")


def parse_csv(stdout: str) -> list[dict[str, str]]:
    """redis-benchmark ``--csv``: a header line, then one row per test, every field
    quoted: ``"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...``."""
    return list(csv.DictReader(io.StringIO(stdout)))


def judge(stdout: str, stderr: str, rc: int | None,
          timed_out: str = "") -> tuple[dict[str, str], str]:
    """A run's CSV row (the first test's) and its error ("" when it measured): the timeout,
    an error reply the tool printed (it prints ``Error from server: ...`` and carries on
    with an empty table), a non-zero exit, or no rate."""
    rows = parse_csv(stdout)
    row = rows[0] if rows else {}
    server_errors = [line for line in (stdout + stderr).splitlines()
                     if line.startswith(("Error", "ERR", "WRONGTYPE"))]
    if timed_out:
        return row, timed_out
    if rc != 0 or server_errors or not row.get("rps"):
        detail = (server_errors or stderr.strip().splitlines() or [f"rc={rc}"])[0]
        return row, f"error: {detail.strip()[:160]}"
    return row, ""


def csv_float(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, ValueError, TypeError):
        return None


def calibrated_n(cell: Cell, probe_rps: float, target_seconds: float) -> int:
    # Short probes under-read pipelined rates (connection set-up dominates), so aim on the
    # generous side and clamp to a sane band around the study's sizes.
    want = probe_rps * target_seconds
    lower, upper = max(2_000, cell.n_full // 20), cell.n_full * 3
    n = int(min(max(want, lower), upper))
    step = 10_000 if n >= 100_000 else 1_000
    return max(step, round(n / step) * step)


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
                  timeout: float, workdir: Path, options: Sequence[str] = (),
                  port: int | None = None) -> RunResult:
    """One redis-benchmark run of `cell` with -n `n` against `server` (on `port` when given:
    e.g. its TLS port, with `options` such as ``--tls``)."""
    argv = [
        *pin_prefix(CLIENT_CPU, pin), "redis-benchmark", "-h", "127.0.0.1",
        "-p", str(port or server.port), "-n", str(n),
        "-c", str(cell.clients), "-P", str(cell.pipeline), "--csv", *options, *cell.test]
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
    row, error = judge(out_path.read_text(errors="replace"),
                       err_path.read_text(errors="replace"), proc.returncode,
                       f"timeout after {timeout:.0f}s" if timed_out else "")
    if not server.alive():
        error = error or "server exited"
    return RunResult(argv, proc.returncode, wall, server_cpu, usage.ru_utime + usage.ru_stime,
                     row, error)
