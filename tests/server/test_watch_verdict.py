"""Pub/sub follows the one verdict: a node's `node_state` event comes before the
service-state events its verdict causes, and those come at the tick that sees it, not when a
status timeout runs out."""

from __future__ import annotations

import itertools
from typing import Any

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.services import ServiceStatusView
from clusterwatch.server.watch import Watch
from tests.cluster.clusterkit import T0, heartbeat, publish_ok

_SEQ = itertools.count(1)


def _beat(model: ClusterModel, node: str, now: int) -> None:
    services: dict[str, Any] = {"redis": {"state": "running"}}
    publish_ok(model, heartbeat(node, 1, next(_SEQ), services=services), now)


def test_node_state_then_its_services_unknown_at_the_same_tick() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=15_000))
    view = ServiceStatusView(model)
    sent: list[tuple[str, str]] = []
    watch = Watch(model, journal_size=100, deliver=lambda ch, text: sent.append((ch, text)))

    def tick(now: int) -> list[tuple[str, str]]:
        """What the server's 10 Hz housekeeping does, in its order."""
        model.refresh(now)
        watch.model_changed(model.drain_events(), now)
        watch.services_changed(lambda: view.states(now), now)
        got = [(ch, text.rsplit(" index=", 1)[0]) for ch, text in sent]
        sent.clear()
        return got

    for node in ("a", "b"):
        _beat(model, node, T0)
    tick(T0)
    for now in range(T0 + 1_000, T0 + 14_001, 1_000):
        _beat(model, "a", now)
        assert [ch for ch, _text in tick(now) if "b" in ch] == []
    # b silent past the node timeout: fail?, and its service unknown in the same tick,
    # 45 s before Puppet's 60 s status timeout would have said so.
    _beat(model, "a", T0 + 15_000)
    got = tick(T0 + 15_000)
    assert got == [("__cluster__:node", "+pfail master b ? 0"), ("+sdown", "master b ? 0"),
                   ("__status__:b/redis", "state=unknown previous=running")]
    # b speaks again: reachable, its service running again.
    _beat(model, "b", T0 + 16_000)
    got = tick(T0 + 16_000)
    assert ("__status__:b/redis", "state=running previous=unknown") in got
