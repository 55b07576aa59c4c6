"""The bounded node table: max_nodes, forget_after, forget and its ban (time injected)."""

from __future__ import annotations

import tracemalloc

from clusterwatch.cluster import ClusterModel, ModelConfig, NodeJoined, NodeLeft, NodeState
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    beat_all,
    fail_report,
    heartbeat,
    hello,
    info_fields,
    publish_ok,
    three_masters,
)

HOUR = 3_600_000


def test_one_node_too_many_is_rejected_and_counted_known_nodes_untouched() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, max_nodes=3))
    for name in "abc":
        publish_ok(model, hello(name, 1, 1), T0)
    outcome = model.publish(hello("d", 1, 1), T0)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert (outcome.error.field, outcome.error.code) == ("node", "max_nodes")
    assert outcome.error.reason == "too many nodes: max-nodes is 3"
    assert model.counters().rejected == {"max_nodes": 1}
    assert model.counters().received["hello"] == 3  # received counts valid ones only
    assert model.node_count == 3 and model.node("d") is None
    publish_ok(model, heartbeat("a", 1, 2), T0 + 1)  # known nodes go on
    publish_ok(model, hello("b", 2, 1, port=7001), T0 + 1)


def test_twenty_thousand_ids_against_ten_thousand() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))  # max_nodes 10000 by default
    tracemalloc.start()
    try:
        kinds = []
        for i in range(20_000):
            kinds.append(model.publish(hello(f"n{i:05d}", 1, 1, port=1000 + i % 60000), T0).kind)
            if i == 10_000:
                at_limit, _ = tracemalloc.get_traced_memory()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kinds[:10_000] == ["applied"] * 10_000
    assert kinds[10_000:] == ["rejected"] * 10_000
    assert model.node_count == 10_000
    assert model.counters().rejected == {"max_nodes": 10_000}
    assert info_fields(model.cluster_info_text(T0))["cluster_known_nodes"] == "10000"
    # The 10000 refused ids keep nothing: memory grows by well under 10% of the table's.
    assert after - at_limit < at_limit // 10, (at_limit, after)


def test_cluster_forget_removes_the_node_emits_node_left_and_bans_it() -> None:
    model = three_masters()
    model.drain_events()
    assert not model.forget("zz", T0)
    assert model.forget("c", T0 + 5)
    assert model.node("c") is None and model.node_count == 2
    events = model.drain_events()
    assert NodeLeft(node="c") in events
    fields = info_fields(model.cluster_info_text(T0 + 5))
    assert (fields["cluster_slots_assigned"], fields["cluster_state"]) == ("10923", "fail")
    for t in (T0 + 5, T0 + 5 + 59_999):
        outcome = model.publish(heartbeat("c", 3, 50 + t - T0), t)
        assert outcome.kind == "rejected" and outcome.error is not None
        assert outcome.error.code == "forgotten"
        assert "was forgotten" in outcome.error.reason
    assert model.counters().rejected == {"forgotten": 2}
    # After 60 s it rejoins as a new node, from whatever (epoch, seq) it speaks at: CLUSTER
    # FORGET keeps no tombstone (unlike a leave), so a node pushed to an absurd pair by a
    # bad publisher is taken back at its real one.
    publish_ok(model, heartbeat("c", 3, 2), T0 + 5 + 60_000)
    assert NodeJoined(node="c") in model.drain_events()
    assert model.publish(heartbeat("c", 3, 2), T0 + 5 + 60_001).kind == "stale"


def test_a_forgotten_pfail_node_leaves_no_trace_in_the_counts() -> None:
    model = three_masters()
    model.refresh(T0 + TIMEOUT)  # everyone pfail
    beat_all(model, T0 + TIMEOUT, 10, skip=("c",))
    assert model.node("c").state is NodeState.PFAIL  # type: ignore[union-attr]
    assert model.forget("c", T0 + TIMEOUT)
    fields = info_fields(model.cluster_info_text(T0 + TIMEOUT))
    assert (fields["cluster_slots_ok"], fields["cluster_slots_pfail"],
            fields["cluster_slots_fail"], fields["cluster_size"]) == ("10923", "0", "0", "2")


def test_silent_nodes_are_forgotten_after_forget_after() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, forget_after_ms=HOUR))
    for name in "ab":
        publish_ok(model, hello(name, 1, 1), T0)
    model.refresh(T0 + HOUR // 2)
    publish_ok(model, heartbeat("a", 1, 2), T0 + HOUR // 2)
    model.drain_events()
    model.refresh(T0 + HOUR - 1)
    assert model.node("b") is not None
    assert model.refresh(T0 + HOUR)
    assert model.node("b") is None and model.node("a") is not None
    assert NodeLeft(node="b") in model.drain_events()
    model.refresh(T0 + HOUR // 2 + HOUR)
    assert model.node("a") is None and model.node_count == 0


def test_forget_after_zero_never_forgets() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, forget_after_ms=0))
    publish_ok(model, hello("a", 1, 1), T0)
    model.refresh(T0 + 1000 * HOUR)
    assert model.node("a") is not None


def test_fail_reports_from_unknown_or_slotless_senders_never_count() -> None:
    model = three_masters()
    model.refresh(T0 + TIMEOUT)
    beat_all(model, T0 + TIMEOUT, 10, skip=("c",))
    for i in range(50):  # a forger with 50 made-up identities
        publish_ok(model, fail_report(f"forger{i}", 1, 1, "c"), T0 + TIMEOUT)
    assert model.node("c").state is NodeState.PFAIL  # type: ignore[union-attr]
    assert model.count_failure_reports("c", T0 + TIMEOUT) == 0


def test_leaves_and_tombstones_are_bounded_too() -> None:
    from tests.cluster.clusterkit import leave

    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, max_nodes=3))
    for i in range(3):
        publish_ok(model, hello(f"n{i}", 1, 1), T0)
    outcome = model.publish(leave("stranger", 1, 1), T0)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.code == "max_nodes"
    for i in range(100):  # churn: join, leave, join...
        publish_ok(model, leave(f"n{i}", 1, 2), T0)
        publish_ok(model, hello(f"n{i + 3}", 1, 1), T0)
    assert model.node_count == 3
    assert len(model._state.left) <= 3


def test_reports_about_unknown_targets_are_bounded() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, max_nodes=5))
    publish_ok(model, hello("a", 1, 1), T0)
    publish_ok(model, hello("b", 1, 1), T0)
    for seq in range(1, 200):  # 199 made-up targets
        publish_ok(model, fail_report("a", 1, 1 + seq, f"ghost{seq}"), T0)
    assert len(model._state.reports) == 5
    publish_ok(model, fail_report("a", 1, 300, "b"), T0)  # a known target always counts
    assert model.count_failure_reports("b", T0) == 0  # a serves no slots
    assert "b" in model._state.reports
