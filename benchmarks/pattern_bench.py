"""Pattern matching per event: one subscriber holds N patterns, and a message on
``__cluster__:node`` must be matched against them. clusterwatch and redis-server side by
side, with the same patterns, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/pattern_bench.py [--sizes 1000,10000,50000]
        [--events 20] [--shapes prefixed,unprefixed] [--tree PATH]

* The subscriber PSUBSCRIBEs N - 1 patterns that do not match, and ``__cluster__:*``,
  which does (PSUBSCRIBE of 1000 patterns per request). ``prefixed`` patterns are
  ``__cluster__:n<i>*`` (a literal prefix each, as most real patterns have);
  ``unprefixed`` ones are ``*n<i>?*`` (no literal prefix: every one must be tried).
* redis-server: a ``PUBLISH __cluster__:node`` on another connection is the event.
  clusterwatch: a ``BUS PUBLISH`` of a node's ``hello`` or ``leave`` in turn (one
  ``+node``/``-node`` message). Each event is timed from sending it until the subscriber
  has its message; the server's CPU (utime + stime from /proc) over the events is divided
  by their number. The first event after subscribing is reported apart (``first``): on
  clusterwatch it parses the patterns (lazily) and finds those that match the channel,
  which later events reuse.
* ``--tree`` runs clusterwatch from another checkout (e.g. the code before this bench's
  change) for a before/after comparison; a clusterwatch row with N = 1 is the cost of a
  model event with nothing to match.

Results go to stdout and ``benchmarks/results/pattern-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = b"__cluster__:node"
_TICKS = os.sysconf("SC_CLK_TCK")
SHAPES = {
    "prefixed": lambda i: b"__cluster__:n%d*" % i,
    "unprefixed": lambda i: b"*n%d?*" % i,
}


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started(name: str, python: str, tree: Path) -> Iterator[Server]:
    port = _free_port()
    if name == "redis":
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        argv = [python, "-m", "clusterwatch", "serve", "--port", str(port), "--bind", "127.0.0.1",
                "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(argv, cwd=tmp if name == "redis" else tree,
                                env={**os.environ, "PYTHONPATH": str(tree)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"{name} did not start") from None
                    time.sleep(0.05)
            yield Server(name, proc, port)
        finally:
            proc.terminate()
            proc.wait(10)


def command(*args: bytes | str) -> bytes:
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def read_until(sock: socket.socket, end: bytes, count: int = 1) -> bytes:
    data = b""
    while data.count(end) < count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data


class Events:
    """One event on ``server``: a PUBLISH, or a node's hello / leave in turn."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=600)
        self.count = 0

    def fire(self) -> None:
        self.count += 1
        if self.server.name == "redis":
            payload = command("PUBLISH", CHANNEL, b"+node master %040x 10.0.0.1 7000 index=%d"
                              % (1, self.count))
        else:
            kind = "hello" if self.count % 2 else "leave"
            message = json.dumps({"v": 1, "type": kind, "node": f"{1:040x}", "epoch": 1,
                                  "seq": self.count, "addr": "10.0.0.1:7000"})
            payload = command("BUS", "PUBLISH", message)
        self.sock.sendall(payload)
        read_until(self.sock, b"\r\n")


@dataclass(frozen=True)
class Row:
    server: str
    shape: str
    patterns: int
    subscribe_s: float
    first_ms: float
    median_ms: float
    cpu_ms: float


def measure(server: Server, shape: str, size: int, events: int) -> Row:
    subscriber = socket.create_connection(("127.0.0.1", server.port), timeout=600)
    patterns = [SHAPES[shape](i) for i in range(size - 1)] + [b"__cluster__:*"]
    started_at, cpu_before = time.perf_counter(), server.cpu_seconds()
    for start in range(0, len(patterns), 1000):
        subscriber.sendall(command("PSUBSCRIBE", *patterns[start:start + 1000]))
    read_until(subscriber, b":%d\r\n" % len(patterns))
    subscribe_s = time.perf_counter() - started_at
    del cpu_before
    trigger = Events(server)
    marker = b"node master %040x" % 1
    timings = []
    cpu_before = server.cpu_seconds()
    for _ in range(events + 1):
        began = time.perf_counter()
        trigger.fire()
        read_until(subscriber, marker)
        timings.append(time.perf_counter() - began)
        if len(timings) == 1:
            cpu_before = server.cpu_seconds()
    cpu = (server.cpu_seconds() - cpu_before) / events
    subscriber.close()
    trigger.sock.close()
    return Row(server.name, shape, size, subscribe_s, timings[0] * 1000,
               statistics.median(timings[1:]) * 1000, cpu * 1000)


def table(rows: list[Row]) -> str:
    lines = ["| server | patterns | shape | PSUBSCRIBE all (s) | first event (ms) | "
             "event, median (ms) | server CPU per event (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.server} | {r.patterns} | {r.shape} | {r.subscribe_s:.2f} | "
                     f"{r.first_ms:.2f} | {r.median_ms:.2f} | {r.cpu_ms:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--shapes", default="prefixed,unprefixed")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the clusterwatch checkout to run (default: this one)")
    parser.add_argument("--servers", default="clusterwatch,redis")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "pattern-latest.md")
    opts = parser.parse_args()
    sizes = [int(size) for size in opts.sizes.split(",")]
    rows: list[Row] = []
    for name in opts.servers.split(","):
        if name != "redis":
            with started(name, sys.executable, opts.tree) as server:
                rows.append(measure(server, "prefixed", 1, opts.events))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
        for shape in opts.shapes.split(","):
            for size in sizes:
                with started(name, sys.executable, opts.tree) as server:
                    rows.append(measure(server, shape, size, opts.events))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = (f"# Pattern matching per event ({stamp})\n\nclusterwatch tree {opts.tree}, "
            f"{opts.events} events per row, one subscriber\n\n{table(rows)}\n")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
