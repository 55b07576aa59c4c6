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

    hostAlive               the model holds the node ok (not pfail/fail), judged from the
                            heartbeats this server received
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

Cost: the document is rebuilt once per model version (after the failure-detection refresh that
`now_ms` implies), re-rendering only the hosts whose record changed, and is shared between
calls: treat it as read-only.
"""

from __future__ import annotations

from typing import Any

from cluster.messages import Heartbeat, QueryStatus, StoreLag, TopicPartition
from cluster.model import ClusterModel
from cluster.records import NodeState

__all__ = ["ClusterStatusView", "cluster_status"]


class ClusterStatusView:
    """`CLUSTER STATUS`, cached per model version; a host entry is rebuilt only when it changes."""

    def __init__(self, model: ClusterModel) -> None:
        self._model = model
        self._version = -1
        self._doc: dict[str, Any] = {}
        self._hosts: dict[str, tuple[_Signature, dict[str, Any]]] = {}
        self._order: list[str] = []

    def cluster_status(self, now_ms: int) -> dict[str, Any]:
        """`{"clusterStatus": {...}}` at `now_ms`; shared between calls, do not modify."""
        model = self._model
        model.refresh(now_ms)
        if self._version == model.version:
            return self._doc
        rows = {row[0]: row for row in model.node_rows()}
        if rows.keys() != self._hosts.keys():
            self._order = sorted(rows)
        built: dict[str, tuple[_Signature, dict[str, Any]]] = {}
        hosts: dict[str, Any] = {}
        for node_id in self._order:
            _id, state, seen, beat, received, addr = rows[node_id]
            signature = (state, seen, beat, received, addr)
            hit = self._hosts.get(node_id)
            if hit is None or not _same(hit[0], signature):
                hit = (signature, _host(state, seen, beat, received))
            built[node_id] = hit
            key = node_id if addr is None else addr.split("@", 1)[0]
            hosts[node_id if key in hosts else key] = hit[1]
        self._hosts = built
        self._doc = {"clusterStatus": hosts}
        self._version = model.version
        return self._doc


_Signature = tuple[NodeState, int, Heartbeat | None, int | None, str | None]


def _same(old: _Signature, new: _Signature) -> bool:
    return (
        old[2] is new[2]
        and old[0] is new[0]
        and old[1] == new[1]
        and old[3] == new[3]
        and old[4] == new[4]
    )


def cluster_status(model: ClusterModel, now_ms: int) -> dict[str, Any]:
    """Build ksqlDB's cluster status document from `model` at `now_ms` (uncached)."""
    return ClusterStatusView(model).cluster_status(now_ms)


def _host(
    state: NodeState, seen_ms: int, beat: Heartbeat | None, received_ms: int | None
) -> dict[str, Any]:
    queries = {} if beat is None or beat.queries is None else beat.queries
    return {
        "hostAlive": state is NodeState.OK,
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
