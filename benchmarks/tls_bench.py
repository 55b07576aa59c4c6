"""The cost of TLS: PING and CLUSTER INFO at -P 1 and -P 16, plain against TLS, clusterwatch
against redis-server 7 (`--tls-port`, cluster-enabled) in the same run, driven by
redis-benchmark (`--tls --cacert`). Client certificates are not asked for
(`tls-auth-clients no` on both), so the numbers are the record layer's cost plus one
handshake per benchmark connection.

    PYTHONPATH=. python benchmarks/tls_bench.py [--reps 3] [--clients 50]

As bench.py: each server pinned to CPU 1 and redis-benchmark to CPU 0 when the machine has
them; server CPU is the utime+stime delta of the server process over the run, per request.
Cells are interleaved rep by rep; the table shows medians. Results go to stdout and to
``benchmarks/results/tls-latest.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # benchmarks/ is not a package: bench.py via sys.path
    CLIENT_CPU,
    SERVER_CPU,
    cpu_seconds,
    free_port,
    pin_prefix,
    pinning_available,
)

ROOT = Path(__file__).resolve().parent.parent
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


def start(name: str, workdir: Path, certs: Path, pin: bool) -> tuple[subprocess.Popen[bytes],
                                                                     int, int]:
    port, tls_port = free_port(), free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(certs / "server.crt"),
           "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file",
           str(certs / "ca.crt"), "--tls-auth-clients", "no"]
    if name == "redis-server":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / f"nodes-{port}.conf"), *tls]
    else:
        argv = [sys.executable, "-m", "clusterwatch", "serve", "--port", str(port), "--bind",
                "127.0.0.1", "--demo", *tls]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(pin_prefix(SERVER_CPU, pin) + argv, stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=workdir)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                              text=True, check=False)
        if done.stdout.strip() == "PONG":
            return proc, port, tls_port
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} did not start: {(workdir / f'{name}.log').read_text()[-2000:]}")


def run(pid: int, port: int, tls: bool, command: str, pipeline: int, clients: int,
        certs: Path, pin: bool) -> tuple[float, float]:
    """(requests per second, server CPU µs per request) of one redis-benchmark run."""
    n = REQUESTS[pipeline]
    argv = [*pin_prefix(CLIENT_CPU, pin), "redis-benchmark", "-h", "127.0.0.1", "-p",
            str(port), "-n", str(n), "-c", str(clients), "-P", str(pipeline), "--csv"]
    if tls:
        argv += ["--tls", "--cacert", str(certs / "ca.crt")]
    argv += command.split()
    cpu0 = cpu_seconds(pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    cpu = cpu_seconds(pid) - cpu0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    if done.returncode != 0 or not rows or "rps" not in rows[0]:
        raise SystemExit(f"redis-benchmark failed: {argv}\n{done.stdout}\n{done.stderr}")
    return float(rows[0]["rps"]), cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    pin = pinning_available()
    results: dict[tuple[str, str, int, bool], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_certs(work)
        servers = {name: start(name, work, work, pin) for name in ("clusterwatch",
                                                                     "redis-server")}
        try:
            for rep in range(args.reps):
                for command, pipeline in CASES:
                    for name, (proc, port, tls_port) in servers.items():
                        for tls in (False, True):
                            key = (name, command, pipeline, tls)
                            results.setdefault(key, []).append(run(
                                proc.pid, tls_port if tls else port, tls, command, pipeline,
                                args.clients, work, pin))
                print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
        finally:
            for proc, _, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
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
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "tls-latest.md").write_text(text)


if __name__ == "__main__":
    main()
