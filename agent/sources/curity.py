"""A Curity Identity Server node as a source: ``curity+http(s)://host:4465/``.

Read each time: ``GET /`` (or the URL's path) of the node's status endpoint, which answers
200 (started and configured) or 503 (not started, or not yet configured), both with the node
status document (seed ``curity-status-endpoint.md``). The document becomes:

    document field                  heartbeat field
    nodeState                       node_state (BOOTING, WAITING, RUNNING, ERROR, STOPPING)
    configurationState              config_state
    transactionId                   transaction_id
    isServing                       serving
    clusterState                    cluster_state
    isAdminServing (admin nodes)    admin_serving (absent on runtime nodes, as in Curity)
    pluginsInitialized              plugins_initialized
    serviceRole                     service_role
    threadPool.busy, .max           thread_pool.active, .max (Curity has no queue count)
    httpRequests.running            requests.active, with requests.max = threadPool.max:
                                    Curity's utilizationRate is running / threadPool.max,
                                    which is what the server renders back
    isReady                         not sent: the server derives isReady from nodeState
                                    (WAITING or RUNNING) and reachability, as Curity does

Each heartbeat also carries one service, ``curity``: state running (nodeState RUNNING or
WAITING), starting (BOOTING), stopping (STOPPING), error (ERROR) or unknown (below); status
``critical`` {"isReady", "nodeState", "httpStatus"}, ``info`` the whole document.

When the endpoint cannot be read (refused, no answer within the timeout, a 3xx/4xx/other
5xx code or a 503 without a document, invalid JSON, an HTML page, a document without a
valid nodeState) the view is what Curity's own ``status`` tool means by a failed probe: the
node is not ready. node_state ERROR, serving False, and the ``curity`` service unknown with
``{"reason": "<why>"}`` as its critical status, which ``STATUS SERVICES`` shows.
"""

from __future__ import annotations

from typing import Any, Final

from ._base import NodeView
from ._http import FetchError, HttpReader, json_document, reason_status

__all__ = ["CuritySource",
           "reason_status"]

_NODE_STATES: Final = ("BOOTING", "WAITING", "RUNNING", "ERROR", "STOPPING")
_SERVICE_STATE: Final = {"RUNNING": "running", "WAITING": "running", "BOOTING": "starting",
                         "STOPPING": "stopping", "ERROR": "error"}


class CuritySource:
    def __init__(self, url: str, *, timeout: float) -> None:
        self._http = HttpReader(url, timeout=timeout, default_port=4465)
        self.name = self._http.name

    async def read(self) -> NodeView:
        try:
            reply = await self._http.get(self._http.path or "/", self._http.query)
            doc = json_document(reply, codes=(200, 503))
            return NodeView(fields=node_fields(doc, reply.status))
        except FetchError as exc:
            return NodeView(fields=unreachable_fields(exc.reason))

    async def aclose(self) -> None:
        await self._http.aclose()


def node_fields(doc: Any, http_status: int) -> dict[str, Any]:
    """Heartbeat fields from a node status document; FetchError if it is not one."""
    if not isinstance(doc, dict):
        raise FetchError(f"HTTP {http_status}: expected the node status object, "
                         f"got {type(doc).__name__}")
    state = doc.get("nodeState")
    if state not in _NODE_STATES:
        raise FetchError(f"HTTP {http_status}: not a node status document "
                         f"(nodeState {state!r:.40})")
    fields: dict[str, Any] = {"node_state": state}
    for key, name in (("configurationState", "config_state"), ("clusterState", "cluster_state"),
                      ("serviceRole", "service_role")):
        if isinstance(doc.get(key), str):
            fields[name] = doc[key]
    transaction = doc.get("transactionId")
    if isinstance(transaction, str | int) and not isinstance(transaction, bool):
        fields["transaction_id"] = str(transaction)
    for key, name in (("isServing", "serving"), ("isAdminServing", "admin_serving"),
                      ("pluginsInitialized", "plugins_initialized")):
        if isinstance(doc.get(key), bool):
            fields[name] = doc[key]
    pool = doc.get("threadPool")
    pool_max = _count(pool.get("max")) if isinstance(pool, dict) else None
    if isinstance(pool, dict):
        fields["thread_pool"] = {"active": _count(pool.get("busy")) or 0, "max": pool_max or 0}
    requests = doc.get("httpRequests")
    if isinstance(requests, dict):
        fields["requests"] = {"active": _count(requests.get("running")) or 0,
                              "max": pool_max or 0}
    fields["services"] = {"curity": {
        "state": _SERVICE_STATE[state],
        "status": {"critical": {"isReady": doc.get("isReady"), "nodeState": state,
                                "httpStatus": http_status},
                   "info": doc},
    }}
    return fields


def unreachable_fields(reason: str) -> dict[str, Any]:
    return {"node_state": "ERROR", "serving": False,
            "services": {"curity": {"state": "unknown", "status": reason_status(reason)}}}


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
