"""The cost of TLS: PING and CLUSTER INFO at -P 1 and -P 16, plain against TLS, clusterwatch
against redis-server 7 (`--tls-port`, cluster-enabled) in the same run, driven by
redis-benchmark (`--tls --cacert`). Client certificates are not asked for
(`tls-auth-clients no` on both), so the numbers are the record layer's cost plus one
handshake per benchmark connection.

    .venv/bin/python -m benchmarks.tls_bench [--runs 3] [--clients 50] [--quick]

As bench.py (the harness's redis-benchmark runner): each server pinned to CPU 1 and
redis-benchmark to CPU 0 when the machine has them; server CPU is the utime+stime delta of
the server process over the run, per request.
Cells are interleaved rep by rep; the table shows medians. Results go to stdout and to
``benchmarks/results/tls-latest.md`` (``--quick``: ``tls-quick.md``), JSON lines to
``results/tls.jsonl``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.harness.procs import (
    BenchError,
    Fleet,
    ServerProc,
    fleet_in_tempdir,
    free_port,
    pinning_available,
    start_server,
)
from benchmarks.harness.redis_benchmark import Cell, run_benchmark
from benchmarks.harness.runner import add_common, finish, log, parser

CASES = (("PING", 1), ("PING", 16), ("CLUSTER INFO", 1), ("CLUSTER INFO", 16))
# Requests per run: enough for a second or more of work at each pipeline depth.
REQUESTS = {1: 30_000, 16: 200_000}


def make_certs(directory: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=bench-ca")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")


def start(fleet: Fleet, name: str, workdir: Path, certs: Path, pin: bool) -> tuple[ServerProc,
                                                                                    int]:
    """clusterwatch (``--demo``) or a cluster-enabled redis-server with a TLS port too."""
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(certs / "server.crt"),
           "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file",
           str(certs / "ca.crt"), "--tls-auth-clients", "no"]
    if name == "redis-server":
        return start_server(fleet, "redis-cluster", workdir, pin=pin, extra=tls), tls_port
    return start_server(fleet, name, workdir, sys.executable, pin,
                        extra=["--demo", *tls]), tls_port


def run(fleet: Fleet, server: ServerProc, port: int, tls: bool, command: str, pipeline: int,
        clients: int, certs: Path, pin: bool, n: int) -> tuple[float, float]:
    """(requests per second, server CPU µs per request) of one redis-benchmark run."""
    cell = Cell(command, tuple(command.split()), pipeline, clients, "none", n, fixed_n=n)
    options = ["--tls", "--cacert", str(certs / "ca.crt")] if tls else []
    result = run_benchmark(fleet, server, cell, n, pin, 300.0, certs, options, port)
    if result.rps is None:
        raise BenchError(f"redis-benchmark failed: {result.argv}\n{result.error}")
    return result.rps, result.server_cpu_s / n * 1e6


def main() -> None:
    p = parser(__doc__)
    add_common(p, "tls", runs=3, quick="1 run, a tenth of the requests")
    p.add_argument("--clients", type=int, default=50)
    args = p.parse_args()
    args.reps = 1 if args.quick and args.runs == 3 else args.runs
    scale = 10 if args.quick else 1
    pin = pinning_available()
    results: dict[tuple[str, str, int, bool], list[tuple[float, float]]] = {}
    with fleet_in_tempdir("cw-tls-") as (fleet, work):
        make_certs(work)
        servers = {name: start(fleet, name, work, work, pin) for name in ("clusterwatch",
                                                                            "redis-server")}
        for rep in range(args.reps):
            for command, pipeline in CASES:
                for name, (server, tls_port) in servers.items():
                    for tls in (False, True):
                        key = (name, command, pipeline, tls)
                        results.setdefault(key, []).append(run(
                            fleet, server, tls_port if tls else server.port, tls, command,
                            pipeline, args.clients, work, pin, REQUESTS[pipeline] // scale))
            log(f"rep {rep + 1}/{args.reps} done")
    lines = [f"# TLS cost (redis-benchmark -c {args.clients}, median of {args.reps} reps; "
             f"{'pinned: server CPU 1, client CPU 0' if pin else 'not pinned'})", "",
             "rps: requests per second; µs: server CPU per request. TLS/plain: the ratio of "
             "the TLS run to the plain run on the same server.", "",
             "| server | command | -P | plain rps | TLS rps | rps TLS/plain | plain µs | "
             "TLS µs | µs TLS/plain |", "|---|---|---|---|---|---|---|---|---|"]
    for command, pipeline in CASES:
        for name in ("clusterwatch", "redis-server"):
            plain = results[(name, command, pipeline, False)]
            tls = results[(name, command, pipeline, True)]
            p_rps, t_rps = (statistics.median(r for r, _ in runs) for runs in (plain, tls))
            p_us, t_us = (statistics.median(u for _, u in runs) for runs in (plain, tls))
            lines.append(f"| {name} | {command} | {pipeline} | {p_rps:,.0f} | {t_rps:,.0f} | "
                         f"{t_rps / p_rps:.2f} | {p_us:.2f} | {t_us:.2f} | "
                         f"{t_us / p_us:.2f} |")
    lines += ["", "clusterwatch/redis-server, server CPU µs per request:", "",
              "| command | -P | plain | TLS |", "|---|---|---|---|"]
    for command, pipeline in CASES:
        ratios = []
        for tls in (False, True):
            cw = statistics.median(u for _, u in results[("clusterwatch", command, pipeline,
                                                          tls)])
            rs = statistics.median(u for _, u in results[("redis-server", command, pipeline,
                                                          tls)])
            ratios.append(f"{cw / rs:.1f}x")
        lines.append(f"| {command} | {pipeline} | {ratios[0]} | {ratios[1]} |")
    records = [{"bench": "tls", "server": name, "command": command, "pipeline": pipeline,
                "tls": tls, "rps": rps, "us_per_req": us}
               for (name, command, pipeline, tls), values in results.items()
               for rps, us in values]
    finish(args, "\n".join(lines) + "\n", records)


if __name__ == "__main__":
    main()
