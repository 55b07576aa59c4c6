"""A Redis node as a source: ``redis://[user:pass@]host:port`` or ``rediss://...``.

Read each time from the node's own view, through redis-py (RESP2, hiredis):

    what                     from                                  becomes
    node id                  CLUSTER MYID / the myself line        NodeView.node_id
    address, bus port        myself line ``ip:port@cport``         addr (the URL's host when
                                                                   the node has no ip yet)
    hostname                 myself line ``...,hostname``          hostname
    role, master             myself flags, master field            role, replicaof
    config epoch             myself line's config-epoch            epoch (a replica shows its
                                                                   master's, as Redis does)
    current epoch            CLUSTER INFO cluster_current_epoch    current_epoch
    slots                    myself line's ranges (not the         slots
                             ``[slot->-id]`` migration entries)
    slots in migration       myself line's ``[slot->-id]`` and     cluster.migrating,
                             ``[slot-<-id]`` entries               cluster.importing
    other nodes' trouble     their flags ``fail?`` / ``fail``      cluster.failing
                             their flag ``fail``                   cluster.failed
    the other nodes          their lines (not ``handshake`` ones)  cluster.peers
    slots served elsewhere   their lines' ranges                   cluster.taken
    in a cluster at all      another node listed, or slots served  cluster.joined
    loading                  INFO ``loading:1``                    node_state BOOTING
    replica link             INFO ``master_link_status``           node_state WAITING when down
    clients, commands, ops   INFO ``connected_clients``,           requests (active, total,
                             ``total_commands_processed``,         per_second)
                             ``instantaneous_ops_per_sec``
    everything               INFO                                  services.redis, by level:
                                                                   critical up/down, info
                                                                   role/offsets/lag/clients/
                                                                   memory, debug all of INFO

A node lists no other node before ``redis-cli --cluster create`` or ``add-node`` MEETs it,
and again after ``CLUSTER RESET`` (``del-node`` resets the node it removes): without slots
of its own it is then in no cluster (``cluster.joined`` False), and the agent publishes
nothing for it.

A standalone Redis (``cluster_enabled:0``) has no cluster bus: its address is sent as
``host:port@0``, as Redis writes a missing port, so CLUSTER NODES shows ``@0`` and invents
no bus port. It is a node with the agent's derived id
(``sha1("clusterwatch:<host>:<port>")`` of the URL), its role from ``INFO replication`` and
its master's derived id from ``master_host``/``master_port``, so an agent beside that master
names the same node. A node that does not answer (refused, timed out, garbage) is
``alive=False``: the agent withholds heartbeats and the server fails it after its node
timeout, as the cluster itself would; the view still says why (node ``ERROR``, the
``redis`` service ``unknown`` with the reason).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from clusterwatch.cluster.ids import derive_id

from ._base import ClusterView, NodeView, shown_url

__all__ = ["RedisSource", "parse_myself"]

# INFO fields shown at the info level of the ``redis`` service; debug shows all of INFO.
_INFO_LEVEL = ("role", "master_host", "master_port", "master_link_status",
               "master_last_io_seconds_ago", "master_repl_offset", "slave_repl_offset",
               "connected_slaves", "connected_clients", "used_memory", "loading",
               "instantaneous_ops_per_sec", "cluster_enabled")


class RedisSource:
    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.name = shown_url(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl())
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, protocol=2,
            decode_responses=True, retry_on_timeout=False)
        # CLUSTER NODES as text, as Redis sends it.
        self._client.set_response_callback("CLUSTER NODES", _as_is)

    async def read(self) -> NodeView:
        try:
            info: dict[str, Any] = await self._client.info("everything")
            nodes = None
            current_epoch = None
            if int(info.get("cluster_enabled", 0)):
                nodes = str(await self._client.execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER NODES"))
                cluster_info = await self._client.cluster("INFO")
                current_epoch = int(cluster_info["cluster_current_epoch"])
        except (RedisError, OSError, TimeoutError, ValueError, KeyError) as exc:
            return self._unreachable(str(exc) or type(exc).__name__)
        view = (parse_myself(nodes, self.host, self.port) if nodes is not None
                else self._standalone(info))
        view.fields = heartbeat_fields(info)
        if current_epoch is not None:
            view.fields["current_epoch"] = current_epoch
        return view

    def _standalone(self, info: dict[str, Any]) -> NodeView:
        # `@0`: no cluster bus (Redis's word for it), so no view invents port + 10000.
        view = NodeView(node_id=derive_id(self.host, self.port),
                        addr=f"{self.host}:{self.port}@0", role="master")
        if info.get("role") == "slave":
            view.role = "replica"
            master_host, master_port = info.get("master_host"), info.get("master_port")
            if master_host and master_port:
                view.replicaof = derive_id(str(master_host), int(master_port))
        return view

    def _unreachable(self, reason: str) -> NodeView:
        status = {"critical": {"up": False}, "info": {"reason": reason}}
        return NodeView(alive=False, fields={
            "node_state": "ERROR", "serving": False,
            "services": {"redis": {"state": "unknown", "status": status}}})

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_myself(text: str, host: str, port: int) -> NodeView:
    """The node's own identity, and its view of the others, from CLUSTER NODES."""
    view = NodeView()
    cluster = view.cluster = ClusterView()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 8:
            continue
        node_id, address, flags = fields[0], fields[1], set(fields[2].split(","))
        if "myself" not in flags:
            if "handshake" in flags:
                continue
            cluster.peers.append(node_id)
            if "fail" in flags or "fail?" in flags:
                cluster.failing.append(node_id)
            if "fail" in flags:
                cluster.failed.append(node_id)
            cluster.taken.extend(_slot_range(item) for item in fields[8:]
                                 if not item.startswith("["))
            continue
        view.node_id = node_id
        addr, _, hostname = address.partition(",")
        ip_port, _, bus = addr.partition("@")
        ip, _, own_port = ip_port.rpartition(":")
        view.addr = f"{ip or host}:{own_port if own_port not in ('', '0') else port}"
        if bus and bus != "0":
            view.addr += f"@{bus}"
        view.hostname = hostname or None
        view.role = "replica" if "slave" in flags else "master"
        view.replicaof = fields[3] if fields[3] != "-" else None
        view.epoch = int(fields[6])
        view.slots = [_slot_range(item) for item in fields[8:] if not item.startswith("[")]
        for item in fields[8:]:
            if item.startswith("["):
                _migration(item, cluster)
    cluster.joined = bool(cluster.peers or view.slots)
    return view


def _migration(item: str, cluster: ClusterView) -> None:
    """``[slot->-id]`` (migrating to id) or ``[slot-<-id]`` (importing from id)."""
    entry = item.strip("[]")
    if "->-" in entry:
        slot, _, node = entry.partition("->-")
        cluster.migrating[int(slot)] = node
    elif "-<-" in entry:
        slot, _, node = entry.partition("-<-")
        cluster.importing[int(slot)] = node


def heartbeat_fields(info: dict[str, Any]) -> dict[str, Any]:
    loading = bool(int(info.get("loading", 0)))
    replica = info.get("role") == "slave"
    link_up = not replica or info.get("master_link_status") == "up"
    state = "BOOTING" if loading else "RUNNING" if link_up else "WAITING"
    details = {key: info[key] for key in _INFO_LEVEL if key in info}
    if replica and "master_repl_offset" in info and "slave_repl_offset" in info:
        details["replication_lag"] = int(info["master_repl_offset"]) - int(
            info["slave_repl_offset"])
    return {
        "node_state": state,
        "serving": not loading and link_up,
        "requests": {"active": int(info.get("connected_clients", 0)),
                     "total": int(info.get("total_commands_processed", 0)),
                     "per_second": float(info.get("instantaneous_ops_per_sec", 0))},
        "services": {"redis": {
            "version": str(info.get("redis_version", "")) or None,
            "state": "starting" if loading else "running" if link_up else "error",
            "status": {"critical": {"up": True}, "info": details,
                       "debug": {key: _plain(value) for key, value in info.items()}}}},
    }


def _slot_range(item: str) -> list[int]:
    start, _, end = item.partition("-")
    return [int(start), int(end or start)]


def _plain(value: Any) -> Any:
    """INFO values as JSON can carry them (redis-py parses some into dicts)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _as_is(response: Any, **options: Any) -> Any:
    return response
