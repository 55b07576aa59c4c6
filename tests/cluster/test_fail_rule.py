"""The failure rule (ModelConfig.fail_rule): Redis's majority of masters' reports, the timer
for nodes that send no reports, and `auto`, which is the timer until a first report."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import ClusterModel, ModelConfig, NodeState
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    fail_report,
    heartbeat,
    info_fields,
    nodes_lines,
    publish_ok,
    three_masters,
)

VALIDITY = 2 * TIMEOUT
LONG_AFTER = T0 + 100 * TIMEOUT


def model_with(rule: str) -> ClusterModel:
    return three_masters(config=ModelConfig(node_timeout_ms=TIMEOUT, fail_rule=rule))  # type: ignore[arg-type]


def keep_a_alive(model: ClusterModel, until: int, *, reports: tuple[str, ...] = ()) -> None:
    """Only master a speaks, every half timeout, reporting ``reports`` as failing."""
    seq = 100
    for t in range(T0 + TIMEOUT // 2, until, TIMEOUT // 2):
        seq += 1
        publish_ok(model, heartbeat("a", 1, seq), t)
        for target in reports:
            seq += 1
            publish_ok(model, fail_report("a", 1, seq, target), t)


def states(model: ClusterModel, now: int) -> dict[str, NodeState]:
    model.refresh(now)
    return {node.id: node.state for node in model.nodes()}


@pytest.mark.parametrize("rule", ["redis", "auto"])
def test_a_lost_majority_keeps_its_masters_pfail_forever(rule: str) -> None:
    """Two of three masters gone: the survivor's reports are a minority, so, as in a real
    Redis Cluster, they stay `fail?` and their slots pfail, not fail."""
    model = model_with(rule)
    keep_a_alive(model, LONG_AFTER, reports=("b", "c"))
    assert states(model, LONG_AFTER) == {"a": NodeState.OK, "b": NodeState.PFAIL,
                                         "c": NodeState.PFAIL}
    fields = info_fields(model.cluster_info_text(LONG_AFTER))
    assert (fields["cluster_state"], fields["cluster_slots_pfail"],
            fields["cluster_slots_fail"]) == ("fail", "10923", "0")
    assert nodes_lines(model.cluster_nodes_text(LONG_AFTER))["b"][2] == "master,fail?"
    assert model.fail_rule == "redis"


def test_the_timer_rule_fails_them_after_fail_after() -> None:
    model = model_with("timer")
    keep_a_alive(model, LONG_AFTER, reports=("b", "c"))
    assert states(model, LONG_AFTER)["b"] is NodeState.FAIL
    fields = info_fields(model.cluster_info_text(LONG_AFTER))
    assert (fields["cluster_slots_pfail"], fields["cluster_slots_fail"]) == ("0", "10923")
    assert model.fail_rule == "timer"


def test_auto_is_the_timer_until_a_first_report() -> None:
    model = model_with("auto")
    keep_a_alive(model, LONG_AFTER)
    assert model.fail_rule == "timer"
    assert states(model, LONG_AFTER)["b"] is NodeState.FAIL


def test_redis_rule_a_majority_within_the_window_fails_the_node() -> None:
    model = model_with("redis")
    t = T0 + TIMEOUT
    publish_ok(model, heartbeat("a", 1, 10), t - 1)
    publish_ok(model, heartbeat("b", 2, 10), t - 1)
    assert states(model, t)["c"] is NodeState.PFAIL
    publish_ok(model, fail_report("a", 1, 11, "c"), t + 5)
    assert states(model, t + 5)["c"] is NodeState.PFAIL  # one of three: a minority
    publish_ok(model, fail_report("b", 2, 11, "c"), t + VALIDITY - 1)
    assert states(model, t + VALIDITY - 1)["c"] is NodeState.FAIL


def test_redis_rule_reports_older_than_the_window_do_not_count() -> None:
    model = model_with("redis")
    t = T0 + TIMEOUT
    publish_ok(model, heartbeat("a", 1, 10), t - 1)
    publish_ok(model, heartbeat("b", 2, 10), t - 1)
    publish_ok(model, fail_report("a", 1, 11, "c"), t)
    publish_ok(model, heartbeat("a", 1, 12), t + VALIDITY)
    publish_ok(model, fail_report("b", 2, 11, "c"), t + VALIDITY + 1)  # a's has expired
    assert states(model, t + VALIDITY + 1)["c"] is NodeState.PFAIL
    assert model.count_failure_reports("c", t + VALIDITY + 1) == 1


@settings(max_examples=200, deadline=None)
@given(reports=st.lists(st.tuples(st.integers(0, 40 * TIMEOUT), st.sampled_from("ab")),
                        max_size=30),
       checks=st.lists(st.integers(0, 200 * TIMEOUT), min_size=1, max_size=10))
def test_redis_rule_a_minority_never_makes_fail(reports: list[tuple[int, str]],
                                                checks: list[int]) -> None:
    """Masters a and b speak and report; c is silent. Only one of them ever reports c (at
    any times): one of three masters is never a majority, at any check time."""
    model = model_with("redis")
    reporter = reports[0][1] if reports else "a"
    events = sorted([(t, "beat") for t in range(0, 200 * TIMEOUT, TIMEOUT // 2)]
                    + [(t, "report") for t, _ in reports]
                    + [(t, "check") for t in checks])
    seq = 100
    for offset, kind in events:
        now = T0 + offset
        seq += 1
        if kind == "beat":
            publish_ok(model, heartbeat("a", 1, seq), now)
            publish_ok(model, heartbeat("b", 2, seq), now)
        elif kind == "report":
            publish_ok(model, fail_report(reporter, 1 if reporter == "a" else 2, seq, "c"), now)
        else:
            assert states(model, now)["c"] is not NodeState.FAIL
