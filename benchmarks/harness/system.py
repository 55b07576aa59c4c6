"""What the system says: a process's CPU seconds and RSS from /proc, the machine's busy
time, the interpreter (and whether CPython was built with --enable-optimizations / LTO),
and the git and machine facts a result's header names."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .procs import REPO, BenchError, redis_version

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_rss_kib(pid: int) -> int:
    """The resident set of `pid` now, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat), to spot other load."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def other_benchmarks() -> list[str]:
    """Other benchmark processes on this box (``python -m benchmarks.*``, a script of
    benchmarks/, redis-benchmark), as `pid argv`."""
    found: list[str] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (me, os.getppid()):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        names = [Path(w).name for w in words]
        if any(n == "redis-benchmark" or n == "bench.py" or n.endswith("_bench.py")
               for n in names) or any(w.startswith("benchmarks.") and
                                      w != "benchmarks.harness.loadgen" for w in words):
            found.append(f"{entry.name} {' '.join(names)[:80]}")
    return found


def wait_for_other_benchmarks(seconds: float) -> list[str]:
    """Poll every 10 s, up to `seconds`, until no other benchmark runs; the leftovers."""
    deadline = time.monotonic() + seconds
    others = other_benchmarks()
    while others and time.monotonic() < deadline:
        print(f"waiting for other benchmarks to finish: {'; '.join(others)}", file=sys.stderr,
              flush=True)
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        others = other_benchmarks()
    return others


def git_facts(repo: Path = REPO) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                  text=True, timeout=5, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": "yes" if git("status", "--porcelain", "--untracked-files=no") else "no"}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def machine_facts() -> dict[str, str]:
    return {"nproc": str(os.cpu_count()), "cpu": cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "redis": redis_version(),
            "interpreter": describe_interpreter(sys.executable)}


# Run in the interpreter described (it may not be this one): its facts as JSON.
_DESCRIBE = """
import json, platform, sys, sysconfig, timeit
def work():
    d = {}
    for i in range(200):
        d[i & 15] = b"*%d\\r\\n" % i
        len(d); d.get(i)
print(json.dumps({"impl": platform.python_implementation(),
                  "version": platform.python_version(), "executable": sys.executable,
                  "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
                  "compiler": platform.python_compiler(),
                  "probe_us": min(timeit.repeat(work, number=200, repeat=5)) / 200 * 1e6}))
"""


def build_flags(config_args: str) -> str:
    """What CPython's configure arguments say of its build: PGO (--enable-optimizations),
    LTO (--with-lto), both, or neither."""
    pgo = "--enable-optimizations" in config_args
    lto = "--with-lto" in config_args
    return ("PGO+LTO" if pgo and lto else "PGO" if pgo else "LTO" if lto else
            "no PGO/LTO flags" if config_args else "flags unknown")


def describe_interpreter(python: str) -> str:
    """The interpreter a benchmark ran on: version, path, the build flags its configure
    recorded (Debian's build runs PGO and LTO through its own make targets, so its
    CONFIG_ARGS do not say so), and the time of ``scripts/pick_python.py``'s probe loop,
    which shows what the build is worth."""
    facts = interpreter_facts(python)
    if "error" in facts:
        return f"{python}: {facts['error']}"
    return (f"{facts['impl']} {facts['version']} ({facts['executable']}, "
            f"{build_flags(facts['config_args'])} in CONFIG_ARGS, {facts['compiler']}, "
            f"probe loop {facts['probe_us']:.1f} us)")


def interpreter_facts(python: str) -> dict[str, Any]:
    """impl, version, executable, config_args, compiler and probe_us of `python` (or
    error)."""
    done = subprocess.run([python, "-c", _DESCRIBE], capture_output=True, text=True,
                          timeout=60, check=False)
    try:
        facts: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return {"error": done.stderr.strip()[-200:]}
    return facts
