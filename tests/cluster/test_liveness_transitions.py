"""Rule 5's liveness changes are a table (`merge.TRANSITIONS`); any other change raises."""

from __future__ import annotations

import pytest

from clusterwatch.cluster import ClusterModel, NodeState, merge
from clusterwatch.cluster.merge import TRANSITIONS, IllegalTransitionError
from tests.cluster.clusterkit import T0, TIMEOUT, beat_all, three_masters


def _force(model: ClusterModel, node_id: str, state: NodeState) -> None:
    model._state.nodes[node_id].state = state


@pytest.mark.parametrize("state", list(NodeState))
def test_a_state_set_to_itself_raises_and_changes_nothing(state: NodeState) -> None:
    model = three_masters()
    _force(model, "c", state)
    model.drain_events()
    version = model.version
    with pytest.raises(IllegalTransitionError, match=f"node c: {state} -> {state}"):
        model._state._set_state(model._state.nodes["c"], state)
    assert (model.version, model.drain_events()) == (version, [])
    assert model._state.nodes["c"].state is state


def test_every_other_change_is_in_the_table() -> None:
    assert {(old, new) for old, targets in TRANSITIONS.items() for new in targets} == {
        (old, new) for old in NodeState for new in NodeState if old is not new}


def test_a_change_the_table_does_not_allow_raises_where_the_model_makes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: without ok -> pfail in the table, a silent node's refresh raises."""
    model = three_masters()
    beat_all(model, T0 + 10_000, 10, skip=("c",))
    monkeypatch.setitem(merge.TRANSITIONS, NodeState.OK, frozenset({NodeState.FAIL}))
    with pytest.raises(IllegalTransitionError, match="node c: ok -> pfail"):
        model.refresh(T0 + TIMEOUT)
