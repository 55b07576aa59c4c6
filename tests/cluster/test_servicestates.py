"""`ServiceStatusView.states`: kept per node with a deadline heap, equal to a fresh report.

Random heartbeats (services and their states), leaves and clock moves (within and past the
services' timeout, and back) drive a model; after each step the incrementally kept states
must equal the states of a `STATUS SERVICES` report built from scratch at the same time, and
a reader that follows the change log must see exactly those states.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import ClusterModel, ModelConfig, servicestates
from clusterwatch.cluster.services import ServiceStatusView
from clusterwatch.cluster.servicestates import Pairs
from tests.cluster.clusterkit import T0, heartbeat, leave

NODES = ("n1", "n2", "n3", "n4")
STATES = ("running", "error", "starting", "stopping", "unknown")
TIMEOUT_MS = 60_000  # the default level's (info) timeout

_services = st.dictionaries(st.sampled_from(["api", "db"]), st.sampled_from(STATES),
                            max_size=2)
_step = st.tuples(st.sampled_from(["beat", "beat", "clock", "clock", "leave"]),
                  st.sampled_from(NODES), _services,
                  st.sampled_from([1, 999, 30_000, TIMEOUT_MS, TIMEOUT_MS + 1, -1, -20_000]),
                  st.booleans())  # read after the step (else changes pile up)


def _fresh(model: ClusterModel, now: int) -> dict[str, Pairs]:
    report = ServiceStatusView(model).services(now)
    return {node: tuple((entry.name, entry.state) for entry in entries)
            for node, entries in report.by_node.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, max_size=40))
def test_states_equal_a_fresh_report_and_the_log_names_every_change(
        steps: list[tuple[str, str, dict[str, str], int, bool]]) -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=3_600_000))
    view = ServiceStatusView(model)
    seq = itertools.count(1)
    epochs = dict.fromkeys(NODES, 1)
    now = T0
    seen: dict[str, Pairs] = {}  # the reader's copy, kept through the change log
    cursor = -1
    for kind, node, services, step_ms, read in steps:
        if kind == "beat":
            body = {name: {"state": state} for name, state in services.items()}
            model.publish(heartbeat(node, epochs[node], next(seq), services=body), now)
        elif kind == "leave":
            model.publish(leave(node, epochs[node], next(seq)), now)
            epochs[node] += 1
        else:
            now += step_ms
        if not read:
            continue
        got = view.states(now)
        expected = _fresh(model, now)
        assert dict(got.by_node) == expected
        changed, cursor = got.changes.since(cursor)
        if changed is None:
            seen = dict(got.by_node)
        else:
            for node in changed:
                seen[node] = got.by_node[node]
        assert seen == expected


def test_a_node_that_stays_stale_is_not_looked_at_again(monkeypatch: Any) -> None:
    looked_at: list[str] = []
    states_at = servicestates.states_at

    def counting(node: Any, timeout_ms: int, now_ms: int, down: bool = False) -> Pairs:
        looked_at.extend(inst.node for inst in node.instances)
        return states_at(node, timeout_ms, now_ms, down)

    monkeypatch.setattr(servicestates, "states_at", counting)
    model = ClusterModel(ModelConfig(node_timeout_ms=3_600_000))
    view = ServiceStatusView(model)
    for i, node in enumerate(NODES):
        model.publish(heartbeat(node, 1, 1, services={"api": {"state": "running"}}), T0 + i)
    states = view.states(T0 + 10)
    _changed, cursor = states.changes.since(-1)
    stale_at = T0 + 1 + TIMEOUT_MS + 1  # n1 and n2 are past the timeout
    model.publish(heartbeat("n4", 1, 2, services={"api": {"state": "error"}}), stale_at)
    states = view.states(stale_at)
    changed, cursor = states.changes.since(cursor)
    assert sorted(changed or ()) == ["n1", "n2", "n4"]
    assert states.by_node["n1"] == (("n1/api", "unknown"),)
    model.publish(heartbeat("n4", 1, 3, services={"api": {"state": "running"}}), stale_at)
    looked_at.clear()
    states = view.states(stale_at)
    changed, cursor = states.changes.since(cursor)
    assert changed == ["n4"]
    assert looked_at == ["n4"]


def test_a_heartbeat_first_seen_at_its_deadline_still_turns_stale() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=3_600_000))
    view = ServiceStatusView(model)
    running = {"api": {"state": "running"}}
    model.publish(heartbeat("n1", 1, 1, services=running), T0)
    view.states(T0)
    model.publish(heartbeat("n1", 1, 2, services=running), T0 + 1)
    assert view.states(T0 + 1 + TIMEOUT_MS).by_node["n1"] == (("n1/api", "running"),)
    assert view.states(T0 + 2 + TIMEOUT_MS).by_node["n1"] == (("n1/api", "unknown"),)
    assert view.states(T0 + 2 + TIMEOUT_MS) == (_fresh(model, T0 + 2 + TIMEOUT_MS),
                                                view.states(T0 + 2 + TIMEOUT_MS).changes)
