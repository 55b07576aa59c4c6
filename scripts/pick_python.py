"""Choose the interpreter ``make`` builds the virtualenv from: the fastest CPython 3.11 or
newer on this machine, timed on the same bytecode loop, because the build matters here
(a PGO/LTO-optimized CPython 3.11 answers a lone PING in about 5.9 us in-process where an
unoptimized one takes 8.0, and 1.57x instead of 2.65x redis-server's CPU end to end).

Prints the chosen interpreter's path on stdout and why on stderr. ``PYTHON=...`` given to
make skips the choice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("python3.13", "python3.12", "python3.11", "/usr/bin/python3", "python3")
# Calls, attribute access, a dict and bytes formatting: what a request costs, in miniature.
PROBE = """
import sys, timeit
if sys.version_info < (3, 11):
    raise SystemExit(3)
import venv, ensurepip
def work():
    d = {}
    for i in range(200):
        d[i & 15] = b"*%d\\r\\n" % i
        len(d); d.get(i)
    return d
print(min(timeit.repeat(work, number=200, repeat=7)) / 200 * 1e6)
"""


def measure(path: str) -> float | None:
    try:
        done = subprocess.run([path, "-c", PROBE], capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return float(done.stdout)


def version(path: str) -> str:
    return subprocess.run([path, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    seen: dict[str, tuple[str, float]] = {}
    for name in CANDIDATES:
        path = shutil.which(name)
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        timing = measure(path)
        if timing is not None:
            seen[real] = (path, timing)
    if not seen:
        print("no CPython 3.11+ with venv and ensurepip found (on Debian: apt-get install "
              "python3-venv)", file=sys.stderr)
        return 1
    ranked = sorted(seen.values(), key=lambda item: item[1])
    best_path, best = ranked[0]
    others = ", ".join(f"{path} {version(path)} {timing:.1f} us" for path, timing in ranked[1:])
    print(f"python: {best_path} {version(best_path)} ({best:.1f} us a probe loop"
          + (f"; slower: {others}" if others else "") + ")", file=sys.stderr)
    print(best_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
