"""Pattern matching per event: one subscriber holds N patterns, and a message on
``__cluster__:node`` must be matched against them. clusterwatch and redis-server side by
side, with the same patterns, in one run.

    .venv/bin/python -m benchmarks.pattern_bench [--sizes 1000,10000,50000]
        [--events 20] [--shapes prefixed,unprefixed] [--tree PATH] [--quick]

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

Results go to stdout and ``benchmarks/results/pattern-latest.md`` (``--quick``:
``pattern-quick.md``), JSON lines to ``results/pattern.jsonl``.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.harness.nodes import node_change
from benchmarks.harness.procs import REPO, ServerProc, running
from benchmarks.harness.resp import command
from benchmarks.harness.runner import add_common, finish, parser, run_id
from benchmarks.harness.system import cpu_seconds

SHAPES = {
    "prefixed": lambda i: b"__cluster__:n%d*" % i,
    "unprefixed": lambda i: b"*n%d?*" % i,
}


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

    def __init__(self, server: ServerProc) -> None:
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=600)
        self.count = 0

    def fire(self) -> None:
        self.count += 1
        self.sock.sendall(node_change(self.server.name == "redis", self.count))
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


def measure(server: ServerProc, shape: str, size: int, events: int) -> Row:
    subscriber = socket.create_connection(("127.0.0.1", server.port), timeout=600)
    patterns = [SHAPES[shape](i) for i in range(size - 1)] + [b"__cluster__:*"]
    started_at, cpu_before = time.perf_counter(), cpu_seconds(server.pid)
    for start in range(0, len(patterns), 1000):
        subscriber.sendall(command("PSUBSCRIBE", *patterns[start:start + 1000]))
    read_until(subscriber, b":%d\r\n" % len(patterns))
    subscribe_s = time.perf_counter() - started_at
    del cpu_before
    trigger = Events(server)
    marker = b"node master %040x" % 1
    timings = []
    cpu_before = cpu_seconds(server.pid)
    for _ in range(events + 1):
        began = time.perf_counter()
        trigger.fire()
        read_until(subscriber, marker)
        timings.append(time.perf_counter() - began)
        if len(timings) == 1:
            cpu_before = cpu_seconds(server.pid)
    cpu = (cpu_seconds(server.pid) - cpu_before) / events
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


def started(name: str, tree: Path) -> AbstractContextManager[ServerProc]:
    extra = [] if name == "redis" else ["--log-level", "warning"]
    return running(name, extra, sys.executable, repo=tree)


def main() -> int:
    p = parser(__doc__, full_doc=False)
    add_common(p, "pattern", with_runs=False, quick="1000 patterns, 5 events")
    p.add_argument("--sizes", default=None, help="patterns (default 1000,10000,50000)")
    p.add_argument("--shapes", default="prefixed,unprefixed")
    p.add_argument("--events", type=int, default=None, help="events per row (default 20)")
    p.add_argument("--tree", type=Path, default=REPO,
                   help="the clusterwatch checkout to run (default: this one)")
    p.add_argument("--servers", default="clusterwatch,redis")
    opts = p.parse_args()
    sizes = [int(size) for size in (opts.sizes or ("1000" if opts.quick
                                                   else "1000,10000,50000")).split(",")]
    events = opts.events or (5 if opts.quick else 20)
    rows: list[Row] = []
    for name in opts.servers.split(","):
        if name != "redis":
            with started(name, opts.tree) as server:
                rows.append(measure(server, "prefixed", 1, events))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
        for shape in opts.shapes.split(","):
            for size in sizes:
                with started(name, opts.tree) as server:
                    rows.append(measure(server, shape, size, events))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = (f"# Pattern matching per event ({run_id()})\n\nclusterwatch tree {opts.tree}, "
            f"{events} events per row, one subscriber\n\n{table(rows)}\n")
    finish(opts, text, [{"bench": "pattern", **asdict(row)} for row in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
