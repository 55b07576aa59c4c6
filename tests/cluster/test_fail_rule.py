"""Rule 5's fail rule (`--fail-rule`): Redis's report majority, the timer, and `auto`.

The clock is injected: every publish and refresh is given its receive time.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import NUM_SLOTS, ClusterModel, ModelConfig, NodeState
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    beat_all,
    fail_report,
    hello,
    info_fields,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
)

VALIDITY = 2 * TIMEOUT
FAIL_AFTER = 2 * TIMEOUT
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def masters(n: int, rule: str) -> ClusterModel:
    """Masters m0..m{n-1} at epochs 1..n, each serving an equal share of the slots."""
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT, fail_rule=rule))
    share = NUM_SLOTS // n
    for i in range(n):
        end = NUM_SLOTS - 1 if i == n - 1 else (i + 1) * share - 1
        publish_ok(model, hello(f"m{i}", i + 1, 1, port=7000 + i), T0)
        publish_ok(model, slots(f"m{i}", i + 1, 2, (i * share, end)), T0)
    return model


def state_of(model: ClusterModel, node: str) -> NodeState:
    info = model.node(node)
    assert info is not None
    return info.state


def report(model: ClusterModel, reporter: str, seq: int, target: str, now: int) -> None:
    info = model.node(reporter)
    assert info is not None
    publish_ok(model, fail_report(reporter, info.config_epoch, seq, target), now)


def test_redis_rule_a_minority_of_reporters_never_makes_fail() -> None:
    model = masters(5, "redis")
    pfail_at = T0 + TIMEOUT
    for step in range(1, 100):  # 99 node timeouts: far past any timer
        t = T0 + step * TIMEOUT // 2
        beat_all(model, t, 10 * step, skip=("m4",))
        if t >= pfail_at:
            report(model, "m0", 10 * step + 1, "m4", t)
            report(model, "m1", 10 * step + 1, "m4", t)
        model.refresh(t)
        assert state_of(model, "m4") is (NodeState.PFAIL if t >= pfail_at else NodeState.OK)
    assert model.fail_rule == "redis"


def test_redis_rule_a_majority_within_the_window_makes_fail_at_the_last_report() -> None:
    model = masters(5, "redis")
    t = T0 + TIMEOUT
    model.refresh(t)
    assert state_of(model, "m4") is NodeState.PFAIL
    report(model, "m0", 10, "m4", t)
    report(model, "m1", 10, "m4", t + VALIDITY // 2)
    assert state_of(model, "m4") is NodeState.PFAIL
    report(model, "m2", 10, "m4", t + VALIDITY - 1)  # m0's report is still valid
    assert state_of(model, "m4") is NodeState.FAIL
    assert model.count_failure_reports("m4", t + VALIDITY - 1) == 3


def test_redis_rule_reports_older_than_the_window_do_not_count() -> None:
    model = masters(5, "redis")
    t = T0 + TIMEOUT
    report(model, "m0", 10, "m4", t)
    report(model, "m1", 10, "m4", t)
    report(model, "m2", 10, "m4", t + VALIDITY + 1)  # m0's and m1's expired a ms ago
    model.refresh(t + VALIDITY + 1)
    assert state_of(model, "m4") is NodeState.PFAIL
    assert model.count_failure_reports("m4", t + VALIDITY + 1) == 1
    model.refresh(t + 100 * TIMEOUT)
    assert state_of(model, "m4") is NodeState.PFAIL


def test_redis_rule_reports_before_pfail_count_when_the_node_goes_pfail() -> None:
    model = masters(3, "redis")
    report(model, "m0", 10, "m2", T0 + 1)
    report(model, "m1", 10, "m2", T0 + 2)
    model.refresh(T0 + TIMEOUT)
    assert state_of(model, "m2") is NodeState.FAIL


def test_redis_rule_reports_from_replicas_and_unknown_nodes_do_not_count() -> None:
    model = masters(3, "redis")
    publish_ok(model, hello("r0", 1, 1, role="replica", replicaof="m0"), T0)
    model.refresh(T0 + TIMEOUT)
    publish_ok(model, fail_report("r0", 1, 2, "m2"), T0 + TIMEOUT)
    publish_ok(model, fail_report("ghost", 1, 1, "m2"), T0 + TIMEOUT)
    report(model, "m0", 10, "m2", T0 + TIMEOUT)
    assert state_of(model, "m2") is NodeState.PFAIL
    report(model, "m1", 10, "m2", T0 + TIMEOUT + 1)
    assert state_of(model, "m2") is NodeState.FAIL


def test_two_of_three_masters_lost_stay_pfail_as_in_redis() -> None:
    """Issue 12: the survivor's reports alone are no majority; Redis keeps them `fail?`."""
    model = three_masters(replicas=True, config=ModelConfig(node_timeout_ms=TIMEOUT,
                                                            fail_rule="redis"))
    lost = ("b", "c", "rb", "rc")
    for step in range(1, 40):
        t = T0 + step * 1000
        beat_all(model, t, 10 * step, skip=lost)
        if t >= T0 + TIMEOUT:
            for seq, target in enumerate(lost, start=1):
                report(model, "a", 10 * step + seq, target, t)
    fields = info_fields(model.cluster_info_text(t))
    assert fields["cluster_state"] == "fail"
    assert (fields["cluster_slots_ok"], fields["cluster_slots_pfail"],
            fields["cluster_slots_fail"]) == ("5461", "10923", "0")
    lines = nodes_lines(model.cluster_nodes_text(t))
    assert lines["b"][2] == "master,fail?" and lines["rc"][2] == "slave,fail?"


def test_timer_rule_still_fails_a_silent_node_without_a_majority() -> None:
    model = masters(5, "timer")
    t = T0 + TIMEOUT
    model.refresh(t)
    report(model, "m0", 10, "m4", t)
    assert model.fail_rule == "timer"
    model.refresh(t + FAIL_AFTER - 1)
    assert state_of(model, "m4") is NodeState.PFAIL
    model.refresh(t + FAIL_AFTER)
    assert state_of(model, "m4") is NodeState.FAIL


def test_timer_rule_a_majority_is_still_faster() -> None:
    model = masters(3, "timer")
    model.refresh(T0 + TIMEOUT)
    report(model, "m0", 10, "m2", T0 + TIMEOUT)
    report(model, "m1", 10, "m2", T0 + TIMEOUT + 5)
    assert state_of(model, "m2") is NodeState.FAIL


def test_auto_is_the_timer_until_the_first_fail_report_then_redis() -> None:
    assert ModelConfig().fail_rule == "auto"
    model = masters(5, "auto")
    assert (model.fail_rule, model.fail_rule_setting) == ("timer", "auto")
    model.refresh(T0 + TIMEOUT + FAIL_AFTER)
    assert state_of(model, "m4") is NodeState.FAIL  # no reports ever: the timer
    beat_all(model, T0 + TIMEOUT + FAIL_AFTER, 50)  # everyone back
    report(model, "m0", 60, "m3", T0 + TIMEOUT + FAIL_AFTER)
    assert model.fail_rule == "redis"
    t = T0 + 2 * TIMEOUT + FAIL_AFTER
    model.refresh(t)
    assert state_of(model, "m4") is NodeState.PFAIL
    model.refresh(t + 100 * TIMEOUT)
    assert state_of(model, "m4") is NodeState.PFAIL  # the timer no longer fails it


def test_fail_rule_must_be_known() -> None:
    try:
        ModelConfig(fail_rule="sometimes")
    except ValueError as exc:
        assert "fail_rule" in str(exc)
    else:
        raise AssertionError("accepted")


@FAST
@given(
    n=st.integers(3, 7),
    data=st.data(),
)
def test_property_redis_rule_fail_iff_a_valid_majority_at_some_report(
    n: int, data: st.DataObject
) -> None:
    """Oracle: the target turns fail exactly when, at some report's time, the masters whose
    latest report is at most VALIDITY old are a majority of the n masters."""
    model = masters(n, "redis")
    target = f"m{n - 1}"
    reporters = [f"m{i}" for i in range(n - 1)]
    pfail_at = T0 + TIMEOUT
    offsets = data.draw(st.lists(st.tuples(st.sampled_from(reporters),
                                           st.integers(0, 3 * VALIDITY)),
                                 max_size=12), label="reports")
    offsets.sort(key=lambda pair: pair[1])
    model.refresh(pfail_at)
    latest: dict[str, int] = {}
    expect_fail = False
    for seq, (reporter, offset) in enumerate(offsets, start=10):
        t = pfail_at + offset
        report(model, reporter, seq, target, t)
        latest[reporter] = t
        valid = sum(1 for at in latest.values() if at >= t - VALIDITY)
        expect_fail = expect_fail or valid >= n // 2 + 1
        assert state_of(model, target) is (NodeState.FAIL if expect_fail else NodeState.PFAIL)
    model.refresh(pfail_at + 10 * VALIDITY)
    assert state_of(model, target) is (NodeState.FAIL if expect_fail else NodeState.PFAIL)


@FAST
@given(n=st.integers(3, 7), data=st.data())
def test_property_a_minority_never_fails_whatever_the_timing(n: int, data: st.DataObject) -> None:
    model = masters(n, "redis")
    target = f"m{n - 1}"
    minority = [f"m{i}" for i in range((n // 2 + 1) - 1)]
    times = sorted(data.draw(st.lists(st.integers(0, 20 * VALIDITY), max_size=15)))
    for seq, offset in enumerate(times, start=10):
        t = T0 + offset
        reporter = minority[seq % len(minority)]
        report(model, reporter, seq, target, t)
        model.refresh(t)
        assert state_of(model, target) is not NodeState.FAIL
    model.refresh(T0 + 40 * VALIDITY)
    assert state_of(model, target) is NodeState.PFAIL
