"""The cost of the ACL check per request: micro.py's cases (reader + dispatch + handler +
encoder, no sockets) run on the code before ACL users existed and on this checkout, as the
``default`` user and as the ``monitor`` role, interleaved, medians of several runs.

    .venv/bin/python -m benchmarks.acl_bench [--baseline COMMIT] [--runs 5] [--quick]

The baseline is checked out into a temporary git worktree. Results go to stdout and to
``benchmarks/results/acl-latest.md`` (``--quick``: one run, ``acl-quick.md``), JSON lines to
``results/acl.jsonl``.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness.procs import REPO as ROOT
from benchmarks.harness.runner import add_common, finish, log, parser

BASELINE = "8fac130"  # the last commit before ACL users
MONITOR = ("+@all -@publish -@admin +config|get +slowlog|get +slowlog|len +latency|latest "
           "+latency|history +client|list")
CASES = ("PING multibulk x16", "PING multibulk x1", "CLUSTER INFO x16", "HEALTH READY x16")
_LINE = re.compile(r"^(.+?)\s+([0-9.]+) us/request")


def micro(tree: Path, *extra: str) -> dict[str, float]:
    """micro.py's cases of `tree` (run as a script: a tree from before the harness has no
    ``benchmarks`` package), in µs per request."""
    result = subprocess.run([sys.executable, "benchmarks/micro.py", *extra], cwd=tree,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, check=True)
    found = {}
    for line in result.stdout.splitlines():
        match = _LINE.match(line)
        if match and match.group(1).strip() in CASES:
            found[match.group(1).strip()] = float(match.group(2))
    return found


def main() -> None:
    p = parser(__doc__)
    add_common(p, "acl", runs=5, quick="1 run")
    p.add_argument("--baseline", default=BASELINE)
    args = p.parse_args()
    args.reps = 1 if args.quick and args.runs == 5 else args.runs
    runs: dict[str, list[dict[str, float]]] = {"before": [], "default": [], "monitor": []}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(before), args.baseline],
                       cwd=ROOT, check=True)
        try:
            for rep in range(args.reps):
                runs["before"].append(micro(before))
                runs["default"].append(micro(ROOT))
                runs["monitor"].append(micro(ROOT, "--acl-rules", MONITOR))
                log(f"rep {rep + 1}/{args.reps} done")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                           check=False)
    lines = [f"# ACL check cost (micro.py, µs of CPU per request, median of {args.reps})", "",
             f"Baseline: `{args.baseline}` (before ACL users); now: this checkout.", "",
             "| case | before | now, default user | now, monitor role | default/before "
             "| monitor/before |", "|---|---|---|---|---|---|"]
    for case in CASES:
        med = {name: statistics.median(run[case] for run in values)
               for name, values in runs.items()}
        lines.append(f"| {case} | {med['before']:.3f} | {med['default']:.3f} | "
                     f"{med['monitor']:.3f} | {med['default'] / med['before']:.3f} | "
                     f"{med['monitor'] / med['before']:.3f} |")
    finish(args, "\n".join(lines) + "\n",
           [{"bench": "acl", "who": who, **run} for who, values in runs.items()
            for run in values])


if __name__ == "__main__":
    main()
