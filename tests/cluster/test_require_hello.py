"""`require_hello` (the server's default, `--require-hello`): a node enters the model with
its hello; anything else from an id the model does not hold is refused and counted
(`no_hello`), so a mistyped id adds no node (issue 24)."""

from __future__ import annotations

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig
from tests.cluster.clusterkit import T0, fail_report, heartbeat, hello, leave, slots


@pytest.mark.parametrize("first", [
    heartbeat("typo", 1, 1),
    slots("typo", 1, 1, (0, 100)),
    fail_report("typo", 1, 1, "a"),
], ids=["heartbeat", "slots", "fail_report"])
def test_anything_but_a_hello_from_an_unknown_id_is_refused(first: bytes) -> None:
    model = ClusterModel(ModelConfig(require_hello=True))
    version = model.version
    outcome = model.publish(first, T0)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.code == "no_hello"
    assert str(outcome.error).startswith("node: unknown node typo: say hello first")
    assert (model.node_count, model.version) == (0, version)
    assert model.counters().rejected == {"no_hello": 1}


def test_a_hello_enters_the_node_and_then_everything_applies() -> None:
    model = ClusterModel(ModelConfig(require_hello=True))
    for data in (hello("n", 1, 1), slots("n", 1, 2, (0, 16383)), heartbeat("n", 1, 3)):
        assert model.publish(data, T0).kind == "applied"
    assert model.cluster_state == "ok"
    # A leave removes it: it must say hello again.
    assert model.publish(leave("n", 1, 4), T0).kind == "applied"
    assert model.publish(heartbeat("n", 1, 5), T0).kind == "rejected"
    assert model.publish(hello("n", 1, 6), T0).kind == "applied"


def test_a_leave_from_an_unknown_id_only_keeps_its_tombstone() -> None:
    model = ClusterModel(ModelConfig(require_hello=True))
    assert model.publish(leave("gone", 1, 5), T0).kind == "applied"
    assert model.publish(hello("gone", 1, 5), T0).kind == "stale"


def test_the_model_default_keeps_the_older_rule() -> None:
    model = ClusterModel()
    assert model.publish(heartbeat("any", 1, 1), T0).kind == "applied"
    info = model.node("any")
    assert info is not None and info.addr is None
