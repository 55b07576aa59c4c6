"""Curity's node status (`cluster.nodestatus`): state combinations, HTTP codes, GET and HEAD."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.apierror import ApiError
from clusterwatch.cluster.messages import RequestStats, ThreadPoolStats
from clusterwatch.cluster.nodestatus import NodeStatus, SelfCounters, node_status, self_status
from clusterwatch.server.http import refusal_code
from tests.cluster.clusterkit import T0, heartbeat, hello, publish_ok

TIMEOUT = 15_000
_SEQ = itertools.count(1)


def monitored(now: int = T0, **fields: Any) -> ClusterModel:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))
    publish_ok(model, hello("n1", 1, next(_SEQ)), now)
    if fields.pop("no_heartbeat", False):
        return model
    publish_ok(model, heartbeat("n1", 1, next(_SEQ), **fields), now)
    return model


# (heartbeat fields, reachable?, isReady, nodeState, clusterState, isServing, GET / code,
#  GET /serving code)
STATE_TABLE: list[tuple[dict[str, Any], bool, bool, str, str, bool, int, int]] = [
    ({"node_state": "BOOTING"}, True, False, "BOOTING", "CONNECTED", False, 503, 503),
    (
        {"node_state": "WAITING", "serving": True},
        True,
        True,
        "WAITING",
        "CONNECTED",
        True,
        200,
        200,
    ),
    (
        {"node_state": "RUNNING", "cluster_state": "CONNECTED", "serving": True},
        True,
        True,
        "RUNNING",
        "CONNECTED",
        True,
        200,
        200,
    ),
    # "a 200 status code ... doesn't ensure the server is listening": a disabled service role
    (
        {"node_state": "RUNNING", "serving": False},
        True,
        True,
        "RUNNING",
        "CONNECTED",
        False,
        200,
        503,
    ),
    (
        {"node_state": "RUNNING", "config_state": "NOT_CONFIGURED"},
        True,
        True,
        "RUNNING",
        "CONNECTED",
        True,
        503,
        200,
    ),
    ({"node_state": "ERROR"}, True, False, "ERROR", "CONNECTED", False, 503, 503),
    (
        {"node_state": "STOPPING", "serving": False},
        True,
        False,
        "STOPPING",
        "CONNECTED",
        False,
        503,
        503,
    ),
    (
        {"node_state": "WAITING", "cluster_state": "DISCONNECTED"},
        True,
        True,
        "WAITING",
        "DISCONNECTED",
        True,
        200,
        200,
    ),
    # the model holds the node pfail: nothing is vouched for, and its last RUNNING is not
    # repeated (cluster/liveness.py: ERROR, the word that does not claim it serves)
    (
        {"node_state": "RUNNING", "serving": True},
        False,
        False,
        "ERROR",
        "DISCONNECTED",
        False,
        503,
        503,
    ),
    ({"node_state": "WAITING"}, False, False, "ERROR", "DISCONNECTED", False, 503, 503),
    # a node that last said it was stopping most likely still is
    ({"node_state": "STOPPING"}, False, False, "STOPPING", "DISCONNECTED", False, 503, 503),
    ({}, True, True, "RUNNING", "CONNECTED", True, 200, 200),  # nothing reported: a heartbeat
    ({"no_heartbeat": True}, True, False, "BOOTING", "CONNECTED", False, 503, 503),
]


@pytest.mark.parametrize(
    ("fields", "reachable", "ready", "state", "cluster", "serving", "root", "serving_code"),
    STATE_TABLE,
)
def test_state_combinations(
    fields: dict[str, Any],
    reachable: bool,
    ready: bool,
    state: str,
    cluster: str,
    serving: bool,
    root: int,
    serving_code: int,
) -> None:
    model = monitored(**fields)
    now = T0 if reachable else T0 + TIMEOUT
    status = node_status(model, "n1", now)
    doc = status.to_json()
    assert (doc["isReady"], doc["nodeState"], doc["clusterState"], doc["isServing"]) == (
        ready,
        state,
        cluster,
        serving,
    )
    assert status.http_response("GET", "/") == (root, doc)
    assert status.http_response("GET", "/serving") == (serving_code, doc)
    assert status.http_response("HEAD", "/") == (root, None)
    assert status.http_response("HEAD", "/serving") == (serving_code, None)


def test_the_document_in_curitys_order() -> None:
    model = monitored(
        node_state="RUNNING",
        cluster_state="CONNECTED",
        config_state="CONFIGURED",
        transaction_id="t-42",
        serving=True,
        admin_serving=True,
        plugins_initialized=True,
        service_role="default",
        thread_pool={"active": 3, "max": 16, "queued": 1},
        requests={"active": 30, "max": 200, "total": 12345, "per_second": 81.5},
    )
    doc = node_status(model, "n1", T0).to_json()
    assert doc == {
        "isReady": True,
        "nodeState": "RUNNING",
        "clusterState": "CONNECTED",
        "configurationState": "CONFIGURED",
        "transactionId": "t-42",
        "isServing": True,
        "isAdminServing": True,
        "pluginsInitialized": True,
        "serviceRole": "default",
        "threadPool": {"active": 3, "max": 16, "queued": 1, "utilizationRate": 0.1875},
        "httpRequests": {
            "active": 30,
            "max": 200,
            "total": 12345,
            "utilizationRate": 0.15,
            "perSecond": 81.5,
        },
    }
    assert list(doc) == list(doc.keys())  # insertion order is the documented order
    json.dumps(doc)


def test_is_admin_serving_only_for_admin_nodes() -> None:
    runtime = node_status(monitored(node_state="RUNNING"), "n1", T0).to_json()
    assert "isAdminServing" not in runtime
    admin = monitored(node_state="RUNNING", admin_serving=False)
    assert node_status(admin, "n1", T0).to_json()["isAdminServing"] is False
    assert node_status(monitored(admin_serving=True), "n1", T0 + TIMEOUT).is_admin_serving is False


def test_utilization_of_an_unbounded_pool_is_zero_and_absent_stats_are_null() -> None:
    doc = node_status(monitored(thread_pool={"active": 4}), "n1", T0).to_json()
    assert doc["threadPool"] == {"active": 4, "max": 0, "queued": 0, "utilizationRate": 0.0}
    assert doc["httpRequests"] is None
    assert (
        "perSecond" not in node_status(monitored(requests={}), "n1", T0).to_json()["httpRequests"]
    )


def test_other_methods_and_paths() -> None:
    status = node_status(monitored(node_state="RUNNING"), "n1", T0)
    assert status.http_response("POST", "/") == (405, None)
    assert status.http_response("GET", "/metrics") == (404, None)


def test_unknown_node_is_404() -> None:
    with pytest.raises(ApiError) as info:
        node_status(monitored(), "ghost", T0)
    assert (refusal_code(info.value), info.value.message) == (404, "unknown node 'ghost'")


# (counters, nodeState, clusterState, isReady, GET / code, GET /serving code)
SELF_TABLE: list[tuple[dict[str, Any], str, str, bool, int, int]] = [
    ({}, "RUNNING", "CONNECTED", True, 200, 200),
    ({"booting": True}, "BOOTING", "CONNECTED", False, 503, 503),
    ({"bus_fresh": False}, "WAITING", "DISCONNECTED", True, 200, 200),  # serving its last model
    ({"stopping": True}, "STOPPING", "CONNECTED", False, 503, 503),
    ({"error": True, "stopping": True}, "ERROR", "CONNECTED", False, 503, 503),
    ({"listening": False}, "RUNNING", "CONNECTED", False, 503, 503),
    ({"configured": False}, "RUNNING", "CONNECTED", True, 503, 200),
]


@pytest.mark.parametrize(("counters", "state", "cluster", "ready", "root", "serving"), SELF_TABLE)
def test_clusterwatch_itself(
    counters: dict[str, Any], state: str, cluster: str, ready: bool, root: int, serving: int
) -> None:
    status = self_status(SelfCounters(**counters))
    doc = status.to_json()
    assert (doc["nodeState"], doc["clusterState"], doc["isReady"]) == (state, cluster, ready)
    assert (status.http_status("/"), status.http_status("/serving")) == (root, serving)


def test_clusterwatch_counters_fill_the_same_document() -> None:
    status = self_status(
        SelfCounters(
            transaction_id="1234",
            thread_pool=ThreadPoolStats(active=1, max=4, queued=0),
            requests=RequestStats(active=12, max=10000, total=99, per_second=1500.0),
        )
    )
    assert isinstance(status, NodeStatus) and status.node is None
    doc = status.to_json()
    assert list(doc) == [
        "isReady",
        "nodeState",
        "clusterState",
        "configurationState",
        "transactionId",
        "isServing",
        "pluginsInitialized",
        "serviceRole",
        "threadPool",
        "httpRequests",
    ]
    assert doc["transactionId"] == "1234" and doc["serviceRole"] == "clusterwatch"
    assert doc["httpRequests"]["utilizationRate"] == 0.0012
    assert doc["httpRequests"]["perSecond"] == 1500.0


# (bad heartbeat fields, the field the error names)
MALFORMED = [
    ({"node_state": "SLEEPING"}, "node_state"),
    ({"serving": "yes"}, "serving"),
    ({"thread_pool": {"active": -1}}, "thread_pool.active"),
    ({"requests": {"per_second": -2.5}}, "requests.per_second"),
    ({"admin_serving": 1}, "admin_serving"),
    ({"cluster_state": 5}, "cluster_state"),
]


@pytest.mark.parametrize(("fields", "field"), MALFORMED)
def test_malformed_fields_are_rejected_and_the_model_is_unchanged(
    fields: dict[str, Any], field: str
) -> None:
    model = monitored(node_state="RUNNING", serving=True)
    before = (model.version, node_status(model, "n1", T0))
    outcome = model.publish(heartbeat("n1", 1, next(_SEQ), **fields), T0 + 1)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.field == field and outcome.error.reason
    assert (model.version, node_status(model, "n1", T0)) == before
