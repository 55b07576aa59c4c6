"""A real Redis Cluster in a network namespace of its own, watched by clusterwatch through one
agent per node, for fault tests: partitions, reshards, nodes added and removed.

Layout: six nodes (3 masters and 3 replicas from ``redis-cli --cluster create``,
``cluster-node-timeout`` 1000 ms) on 127.0.0.2 to 127.0.0.7, port 7000 each, in a
``NetNamespace``; nodes added later take the next addresses. clusterwatch
(``--node-timeout 1000``) listens on 127.0.0.1 and every agent (``--interval 0.2``) and
client connects from 127.0.0.1, so a cut between node addresses never separates an agent
from its node or from clusterwatch. Every method that starts a process or opens a
connection must run inside ``ns.entered()``.

Timeline rules (``follow``):
- A sample every ``period`` (0.1 s): each running node's ``cluster_state``, the witness's
  ``View`` and clusterwatch's.
- A phase ends when the witness's view satisfies ``settled`` and clusterwatch's equals it
  for ``hold`` seconds in a row (and the process given as ``during`` has exited).
- ``real_at``: the first sample from which on the witness's view stays its final one;
  ``ours_at``: the first from which on clusterwatch's equals that. Both are measured from
  ``since`` (the fault); ``lag`` is their difference.
- Truth (``untruths``): no sample where clusterwatch says ``fail`` while no real node has
  said it within ``grace`` (one agent interval and one sample) before; and every outage of
  the majority side (all of ``majority`` say ``fail``) seen in two samples or more shows in
  clusterwatch, ``fail`` in some sample from its start to ``grace`` after its end.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import ServerProcess, require_tool, start_server

from .netns import NetNamespace
from .real_cluster import Agents, View, clusterwatch_client
from .redis_procs import RedisProcess

PORT = 7000
INTERVAL = 0.2
NODE_TIMEOUT_MS = 1000
PERIOD = 0.1


@dataclass
class Node:
    process: RedisProcess
    agent: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def running(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    def client(self) -> redis.Redis:
        return self.process.client(decode_responses=True)


@dataclass
class Sample:
    t: float  # seconds since the phase's ``since``
    states: dict[str, str]  # node id -> its cluster_state ("?" when it did not answer)
    real: View
    ours: View


@dataclass
class Phase:
    samples: list[Sample] = field(default_factory=list)
    real_at: float = 0.0
    ours_at: float = 0.0

    @property
    def lag(self) -> float:
        return max(0.0, self.ours_at - self.real_at)

    @property
    def final(self) -> Sample:
        return self.samples[-1]

    def untruths(self, majority: Iterable[str], *, grace: float) -> list[str]:
        """Each sampled moment clusterwatch said what no real node said (see the header)."""
        found = []
        said_fail = [s.t for s in self.samples if "fail" in s.states.values()]
        for sample in self.samples:
            if sample.ours.state == "fail" and not any(
                    sample.t - grace <= t <= sample.t for t in said_fail):
                found.append(f"t={sample.t:.2f}s clusterwatch says fail, no real node does: "
                             f"{sample.states}")
        members = list(majority)
        outage: list[Sample] = []
        for sample in [*self.samples, None]:
            if sample is not None and all(sample.states.get(m) == "fail" for m in members):
                outage.append(sample)
                continue
            if len(outage) >= 2:
                start, end = outage[0].t, outage[-1].t + grace
                if not any(start <= s.t <= end and s.ours.state == "fail"
                           for s in self.samples):
                    found.append(f"t={start:.2f}-{outage[-1].t:.2f}s the majority side says "
                                 "fail, clusterwatch never does")
            outage = []
        return found


class FaultCluster:
    def __init__(self, workdir: Path, *, interval: float = INTERVAL,
                 node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.workdir = workdir
        self.interval = interval
        self.node_timeout_ms = node_timeout_ms
        self.ns = NetNamespace()
        self.nodes: list[Node] = []
        self.agents = Agents(workdir)
        self.server: ServerProcess | None = None

    # -- set-up and tear-down ----------------------------------------------------------------

    def start(self) -> None:
        """Six nodes made a cluster, clusterwatch, an agent per node; both sides agree."""
        for _ in range(6):
            self.spawn_node()
        cli = require_tool("redis-cli")
        create = subprocess.run(
            [cli, "--cluster", "create", *(n.process.address for n in self.nodes),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False)
        assert create.returncode == 0, create.stdout + create.stderr
        self.wait(lambda: all(n.client().cluster("info")["cluster_state"] == "ok"
                              for n in self.nodes), "the Redis cluster to be ok")
        self.server = start_server(self.workdir, "--node-timeout", str(self.node_timeout_ms))
        for node in self.nodes:
            self.start_agent(node)
        self.agree()

    def spawn_node(self) -> Node:
        """One more cluster-enabled node, alone until something MEETs it; no agent yet."""
        host = f"127.0.0.{len(self.nodes) + 2}"
        process = RedisProcess(self.workdir / f"node-{host}", "--cluster-enabled", "yes",
                               "--cluster-node-timeout", str(self.node_timeout_ms),
                               "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                               port=PORT, host=host)
        node = Node(process)
        node.node_id = str(node.client().execute_command("CLUSTER", "MYID"))
        self.nodes.append(node)
        return node

    def start_agent(self, node: Node) -> None:
        assert self.server is not None
        node.agent = self.agents.watch(self.server, node.process.url, interval=self.interval)

    def stop(self) -> None:
        try:
            self.agents.stop()
            if self.server is not None:
                self.server.stop()
            for node in self.nodes:
                node.process.stop(signal.SIGKILL)
        finally:
            self.ns.close()

    # -- who is who ----------------------------------------------------------------------------

    @property
    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.running]

    def by_id(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def roles(self, witness: Node | None = None) -> tuple[list[Node], dict[str, Node]]:
        """The masters serving slots, and each one's replica, as a node sees them."""
        view = View.of_node((witness or self.running[0]).client())
        masters = [self.by_id(i) for i, row in sorted(view.nodes.items())
                   if row[0] == "master" and row[3]]
        replicas = {row[1]: self.by_id(i) for i, row in view.nodes.items() if row[0] == "slave"}
        return masters, replicas

    def ours(self) -> View:
        assert self.server is not None
        return View.of_clusterwatch(self.server)

    def client(self) -> redis.Redis:
        assert self.server is not None
        return clusterwatch_client(self.server)

    # -- waiting and following -----------------------------------------------------------------

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() >= deadline:
                raise AssertionError(f"never saw {what} within {timeout} s")
            time.sleep(0.05)

    def states(self) -> dict[str, str]:
        states = {}
        for node in self.running:
            try:
                states[node.node_id] = node.client().cluster("info")["cluster_state"]
            except (redis.RedisError, OSError):
                states[node.node_id] = "?"
        return states

    def follow(self, witness: Node, settled: Callable[[View], bool], *,
               since: float | None = None, timeout: float = 30.0, hold: float = 0.5,
               during: subprocess.Popen[bytes] | None = None,
               period: float = PERIOD) -> Phase:
        """Sample both sides until they agree on a settled view (see the header)."""
        start = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        phase = Phase()
        matched_since: float | None = None
        tick = time.monotonic()
        while True:
            states = self.states()
            real = View.of_node(witness.client())
            ours = self.ours()
            now = time.monotonic()
            phase.samples.append(Sample(now - start, states, real, ours))
            done = during is None or during.poll() is not None
            if done and settled(real) and real == ours:
                matched_since = now if matched_since is None else matched_since
                if now - matched_since >= hold:
                    break
            else:
                matched_since = None
            if now >= deadline:
                raise AssertionError(f"clusterwatch never matched the settled cluster within "
                                     f"{timeout} s:\n{real.difference(ours)}")
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))
        final = phase.final.real
        phase.real_at = _stable_from(phase.samples, lambda s: s.real == final)
        phase.ours_at = _stable_from(phase.samples, lambda s: s.ours == final)
        return phase

    def agree(self, witness: Node | None = None, timeout: float = 30.0) -> Phase:
        """Both sides equal, with no node ``fail?`` in the witness's view, and every replica's
        link to its master up: a replica still in its first sync is refused a failover
        (``cluster-replica-validity-factor``), which no test means to exercise."""
        phase = self.follow(witness or self.running[0],
                            lambda view: all(row[4] != "fail?" for row in view.nodes.values()),
                            timeout=timeout)
        self.wait(lambda: all(_link_up(node) for node in self.running),
                  "every replica's link to its master")
        return phase


def _link_up(node: Node) -> bool:
    info = node.client().info("replication")
    return info.get("role") != "slave" or info.get("master_link_status") == "up"


def _stable_from(samples: list[Sample], holds: Callable[[Sample], bool]) -> float:
    at = samples[-1].t
    for sample in reversed(samples):
        if not holds(sample):
            break
        at = sample.t
    return at


@contextlib.contextmanager
def started_cluster(workdir: Path) -> Iterator[FaultCluster]:
    """A started FaultCluster in `workdir` (its processes made inside its namespace), stopped
    on the way out: what a test module's cluster fixture yields."""
    require_tool("iptables")
    faults = FaultCluster(workdir)
    try:
        with faults.ns.entered():
            faults.start()
        yield faults
    finally:
        with faults.ns.entered():
            faults.stop()
