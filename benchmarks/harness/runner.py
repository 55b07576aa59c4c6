"""The frame of a benchmark script: the common options (``--quick``, ``--runs``, ``--out``,
``--markdown``), progress on stderr, SIGTERM as Ctrl-C, and the results: one JSON line per
measurement appended to ``--out``, a markdown summary printed and written to
``--markdown`` (``<name>-latest.md``, or ``<name>-quick.md`` after ``--quick``, so a smoke
run keeps the last full table)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import statistics
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .procs import RESULTS_DIR


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parser(doc: str | None, *, full_doc: bool = True) -> argparse.ArgumentParser:
    """An argument parser whose help is the script's docstring (or its first line)."""
    text = doc or ""
    if full_doc:
        return argparse.ArgumentParser(description=text,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(description=text.split("\n\n")[0])


def add_common(p: argparse.ArgumentParser, name: str, *, runs: int | None = 3,
               quick: str = "a smoke run of seconds", markdown: bool = True,
               jsonl: bool = True, with_runs: bool = True) -> None:
    """--quick, --runs N (also --reps), --out FILE.jsonl and --markdown FILE / --no-markdown.
    ``runs=None`` leaves the default to the script (``resolve_runs``)."""
    p.set_defaults(bench_name=name)
    p.add_argument("--quick", action="store_true", help=quick)
    if with_runs:
        p.add_argument("--runs", "--reps", dest="runs", type=int, default=runs,
                       help="repetitions, medians reported" +
                       (f" (default {runs})" if runs is not None else ""))
    if jsonl:
        p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.jsonl",
                       help=f"JSON lines file to append to (default results/{name}.jsonl)")
    if markdown:
        p.add_argument("--markdown", type=Path, default=None,
                       help=f"summary file (default results/{name}-latest.md, --quick: "
                       f"results/{name}-quick.md)")
        p.add_argument("--no-markdown", action="store_true", help="print the summary only")


def resolve_runs(args: argparse.Namespace, full: int = 3, quick: int = 1) -> int:
    runs = args.runs if args.runs is not None else (quick if args.quick else full)
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    return int(runs)


def markdown_path(args: argparse.Namespace) -> Path | None:
    """Where the summary goes: --markdown, or the default for --quick or a full run; None
    with --no-markdown."""
    if getattr(args, "no_markdown", False):
        return None
    given: Path | None = getattr(args, "markdown", None)
    if given is not None:
        return given
    return RESULTS_DIR / f"{args.bench_name}-{'quick' if args.quick else 'latest'}.md"


@contextlib.contextmanager
def results_file(path: Path | None) -> Iterator[IO[str] | None]:
    """The JSON lines file, open for appending (None: nowhere)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        yield fh


def append_jsonl(path: Path | None, records: Sequence[dict[str, Any]]) -> None:
    with results_file(path) as fh:
        if fh is not None:
            for record in records:
                fh.write(json.dumps(record, default=str) + "\n")


def publish(text: str, markdown: Path | None, records: Sequence[dict[str, Any]] = (),
            out: Path | None = None, echo: bool = True) -> None:
    """The summary to stdout (unless `echo` is off: printed as it was made) and to
    `markdown`; `records` appended to `out` as JSON lines."""
    if echo:
        print(text, flush=True)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    if records and out is not None:
        append_jsonl(out, records)
    done = ([f"wrote {markdown}"] if markdown is not None else []) + (
        [f"appended {len(records)} records to {out}"] if records and out is not None else [])
    if done:
        log("; ".join(done))


def finish(args: argparse.Namespace, text: str, records: Sequence[dict[str, Any]] = (),
           echo: bool = True) -> None:
    """`publish` to the paths the common options chose."""
    publish(text, markdown_path(args), records, getattr(args, "out", None), echo)


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


# --------------------------------------------------------------------------- numbers


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0-100."""
    ordered = sorted(xs)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def fmt_rps(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k" if x >= 1e5 else f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"
