"""ksqlDB's `/clusterStatus` over the cluster model: `CLUSTER STATUS`.

Source: ksqlDB REST API, "Get the status of the servers in a ksqlDB cluster"
(`GET /clusterStatus`) and its entities (`HostStatusEntity`, `ActiveStandbyEntity`,
`HostStoreLags`, `StateStoreLags`, `LagInfoEntity`). The document:

    {"clusterStatus": {"<host:port>": {
        "hostAlive": bool,
        "lastStatusUpdateMs": int,
        "activeStandbyPerQuery": {"<query id>": {
            "activeStores": [str], "activePartitions": [{"topic": str, "partition": int}],
            "standByStores": [str], "standByPartitions": [{"topic": str, "partition": int}]}},
        "hostStoreLags": {
            "stateStoreLags": {"<store>": {
                "lagByPartition": {"<partition>": {"currentOffsetPosition": int,
                                                   "endOffsetPosition": int,
                                                   "offsetLag": int}},
                "size": int}},
            "updateTimeMs": int}}}}

How each field is filled:

    hostAlive               the model's verdict on the node is `reachable`
                            (cluster/liveness.py), judged from the messages this server
                            received and the bus's freshness
    lastStatusUpdateMs      when this server last received a message from the node
                            (`NodeInfo.last_seen_ms`), not the sender's clock
    activeStandbyPerQuery   the heartbeat's `queries`, per query id in the order sent
    stateStoreLags          the heartbeat's `store_lags`, partitions in numeric order; `size`
                            is the number of partitions, as `StateStoreLags.getSize()`
    updateTimeMs            the heartbeat's `ts_ms` when sent: ksqlDB's lag reporter stamps a
                            lag report with the sender's clock; else when the heartbeat arrived.
                            A node that reports no lags gets ksqlDB's empty value:
                            {"stateStoreLags": {}, "updateTimeMs": 0}

Hosts are keyed `host:port` from the node's hello address (without the bus port); a node
without an address yet, or whose address another node already took, is keyed by its node id.
Hosts appear in node id order. The HTTP status is always 200.

Cost: between model versions (after the failure-detection refresh that `now_ms` implies) only
the hosts of the nodes the model logged as changed are looked at again; the hosts' keys and
order are redone when a node joins or leaves or an address moves. The view keeps what each
host entry is rendered from, not the entries (`CLUSTER STATUS` keeps its encoded parts,
`commands/_fragments.py`), so `cluster_status` renders the whole document once per model
version. The document is shared between calls: treat it as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count
from typing import Any, Final, NamedTuple

from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.liveness import reachable
from clusterwatch.cluster.messages import Heartbeat, QueryStatus, StoreLag, TopicPartition
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.records import NodeState

_OK: Final = NodeState.OK

__all__ = ["ClusterStatusView", "Host", "cluster_status"]

_SERIALS = count()


class Host(NamedTuple):
    """What one node's host entry is rendered from: its key in the document, the hello
    address the key came from, and the node's state, last message and heartbeat; `serial`
    is new for each new `Host`."""

    key: str
    addr: str | None
    state: NodeState
    seen_ms: int
    beat: Heartbeat | None
    received_ms: int | None
    serial: int

    alive: bool

    def entry(self) -> dict[str, Any]:
        """The host's entry in the document (a new one each call)."""
        return _host(self.alive, self.seen_ms, self.beat, self.received_ms)


class ClusterStatusView:
    """`CLUSTER STATUS`, kept per host: between versions only the hosts of the nodes the
    model logged as changed are looked at again.

    `hosts` gives, per node id in order, what the node's host entry is rendered from (a
    `Host`, the same object while the entry is the same); `changes` logs the node ids whose
    host changed since, and is reset when the hosts' order or keys change (a node joined or
    left, an address moved), so a renderer that keeps per-host parts can follow it. The
    entries themselves are not kept: they are rendered when asked for.
    """

    def __init__(self, model: ClusterModel) -> None:
        self._model = model
        self._version = -1
        self._cursor = -1
        self._hosts: dict[str, Host] = {}
        self.changes = ChangeLog()

    def hosts(self, now_ms: int) -> Mapping[str, Host]:
        """Per node id, in node id order, its `Host`; read-only."""
        model = self._model
        model.refresh(now_ms)
        if self._version == model.version:
            return self._hosts
        changed, self._cursor = model.changes.since(self._cursor)
        if changed is None:
            self._rebuild(None)
        else:
            hosts = self._hosts
            log = self.changes
            bus_fresh = model.bus_fresh
            todo = set(changed)
            for node_id in todo:
                row = model.node_row(node_id)
                old = hosts.get(node_id)
                if row is None or old is None or row[5] != old.addr:
                    self._rebuild(todo)
                    break
                _id, state, seen, beat, received, addr = row
                hosts[node_id] = Host(old.key, addr, state, seen, beat, received, next(_SERIALS),
                                      state is _OK and bus_fresh)
                log.add(node_id)
        self._version = model.version
        return self._hosts

    def cluster_status(self, now_ms: int) -> dict[str, Any]:
        """`{"clusterStatus": {...}}` at `now_ms`, built whole (the replies and the HTTP
        route are assembled from per-host parts instead)."""
        return {"clusterStatus": {host.key: host.entry() for host in self.hosts(now_ms).values()}}

    def _rebuild(self, changed: set[str] | None) -> None:
        """New keys and order; a host is kept unless its node is in `changed` (None: every
        node) or its key moved."""
        old = {} if changed is None else self._hosts
        rows = sorted(self._model.node_rows())
        hosts: dict[str, Host] = {}
        keys: set[str] = set()
        for node_id, state, seen, beat, received, addr in rows:
            key = node_id if addr is None else addr.split("@", 1)[0]
            if key in keys:
                key = node_id
            keys.add(key)
            hit = old.get(node_id)
            if (hit is None or changed is None or node_id in changed or hit.key != key):
                hit = Host(key, addr, state, seen, beat, received, next(_SERIALS),
                           reachable(state, self._model.bus_fresh))
            hosts[node_id] = hit
        self._hosts = hosts
        self.changes.fit(len(hosts))
        self.changes.reset()


def cluster_status(model: ClusterModel, now_ms: int) -> dict[str, Any]:
    """Build ksqlDB's cluster status document from `model` at `now_ms` (uncached)."""
    return ClusterStatusView(model).cluster_status(now_ms)


def _host(
    alive: bool, seen_ms: int, beat: Heartbeat | None, received_ms: int | None
) -> dict[str, Any]:
    queries = {} if beat is None or beat.queries is None else beat.queries
    return {
        "hostAlive": alive,
        "lastStatusUpdateMs": seen_ms,
        "activeStandbyPerQuery": {name: _query(query) for name, query in queries.items()},
        "hostStoreLags": _store_lags(beat, seen_ms if received_ms is None else received_ms),
    }


def _query(query: QueryStatus) -> dict[str, Any]:
    return {
        "activeStores": list(query.active_stores),
        "activePartitions": [_partition(p) for p in query.active_partitions],
        "standByStores": list(query.standby_stores),
        "standByPartitions": [_partition(p) for p in query.standby_partitions],
    }


def _partition(part: TopicPartition) -> dict[str, Any]:
    return {"topic": part.topic, "partition": part.partition}


def _store_lags(beat: Heartbeat | None, received_ms: int) -> dict[str, Any]:
    if beat is None or beat.store_lags is None:
        return {"stateStoreLags": {}, "updateTimeMs": 0}
    stores = {name: _store(lags) for name, lags in beat.store_lags.items()}
    return {
        "stateStoreLags": stores,
        "updateTimeMs": beat.ts_ms if beat.ts_ms is not None else received_ms,
    }


def _store(lags: dict[int, StoreLag]) -> dict[str, Any]:
    return {
        "lagByPartition": {
            str(partition): {
                "currentOffsetPosition": lag.current_offset,
                "endOffsetPosition": lag.end_offset,
                "offsetLag": lag.offset_lag,
            }
            for partition, lag in sorted(lags.items())
        },
        "size": len(lags),
    }
