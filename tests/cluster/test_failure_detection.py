"""Rule 5: liveness from receive times, failure reports, cluster_state."""

from __future__ import annotations

from clusterwatch.cluster import (
    ClusterModel,
    ClusterStateChanged,
    ModelConfig,
    NodeState,
    NodeStateChanged,
)
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    beat_all,
    brute_force_info,
    fail_report,
    heartbeat,
    hello,
    info_fields,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
)

FAIL_AFTER = 2 * TIMEOUT


def state_of(model: ClusterModel, node: str) -> NodeState:
    info = model.node(node)
    assert info is not None
    return info.state


def test_rule5_a_silent_master_goes_pfail_then_fail_and_clears_on_heartbeat() -> None:
    model = three_masters()
    beat_all(model, T0 + 10_000, 10, skip=("c",))
    model.drain_events()

    t = T0 + TIMEOUT - 1
    assert not model.refresh(t)
    assert state_of(model, "c") is NodeState.OK

    t = T0 + TIMEOUT
    assert model.refresh(t)
    fields = info_fields(model.cluster_info_text(t))
    assert (fields["cluster_slots_ok"], fields["cluster_slots_pfail"]) == ("10923", "5461")
    assert fields["cluster_state"] == "ok"
    line = nodes_lines(model.cluster_nodes_text(t))["c"]
    assert (line[2], line[7]) == ("master,fail?", "disconnected")
    assert model.drain_events() == [
        NodeStateChanged(node="c", old=NodeState.OK, new=NodeState.PFAIL)
    ]

    for seq, t in enumerate(range(T0 + 20_000, T0 + TIMEOUT + FAIL_AFTER, 10_000), start=11):
        beat_all(model, t, seq, skip=("c",))
    model.refresh(T0 + TIMEOUT + FAIL_AFTER - 1)
    assert state_of(model, "c") is NodeState.PFAIL

    t = T0 + TIMEOUT + FAIL_AFTER
    fields = info_fields(model.cluster_info_text(t))
    assert (fields["cluster_slots_pfail"], fields["cluster_slots_fail"]) == ("0", "5461")
    assert fields["cluster_state"] == "fail"
    assert nodes_lines(model.cluster_nodes_text(t))["c"][2] == "master,fail"
    health = {n["id"]: n["health"] for shard in model.cluster_shards(t) for n in shard["nodes"]}
    assert health == {"a": "online", "b": "online", "c": "fail"}

    publish_ok(model, heartbeat("c", 3, 10), t + 1)
    fields = info_fields(model.cluster_info_text(t + 1))
    assert (fields["cluster_state"], fields["cluster_slots_ok"]) == ("ok", "16384")
    line = nodes_lines(model.cluster_nodes_text(t + 1))["c"]
    assert (line[2], line[5], line[7]) == ("master", str(t + 1), "connected")
    assert model.drain_events() == [
        NodeStateChanged(node="c", old=NodeState.PFAIL, new=NodeState.FAIL),
        ClusterStateChanged(old="ok", new="fail"),
        NodeStateChanged(node="c", old=NodeState.FAIL, new=NodeState.OK),
        ClusterStateChanged(old="fail", new="ok"),
    ]


def test_rule5_any_applied_message_is_liveness_but_a_stale_one_is_not() -> None:
    model = three_masters()
    assert model.publish(hello("c", 3, 1), T0 + TIMEOUT - 1).kind == "stale"
    model.refresh(T0 + TIMEOUT)
    assert state_of(model, "c") is NodeState.PFAIL
    publish_ok(model, slots("c", 3, 5, (10923, 16383)), T0 + TIMEOUT + 1)
    assert state_of(model, "c") is NodeState.OK


def test_rule5_a_majority_of_master_reports_marks_fail_early() -> None:
    model = three_masters(replicas=True)
    t = T0 + TIMEOUT
    beat_all(model, t - 1, 10, skip=("c",))
    model.refresh(t)
    assert state_of(model, "c") is NodeState.PFAIL
    publish_ok(model, fail_report("a", 1, 20, "c"), t + 1)
    publish_ok(model, fail_report("ra", 1, 20, "c"), t + 1)
    publish_ok(model, fail_report("rb", 1, 20, "c"), t + 1)
    assert state_of(model, "c") is NodeState.PFAIL
    assert model.count_failure_reports("c", t + 1) == 1
    publish_ok(model, fail_report("b", 2, 20, "c", state="fail"), t + 2)
    assert state_of(model, "c") is NodeState.FAIL
    assert model.count_failure_reports("c", t + 2) == 2
    assert info_fields(model.cluster_info_text(t + 2))["cluster_slots_fail"] == "5461"


def test_rule5_reports_received_before_pfail_count_while_valid() -> None:
    model = three_masters()
    publish_ok(model, fail_report("a", 1, 20, "c"), T0 + 1000)
    publish_ok(model, fail_report("b", 2, 20, "c"), T0 + 1000)
    beat_all(model, T0 + TIMEOUT - 1, 21, skip=("c",))
    model.refresh(T0 + TIMEOUT)
    assert state_of(model, "c") is NodeState.FAIL


def test_rule5_expired_reports_do_not_count() -> None:
    model = three_masters()
    publish_ok(model, fail_report("a", 1, 20, "c"), T0)
    t = T0 + 2 * TIMEOUT + 1  # a's report expired a millisecond ago
    beat_all(model, t - 1, 21, skip=("c",))
    publish_ok(model, fail_report("b", 2, 22, "c"), t)
    assert model.count_failure_reports("c", t) == 1
    model.refresh(t)
    assert state_of(model, "c") is NodeState.PFAIL


def test_rule5_reports_against_unknown_nodes_count_once_it_appears() -> None:
    model = three_masters()
    assert model.count_failure_reports("d", T0) is None
    publish_ok(model, fail_report("a", 1, 20, "d"), T0)
    publish_ok(model, hello("d", 1, 1), T0)
    assert model.count_failure_reports("d", T0) == 1


def test_rule5_minority_of_reachable_masters_fails_the_cluster() -> None:
    model = three_masters()
    t = T0 + TIMEOUT
    beat_all(model, t - 1, 10, skip=("b", "c"))
    fields = info_fields(model.cluster_info_text(t))
    assert fields["cluster_state"] == "fail"
    assert (fields["cluster_slots_ok"], fields["cluster_slots_pfail"]) == ("5461", "10923")
    assert fields == {**fields, **{k: str(v) for k, v in brute_force_info(model, t).items()}}


def test_rule5_failover_moves_the_slots_to_the_promoted_replica() -> None:
    model = three_masters(replicas=True)
    t = T0 + TIMEOUT + FAIL_AFTER
    beat_all(model, t - 1, 10, skip=("c",))
    assert info_fields(model.cluster_info_text(t))["cluster_state"] == "fail"
    publish_ok(model, slots("rc", 4, 11, (10923, 16383)), t + 1)
    fields = info_fields(model.cluster_info_text(t + 1))
    assert (fields["cluster_state"], fields["cluster_current_epoch"]) == ("ok", "4")
    assert (fields["cluster_slots_ok"], fields["cluster_slots_fail"]) == ("16384", "0")
    lines = nodes_lines(model.cluster_nodes_text(t + 1))
    assert lines["rc"][2:4] == ["master", "-"] and lines["rc"][8:] == ["10923-16383"]
    assert lines["c"][2] == "master,fail" and lines["c"][8:] == []
    assert [r.master.id for r in model.cluster_slots(t + 1)] == ["a", "b", "rc"]


def test_rule5_full_coverage_can_be_waived() -> None:
    config = ModelConfig(node_timeout_ms=TIMEOUT, require_full_coverage=False)
    model = three_masters(config=config)
    publish_ok(model, slots("c", 3, 3, released=[[10923, 16383]]), T0)
    assert info_fields(model.cluster_info_text(T0))["cluster_state"] == "ok"
    strict = three_masters()
    publish_ok(strict, slots("c", 3, 3, released=[[10923, 16383]]), T0)
    assert info_fields(strict.cluster_info_text(T0))["cluster_state"] == "fail"


def test_rule5_a_lone_master_only_fails_by_timeout() -> None:
    model = three_masters(config=ModelConfig(node_timeout_ms=TIMEOUT, fail_after_ms=1000))
    t = T0 + TIMEOUT
    model.refresh(t + 999)
    assert {n.state for n in model.nodes()} == {NodeState.PFAIL}
    model.refresh(t + 1000)
    assert {n.state for n in model.nodes()} == {NodeState.FAIL}
    assert info_fields(model.cluster_info_text(t + 1000))["cluster_slots_fail"] == "16384"


def test_refresh_is_a_no_op_before_the_next_deadline() -> None:
    model = three_masters()
    version = model.version
    for dt in range(0, TIMEOUT, 997):
        assert model.refresh(T0 + dt) is False
    assert model.version == version
    assert model.refresh(T0 + TIMEOUT) is True
    assert model.version == version + 3
    assert model.refresh(T0 + TIMEOUT) is False


def test_empty_model_is_fail_and_consistent() -> None:
    model = ClusterModel()
    fields = info_fields(model.cluster_info_text(T0))
    assert fields["cluster_state"] == "fail" and fields["cluster_size"] == "0"
    assert model.cluster_nodes_text(T0) == "" and model.cluster_slots(T0) == []


def test_rule5_quorum_is_judged_when_the_node_went_pfail_not_when_checked() -> None:
    results = []
    for refresh_every in (1000, None):
        model = three_masters()
        publish_ok(model, fail_report("a", 1, 20, "c"), T0 + 1000)
        publish_ok(model, fail_report("b", 2, 20, "c"), T0 + 1000)
        if refresh_every:
            for tick in range(T0, T0 + 2 * TIMEOUT + 5000, refresh_every):
                model.refresh(tick)
        model.refresh(T0 + 2 * TIMEOUT + 5000)
        results.append(state_of(model, "c"))
    assert results == [NodeState.FAIL, NodeState.FAIL]
