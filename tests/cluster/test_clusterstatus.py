"""ksqlDB's `/clusterStatus` (`cluster.clusterstatus`): the documented two-node example and more."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.clusterstatus import ClusterStatusView, cluster_status
from tests.cluster.clusterkit import T0, encode, heartbeat, publish_ok

_SEQ = itertools.count(1)
REPARTITION = "_confluent-ksql-default_query_CTAS_MY_AGG_TABLE_3-Aggregate-GroupBy-repartition"
STORE = "_confluent-ksql-default_query_CTAS_MY_AGG_TABLE_3#Aggregate-Aggregate-Materialize"

# data/ksqldb_cluster_status.json is the response documented for "a two-node cluster running a
# single CREATE TABLE ... AS SELECT query, with lag reporting enabled" (ksqlDB REST API,
# cluster-status-endpoint.md), verbatim.
KSQLDB_EXAMPLE = Path(__file__).with_name("data") / "ksqldb_cluster_status.json"


def ksql_heartbeat(node: str, partitions: tuple[int, int], offsets: list[int], ts: int) -> bytes:
    """The heartbeat a ksqlDB-side agent would publish for one of the example's servers."""
    active = [{"topic": "my_stream", "partition": p} for p in partitions]
    active += [{"topic": REPARTITION, "partition": p} for p in partitions]
    lags = {
        str(p): {"current_offset": off, "end_offset": off, "offset_lag": 0}
        for p, off in zip(partitions, offsets, strict=True)
    }
    return heartbeat(
        node,
        1,
        next(_SEQ),
        ts_ms=ts,
        queries={
            "CTAS_MY_AGG_TABLE_3": {
                "active_stores": ["Aggregate-Aggregate-Materialize"],
                "active_partitions": active,
            }
        },
        store_lags={STORE: lags},
    )


def hello_at(node: str, addr: str) -> bytes:
    return encode(
        {"v": 1, "type": "hello", "node": node, "epoch": 1, "seq": next(_SEQ), "addr": addr}
    )


def test_ksqldb_two_node_example_field_for_field() -> None:
    # ksqlDB's heartbeat windows are wider than our 15 s default; both hosts are alive there.
    model = ClusterModel(ModelConfig(node_timeout_ms=120_000))
    local_seen, other_seen = 1617609098808, 1617609172614
    publish_ok(model, hello_at("ksql-1", "localhost:8088"), local_seen - 5_000)
    publish_ok(model, hello_at("ksql-2", "other.ksqldb.host:8088@9088"), other_seen - 5_000)
    publish_ok(model, ksql_heartbeat("ksql-1", (1, 3), [0, 0], 1617609168917), local_seen)
    publish_ok(model, ksql_heartbeat("ksql-2", (0, 2), [1, 0], 1617609170111), other_seen)
    doc = ClusterStatusView(model).cluster_status(other_seen + 1_000)
    expected = json.loads(KSQLDB_EXAMPLE.read_text())
    assert doc == expected
    assert json.dumps(doc, indent=2) == json.dumps(expected, indent=2)  # key order too


def test_host_alive_follows_heartbeats_and_update_times_are_receive_times() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=15_000))
    publish_ok(model, hello_at("a", "10.0.0.1:7000"), T0)
    publish_ok(model, heartbeat("a", 1, next(_SEQ), ts_ms=5, store_lags={"s": {}}), T0 + 100)
    publish_ok(
        model,
        heartbeat(
            "b",
            1,
            next(_SEQ),
            store_lags={"s": {"7": {"current_offset": 3, "end_offset": 10, "offset_lag": 7}}},
        ),
        T0 + 200,
    )
    view = ClusterStatusView(model)
    hosts = view.cluster_status(T0 + 1_000)["clusterStatus"]
    assert list(hosts) == ["10.0.0.1:7000", "b"]  # b has no hello: keyed by node id
    a, b = hosts["10.0.0.1:7000"], hosts["b"]
    assert (a["hostAlive"], a["lastStatusUpdateMs"]) == (True, T0 + 100)  # received, not ts_ms
    assert a["hostStoreLags"] == {
        "stateStoreLags": {"s": {"lagByPartition": {}, "size": 0}},
        "updateTimeMs": 5,
    }
    assert b["hostStoreLags"]["updateTimeMs"] == T0 + 200  # no ts_ms: when it arrived
    assert b["hostStoreLags"]["stateStoreLags"]["s"]["lagByPartition"] == {
        "7": {"currentOffsetPosition": 3, "endOffsetPosition": 10, "offsetLag": 7}
    }
    assert b["activeStandbyPerQuery"] == {}
    later = view.cluster_status(T0 + 15_100)["clusterStatus"]
    assert later["10.0.0.1:7000"]["hostAlive"] is False
    assert later["b"]["hostAlive"] is True
    assert view.cluster_status(T0 + 15_200)["clusterStatus"]["b"]["hostAlive"] is False


def test_a_node_without_lag_reports_gets_ksqldbs_empty_lags() -> None:
    model = ClusterModel()
    publish_ok(model, hello_at("a", "[::1]:7000@17000"), T0)
    hosts = cluster_status(model, T0)["clusterStatus"]
    assert hosts == {
        "[::1]:7000": {
            "hostAlive": True,
            "lastStatusUpdateMs": T0,
            "activeStandbyPerQuery": {},
            "hostStoreLags": {"stateStoreLags": {}, "updateTimeMs": 0},
        }
    }


def test_two_nodes_announcing_one_address_do_not_hide_each_other() -> None:
    model = ClusterModel()
    publish_ok(model, hello_at("a", "h:1"), T0)
    publish_ok(model, hello_at("b", "h:1"), T0)
    assert list(cluster_status(model, T0)["clusterStatus"]) == ["h:1", "b"]


def test_the_hosts_are_kept_per_model_version() -> None:
    model = ClusterModel()
    publish_ok(model, hello_at("a", "h:1"), T0)
    view = ClusterStatusView(model)
    first = view.hosts(T0)["a"]
    assert view.hosts(T0 + 1)["a"] is first
    publish_ok(model, heartbeat("a", 1, next(_SEQ)), T0 + 2)
    assert view.hosts(T0 + 2)["a"] is not first
    assert view.cluster_status(T0 + 2) == cluster_status(model, T0 + 2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"store_lags": {"s": {"zero": {}}}}, "store_lags[...]"),
        ({"store_lags": {"s": {"0": {"current_offset": 1}}}}, "store_lags[...][...].end_offset"),
        (
            {"queries": {"q": {"active_partitions": [{"topic": "t"}]}}},
            "queries[...].active_partitions[0].partition",
        ),
        ({"queries": {"q": {"active_stores": "s"}}}, "queries[...].active_stores"),
    ],
)
def test_malformed_query_and_lag_fields_are_rejected(fields: dict[str, Any], field: str) -> None:
    model = ClusterModel()
    publish_ok(model, hello_at("a", "h:1"), T0)
    before = (model.version, cluster_status(model, T0))
    outcome = model.publish(heartbeat("a", 1, next(_SEQ), **fields), T0 + 1)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.field == field and outcome.error.reason
    assert (model.version, cluster_status(model, T0)) == before


def test_cached_hosts_follow_changes_and_joins() -> None:
    model = ClusterModel()
    publish_ok(model, hello_at("b", "h:2"), T0)
    view = ClusterStatusView(model)
    assert view.cluster_status(T0)["clusterStatus"]["h:2"]["activeStandbyPerQuery"] == {}
    queries = {
        "q": {"standby_stores": ["s"], "standby_partitions": [{"topic": "t", "partition": 4}]}
    }
    publish_ok(model, heartbeat("b", 1, next(_SEQ), queries=queries), T0 + 1)
    publish_ok(model, hello_at("a", "h:1"), T0 + 2)
    hosts = view.cluster_status(T0 + 2)["clusterStatus"]
    assert list(hosts) == ["h:1", "h:2"]
    assert hosts["h:2"]["activeStandbyPerQuery"] == {
        "q": {
            "activeStores": [],
            "activePartitions": [],
            "standByStores": ["s"],
            "standByPartitions": [{"topic": "t", "partition": 4}],
        }
    }
    assert hosts["h:2"]["lastStatusUpdateMs"] == T0 + 1
