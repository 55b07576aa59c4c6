"""HEALTH EXPLAIN's evidence (cluster/explain.py), with explicit times.

Three masters a, b, c with replicas ra, rb, rc, node timeout 15 s: a report is valid 30 s.
"""

from __future__ import annotations

from typing import Any

from clusterwatch.cluster import ClusterModel, ModelConfig
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    Timeline,
    heartbeat,
    hello,
    publish_ok,
    slots,
    three_masters,
)

ALL = ("a", "b", "c", "ra", "rb", "rc")


class Run(Timeline):
    def __init__(self, rule: str = "auto") -> None:
        super().__init__(ModelConfig(node_timeout_ms=TIMEOUT, fail_rule=rule))

    def node(self, node: str, now: int) -> dict[str, Any]:
        doc = self.model.explain_node(node, now)
        assert doc is not None
        return doc


def test_a_node_heard_from_is_ok_by_the_silence_rule_and_says_when_it_would_not_be() -> None:
    run = Run()
    run.beat(T0, *ALL, failing=[])
    doc = run.node("a", T0 + 4_000)
    assert doc["state"] == "ok"
    assert doc["decided_by"] == "heard"
    assert doc["last_message"] == {"at_ms": T0, "age_ms": 4_000}
    assert doc["quorum"] == {"masters": 3, "needed": 2, "reporters_counted": 0,
                             "sentinel": "#quorum 0/2"}
    assert doc["fail_rule"] == "redis" and doc["fail_rule_setting"] == "auto"
    assert doc["replicas"] == [{"node": "ra", "state": "ok"}]
    assert doc["would_change"][0] == "no message for 11000 ms more makes it fail?"
    assert doc["would_change"][1].startswith("2 more slot-serving masters reporting it")


def test_a_silent_node_is_fail_by_the_quorum_naming_each_reporter_with_its_age() -> None:
    run = Run()
    run.beat(T0, *ALL, failing=[])
    run.beat(T0 + 16_000, "b", "ra", "rb", "rc", failing=["a"])
    run.report(T0 + 17_000, "c", "a")
    run.report(T0 + 17_500, "rb", "a")  # a replica's word does not count
    doc = run.node("a", T0 + 20_000)
    assert doc["state"] == "fail"
    assert doc["decided_by"] == "quorum"
    assert doc["fail_since_ms"] == T0 + 17_000
    assert doc["quorum"]["sentinel"] == "#quorum 2/2"
    by = {(r["reporter"], r["source"]): r for r in doc["reports"]}
    assert set(by) == {("b", "failing"), ("c", "fail_report"), ("ra", "failing"),
                       ("rb", "failing"), ("rc", "failing"), ("rb", "fail_report")}
    assert by[("b", "failing")]["counts"] is True
    assert by[("b", "failing")]["age_ms"] == 4_000
    assert by[("b", "failing")]["expires_in_ms"] == 2 * TIMEOUT - 4_000 + 1
    assert by[("c", "fail_report")]["age_ms"] == 3_000
    assert by[("rb", "fail_report")] | {"at_ms": 0} == {
        "reporter": "rb", "source": "fail_report", "at_ms": 0, "age_ms": 2_500,
        "expires_in_ms": 2 * TIMEOUT - 2_500 + 1, "counts": False,
        "why": "not a slot-serving master"}
    assert doc["reports_total"] == 6
    assert any("undo time" in text for text in doc["would_change"])


def test_a_minority_reporter_reported_by_a_quorum_is_named_and_not_counted() -> None:
    run = Run()
    run.beat(T0, *ALL, failing=[])
    # c is cut off: a and b list it, it lists them both.
    run.beat(T0 + 1_000, "a", "b", failing=["c"])
    run.beat(T0 + 1_000, "c", failing=["a", "b"])
    doc = run.node("a", T0 + 2_000)
    assert doc["state"] == "ok"
    (row,) = doc["reports"]
    assert row["reporter"] == "c" and row["counts"] is False
    assert "itself reported by 2 masters" in row["why"]
    assert run.node("c", T0 + 2_000)["decided_by"] == "quorum"


def test_fail_outlives_its_quorum_and_the_explanation_says_so() -> None:
    run = Run()
    run.beat(T0, *ALL, failing=[])
    run.beat(T0 + 16_000, "b", "c", failing=["a"])
    assert run.node("a", T0 + 16_000)["state"] == "fail"
    run.beat(T0 + 17_000, "b", "c", failing=[])  # withdrawn
    doc = run.node("a", T0 + 18_000)
    assert doc["state"] == "fail" and doc["decided_by"] == "history"
    assert doc["quorum"]["reporters_counted"] == 0


def test_timer_rule_fail_and_pfail_with_the_time_left() -> None:
    run = Run(rule="timer")
    run.beat(T0, *ALL)
    doc = run.node("a", T0 + 20_000)
    assert (doc["state"], doc["decided_by"]) == ("fail?", "silence")
    assert doc["pfail_since_ms"] == T0 + TIMEOUT
    assert doc["would_change"][1] == ("silence for 25000 ms more makes it fail (timer rule, "
                                      "fail after 30000 ms)")
    doc = run.node("a", T0 + TIMEOUT + 2 * TIMEOUT)
    assert (doc["state"], doc["decided_by"], doc["fail_rule"]) == ("fail", "timer", "timer")


def test_unknown_node_is_none() -> None:
    assert three_masters().explain_node("zz", T0) is None


def test_cluster_explain_names_the_fail_master_and_the_majority() -> None:
    run = Run()
    run.beat(T0, *ALL, failing=[])
    doc = run.model.explain_cluster(T0 + 1_000)
    assert doc["cluster_state"] == "ok"
    assert doc["majority"] == {"ok": True, "masters": 3, "needed": 2, "reachable": 3,
                               "unreachable": [], "unreachable_total": 0}
    run.beat(T0 + 16_000, "b", "c", failing=["a"])
    doc = run.model.explain_cluster(T0 + 16_000)
    assert doc["cluster_state"] == "fail"
    assert doc["coverage"]["ok"] is False and doc["coverage"]["slots_fail"] == 5461
    assert doc["coverage"]["fail_masters"] == [{
        "node": "a", "state": "fail", "slots": 5461,
        "last_message": {"at_ms": T0, "age_ms": 16_000}}]
    assert "5461 slots are served by fail masters" in doc["symptom"]
    assert doc["majority"]["reachable"] == 2 and doc["majority"]["ok"] is True


def test_cluster_explain_without_a_majority() -> None:
    run = Run(rule="timer")
    run.beat(T0, *ALL)
    run.beat(T0 + 16_000, "a", "ra", "rb", "rc")
    doc = run.model.explain_cluster(T0 + 16_000)
    assert doc["majority"]["ok"] is False
    assert [m["node"] for m in doc["majority"]["unreachable"]] == ["b", "c"]
    assert doc["symptom"].startswith("1 of 3 slot-serving masters reachable")


def test_explain_lists_are_capped_with_their_totals() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, fail_rule="redis"))
    for i in range(100):
        publish_ok(model, hello(f"m{i:03}", 1, 1, port=7000 + i), T0)
        publish_ok(model, slots(f"m{i:03}", 1, 2, (i * 100, i * 100 + 99)), T0)
    for i in range(1, 100):
        publish_ok(model, heartbeat(f"m{i:03}", 1, 3, failing=["m000"]), T0 + 1)
    doc = model.explain_node("m000", T0 + 2)
    assert doc is not None
    assert len(doc["reports"]) == 32 and doc["reports_total"] == 99
    assert doc["quorum"]["reporters_counted"] == 99
    cluster = model.explain_cluster(T0 + 20_000)
    assert len(cluster["majority"]["unreachable"]) == 32
    assert cluster["majority"]["unreachable_total"] == 100
