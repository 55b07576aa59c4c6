"""A private network namespace for a test, and network partitions inside it.

Rules:
- Each ``NetNamespace`` is a namespace of its own, created with ``ip netns add`` and named
  ``cw-<pid>-<n>``; namespaces left behind by a test process that no longer runs are deleted
  when the next one is made. Its loopback holds all of 127.0.0.0/8, so each real node listens
  on an address of its own (127.0.0.2, .3, ...) and the same port.
- ``entered()`` moves the calling thread, and only it, into the namespace with setns(2) and
  back when the block ends: the sockets it opens, the processes it starts and the threads it
  creates meanwhile live in the namespace for good, wherever the thread goes afterwards.
- ``cut(a, b)`` drops every packet between the addresses of group ``a`` and those of group
  ``b``, both ways, with iptables rules in the namespace's INPUT chain (loopback traffic
  passes it once), all added in one ``iptables-restore`` transaction, so a cut is one
  instant. Clients that connect from 127.0.0.1 (the agents, clusterwatch, the test,
  redis-cli) are never cut: a node's agent keeps reading it and clusterwatch keeps hearing
  the agent. ``heal()`` flushes the chain (nothing else adds rules there), also one instant.
- ``close()`` deletes the namespace; it is idempotent. Stop the processes inside first: they
  keep the namespace alive until they exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["NetNamespace"]

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")
_NAME = re.compile(r"^cw-(\d+)-\d+$")
_counter = itertools.count()
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def _remove_orphans() -> None:
    """Delete namespaces named by a test process that is gone."""
    if not _NETNS_DIR.is_dir():
        return
    for entry in _NETNS_DIR.iterdir():
        match = _NAME.match(entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)


class NetNamespace:
    def __init__(self) -> None:
        _remove_orphans()
        self.name = f"cw-{os.getpid()}-{next(_counter)}"
        _run("ip", "netns", "add", self.name)
        self._open = True
        self.partitioned = False
        try:
            self.exec("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def exec(self, *argv: str, stdin: str | None = None) -> None:
        """Run a command in the namespace (``ip netns exec``); raise if it fails."""
        _run("ip", "netns", "exec", self.name, *argv, stdin=stdin)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(_NETNS_DIR / self.name, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)

    def cut(self, a: Iterable[str], b: Iterable[str]) -> None:
        """Drop all traffic between each address of ``a`` and each of ``b``, both ways."""
        left, right = ",".join(a), ",".join(b)
        rules = [f"-I INPUT -s {left} -d {right} -j DROP",
                 f"-I INPUT -s {right} -d {left} -j DROP"]
        self.exec("iptables-restore", "--noflush",
                  stdin="\n".join(["*filter", *rules, "COMMIT", ""]))
        self.partitioned = True

    def heal(self) -> None:
        self.exec("iptables", "-F", "INPUT")
        self.partitioned = False

    def close(self) -> None:
        if self._open:
            self._open = False
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
