"""`__status__:<node>/<svc>` transitions: only changed nodes are compared, same messages."""

from __future__ import annotations

import itertools
from typing import Any

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.services import ServiceStatusView
from clusterwatch.server.watch import Watch
from tests.cluster.clusterkit import T0, heartbeat, leave, publish_ok

_SEQ = itertools.count(1)


def _beat(model: ClusterModel, node: str, now: int, **states: str) -> None:
    services: dict[str, Any] = {name: {"state": state} for name, state in states.items()}
    publish_ok(model, heartbeat(node, 1, next(_SEQ), services=services), now)


def test_service_state_changes_are_published_once_each() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=60_000))
    view = ServiceStatusView(model)
    sent: list[tuple[str, str]] = []
    watch = Watch(model, journal_size=100, deliver=lambda ch, text: sent.append((ch, text)))

    def tick(now: int) -> list[tuple[str, str]]:
        watch.services_changed(lambda: view.states(now), now)
        got = [(ch, text.rsplit(" index=", 1)[0]) for ch, text in sent]
        sent.clear()
        return got

    for node in ("a", "b", "c"):
        _beat(model, node, T0, api="running", db="running")
    assert tick(T0) == []
    _beat(model, "b", T0 + 1, api="error", db="running")
    assert tick(T0 + 1) == [("__status__:b/api", "state=error previous=running")]
    _beat(model, "a", T0 + 2, api="running", db="stopping")
    _beat(model, "c", T0 + 2, api="starting")  # c/db is gone: no message
    assert sorted(tick(T0 + 2)) == [("__status__:a/db", "state=stopping previous=running"),
                                    ("__status__:c/api", "state=starting previous=running")]
    publish_ok(model, leave("a", 1, next(_SEQ)), T0 + 3)  # the members change: a full pass
    _beat(model, "b", T0 + 3, api="running", db="running")
    assert tick(T0 + 3) == [("__status__:b/api", "state=running previous=error")]
    _beat(model, "c", T0 + 4, api="starting", db="error")  # c/db is new: no message
    assert tick(T0 + 4) == []
    _beat(model, "c", T0 + 5, api="running", db="error")
    assert tick(T0 + 5) == [("__status__:c/api", "state=running previous=starting")]
