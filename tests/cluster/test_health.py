"""Zeebe / Spring / Kubernetes health (`cluster.health`), walked through published messages.

Each timeline is a table of (time, what happens, what the probes answer); time is driven by
hand through `now_ms`, so liveness windows of minutes cost nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.apierror import ApiError
from clusterwatch.cluster.health import (
    DEGRADED,
    DOWN,
    HTTP_PATHS,
    OUT_OF_SERVICE,
    UNKNOWN,
    UP,
    HealthConfig,
    HealthTracker,
    SelfCheck,
    aggregate,
    http_status,
    parse_probe,
)
from clusterwatch.server.http import refusal_code
from tests.cluster.clusterkit import T0, heartbeat, hello, leave, publish_ok, slots

TIMEOUT = 15_000
_SEQ = itertools.count(1)
ALL_UP = {
    "listening": SelfCheck(UP),
    "busFresh": SelfCheck(UP),
    "eventLoop": SelfCheck(UP),
}


def new_model() -> ClusterModel:
    return ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))


def beat(model: ClusterModel, node: str, now: int, **fields: Any) -> None:
    publish_ok(model, heartbeat(node, 1, next(_SEQ), **fields), now)


def leader_of(*ids: int, health: str = "healthy") -> list[dict[str, Any]]:
    return [{"id": i, "role": "leader", "health": health} for i in ids]


def one_master(now: int = T0, **fields: Any) -> ClusterModel:
    model = new_model()
    publish_ok(model, hello("a", 1, next(_SEQ)), now)
    publish_ok(model, slots("a", 1, next(_SEQ), (0, 16383)), now)
    beat(model, "a", now, node_state="RUNNING", **fields)
    return model


# --- statuses, aggregation, HTTP ---------------------------------------------------------------

# (statuses of the checks, aggregate): Spring's order DOWN, OUT_OF_SERVICE, UP, UNKNOWN with
# DEGRADED between OUT_OF_SERVICE and UP.
AGGREGATE_TABLE = [
    ([UP, UP], UP),
    ([UP, UNKNOWN], UP),
    ([UNKNOWN], UNKNOWN),
    ([], UNKNOWN),
    ([UP, DEGRADED], DEGRADED),
    ([DEGRADED, OUT_OF_SERVICE], OUT_OF_SERVICE),
    ([OUT_OF_SERVICE, DOWN, UP], DOWN),
    ([UNKNOWN, DEGRADED], DEGRADED),
]


@pytest.mark.parametrize(("statuses", "expected"), AGGREGATE_TABLE)
def test_aggregation_follows_springs_order(statuses: list[str], expected: str) -> None:
    assert aggregate(statuses) == expected


# (status, Zeebe probe path code, actuator path code)
HTTP_TABLE = [
    (UP, 204, 200),
    (DOWN, 503, 503),
    (OUT_OF_SERVICE, 503, 503),
    (UNKNOWN, 503, 200),
    (DEGRADED, 503, 200),
]


@pytest.mark.parametrize(("status", "zeebe", "actuator"), HTTP_TABLE)
def test_http_mapping(status: str, zeebe: int, actuator: int) -> None:
    assert http_status(status, "zeebe") == zeebe
    assert http_status(status, "actuator") == actuator


def test_http_paths_name_their_probe_and_style() -> None:
    assert HTTP_PATHS["/ready"] == ("ready", "zeebe")
    assert HTTP_PATHS["/startup"] == ("startup", "zeebe")
    assert HTTP_PATHS["/health"] == ("health", "zeebe")
    assert HTTP_PATHS["/actuator/health/liveness"] == ("live", "actuator")
    assert HTTP_PATHS["/actuator/health/startup"] == ("startup", "actuator")


def test_probe_names() -> None:
    assert [parse_probe(p) for p in ("STARTUP", b"ready", "Live", "health")] == [
        "startup",
        "ready",
        "live",
        "health",
    ]
    assert parse_probe("readiness") == "ready" and parse_probe("LIVENESS") == "live"
    with pytest.raises(ApiError) as info:
        parse_probe("alive")
    assert refusal_code(info.value) == 400


# --- READY never reverts; HEALTH can ----------------------------------------------------------

# (ms after T0, event, READY, READY HTTP on /ready, HEALTH)
NODE_TIMELINE: list[tuple[int, tuple[Any, ...], str, int, str]] = [
    (0, ("hello",), DOWN, 503, DOWN),  # known, no heartbeat yet: not started
    (1_000, ("beat", "BOOTING"), DOWN, 503, DOWN),
    (2_000, ("beat", "RUNNING"), UP, 204, UP),  # ready: latched from here on
    (3_000, ("beat", "ERROR"), UP, 204, DOWN),  # health reverts, readiness does not
    (4_000, ("beat", "RUNNING"), UP, 204, UP),
    # node_timeout: fail?, so not ready while no one reaches it (issue 24); the latch stays
    (19_000, ("silence",), DOWN, 503, DOWN),
    (20_000, ("beat", "WAITING"), UP, 204, UP),  # reachable again: the latch answers
    (21_000, ("beat", "STOPPING"), UP, 204, OUT_OF_SERVICE),
    (22_000, ("beat", "BOOTING"), DOWN, 503, DOWN),  # a restarted process: a new lifetime
    (23_000, ("beat", "RUNNING"), UP, 204, UP),
]


def test_node_ready_never_reverts_but_health_does() -> None:
    model = new_model()
    tracker = HealthTracker(model, started_ms=T0)
    for offset, event, ready, code, health in NODE_TIMELINE:
        now = T0 + offset
        if event[0] == "hello":
            publish_ok(model, hello("b", 1, next(_SEQ)), now)
        elif event[0] == "beat":
            beat(model, "b", now, node_state=event[1], partitions=leader_of(1))
        answer = tracker.evaluate(now, "ready", node="b")
        assert (offset, answer.status, answer.http_status("zeebe")) == (offset, ready, code)
        assert tracker.evaluate(now, "health", node="b").status == health, offset
    publish_ok(model, leave("b", 1, next(_SEQ)), T0 + 24_000)
    with pytest.raises(ApiError) as info:
        tracker.evaluate(T0 + 24_000, "ready", node="b")
    assert (refusal_code(info.value), info.value.message) == (404, "unknown node 'b'")
    tracker.observe(T0 + 24_000)
    assert tracker.ready_since("b") is None


def test_node_health_is_never_up_before_ready() -> None:
    model = one_master()
    tracker = HealthTracker(model, started_ms=T0)
    publish_ok(model, hello("b", 1, next(_SEQ)), T0)
    report = tracker.evaluate(T0, "health", node="b")
    assert report.status == DOWN
    components = report.to_json(verbose=True)["components"]
    assert components["readiness"]["status"] == OUT_OF_SERVICE
    assert components["started"] == {"status": DOWN, "details": {"reason": "no heartbeat yet"}}


# (ms after T0, self checks, node "a" beats?, READY, HEALTH)
CLUSTER_TIMELINE: list[tuple[int, dict[str, SelfCheck], bool, str, str]] = [
    (0, ALL_UP, False, DOWN, DOWN),  # no node known: no cluster awareness
    (
        1_000,
        {**ALL_UP, "listening": SelfCheck(OUT_OF_SERVICE, "starting")},
        True,
        OUT_OF_SERVICE,
        OUT_OF_SERVICE,
    ),
    (2_000, ALL_UP, True, UP, UP),  # ready: latched
    (3_000, {**ALL_UP, "busFresh": SelfCheck(DOWN, "redis gone")}, False, UP, DOWN),
    (18_000, {**ALL_UP, "busFresh": SelfCheck(DOWN, "redis gone")}, False, UP, DOWN),  # pfail
    (19_000, ALL_UP, True, UP, UP),
]


def test_cluster_ready_never_reverts_but_health_does() -> None:
    model = new_model()
    tracker = HealthTracker(model, started_ms=T0)
    for offset, checks, beats, ready, health in CLUSTER_TIMELINE:
        now = T0 + offset
        if beats:
            if model.node("a") is None:
                publish_ok(model, hello("a", 1, next(_SEQ)), now)
                publish_ok(model, slots("a", 1, next(_SEQ), (0, 16383)), now)
            beat(model, "a", now, node_state="RUNNING")
        answer = tracker.evaluate(now, "ready", self_checks=checks)
        assert (offset, answer.status) == (offset, ready)
        assert answer.http_status() == (204 if ready == UP else 503)
        assert tracker.evaluate(now, self_checks=checks).status == health, offset
    assert tracker.ready_since() == T0 + 2_000


def test_observe_latches_readiness_between_probes() -> None:
    model = one_master()
    tracker = HealthTracker(model, started_ms=T0)
    tracker.observe(T0, ALL_UP)  # the server's tick saw everything UP once
    assert tracker.ready_since() == T0 and tracker.ready_since("a") == T0
    later = T0 + 60_000  # the node has gone silent and the bus is stale since
    stale = {**ALL_UP, "busFresh": SelfCheck(DOWN)}
    assert tracker.evaluate(later, "ready", self_checks=stale).status == UP
    # The node is not reachable: its READY is its checks' (DOWN), its latch kept.
    assert tracker.evaluate(later, "ready", node="a").status == DOWN
    assert tracker.ready_since("a") == T0
    assert tracker.evaluate(later, "health", node="a").status == DOWN


# --- partitions: degraded -----------------------------------------------------------------------

# (node a's partitions as (id, health), all led by a; node partitions check, node HEALTH,
#  cluster partitions check, cluster HEALTH, /health code, /actuator/health code)
PARTITION_TABLE = [
    ([(1, "healthy"), (2, "healthy"), (3, "healthy")], UP, UP, UP, UP, 204, 200),
    (
        [(1, "healthy"), (2, "unhealthy"), (3, "healthy")],
        DEGRADED,
        DEGRADED,
        DEGRADED,
        DEGRADED,
        503,
        200,
    ),
    ([(1, "unhealthy"), (2, "unhealthy")], DOWN, DOWN, DOWN, DOWN, 503, 503),
    ([(1, "healthy"), (2, "dead")], DOWN, DOWN, DEGRADED, DEGRADED, 503, 200),
    ([], UNKNOWN, UP, UNKNOWN, UP, 204, 200),
]


@pytest.mark.parametrize(
    ("parts", "node_check", "node_health", "cluster_check", "cluster_health", "zeebe", "actuator"),
    PARTITION_TABLE,
)
def test_partition_health_degrades_node_and_cluster(
    parts: list[tuple[int, str]],
    node_check: str,
    node_health: str,
    cluster_check: str,
    cluster_health: str,
    zeebe: int,
    actuator: int,
) -> None:
    model = one_master(partitions=[{"id": i, "role": "leader", "health": h} for i, h in parts])
    tracker = HealthTracker(model, started_ms=T0)
    node = tracker.evaluate(T0, "health", node="a")
    assert node.to_json(verbose=True)["components"]["partitions"]["status"] == node_check
    assert node.status == node_health
    cluster = tracker.evaluate(T0, "health", self_checks=ALL_UP)
    assert cluster.to_json(verbose=True)["components"]["partitions"]["status"] == cluster_check
    assert cluster.status == cluster_health
    assert (cluster.http_status("zeebe"), cluster.http_status("actuator")) == (zeebe, actuator)


def test_cluster_partitions_follow_their_leaders_reachability() -> None:
    model = new_model()
    for i, name in enumerate("abc"):
        publish_ok(model, hello(name, 1, next(_SEQ), port=7000 + i), T0)
    spans = {"a": (0, 5460), "b": (5461, 10922), "c": (10923, 16383)}
    for name, span in spans.items():
        publish_ok(model, slots(name, 1, next(_SEQ), span), T0)
    tracker = HealthTracker(model, started_ms=T0)

    def beats(now: int, names: str) -> None:
        for lead, name in enumerate("abc", start=1):
            if name in names:
                parts = [
                    {"id": p, "role": "leader" if p == lead else "follower", "health": "healthy"}
                    for p in (1, 2, 3)
                ]
                beat(model, name, now, node_state="RUNNING", partitions=parts)

    # (ms after T0, nodes that beat, partitions, partitionLeaderAwareness, nodes)
    timeline = [
        (0, "abc", UP, UP, UP),
        (10_000, "ab", UP, UP, UP),
        (25_000, "ab", DEGRADED, UP, DEGRADED),  # c pfail: partition 3 has no reachable leader
        (39_999, "", DEGRADED, UP, DEGRADED),  # a and b were last heard at 25 s
        (40_000, "", DOWN, DOWN, DOWN),  # everyone pfail
    ]
    for offset, names, partitions, awareness, nodes in timeline:
        now = T0 + offset
        beats(now, names)
        components = tracker.evaluate(now, self_checks=ALL_UP).to_json(verbose=True)["components"]
        got = tuple(
            components[c]["status"] for c in ("partitions", "partitionLeaderAwareness", "nodes")
        )
        assert got == (partitions, awareness, nodes), offset


# --- LIVE: grace windows ------------------------------------------------------------------------

MIN = 60_000


def test_cluster_liveness_tolerates_lost_awareness_for_five_minutes() -> None:
    model = one_master(partitions=leader_of(1))
    tracker = HealthTracker(model, started_ms=T0)
    checks = {"listening": SelfCheck(UP), "eventLoop": SelfCheck(UP)}
    pfail = T0 + TIMEOUT  # the only node (and leader) stops being reachable here
    # (time, LIVE, /live code, livenessClusterAwareness)
    timeline = [
        (T0, UP, 204, UP),
        (pfail, UP, 204, UP),
        (pfail + 5 * MIN - 1, UP, 204, UP),
        (pfail + 5 * MIN, DOWN, 503, DOWN),
    ]
    for now, live, code, awareness in timeline:
        report = tracker.evaluate(now, "live", self_checks=checks)
        components = report.to_json(verbose=True)["components"]
        assert (
            report.status,
            report.http_status(),
            components["livenessClusterAwareness"]["status"],
        ) == (live, code, awareness), now - T0
    within = tracker.evaluate(pfail + MIN, "live", self_checks=checks)
    reason = within.to_json(verbose=True)["components"]["livenessClusterAwareness"]["details"]
    assert "within the 300 s grace window" in reason["reason"]
    # Back: UP at once, and the window starts over from the next loss.
    beat(model, "a", pfail + 6 * MIN, node_state="RUNNING", partitions=leader_of(1))
    assert tracker.evaluate(pfail + 6 * MIN, "live", self_checks=checks).status == UP


def test_responsive_window_is_ten_minutes_and_windows_are_configurable() -> None:
    model = one_master(partitions=leader_of(1))
    stuck = {"listening": SelfCheck(UP), "eventLoop": SelfCheck(DOWN, "lag 3 s", last_up_ms=T0)}
    only_loop = ("livenessClusterAwareness", "livenessPartitionLeaderAwareness")
    tracker = HealthTracker(model, started_ms=T0)

    def live(now: int, t: HealthTracker = tracker) -> str:
        return t.evaluate(now, "live", self_checks=stuck, exclude=only_loop).status

    assert live(T0 + 10 * MIN - 1) == UP
    assert live(T0 + 10 * MIN) == DOWN
    short = HealthTracker(
        model, started_ms=T0, config=HealthConfig(responsive_grace_ms=MIN, awareness_grace_ms=MIN)
    )
    assert live(T0 + MIN - 1, short) == UP
    assert live(T0 + MIN, short) == DOWN
    assert short.evaluate(T0 + TIMEOUT + MIN, "live", self_checks=ALL_UP).status == DOWN
    assert short.evaluate(T0 + TIMEOUT + MIN - 1, "live", self_checks=ALL_UP).status == UP


def test_node_liveness_tolerates_ten_minutes_of_silence() -> None:
    model = one_master()
    tracker = HealthTracker(model, started_ms=T0)
    pfail = T0 + TIMEOUT
    assert tracker.evaluate(pfail, "live", node="a").status == UP
    assert tracker.evaluate(pfail, "health", node="a").status == DOWN
    assert tracker.evaluate(pfail + 10 * MIN - 1, "live", node="a").status == UP
    late = tracker.evaluate(pfail + 10 * MIN, "live", node="a")
    assert (late.status, late.http_status("actuator")) == (DOWN, 503)


def test_a_cluster_never_seen_gets_its_grace_from_the_trackers_start() -> None:
    tracker = HealthTracker(new_model(), started_ms=T0)
    assert tracker.evaluate(T0 + 5 * MIN - 1, "live", self_checks=ALL_UP).status == UP
    assert tracker.evaluate(T0 + 5 * MIN, "live", self_checks=ALL_UP).status == DOWN


# --- STARTUP, VERBOSE, EXCLUDE, errors -----------------------------------------------------------


def test_startup_is_the_listening_check_for_the_cluster() -> None:
    tracker = HealthTracker(new_model(), started_ms=T0)
    starting = {"listening": SelfCheck(DOWN, "binding port")}
    assert tracker.evaluate(T0, "startup", self_checks=starting).http_status() == 503
    assert tracker.evaluate(T0, "startup", self_checks=ALL_UP).http_status() == 204
    assert tracker.evaluate(T0, "startup").status == UNKNOWN  # no checks at all


def test_verbose_is_springs_document() -> None:
    model = one_master(partitions=leader_of(1, 2))
    report = HealthTracker(model, started_ms=T0).evaluate(T0, "startup", node="a")
    assert report.to_json() == {"status": UP}
    assert report.to_json(verbose=True) == {
        "status": UP,
        "components": {
            "reachable": {"status": UP, "details": {"reason": f"last message {T0}"}},
            "started": {"status": UP, "details": {"reason": "heartbeat received"}},
        },
    }
    health = HealthTracker(model, started_ms=T0).evaluate(T0, self_checks=ALL_UP)
    assert list(health.to_json(verbose=True)["components"]) == [
        "readiness",
        "listening",
        "busFresh",
        "eventLoop",
        "clusterAwareness",
        "partitionLeaderAwareness",
        "partitions",
        "clusterState",
        "nodes",
    ]


def test_exclude_leaves_checks_out_and_unknown_names_are_errors() -> None:
    model = one_master(partitions=leader_of(1, health="unhealthy"))
    tracker = HealthTracker(model, started_ms=T0)
    assert tracker.evaluate(T0, self_checks=ALL_UP).status == DOWN
    kept = tracker.evaluate(T0, self_checks=ALL_UP, exclude=["partitions"])
    assert kept.status == UP and kept.excluded == ("partitions",)
    assert "partitions" not in kept.to_json(verbose=True)["components"]
    assert tracker.evaluate(T0, node="a", exclude=[b"partitions"]).status == UP
    with pytest.raises(ApiError) as info:
        tracker.evaluate(T0, "ready", self_checks=ALL_UP, exclude=["etcd"])
    assert refusal_code(info.value) == 400
    assert info.value.message.startswith("unknown check 'etcd' for HEALTH READY")
    with pytest.raises(ApiError):
        tracker.evaluate(T0, "startup", node="a", exclude=["partitions"])
    with pytest.raises(ApiError):
        tracker.evaluate(T0, "live", exclude=["readiness"])
    latched = tracker.evaluate(T0, "ready", self_checks=ALL_UP, exclude=["readiness"])
    assert latched.status == UP  # a latched READY ignores exclusions


def test_unknown_node_and_bad_self_check() -> None:
    tracker = HealthTracker(new_model(), started_ms=T0)
    with pytest.raises(ApiError) as info:
        tracker.evaluate(T0, node="ghost")
    assert (refusal_code(info.value), info.value.kind) == (404, "node-not-found")
    with pytest.raises(ValueError, match="unknown health status"):
        SelfCheck("GREEN")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HealthConfig(awareness_grace_ms=-1)


def test_check_names_are_what_exclude_accepts() -> None:
    tracker = HealthTracker(new_model(), started_ms=T0)
    assert tracker.check_names("ready", self_checks=ALL_UP) == (
        "listening",
        "busFresh",
        "clusterAwareness",
    )
    assert tracker.check_names("live", node=True) == ("livenessReachable",)
    assert "livenessResponsive" in tracker.check_names("live", self_checks=ALL_UP)
    assert "livenessResponsive" not in tracker.check_names("live")


def test_reports_are_cached_until_the_model_or_a_deadline_moves() -> None:
    model = one_master(partitions=leader_of(1))
    tracker = HealthTracker(model, started_ms=T0)
    first = tracker.evaluate(T0, "health", self_checks=ALL_UP)
    assert tracker.evaluate(T0 + 1, "health", self_checks=dict(ALL_UP)) is first
    ready = tracker.evaluate(T0, "ready", self_checks=ALL_UP)
    assert tracker.evaluate(T0 + 5, "ready", self_checks=ALL_UP) is ready
    changed = tracker.evaluate(
        T0 + 2, "health", self_checks={**ALL_UP, "eventLoop": SelfCheck(DOWN)}
    )
    assert changed is not first and changed.status == DOWN
    beat(model, "a", T0 + 3, node_state="RUNNING", partitions=leader_of(1))
    assert tracker.evaluate(T0 + 3, "health", self_checks=ALL_UP) is not first


def test_liveness_without_partitions_is_not_an_outage() -> None:
    model = one_master()  # no partitions reported: leader awareness has nothing to judge
    tracker = HealthTracker(model, started_ms=T0)
    late = T0 + 20 * MIN
    beat(model, "a", late, node_state="RUNNING")
    report = tracker.evaluate(late, "live", self_checks=ALL_UP)
    leader = report.to_json(verbose=True)["components"]["livenessPartitionLeaderAwareness"]
    assert report.status == UP and leader["status"] == UNKNOWN
