"""Derived views: CLUSTER INFO, NODES, SLOTS and SHARDS data, cached per model version.

Each view is rebuilt only when the version it depends on moves: slot runs on `slot_version`,
everything about roles, addresses, states and epochs on `topology_version`. CLUSTER INFO's
head is O(1) to rebuild from the model's counters, and only its message-count tail is
formatted per call. CLUSTER NODES keeps its lines joined (`Frame`); between topology changes
only the lines of the nodes the merge logged as changed (`MergeState.changes`: a new last
receive time) are rebuilt and spliced in. CLUSTER SLOTS and SHARDS are rendered on each call:
the commands keep their encoded replies per topology version, and a second copy here would
cost memory per node.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Literal, NamedTuple, NotRequired, TypedDict

from clusterwatch.cluster.frame import Frame
from clusterwatch.cluster.merge import MergeState, Node
from clusterwatch.cluster.messages import MESSAGE_TYPES
from clusterwatch.cluster.records import NodeInfo, NodeState

__all__ = ["ClusterSummary", "NetInfo", "Shard", "ShardNode", "SlotRange", "Views"]

ShardNode = TypedDict(
    "ShardNode",
    {
        "id": str,
        "port": int,
        "ip": str,
        "endpoint": str,
        "hostname": NotRequired[str],
        "role": Literal["master", "replica"],
        "replication-offset": int,
        "health": Literal["online", "fail"],
    },
)


class Shard(TypedDict):
    slots: list[int]
    nodes: list[ShardNode]


class NetInfo(NamedTuple):
    """A node's endpoint as CLUSTER SLOTS lists it; `host` is "" and `port` 0 before hello."""

    host: str
    port: int
    id: str
    hostname: str | None


class SlotRange(NamedTuple):
    """One CLUSTER SLOTS row: slots `start..end` served by `master`, then its live replicas."""

    start: int
    end: int
    master: NetInfo
    replicas: tuple[NetInfo, ...]


class ClusterSummary(NamedTuple):
    """CLUSTER INFO's figures about the cluster itself (its lines before the message counts)."""

    state: Literal["ok", "fail"]
    slots_assigned: int
    slots_ok: int
    slots_pfail: int
    slots_fail: int
    known_nodes: int
    size: int
    current_epoch: int


class Views:
    """Renders a `MergeState`; the caller refreshes failure states first."""

    def __init__(self, state: MergeState) -> None:
        self._state = state
        self._info_head: tuple[int, str] = (-1, "")
        self._runs: tuple[int, list[tuple[int, int, str]]] = (-1, [])
        # CLUSTER NODES: the lines in node id order, built for `_nodes_topology`, up to date
        # with the change log at `_nodes_cursor`. Between topology changes a line changes
        # only in its last receive time, between its first `_heads[i]` bytes and its last
        # `_tails[i]`.
        self._nodes = Frame()
        self._node_ids: list[str] = []
        self._heads = array("I")
        self._tails = array("I")
        self._nodes_version = -1
        self._nodes_topology = -1
        self._nodes_cursor = -1

    def cluster_info(self) -> str:
        state = self._state
        if self._info_head[0] != state.topology_version:
            self._info_head = (state.topology_version, self._render_info_head())
        received = state.received
        lines = [self._info_head[1]]
        lines.extend(
            f"cluster_stats_messages_{kind}_received:{received[kind]}\r\n"
            for kind in MESSAGE_TYPES
            if received[kind]
        )
        lines.append("cluster_stats_messages_sent:0\r\n")
        lines.append(f"cluster_stats_messages_received:{sum(received.values())}\r\n")
        lines.append("total_cluster_links_buffer_limit_exceeded:0\r\n")
        return "".join(lines)

    def cluster_nodes(self) -> str:
        """`cluster_nodes_bytes` as text (not cached: the server serves the bytes)."""
        return self.cluster_nodes_bytes().decode()

    def cluster_nodes_bytes(self) -> bytes:
        """The CLUSTER NODES lines of the monitored nodes, UTF-8."""
        state = self._state
        if self._nodes_version != state.version:
            self._update_nodes()
            self._nodes_version = state.version
        return self._nodes.data

    def _update_nodes(self) -> None:
        state = self._state
        changed, self._nodes_cursor = state.changes.since(self._nodes_cursor)
        if changed is None or self._nodes_topology != state.topology_version:
            lines = self._node_lines()
            self._node_ids = [node.id for _head, _tail, node in lines]
            self._heads = array("I", [len(head) for head, _tail, _node in lines])
            self._tails = array("I", [len(tail) for _head, tail, _node in lines])
            self._nodes.fill(b"", [b"%b%d%b" % (head, node.last_seen_ms, tail)
                                   for head, tail, node in lines])
            self._nodes_topology = state.topology_version
            return
        ids = self._node_ids
        heads, tails = self._heads, self._tails
        todo = []
        for node_id in set(changed):
            # The same topology means the same members, so an unknown id left before the
            # last rebuild (its removal moved the topology).
            i = bisect_left(ids, node_id)
            node = state.nodes.get(node_id)
            if i == len(ids) or ids[i] != node_id or node is None:
                continue
            line = self._nodes.part(i)
            todo.append((i, b"%b%d%b" % (line[:heads[i]], node.last_seen_ms,
                                         line[len(line) - tails[i]:])))
        if todo:
            todo.sort(key=_first)
            self._nodes.patch(b"", todo)

    def cluster_slots(self) -> list[SlotRange]:
        """Rendered each call: its one reader, the command, keeps the encoded reply."""
        state = self._state
        replicas = self._replicas()
        return [
            SlotRange(
                start,
                end,
                _net_info(state.nodes[owner]),
                tuple(
                    _net_info(r)
                    for r in replicas.get(owner, ())
                    if r.state is not NodeState.FAIL
                ),
            )
            for start, end, owner in self._owner_runs()
        ]

    def cluster_shards(self) -> list[Shard]:
        """Rendered each call: its one reader, the command, keeps the encoded reply."""
        return self._render_shards()

    def node_info(self, node: Node) -> NodeInfo:
        address = node.address
        hello = node.hello
        return NodeInfo(
            id=node.id,
            addr=None if hello is None else hello.addr,
            host=None if address is None else address.host,
            port=None if address is None else address.port,
            busport=None if address is None else _busport(node),
            hostname=None if hello is None else hello.hostname,
            role=self.role(node),
            replicaof=None if hello is None else hello.replicaof,
            config_epoch=node.epoch,
            seq=node.seq,
            last_seen_ms=node.last_seen_ms,
            state=node.state,
            slots_owned=self._state.table.owned.get(node.id, 0),
            heartbeat=node.heartbeat,
            heartbeat_ms=node.heartbeat_ms,
        )

    def summary(self) -> ClusterSummary:
        state = self._state
        slots = state.slots_in_state
        return ClusterSummary(
            state="ok" if state.cluster_ok else "fail",
            slots_assigned=state.table.assigned,
            slots_ok=slots[NodeState.OK],
            slots_pfail=slots[NodeState.PFAIL],
            slots_fail=slots[NodeState.FAIL],
            known_nodes=len(state.nodes),
            size=len(state.table.owned),
            current_epoch=state.current_epoch,
        )

    def _render_info_head(self) -> str:
        fields = [(f"cluster_{name}", value) for name, value in self.summary()._asdict().items()]
        # An observer is no member and has no config epoch of its own.
        fields.append(("cluster_my_epoch", 0))
        return "".join(f"{name}:{value}\r\n" for name, value in fields)

    def _owner_runs(self) -> list[tuple[int, int, str]]:
        state = self._state
        if self._runs[0] != state.slot_version:
            self._runs = (state.slot_version, state.table.owner_runs())
        return self._runs[1]

    def _node_lines(self) -> list[tuple[bytes, bytes, Node]]:
        """Each node's line, in node id order, around its last receive time."""
        state = self._state
        ranges: dict[str, list[str]] = {}
        for start, end, owner in self._owner_runs():
            ranges.setdefault(owner, []).append(str(start) if start == end else f"{start}-{end}")
        lines: list[tuple[bytes, bytes, Node]] = []
        for node_id in sorted(state.nodes):
            node = state.nodes[node_id]
            role = self.role(node)
            flags = "master" if role == "master" else "slave"
            if node.state is NodeState.PFAIL:
                flags += ",fail?"
            elif node.state is NodeState.FAIL:
                flags += ",fail"
            if node.address is None:
                flags += ",noaddr"
            replicaof = node.hello.replicaof if node.hello is not None else None
            master = replicaof if role == "replica" and replicaof else "-"
            link = "connected" if node.state is NodeState.OK else "disconnected"
            slots = "".join(f" {r}" for r in ranges.get(node_id, ()))
            head = f"{node_id} {_nodes_addr(node)} {flags} {master} 0 "
            tail = f" {node.epoch} {link}{slots}{node.open_slots}\n"
            lines.append((head.encode(), tail.encode(), node))
        return lines

    def _render_shards(self) -> list[Shard]:
        state = self._state
        replicas = self._replicas()
        slots_of: dict[str, list[int]] = {}
        for start, end, owner in self._owner_runs():
            slots_of.setdefault(owner, []).extend((start, end))
        return [
            {
                "slots": flat,
                "nodes": [
                    _shard_node(state.nodes[owner], "master"),
                    *(_shard_node(r, "replica") for r in replicas.get(owner, ())),
                ],
            }
            for owner, flat in slots_of.items()
        ]

    def _replicas(self) -> dict[str, list[Node]]:
        by_master: dict[str, list[Node]] = {}
        for node_id in sorted(self._state.nodes):
            node = self._state.nodes[node_id]
            if node.hello is not None and node.hello.replicaof and self.role(node) == "replica":
                by_master.setdefault(node.hello.replicaof, []).append(node)
        return by_master

    def role(self, node: Node) -> Literal["master", "replica"]:
        if node.hello is None or node.id in self._state.table.owned:
            return "master"
        return node.hello.role


def _first(pair: tuple[int, bytes]) -> int:
    return pair[0]


def _busport(node: Node) -> int:
    assert node.address is not None
    bus = node.address.busport
    return node.address.port + 10000 if bus is None else bus


def _nodes_addr(node: Node) -> str:
    if node.address is None:
        return ":0@0"
    text = f"{node.address.host}:{node.address.port}@{_busport(node)}"
    hostname = node.hello.hostname if node.hello is not None else None
    return f"{text},{hostname}" if hostname else text


def _net_info(node: Node) -> NetInfo:
    hostname = node.hello.hostname if node.hello is not None else None
    if node.address is None:
        return NetInfo("", 0, node.id, hostname)
    return NetInfo(node.address.host, node.address.port, node.id, hostname)


def _shard_node(node: Node, role: Literal["master", "replica"]) -> ShardNode:
    info = _net_info(node)
    health: Literal["online", "fail"] = "fail" if node.state is NodeState.FAIL else "online"
    if info.hostname:
        return {
            "id": node.id,
            "port": info.port,
            "ip": info.host,
            "endpoint": info.host,
            "hostname": info.hostname,
            "role": role,
            "replication-offset": 0,
            "health": health,
        }
    return {
        "id": node.id,
        "port": info.port,
        "ip": info.host,
        "endpoint": info.host,
        "role": role,
        "replication-offset": 0,
        "health": health,
    }
