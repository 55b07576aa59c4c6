"""Node messages of simulated clusters (``clusterwatch.agent.simulate``), as the agents
would publish them: heartbeats with a status payload, N nodes as ``simulate`` lays them out,
and N demo-shaped nodes laid out over many hosts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Nodes go pfail after this long without a message; the servers the benchmarks populate
# get an hour, so their clusters stay `cluster_state:ok` (and their replies stable).
NODE_TIMEOUT_MS = 3_600_000


def heartbeat(node: str, epoch: int, seq: int, payload: bytes = b"") -> bytes:
    """A schema v1 heartbeat; `payload` is extra JSON members (`,"k":v...`) or empty."""
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":%d,"seq":%d%s}' % (
        node.encode(), epoch, seq, payload)


def status_payload() -> bytes:
    """The status fields `clusterwatch simulate` sends with each heartbeat (~600 bytes)."""
    fields = {
        "node_state": "RUNNING", "transaction_id": "tx-3-5461", "serving": True,
        "services": {
            "api": {"version": "1.4.2", "state": "running",
                    "status": {"critical": {"listening": True}, "info": {"connections": 17}}},
            "storage": {"version": "1.4.2", "state": "running",
                        "status": {"critical": {"writable": True},
                                   "info": {"used_bytes": 1_069_632}}},
        },
        "partitions": [{"id": 2, "role": "leader", "health": "healthy"}],
        "thread_pool": {"active": 1, "max": 16, "queued": 0},
        "requests": {"active": 1, "max": 100, "total": 1717},
    }
    return b"," + json.dumps(fields, separators=(",", ":")).encode()[1:-1]


# The channel clusterwatch publishes node changes on.
NODE_CHANNEL = b"__cluster__:node"


def node_change(redis: bool, count: int) -> bytes:
    """The request for change number `count` of one node, as a pub/sub event: on
    redis-server a PUBLISH on NODE_CHANNEL; on clusterwatch a BUS PUBLISH of the node's
    ``hello`` and ``leave`` in turn (one ``+node``/``-node`` message each, the model's size
    unchanged)."""
    from .resp import command

    if redis:
        return command("PUBLISH", NODE_CHANNEL,
                       b"+node master %040x 10.0.0.1 7000 index=%d" % (1, count))
    kind = "hello" if count % 2 else "leave"
    message = json.dumps({"v": 1, "type": kind, "node": f"{1:040x}", "epoch": 1,
                          "seq": count, "addr": "10.0.0.1:7000"})
    return command("BUS", "PUBLISH", message)


@dataclass(slots=True)
class SimCluster:
    """N nodes (N/2 masters with one replica each, slots split evenly) as `simulate` makes
    them; `initial` is every hello, the masters' slots and a first heartbeat."""

    nodes: list[tuple[str, int]]  # (id, epoch)
    initial: list[bytes]
    next_seq: int  # above every seq `initial` used

    @classmethod
    def make(cls, count: int) -> SimCluster:
        from clusterwatch.agent.simulate import Simulation

        masters = max(1, count // 2)
        sim = Simulation(masters=masters, replicas=1 if count > 1 else 0,
                         node_timeout_ms=NODE_TIMEOUT_MS, scope="clusterwatch-bench")
        initial = sim.initial()
        return cls([(n.id, n.epoch) for n in sim.nodes], initial,
                   max(n.seq for n in sim.nodes) + 1)

    def step_heartbeats(self) -> list[bytes]:
        """One more heartbeat per node, with the status payload."""
        payload = status_payload()
        seq = self.next_seq
        self.next_seq += 1
        return [heartbeat(node, epoch, seq, payload) for node, epoch in self.nodes]


def demo_cluster(count: int) -> Any:
    """A ``Simulation`` of `count` demo-shaped nodes (its checks cap masters at 16384 and
    ports at one host's range, so the nodes are laid out here, over many hosts)."""
    from clusterwatch.agent.simulate import NUM_SLOTS, SimNode, Simulation
    from clusterwatch.cluster.ids import derive_id

    sim = Simulation(masters=1, replicas=0, node_timeout_ms=NODE_TIMEOUT_MS,
                     scope="clusterwatch-membench")
    sim.nodes.clear()
    by_ref: dict[str, SimNode] = {}
    masters = max(1, count // 2)
    with_slots = min(masters, NUM_SLOTS)
    index = 0

    def add(name: str, role: Any, replicaof: str | None, epoch: int) -> SimNode:
        nonlocal index
        host = f"10.{index // 65000}.{index // 250 % 260}.1"
        port = 30001 + index % 250
        node = SimNode(name, derive_id(host, port, scope=sim.scope), host, port, index,
                       role, replicaof, epoch)
        sim.nodes.append(node)
        by_ref[name] = by_ref[node.id] = node
        index += 1
        return node

    for m in range(masters):
        master = add(f"m{m + 1}", "master", None, m + 1)
        if m < with_slots:
            first = m * NUM_SLOTS // with_slots
            last = (m + 1) * NUM_SLOTS // with_slots - 1
            master.slots = set(range(first, last + 1))
            master.claimed = True
        if index < count:
            add(f"m{m + 1}r1", "replica", master.id, m + 1)
    sim._by_ref = by_ref  # the bench lays the nodes out itself
    return sim


def one_beat_each(sim: Any) -> list[bytes]:
    """One more heartbeat per node (the simulator's step, every node due)."""
    for node in sim.nodes:
        node.next_beat = 0.0
    return list(sim.step(1.0))
