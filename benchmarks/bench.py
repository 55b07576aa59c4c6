"""End-to-end benchmark: clusterwatch vs redis-server, driven by redis-benchmark.

    python -m benchmarks.bench                 # full matrix, 3 interleaved repetitions
    python -m benchmarks.bench --quick         # seconds-long smoke run
    python -m benchmarks.bench --servers clusterwatch,redis --runs 5
    python -m benchmarks.bench --cell "HEALTH READY P16=-P 16 HEALTH READY"

Method (see benchmarks/method.md): every server runs for the whole session pinned to CPU 1,
redis-benchmark (and this driver) to CPU 0. Each cell is a separate redis-benchmark run; the
loop order is cell -> repetition -> server, with the server order rotated every repetition.
Server CPU is the utime+stime delta of the server process (all threads) from /proc/PID/stat
over the run; redis-benchmark CPU comes from wait4() rusage. Summaries use medians and compare
each clusterwatch variant with the matching redis-server (the cluster-enabled one for CLUSTER
INFO). The processes, CPU and redis-benchmark machinery is benchmarks/harness/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.procs import (
    BASELINE_KINDS,
    CLIENT_CPU,
    FLOOR,
    RESULTS_DIR,
    BenchError,
    Fleet,
    ServerProc,
    default_python,
    fleet_in_tempdir,
    pinning_available,
    require_tools,
    start_server,
)
from benchmarks.harness.redis_benchmark import (
    Cell,
    RunResult,
    calibrated_n,
    csv_float,
    run_benchmark,
)
from benchmarks.harness.runner import (
    fmt_rps,
    fmt_us,
    log,
    now_iso,
    run_id,
    signals_as_interrupt,
)
from benchmarks.harness.system import describe_interpreter, git_facts, machine_facts

# PING's targets: one request at a time, server CPU per request within 1.5x of
# redis-server's and requests/s at least 0.8x; pipelined, where the Python request path is
# the whole cost, CPU per request within the 4x the project accepts (rps then follows CPU).
PING_CPU_TARGET = 1.5
PING_RPS_TARGET = 0.8
PIPELINED_PING_CPU_TARGET = 4.0

ALL_SERVERS = ("redis", "redis-cluster", "clusterwatch", "clusterwatch-asyncio", FLOOR)
DEFAULT_SERVERS = ("redis", "redis-cluster", "clusterwatch")


# --------------------------------------------------------------------------- cells


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
    rps = csv_float(probe.csv_row, "rps")
    if probe.error or not rps:
        broken[name] = probe.error or "error: no rps in probe"
        return 0
    return calibrated_n(cell, rps, opts.target_seconds)


def make_record(opts: Options, run_id: str, facts: dict[str, str], cell: Cell, name: str,
                rep: int, result: RunResult | None, server: ServerProc, n: int,
                error: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id, "tag": opts.tag, "ts": now_iso(),
        "server": name, "server_version": server.version, "cell": cell.name, "rep": rep,
        "n": n, "clients": cell.clients, "pipeline": cell.pipeline, "baseline": cell.baseline,
        "pinned": opts.pin, "quick": opts.quick, "error": error or None,
        "commit": facts.get("commit"), "dirty": facts.get("dirty"),
    }
    if result is None:
        return record | {"argv": None, "rps": None}
    row = result.csv_row
    rps = None if error else csv_float(row, "rps")
    record |= {
        "argv": result.argv, "rc": result.rc, "rps": rps,
        "p50_ms": csv_float(row, "p50_latency_ms"), "avg_ms": csv_float(row, "avg_latency_ms"),
        "p99_ms": csv_float(row, "p99_latency_ms"),
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
                if cell.pipeline > 1:
                    ok = us_ratio <= PIPELINED_PING_CPU_TARGET
                else:
                    ok = us_ratio <= PING_CPU_TARGET and rps_ratio >= PING_RPS_TARGET
                targets.append(f"| {cell.name} | {name} | {us_ratio:.2f} | {rps_ratio:.2f} | "
                               f"{'PASS' if ok else 'FAIL'} |")
    lines.append("")
    lines.append("Ratios compare medians with the matching redis-server (the cluster-enabled one "
                 "for CLUSTER INFO); for CPU/req lower is better. srv/bench CPU% = server / "
                 "redis-benchmark CPU time over the run's wall time (~100% = one core busy).")
    if targets:
        lines += ["", f"PING targets: server CPU/request at most {PING_CPU_TARGET}x "
                  f"redis-server's and requests/s at least {PING_RPS_TARGET}x at -P 1; "
                  f"CPU/request at most {PIPELINED_PING_CPU_TARGET:g}x pipelined.", "",
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


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                   help=f"comma list from {', '.join(ALL_SERVERS)} or 'all' "
                   f"(default: {','.join(DEFAULT_SERVERS)})")
    p.add_argument("--runs", "--reps", dest="reps", type=int, default=None,
                   help="interleaved repetitions (default 3, --quick 1)")
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
    python = args.python or default_python()
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


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    missing = require_tools("redis-benchmark", *(["redis-server"] if any(
        s in BASELINE_KINDS for s in opts.servers) else []))
    if missing:
        log(f"bench: {missing}")
        return 2
    if opts.pin:
        # The driver shares the client's CPU, as in the study, so it never steals the server's.
        os.sched_setaffinity(0, {CLIENT_CPU})
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    run = run_id()
    status = 0
    with signals_as_interrupt(), fleet_in_tempdir() as (fleet, workdir):
        try:
            run_session(opts, fleet, workdir, run, records)
        except KeyboardInterrupt:
            log("interrupted; stopping servers")
            status = 130
        except BenchError as exc:
            log(f"bench: {exc}")
            status = 1
    if not records:
        return status or 1
    text = summarize(records, opts.cells, opts.servers,
                     header_for(run, opts, time.monotonic() - started))
    print(text)
    if opts.markdown is not None and status == 0:
        opts.markdown.parent.mkdir(parents=True, exist_ok=True)
        opts.markdown.write_text(text, encoding="utf-8")
        log(f"wrote {opts.markdown} and appended {len(records)} runs to {opts.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
