"""What a node keeps from one heartbeat to the next is not tracked by the cyclic GC.

In a large cluster a node's records outlive the young generations, so each tracked object a
heartbeat leaves behind is scanned by every full collection: the cost per heartbeat then grows
with the cluster. These tests pin the objects kept per node (the stored message's parts, the
services view's instances and entries, the health facts' contribution) as untracked.
"""

from __future__ import annotations

import gc
from typing import Any

from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.cluster.healthfacts import FactsKeeper
from clusterwatch.cluster.services import ServiceStatusView
from tests.cluster.clusterkit import T0, heartbeat, publish_ok

SERVICES = {
    "api": {"version": "1.0", "state": "running", "alerts": [{"severity": "warning",
                                                              "message": "slow"}],
            "status": {"critical": {"listening": True}, "info": {"requests": 7}}},
    "db": {"state": "error", "status_versions": {"1": {"critical": {"up": False}}}},
}


def _model() -> ClusterModel:
    model = ClusterModel(ModelConfig(node_timeout_ms=15_000))
    publish_ok(model, heartbeat("n1", 1, 1, services=SERVICES,
                                partitions=[{"id": 0, "role": "leader", "health": "healthy"}]),
               T0)
    return model


def _untracked(objects: Any) -> None:
    tracked = [obj for obj in objects if gc.is_tracked(obj)]
    assert not tracked, tracked


def test_stored_services_are_untracked() -> None:
    model = _model()
    beat = model.node_row("n1")[3]  # type: ignore[index]
    assert beat is not None and beat.services is not None
    _untracked([beat, *beat.services.values()])


def test_services_view_keeps_untracked_instances_and_entries() -> None:
    model = _model()
    view = ServiceStatusView(model)
    report = view.services(T0, level="debug")
    entries = report.by_node["n1"]
    assert len(entries) == 2
    _untracked(entries)
    node = view._by_node["n1"]
    _untracked([node, *node.instances])
    gc.collect()  # tuples of untracked objects are untracked by a collection
    _untracked([entries, node.instances, node.states])


def test_health_contributions_are_untracked() -> None:
    keeper = FactsKeeper(_model())
    keeper.facts(T0)
    _untracked(keeper._nodes.values())
