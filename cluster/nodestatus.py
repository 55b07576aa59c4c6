"""Curity's node status over the cluster model: `STATUS NODE [<id>]`.

Source: Curity Identity Server, "Status Endpoint" (an HTTP endpoint answering GET and HEAD on
`/` and `/serving`). The document, in the documented order:

    isReady, nodeState, clusterState, configurationState, transactionId, isServing,
    isAdminServing (admin nodes only), pluginsInitialized, serviceRole, threadPool, httpRequests

For a monitored node, from its last heartbeat and the model's view of it:

    field               source
    nodeState           `node_state` (BOOTING, WAITING, RUNNING, ERROR, STOPPING); not
                        reported: RUNNING once a heartbeat arrived, BOOTING before. While
                        the model's verdict on the node is not `reachable`
                        (cluster/liveness.py): ERROR, the one word that does not claim the
                        node serves, unless it last said BOOTING or STOPPING
    isReady             nodeState WAITING or RUNNING ("ready to receive and process requests,
                        but may be disconnected from the admin") and the node reachable: the
                        model cannot vouch for a node it holds pfail or fail
    clusterState        `cluster_state`; DISCONNECTED when the node is unreachable, whatever it
                        last said; not reported: CONNECTED while reachable
    configurationState  `config_state`, null if not reported
    transactionId       `transaction_id` (the configuration version), null if not reported
    isServing           reachable and `serving` as reported; not reported: isReady
    isAdminServing      only for nodes that report `admin_serving` (admin nodes): that and
                        reachable
    pluginsInitialized  `plugins_initialized`, null if not reported
    serviceRole         `service_role`, null if not reported
    threadPool          {"active", "max", "queued", "utilizationRate"} from `thread_pool`
    httpRequests        {"active", "max", "total", "utilizationRate"} (+ "perSecond" when
                        reported) from `requests`; utilizationRate = active / max (0.0 when max
                        is 0), rounded to 4 places; either object is null if not reported

For clusterwatch itself (`self_status`), from counters the server passes in (`SelfCounters`):
nodeState ERROR, STOPPING or BOOTING as the server says, else WAITING while the bus is not
fresh (Curity: "ready to process requests with the latest configuration it has, still
waiting to connect to the admin": clusterwatch serves its last model) and RUNNING when it is;
clusterState CONNECTED or DISCONNECTED by the bus; isReady as above and listening.

HTTP (`http_response`): GET and HEAD on `/`: 200 if the node is started and configured
(isReady, and configurationState CONFIGURED, RECONFIGURING or not reported), else 503; on
`/serving`: 200 if isServing, else 503. GET carries the JSON document in both cases, HEAD
only the status code. Other methods are 405, other paths 404.

The nested key names of threadPool and httpRequests are ours: the source names the objects and
their utilization rates, not their members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from clusterwatch.cluster.apierror import unknown_node
from clusterwatch.cluster.freshness import too_old
from clusterwatch.cluster.liveness import CURITY_KEPT_STATES, CURITY_NODE_STATE
from clusterwatch.cluster.messages import RequestStats, ThreadPoolStats
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.records import NodeInfo

__all__ = ["NODE_STATES", "NodeStatus", "SelfCounters", "node_status", "self_status"]

NODE_STATES: Final = ("BOOTING", "WAITING", "RUNNING", "ERROR", "STOPPING")
_READY_STATES: Final = ("WAITING", "RUNNING")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """Curity's node status document for one node (`node` None: clusterwatch itself)."""

    node: str | None
    is_ready: bool
    node_state: str
    cluster_state: str
    configuration_state: str | None
    transaction_id: str | None
    is_serving: bool
    is_admin_serving: bool | None
    plugins_initialized: bool | None
    service_role: str | None
    thread_pool: ThreadPoolStats | None
    requests: RequestStats | None

    @property
    def configured(self) -> bool:
        """Configured, for the `/` status code: CONFIGURED, RECONFIGURING (Curity: "a previous
        configuration is still valid"), or no configuration state reported."""
        return self.configuration_state in (None, "CONFIGURED", "RECONFIGURING")

    def to_json(self) -> dict[str, Any]:
        """The document, keys in Curity's order; `isAdminServing` only for admin nodes."""
        doc: dict[str, Any] = {
            "isReady": self.is_ready,
            "nodeState": self.node_state,
            "clusterState": self.cluster_state,
            "configurationState": self.configuration_state,
            "transactionId": self.transaction_id,
            "isServing": self.is_serving,
        }
        if self.is_admin_serving is not None:
            doc["isAdminServing"] = self.is_admin_serving
        doc["pluginsInitialized"] = self.plugins_initialized
        doc["serviceRole"] = self.service_role
        doc["threadPool"] = None if self.thread_pool is None else _pool(self.thread_pool)
        doc["httpRequests"] = None if self.requests is None else _requests(self.requests)
        return doc

    def http_status(self, path: str = "/") -> int:
        """200 or 503 for `/` (started and configured) or `/serving` (serving)."""
        if path == "/serving":
            return 200 if self.is_serving else 503
        return 200 if self.is_ready and self.configured else 503

    def http_response(self, method: str, path: str) -> tuple[int, dict[str, Any] | None]:
        """`(status, body)` for an HTTP request; HEAD and errors have no body."""
        if path not in ("/", "/serving"):
            return 404, None
        if method not in ("GET", "HEAD"):
            return 405, None
        code = self.http_status(path)
        return code, (self.to_json() if method == "GET" else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfCounters:
    """What the server knows about itself, for `self_status`.

    Suggested sources: `requests` from connected clients (active), maxclients (max), commands
    processed (total) and commands per second (per_second); `thread_pool` from commands being
    executed (active), the executor's capacity (max) and requests waiting (queued).
    `transaction_id` is whatever names the model version served; `admin_serving` stays None
    (clusterwatch has no admin role) unless the server has one to report.
    """

    booting: bool = False
    stopping: bool = False
    error: bool = False
    listening: bool = True
    bus_fresh: bool = True
    configured: bool = True
    transaction_id: str | None = None
    service_role: str | None = "clusterwatch"
    plugins_initialized: bool | None = True
    admin_serving: bool | None = None
    thread_pool: ThreadPoolStats | None = None
    requests: RequestStats | None = None


def node_status(model: ClusterModel, node_id: str, now_ms: int,
                max_age_ms: int | None = None) -> NodeStatus:
    """Curity's document for a monitored node at `now_ms`; with `max_age_ms` (MAXAGE), a
    node whose last heartbeat is older counts as not reachable for this read.

    Raises:
        ApiError: 404 if the model does not know the node.
    """
    live = model.liveness(node_id, now_ms)
    info = model.node(node_id)
    if info is None or live is None:
        raise unknown_node(node_id)
    return _from_info(info, live.reachable and not too_old(info.heartbeat_ms, now_ms, max_age_ms))


def _from_info(info: NodeInfo, reachable: bool) -> NodeStatus:
    beat = info.heartbeat
    node_state = "BOOTING" if beat is None else beat.node_state or "RUNNING"
    if not reachable and node_state not in CURITY_KEPT_STATES:
        node_state = CURITY_NODE_STATE
    is_ready = reachable and node_state in _READY_STATES
    reported = None if beat is None else beat.cluster_state
    cluster_state = (reported or "CONNECTED") if reachable else "DISCONNECTED"
    serving = None if beat is None else beat.serving
    admin = None if beat is None else beat.admin_serving
    return NodeStatus(
        node=info.id,
        is_ready=is_ready,
        node_state=node_state,
        cluster_state=cluster_state,
        configuration_state=None if beat is None else beat.config_state,
        transaction_id=None if beat is None else beat.transaction_id,
        is_serving=reachable and (is_ready if serving is None else serving),
        is_admin_serving=None if admin is None else reachable and admin,
        plugins_initialized=None if beat is None else beat.plugins_initialized,
        service_role=None if beat is None else beat.service_role,
        thread_pool=None if beat is None else beat.thread_pool,
        requests=None if beat is None else beat.requests,
    )


def self_status(counters: SelfCounters) -> NodeStatus:
    """Curity's document for clusterwatch itself."""
    if counters.error:
        node_state = "ERROR"
    elif counters.stopping:
        node_state = "STOPPING"
    elif counters.booting:
        node_state = "BOOTING"
    elif not counters.bus_fresh:
        node_state = "WAITING"
    else:
        node_state = "RUNNING"
    is_ready = counters.listening and node_state in _READY_STATES
    return NodeStatus(
        node=None,
        is_ready=is_ready,
        node_state=node_state,
        cluster_state="CONNECTED" if counters.bus_fresh else "DISCONNECTED",
        configuration_state="CONFIGURED" if counters.configured else "NOT_CONFIGURED",
        transaction_id=counters.transaction_id,
        is_serving=is_ready,
        is_admin_serving=counters.admin_serving,
        plugins_initialized=counters.plugins_initialized,
        service_role=counters.service_role,
        thread_pool=counters.thread_pool,
        requests=counters.requests,
    )


def _rate(active: int, maximum: int) -> float:
    return round(active / maximum, 4) if maximum else 0.0


def _pool(pool: ThreadPoolStats) -> dict[str, Any]:
    return {
        "active": pool.active,
        "max": pool.max,
        "queued": pool.queued,
        "utilizationRate": _rate(pool.active, pool.max),
    }


def _requests(stats: RequestStats) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "active": stats.active,
        "max": stats.max,
        "total": stats.total,
        "utilizationRate": _rate(stats.active, stats.max),
    }
    if stats.per_second is not None:
        doc["perSecond"] = stats.per_second
    return doc
