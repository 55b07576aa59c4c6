"""Puppet's status service (`cluster.services`), walked point by point through published heartbeats.

Every model is fed with `ClusterModel.publish()` and an explicit `now_ms`; the expected values
come from trapperkeeper-status's query-api.md and status_core.clj (see the module header).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.apierror import ApiError
from clusterwatch.cluster.services import (
    ServiceStatusView,
    parse_level,
    parse_status_version,
    parse_timeout,
    summarize_states,
)
from clusterwatch.server.http import refusal_code
from tests.cluster.clusterkit import T0, heartbeat, leave, publish_ok

_SEQ = itertools.count(1)


def beat(model: ClusterModel, node: str, now: int, **fields: Any) -> None:
    publish_ok(model, heartbeat(node, 1, next(_SEQ), **fields), now)


def model_with(services_by_node: dict[str, dict[str, Any]], now: int = T0,
               node_timeout_ms: int = 600_000) -> ClusterModel:
    """A model whose node timeout (by default) outlasts Puppet's status timeouts, so these
    tests see the timeouts; a node the model holds `fail?` is unknown at once (below)."""
    model = ClusterModel(ModelConfig(node_timeout_ms=node_timeout_ms))
    for node, services in services_by_node.items():
        beat(model, node, now, services=services)
    return model


def running(**extra: Any) -> dict[str, Any]:
    return {"version": "1.0", "state": "running", **extra}


# --- STATUS SIMPLE: Puppet's aggregate table -------------------------------------------------

# (states of the services, one per node, answered state, HTTP code) - the rows of query-api.md
# "GET /status/v1/simple" and of status_service_test.clj's simple-routes-test.
AGGREGATE_TABLE = [
    (["running", "running"], "running", 200),  # running iff all running: 200
    (["running", "error"], "error", 503),  # error if any error
    (["running", "unknown", "error"], "error", 503),  # error beats unknown
    (["running", "running", "starting", "stopping"], "stopping", 503),  # stopping beats starting
    (["running", "unknown", "starting", "stopping"], "unknown", 503),  # unknown beats both
    (["running", "starting"], "starting", 503),
    (["stopping"], "stopping", 503),
    (["unknown", "running"], "unknown", 503),
    (["error", "stopping", "starting", "unknown", "running"], "error", 503),
    ([], "unknown", 200),  # no services: summarize gives unknown, `every?` of nothing is 200
]


@pytest.mark.parametrize(("states", "state", "code"), AGGREGATE_TABLE)
def test_simple_follows_puppets_aggregate_table(states: list[str], state: str, code: int) -> None:
    model = model_with({f"n{i}": {"svc": {"state": s}} for i, s in enumerate(states)})
    answer = ServiceStatusView(model).simple(T0)
    assert (answer.state, answer.http_status, answer.body) == (state, code, state)
    assert answer.ok is (code == 200)
    assert answer.services == len(states)
    assert summarize_states(states) == state


# status_service_test.clj "for a single service": 200 only when running, 503 otherwise.
@pytest.mark.parametrize(
    ("state", "code"),
    [("running", 200), ("unknown", 503), ("error", 503), ("starting", 503), ("stopping", 503)],
)
def test_simple_for_one_service_instance(state: str, code: int) -> None:
    model = model_with({"n1": {"foo": {"state": state}, "other": {"state": "error"}}})
    answer = ServiceStatusView(model).simple(T0, "n1/foo")
    assert (answer.state, answer.http_status, answer.services) == (state, code, 1)


def test_simple_for_an_unknown_service_is_404_not_found() -> None:
    model = model_with({"n1": {"foo": running()}})
    with pytest.raises(ApiError) as info:
        ServiceStatusView(model).simple(T0, "kafka")
    assert (info.value.message, refusal_code(info.value)) == ("not found: kafka", 404)
    assert info.value.to_json() == {
        "kind": "service-not-found",
        "msg": "No status information found for service kafka",
    }


def test_simple_by_bare_service_name_summarizes_its_instances_on_every_node() -> None:
    model = model_with(
        {
            "a": {"db": running(), "web": {"state": "error"}},
            "b": {"db": {"state": "starting"}},
            "c": {"db": running()},
        }
    )
    view = ServiceStatusView(model)
    answer = view.simple(T0, "db")
    assert (answer.state, answer.http_status, answer.services) == ("starting", 503, 3)
    assert view.simple(T0, "a/db").http_status == 200
    assert view.simple(T0).state == "error"


def test_simple_uses_the_critical_timeout_of_30_seconds() -> None:
    model = model_with({"n1": {"foo": running()}})
    view = ServiceStatusView(model)
    assert view.simple(T0 + 30_000).state == "running"  # exactly 30 s old: not older
    stale = view.simple(T0 + 30_001)
    assert (stale.state, stale.http_status) == ("unknown", 503)
    assert view.simple(T0 + 30_001, timeout_s=60).state == "running"
    beat(model, "n1", T0 + 40_000, services={"foo": running()})
    assert view.simple(T0 + 40_000).state == "running"


# --- STATUS SERVICES / SERVICE ------------------------------------------------------------------

LEVELLED = {
    "version": "2.3.1",
    "state": "running",
    "status": {"critical": {"up": True}, "info": {"conns": 3}, "debug": {"pool": [1, 2]}},
    "alerts": [{"severity": "warning", "message": "replication lag"}],
}


@pytest.mark.parametrize(
    ("level", "status"),
    [
        ("critical", {"up": True}),
        ("info", {"up": True, "conns": 3}),
        ("debug", {"up": True, "conns": 3, "pool": [1, 2]}),
        ("DEBUG", {"up": True, "conns": 3, "pool": [1, 2]}),
    ],
)
def test_levels_are_additive(level: str, status: dict[str, Any]) -> None:
    model = model_with({"n1": {"db": LEVELLED}})
    report = ServiceStatusView(model).services(T0, level=level)
    entry = report.to_json()["n1/db"]
    assert entry["status"] == status
    assert entry["detail_level"] == level.lower()


def test_default_level_is_info_and_the_entry_is_puppets() -> None:
    model = model_with({"n1": {"db": LEVELLED}, "n2": {"cache": running()}})
    report = ServiceStatusView(model).services(T0)
    doc = report.to_json()
    assert list(doc) == ["n1/db", "n2/cache"]
    assert list(doc["n1/db"]) == [
        "service_version",
        "service_status_version",
        "detail_level",
        "state",
        "status",
        "active_alerts",
    ]
    assert doc["n1/db"] == {
        "service_version": "2.3.1",
        "service_status_version": 1,
        "detail_level": "info",
        "state": "running",
        "status": {"up": True, "conns": 3},
        "active_alerts": [{"severity": "warning", "message": "replication lag"}],
    }
    # Puppet's critical example: a service with no status data at that level reports null.
    assert doc["n2/cache"]["status"] is None
    assert report.http_status == 200
    json.dumps(doc)  # plain JSON data


def test_levels_merge_objects_and_replace_non_objects() -> None:
    svc = {"state": "running", "status": {"critical": None, "info": "text", "debug": {"k": 1}}}
    model = model_with({"n1": {"s": svc}})
    view = ServiceStatusView(model)
    assert view.service("s", T0, level="critical").status is None
    assert view.service("s", T0, level="info").status == "text"
    assert view.service("s", T0, level="debug").status == {"k": 1}


def test_merging_levels_never_mutates_the_heartbeat() -> None:
    model = model_with({"n1": {"db": LEVELLED}})
    ServiceStatusView(model).services(T0, level="debug")
    info = model.node("n1")
    assert info is not None and info.heartbeat is not None and info.heartbeat.services
    assert info.heartbeat.services["db"].status["critical"] == {"up": True}


def test_http_codes_of_the_json_routes() -> None:
    model = model_with({"n1": {"ok": running(), "bad": {"state": "error"}}})
    view = ServiceStatusView(model)
    assert view.services(T0).http_status == 503
    assert view.service("n1/ok", T0).http_status == 200
    bad = view.service("n1/bad", T0)
    assert bad.http_status == 503
    assert bad.to_json(with_name=True)["service_name"] == "n1/bad"


VERSIONED = {
    "version": "1.1.0",
    "state": "running",
    "status_version": 2,
    "status": {"info": {"baz": [1, 2, 3]}},
    "status_versions": {"1": {"info": {"oldbaz": 123}}},
}


def test_latest_status_version_by_default_and_version_selects() -> None:
    model = model_with({"n1": {"other": VERSIONED}})
    view = ServiceStatusView(model)
    latest = view.service("other", T0)
    assert (latest.service_status_version, latest.status) == (2, {"baz": [1, 2, 3]})
    assert view.services(T0).entries[0].service_status_version == 2
    old = view.service("n1/other", T0, status_version=1)
    assert (old.service_status_version, old.status) == (1, {"oldbaz": 123})
    with pytest.raises(ApiError) as info:
        view.service("other", T0, status_version=99)
    assert refusal_code(info.value) == 400
    assert info.value.to_json() == {
        "kind": "service-status-version-not-found",
        "msg": "No status function with version 99 found for service n1/other",
    }


# (level, timeout given, age of the data in ms, expected state) - per-level defaults 30/60/60 s.
TIMEOUT_TABLE = [
    ("critical", None, 30_000, "running"),
    ("critical", None, 30_001, "unknown"),
    ("info", None, 45_000, "running"),
    ("info", None, 60_001, "unknown"),
    ("debug", None, 60_000, "running"),
    ("debug", None, 60_001, "unknown"),
    ("info", 10, 10_001, "unknown"),
    ("critical", 120, 90_000, "running"),
]


@pytest.mark.parametrize(("level", "timeout", "age", "state"), TIMEOUT_TABLE)
def test_data_older_than_the_timeout_is_unknown_with_the_reason(
    level: str, timeout: int | None, age: int, state: str
) -> None:
    model = model_with({"n1": {"db": LEVELLED}})
    view = ServiceStatusView(model)
    entry = view.service("db", T0 + age, level=level, timeout_s=timeout)
    report = view.services(T0 + age, level=level, timeout_s=timeout)
    assert entry.state == state == report.entries[0].state
    if state == "unknown":
        limit = timeout or {"critical": 30, "info": 60, "debug": 60}[level]
        assert entry.stale and entry.active_alerts == ()
        assert isinstance(entry.status, str)
        assert entry.status.startswith(f"Status check timed out after {limit} seconds")
        assert f"{age / 1000:.1f} seconds ago" in entry.status
        assert report.http_status == 503
    else:
        assert entry.status == view.service("db", T0, level=level).status


def test_service_by_bare_name_must_be_unambiguous() -> None:
    model = model_with({"a": {"db": running()}, "b": {"db": running(), "solo": running()}})
    view = ServiceStatusView(model)
    assert view.service("solo", T0).name == "b/solo"
    with pytest.raises(ApiError) as info:
        view.service("db", T0)
    assert refusal_code(info.value) == 400 and "a, b" in info.value.message
    with pytest.raises(ApiError) as missing:
        view.service("nope", T0)
    assert (refusal_code(missing.value), missing.value.message) == (404, "not found: nope")
    assert view.names() == ["a/db", "b/db", "b/solo"]


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_level("verbose"), "Invalid level: verbose"),
        (lambda: parse_level(b"bar"), "Invalid level: bar"),
        (lambda: parse_timeout("three"), "Invalid timeout. Should be an integer but was three"),
        (lambda: parse_timeout("1.5"), "Invalid timeout. Should be an integer but was 1.5"),
        (lambda: parse_timeout(""), "Invalid timeout. Should be an integer but was "),
        (
            lambda: parse_timeout("-3"),
            "Invalid timeout. Timeout must be greater than zero but was -3",
        ),
        (lambda: parse_timeout(0), "Invalid timeout. Timeout must be greater than zero but was 0"),
        (
            lambda: parse_status_version("abc"),
            "Invalid service_status_version. Should be an integer but was abc",
        ),
    ],
)
def test_bad_arguments_are_400_data_invalid(call: Any, message: str) -> None:
    with pytest.raises(ApiError) as info:
        call()
    assert (info.value.message, refusal_code(info.value), info.value.kind) == (
        message,
        400,
        "data-invalid",
    )


def test_good_arguments_parse() -> None:
    assert parse_timeout(b"30") == parse_timeout("+30") == 30
    assert parse_status_version(b"2") == 2
    assert parse_level(b"Critical") == "critical"


def test_view_methods_validate_their_arguments() -> None:
    view = ServiceStatusView(model_with({"n1": {"db": running()}}))
    with pytest.raises(ApiError, match="Invalid level: loud"):
        view.services(T0, level="loud")
    with pytest.raises(ApiError, match="greater than zero"):
        view.services(T0, timeout_s=-1)
    with pytest.raises(ApiError, match="greater than zero"):
        view.simple(T0, timeout_s=0)


# (the bad services payload, the field the error names; msgspec writes a map key as [...])
MALFORMED = [
    ({"db": {"state": "sleeping"}}, "services[...].state"),
    ({"db": {"status": {"verbose": {}}}}, "services[...].status"),
    ({"db": {"status_version": "two"}}, "services[...].status_version"),
    ({"db": {"status_versions": {"x": {}}}}, "services[...].status_versions"),
    ({"db": {"alerts": [{"severity": "error"}]}}, "services[...].alerts[0].message"),
    ({"db": {"alerts": "none"}}, "services[...].alerts"),
    ({"db": {"version": 3}}, "services[...].version"),
    ({"db": []}, "services[...]"),
    ([], "services"),
]


@pytest.mark.parametrize(("services", "field"), MALFORMED)
def test_malformed_status_fields_are_rejected_and_the_model_is_unchanged(
    services: Any, field: str
) -> None:
    model = model_with({"n1": {"db": LEVELLED}})
    view = ServiceStatusView(model)
    before = (model.version, view.services(T0).to_json(), model.node("n1"))
    outcome = model.publish(heartbeat("n1", 1, 99, services=services), T0 + 1)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.field == field and outcome.error.reason
    assert (model.version, view.services(T0).to_json(), model.node("n1")) == before
    assert model.counters().rejected


# --- caching ------------------------------------------------------------------------------------


def test_answers_are_cached_per_version_until_the_next_staleness_deadline() -> None:
    model = model_with({"n1": {"db": running()}})
    beat(model, "n2", T0 + 10_000, services={"db": running()})
    view = ServiceStatusView(model)
    first = view.simple(T0)
    assert view.simple(T0 + 29_000) is first
    assert view.services(T0, level="debug") is view.services(T0 + 30_000, level="debug")
    flipped = view.simple(T0 + 30_001)  # n1's data turns stale without any message
    assert flipped is not first and flipped.state == "unknown"
    again = view.simple(T0 + 30_002)
    assert again is flipped
    beat(model, "n1", T0 + 30_003, services={"db": running()})
    assert view.simple(T0 + 30_003).state == "running"


def test_reports_follow_every_change_of_the_model() -> None:
    model = model_with({"n1": {"db": running()}, "n3": {"db": running()}})
    view = ServiceStatusView(model)
    assert list(view.services(T0, level="debug").to_json()) == ["n1/db", "n3/db"]
    beat(model, "n3", T0 + 1, services={"db": {"state": "error"}, "api": running()})
    beat(model, "n2", T0 + 2, services={"db": running()})
    doc = view.services(T0 + 2, level="debug").to_json()
    assert list(doc) == ["n1/db", "n2/db", "n3/api", "n3/db"]
    assert doc["n3/db"]["state"] == "error" and doc["n1/db"]["state"] == "running"
    assert view.simple(T0 + 2, "db").state == "error"
    publish_ok(model, leave("n3", 1, next(_SEQ)), T0 + 3)
    assert list(view.services(T0 + 3, level="debug").to_json()) == ["n1/db", "n2/db"]
    assert view.simple(T0 + 3).state == "running"
    beat(model, "n1", T0 + 4, services={})
    assert view.names() == ["n2/db"]


def test_errors_quote_user_input_on_one_bounded_line() -> None:
    view = ServiceStatusView(model_with({"n1": {"db": running()}}))
    with pytest.raises(ApiError) as info:
        view.simple(T0, "evil\r\n-ERR injected")
    assert info.value.message == "not found: evil??-ERR injected"
    with pytest.raises(ApiError) as long:
        parse_timeout("9" * 5000)
    assert len(long.value.message) < 120 and long.value.message.endswith("...")
