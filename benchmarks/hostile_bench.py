"""Hostile input, side by side: each case of ``benchmarks/hostile/`` attacks clusterwatch
(and redis-server, given the same input where Redis has it) while a bystander client PINGs
every 10 ms. Reported per case and server: the bystander's p50, p99 and worst latency, the
server's CPU seconds during the attack and its peak RSS. Medians over ``--reps``.

    .venv/bin/python -m benchmarks.hostile_bench                 # every case
    .venv/bin/python -m benchmarks.hostile_bench --cases preauth-count-2^31 --runs 3
    .venv/bin/python -m benchmarks.hostile_bench --quick        # a case from each area
    .venv/bin/python -m benchmarks.hostile_bench --list

Each case gets fresh servers (a case's damage must not leak into the next). The target of
issue 20: the bystander's worst under 50 ms and peak RSS bounded by the configured limits.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.harness.procs import (
    Fleet,
    fleet_in_tempdir,
    free_port,
    pinning_available,
    start_server,
)
from benchmarks.harness.runner import add_common, finish, parser, run_id
from benchmarks.harness.system import describe_interpreter, git_facts
from benchmarks.hostile import HTTP_PORT, Case, Target, load_all
from tests.hostile.bystander import Bystander, process_usage

# A smoke run: one quick case from each area.
QUICK = ("preauth-count-2^31", "simple-string-element", "pubsub-channels-200kb-pattern",
         "status-deep-refused", "publish-2mb-25k")


@dataclass(frozen=True)
class Row:
    case: str
    server: str
    p50_ms: float
    p99_ms: float
    worst_ms: float
    cpu_s: float
    peak_rss_mb: float
    seconds: float


def run_case(item: Case, kind: str, workdir: Path, python: str, pin: bool) -> Row:
    fleet = Fleet()
    extra = list(item.redis_args if kind == "redis" else item.clusterwatch_args)
    http_port = free_port() if HTTP_PORT in extra else None
    extra = [str(http_port) if arg == HTTP_PORT else arg for arg in extra]
    if item.password is not None:
        extra += ["--requirepass", item.password]
    try:
        server = start_server(fleet, kind, workdir, python, pin, extra=extra)
        target = Target(kind, "127.0.0.1", server.port, server.pid, item.password, http_port)
        if item.setup is not None:
            item.setup(target)
        before = process_usage(server.pid)
        started = time.monotonic()
        with Bystander(server.port, password=item.password) as watcher:
            item.attack(target)
            time.sleep(0.05)  # a last PING after the attack
        elapsed = time.monotonic() - started
        after = process_usage(server.pid)
        seen = watcher.latency
        return Row(item.name, kind, seen.p50_ms, seen.p99_ms, seen.worst_ms,
                   after.cpu_seconds - before.cpu_seconds, after.peak_rss_bytes / 2**20,
                   elapsed)
    finally:
        fleet.stop_all()


def median_row(rows: Sequence[Row]) -> Row:
    def mid(values: Sequence[float]) -> float:
        return statistics.median(values)
    return Row(rows[0].case, rows[0].server, mid([r.p50_ms for r in rows]),
               mid([r.p99_ms for r in rows]), mid([r.worst_ms for r in rows]),
               mid([r.cpu_s for r in rows]), mid([r.peak_rss_mb for r in rows]),
               mid([r.seconds for r in rows]))


def table(rows: Sequence[Row]) -> str:
    lines = ["| case | server | bystander p50 / p99 / worst (ms) | server CPU (s) | "
             "peak RSS (MB) | attack (s) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.case} | {row.server} | {row.p50_ms:.2f} / {row.p99_ms:.2f} / "
                     f"{row.worst_ms:.1f} | {row.cpu_s:.2f} | {row.peak_rss_mb:.0f} | "
                     f"{row.seconds:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__, full_doc=False)
    add_common(p, "hostile", runs=1, quick=f"the cases {', '.join(QUICK)}")
    p.add_argument("--cases", nargs="*", help="case names (default: all)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--no-redis", action="store_true", help="clusterwatch only")
    p.add_argument("--no-pin", action="store_true")
    opts = p.parse_args(argv)
    cases = load_all()
    if opts.list:
        for name, item in cases.items():
            print(f"{name:32} {'(+redis) ' if item.redis else ''}{item.doc}")
        return 0
    chosen = [cases[name] for name in (opts.cases or (QUICK if opts.quick else cases))]
    pin = not opts.no_pin and pinning_available()
    rows: list[Row] = []
    with fleet_in_tempdir("hostile-") as (_, workdir):
        for item in chosen:
            kinds = ["clusterwatch"] + (["redis"] if item.redis and not opts.no_redis else [])
            for kind in kinds:
                reps = [run_case(item, kind, workdir, sys.executable, pin)
                        for _ in range(opts.runs)]
                row = median_row(reps)
                print(table([row]).splitlines()[-1], flush=True)
                rows.append(row)
    text = (f"# Hostile input ({run_id()})\n\n{describe_interpreter(sys.executable)}, "
            f"{platform.machine()}, "
            f"commit {git_facts().get('commit', '?')}, medians of {opts.runs}, "
            f"bystander PING every 10 ms\n\n{table(rows)}\n")
    if opts.cases is not None and opts.markdown is None:
        opts.no_markdown = True  # some cases do not replace the table of them all
    finish(opts, text, [{"bench": "hostile", **asdict(row)} for row in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
