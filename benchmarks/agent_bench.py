"""The agent against real Redis: its CPU per heartbeat, and how long a failover takes to show.

    PYTHONPATH=. .venv/bin/python benchmarks/agent_bench.py [--failovers 20] [--interval 0.1]

1. CPU per heartbeat: one agent reads one cluster-enabled redis-server (INFO, CLUSTER NODES,
   CLUSTER INFO) and publishes to clusterwatch every ``--beat-interval`` seconds for
   ``--seconds``; the agent's CPU (``/proc/<pid>/stat``) over the heartbeats clusterwatch
   received (BUS INFO).
2. Failover to clusterwatch: a 3-master, 3-replica Redis Cluster (``redis-cli --cluster
   create``), one agent per node at ``--interval``. Repeatedly, ``CLUSTER FAILOVER`` on a
   replica; t0 = the first poll (every 1 ms) of the replica's own ``CLUSTER NODES`` that
   shows it ``myself,master``; t1 = the first poll of clusterwatch's ``CLUSTER NODES`` that
   shows it master. Reports p50/p99 of t1 - t0. The agent's interval bounds it: the agent
   reads its node once an interval.

Writes ``benchmarks/results/agent-latest.md``. Everything binds 127.0.0.1 and is stopped at
the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def port_pair() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randrange(20000, 55000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Fleet:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.procs.append(proc)
        return proc

    def redis(self, name: str, *args: str) -> int:
        port = port_pair()
        directory = self.workdir / name
        directory.mkdir()
        self.spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(directory), *args])
        wait_until(lambda: _pings(port), 10, f"redis {name}")
        return port

    def clusterwatch(self) -> int:
        log_name = "clusterwatch"
        self.spawn(log_name, [sys.executable, "-m", "clusterwatch", "serve", "--port", "0",
                              "--node-timeout", "1000"])
        log = self.workdir / f"{log_name}.log"
        found: list[int] = []

        def listening() -> bool:
            match = re.search(rb"msg=listening .*?port=(\d+)", log.read_bytes())
            if match:
                found.append(int(match.group(1)))
            return bool(match)

        wait_until(listening, 10, "clusterwatch")
        return found[0]

    def agent(self, name: str, server: int, node: int, interval: float) -> int:
        proc = self.spawn(name, [sys.executable, "-m", "clusterwatch", "agent", "--server",
                                 f"127.0.0.1:{server}", "--source", f"redis://127.0.0.1:{node}",
                                 "--interval", str(interval)])
        return proc.pid

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def fleet() -> Iterator[Fleet]:
    workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    f = Fleet(workdir)
    try:
        yield f
    finally:
        f.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def make_cluster(f: Fleet) -> list[int]:
    ports = [f.redis(f"node{i}", "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                     "--repl-diskless-sync-delay", "0") for i in range(6)]
    subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                    "--cluster-replicas", "1", "--cluster-yes"], capture_output=True,
                   check=True, timeout=60)
    for port in ports:
        wait_until(lambda p=port: b"cluster_state:ok" in redis.Redis(port=p).execute_command(
            "CLUSTER", "INFO"), 30, "cluster ok")
    return ports


def heartbeat_cost(seconds: float, interval: float) -> dict[str, float]:
    with fleet() as f:
        ports = make_cluster(f)
        server = f.clusterwatch()
        pid = f.agent("agent", server, ports[0], interval)
        cw = redis.Redis(port=server, protocol=2)

        def beats() -> int:
            flat = cw.execute_command("BUS", "INFO")
            info = dict(zip(flat[::2], flat[1::2], strict=True))
            received = dict(zip(info[b"received"][::2], info[b"received"][1::2], strict=True))
            return int(received[b"heartbeat"])

        wait_until(lambda: beats() > 5, 30, "first heartbeats")
        cpu0, beats0, t0 = cpu_seconds(pid), beats(), time.monotonic()
        time.sleep(seconds)
        cpu1, beats1, t1 = cpu_seconds(pid), beats(), time.monotonic()
    count = beats1 - beats0
    return {"heartbeats": count, "per_second": count / (t1 - t0),
            "cpu_ms_per_heartbeat": (cpu1 - cpu0) * 1000 / max(count, 1),
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0)}


def role_in(text: str, node_id: str) -> str:
    for line in text.splitlines():
        if line.startswith(node_id):
            return "master" if "master" in line.split(" ")[2] else "replica"
    return "unknown"


def failover_latency(count: int, interval: float) -> list[float]:
    samples: list[float] = []
    with fleet() as f:
        ports = make_cluster(f)
        server = f.clusterwatch()
        for i, port in enumerate(ports):
            f.agent(f"agent{i}", server, port, interval)
        cw = redis.Redis(port=server, decode_responses=True)
        wait_until(lambda: "cluster_state:ok" in cw.execute_command("CLUSTER", "INFO")
                   and cw.execute_command("CLUSTER", "INFO").count("known_nodes:6") == 1,
                   30, "clusterwatch sees the cluster")
        for _ in range(count):
            replica = next(p for p in ports
                           if redis.Redis(port=p).info("replication")["role"] == "slave")
            node = redis.Redis(port=replica, decode_responses=True)
            node_id = node.execute_command("CLUSTER", "MYID")
            wait_until(lambda n=node: n.info("replication").get("master_link_status") == "up",
                       30, "the replica in sync")
            deadline = time.monotonic() + 30
            retry_at = 0.0
            while "myself,master" not in node.execute_command("CLUSTER", "NODES").split(
                    node_id, 1)[1].split("\n", 1)[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the failover did not happen")
                if time.monotonic() >= retry_at:  # a manual failover gives up after 5 s
                    node.execute_command("CLUSTER", "FAILOVER")
                    retry_at = time.monotonic() + 6
                time.sleep(0.001)
            t0 = time.monotonic()
            while role_in(cw.execute_command("CLUSTER", "NODES"), node_id) != "master":
                if time.monotonic() > t0 + 30:
                    raise RuntimeError(f"clusterwatch never showed {node_id} master")
                time.sleep(0.001)
            samples.append((time.monotonic() - t0) * 1000)
            print(f"failover {len(samples)}: {samples[-1]:.0f} ms", file=sys.stderr)
            time.sleep(1.0)  # let the cluster and every agent settle before the next one
    return samples


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                         check=False).stdout
    return " ".join(out.split()[:3])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failovers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.1,
                        help="the agents' heartbeat interval in the failover stage")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--beat-interval", type=float, default=0.01)
    args = parser.parse_args()
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cost = heartbeat_cost(args.seconds, args.beat_interval)
    print(f"heartbeat cost: {cost}", file=sys.stderr)
    samples = failover_latency(args.failovers, args.interval)
    lines = [
        f"## Agent against Redis — run {run}", "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {redis_version()}.",
        "",
        "| measure | value |", "|---|---|",
        f"| heartbeats measured (interval {args.beat_interval} s, {args.seconds:.0f} s) | "
        f"{cost['heartbeats']:.0f} ({cost['per_second']:.0f}/s) |",
        f"| agent CPU per heartbeat (INFO + CLUSTER NODES + CLUSTER INFO, then BUS PUBLISH) |"
        f" {cost['cpu_ms_per_heartbeat']:.2f} ms |",
        f"| agent CPU at that rate | {cost['cpu_pct']:.0f}% of a core |",
        f"| failovers (CLUSTER FAILOVER on a replica, agents every {args.interval} s) | "
        f"{len(samples)} |",
        f"| promotion in the node's own CLUSTER NODES -> clusterwatch's, p50 | "
        f"{statistics.median(samples):.0f} ms |",
        f"| same, p99 | {percentile(samples, 0.99):.0f} ms |",
        f"| same, max | {max(samples):.0f} ms |", "",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "agent-latest.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
