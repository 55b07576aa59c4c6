"""A real Redis Cluster as clusterwatch sees it through one agent per node, and the
comparison of what clusterwatch says with what a real node says.

Comparison rules (``View``):
- CLUSTER INFO: the fields of ``INFO_FIELDS`` (state, slot counts, known nodes, size, current
  epoch), as text.
- CLUSTER NODES: per node id, its role, master, config epoch, slots and failure flag (``fail``,
  ``fail?`` or none). Migrating and importing entries (``[slot->-id]``) are left out: a real
  node shows them only on its own line. clusterwatch's own ``myself`` line is left out too.
- The real side is one real node, the witness (in a partition, a node of the majority side).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import redis

from tests.conftest import ROOT, ServerProcess

INFO_FIELDS = ("cluster_state", "cluster_slots_assigned", "cluster_slots_ok",
               "cluster_slots_pfail", "cluster_slots_fail", "cluster_known_nodes",
               "cluster_size", "cluster_current_epoch")

#: id -> (role, master, config epoch, slots, failure flag)
NodeTable = dict[str, tuple[str, ...]]


def info_of(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value for key, value in pairs if key in INFO_FIELDS}


def nodes_of(text: str) -> NodeTable:
    """id -> (role, master, epoch, slots, failure flag) from CLUSTER NODES text."""
    table = {}
    for line in text.splitlines():
        fields = line.split(" ")
        flags = set(fields[2].split(","))
        role = "slave" if "slave" in flags else "master"
        failure = "fail" if "fail" in flags else "fail?" if "fail?" in flags else ""
        slots = " ".join(item for item in fields[8:] if not item.startswith("["))
        table[fields[0]] = (role, fields[3], fields[6], slots, failure)
    return table


def side_by_side(real: NodeTable, ours: NodeTable) -> str:
    rows = [f"{node[:8]}  real={real.get(node)}  ours={ours.get(node)}"
            for node in sorted(set(real) | set(ours))]
    return "\n".join(rows)


def clusterwatch_client(server: ServerProcess) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, protocol=2, socket_timeout=20)


class View(NamedTuple):
    """CLUSTER INFO's compared fields and the node table, as one side says them."""

    info: dict[str, str]
    nodes: NodeTable

    @classmethod
    def of_node(cls, client: redis.Redis) -> View:
        return cls(info_of(_text(client.execute_command("CLUSTER", "INFO"))),
                   nodes_of(_text(client.execute_command("CLUSTER", "NODES"))))

    @classmethod
    def of_clusterwatch(cls, server: ServerProcess) -> View:
        client = clusterwatch_client(server)
        text = _text(client.execute_command("CLUSTER", "NODES"))
        return cls(info_of(_text(client.execute_command("CLUSTER", "INFO"))),
                   nodes_of("\n".join(line for line in text.splitlines()
                                      if "myself" not in line)))

    @property
    def state(self) -> str:
        return self.info.get("cluster_state", "?")

    def difference(self, ours: View) -> str:
        """Both sides, for an assertion message (self is the real side)."""
        return (f"real {self.info}\nours {ours.info}\n"
                f"{side_by_side(self.nodes, ours.nodes)}")


def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


class Agents:
    """``clusterwatch agent`` processes, one log file each under ``logdir``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        path = self.logdir / f"agent-{len(self._logs)}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "clusterwatch", "agent", *args],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        self._logs[proc.pid] = path
        self.running.append(proc)
        return proc

    def watch(self, server: ServerProcess, url: str, *, interval: float) -> \
            subprocess.Popen[bytes]:
        return self.start("--server", f"{server.host}:{server.port}", "--source", url,
                          "--interval", str(interval))

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self._logs[proc.pid].read_text(errors="replace")

    def stop(self, procs: Iterable[subprocess.Popen[bytes]] | None = None) -> None:
        chosen = list(self.running if procs is None else procs)
        for proc in chosen:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in chosen:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc in self.running:
                self.running.remove(proc)


def wait_for(check: object, *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds; the deadline only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
