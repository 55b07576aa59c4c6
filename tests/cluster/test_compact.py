"""Stored hello and heartbeat messages share what nodes repeat, without changing a value."""

from __future__ import annotations

from typing import Any

import msgspec

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.messages import decode_message

A, B, C = "a" * 40, "b" * 40, "c" * 40
NOW = 1_000_000


def msg(kind: str, node: str, seq: int, **fields: Any) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": 1, "seq": seq,
                                **fields})


PAYLOAD: dict[str, Any] = {
    "config_state": "CONFIGURED", "transaction_id": "tx-1-0", "service_role": "master",
    "services": {"api": {"version": "1.4.2", "state": "running",
                         "status": {"critical": {"listening": True}, "info": {"n": 1}}}},
    "queries": {"Q1": {"active_stores": ["store-a"],
                       "active_partitions": [{"topic": "orders", "partition": 0}]}},
}


def stored(model: ClusterModel, node: str) -> Any:
    info = model.node(node)
    assert info is not None and info.heartbeat is not None
    return info.heartbeat


def test_heartbeats_share_strings_empties_and_flat_status_dicts() -> None:
    model = ClusterModel(ModelConfig())
    for node in (A, B):
        assert model.publish(msg("heartbeat", node, 1, **PAYLOAD), NOW).kind == "applied"
    a, b = stored(model, A), stored(model, B)
    assert a.node is model.node(A).id  # type: ignore[union-attr]
    assert a.config_state is b.config_state and a.transaction_id is b.transaction_id
    assert a.services["api"].version is b.services["api"].version
    assert a.services["api"].alerts is b.services["api"].alerts == ()
    assert a.services["api"].status_versions is b.services["api"].status_versions == {}
    assert a.services["api"].status["critical"] is b.services["api"].status["critical"]
    assert a.queries["Q1"].standby_stores is b.queries["Q1"].standby_stores == ()
    assert a.queries["Q1"].active_partitions[0].topic is b.queries["Q1"].active_partitions[0].topic
    assert a.queries["Q1"].active_stores[0] is b.queries["Q1"].active_stores[0]


def test_a_heartbeat_reuses_what_equals_the_nodes_previous_one() -> None:
    model = ClusterModel(ModelConfig())
    model.publish(msg("heartbeat", A, 1, **PAYLOAD), NOW)
    first = stored(model, A)
    changed = {**PAYLOAD, "services": {"api": {**PAYLOAD["services"]["api"], "status": {
        "critical": {"listening": True}, "info": {"n": 2}}}}}
    model.publish(msg("heartbeat", A, 2, **changed), NOW)
    second = stored(model, A)
    assert second is not first
    assert second.queries is first.queries
    assert second.services["api"].status["critical"] is first.services["api"].status["critical"]
    assert second.services["api"].status["info"] == {"n": 2}
    model.publish(msg("heartbeat", A, 3, **changed), NOW)
    assert stored(model, A).services["api"] is second.services["api"]


def test_stored_heartbeat_equals_the_message_as_decoded() -> None:
    model = ClusterModel(ModelConfig())
    raw = msg("heartbeat", A, 1, **PAYLOAD)
    model.publish(msg("heartbeat", B, 1, **PAYLOAD), NOW)
    model.publish(raw, NOW)
    assert stored(model, A) == decode_message(raw, max_size=1 << 16)
    assert msgspec.json.encode(stored(model, A)) == msgspec.json.encode(
        decode_message(raw, max_size=1 << 16))


def test_flat_status_dicts_keep_their_types_apart() -> None:
    model = ClusterModel(ModelConfig())
    for node, value in ((A, True), (B, 1), (C, 1.0)):
        beat = {"services": {"s": {"status": {"info": {"x": value}}}}}
        model.publish(msg("heartbeat", node, 1, **beat), NOW)
    got = [stored(model, n).services["s"].status["info"]["x"] for n in (A, B, C)]
    assert [type(v) for v in got] == [bool, int, float]


def test_hello_shares_the_node_and_master_ids() -> None:
    model = ClusterModel(ModelConfig())
    model.publish(msg("hello", A, 1, addr="10.0.0.1:7000"), NOW)
    model.publish(msg("hello", B, 1, addr="10.0.0.1:7001", role="replica", replicaof=A), NOW)
    a, b = model.node(A), model.node(B)
    assert a is not None and b is not None
    assert b.replicaof is a.id and b.replicaof == A
    assert a.host is b.host == "10.0.0.1"
