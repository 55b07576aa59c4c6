"""What a node stopped saying (agent/withdrawals.py): ids it forgot, kept 60 s; slots it
gave up with nobody taking them, as opposed to slots that moved."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from clusterwatch.agent.withdrawals import ForgottenNodes, ReleasedSlots, slot_ranges, slot_set


def test_a_forgotten_id_is_reported_for_the_window_then_dropped() -> None:
    forgotten = ForgottenNodes(window_s=60)
    assert forgotten.update(["b", "c"], now=0) == []
    assert forgotten.update(["b"], now=1) == ["c"]
    assert forgotten.update(["b"], now=60.9) == ["c"]
    assert forgotten.update(["b"], now=61) == []
    assert forgotten.update(["b"], now=62) == []  # gone for good, not forgotten again


def test_an_id_listed_again_is_no_longer_forgotten() -> None:
    forgotten = ForgottenNodes()
    forgotten.update(["b", "c"], now=0)
    assert forgotten.update([], now=1) == ["b", "c"]
    assert forgotten.update(["c"], now=2) == ["b"]


def test_slots_taken_by_another_node_are_not_released() -> None:
    released = ReleasedSlots()
    assert released.update([[0, 99]], []) == []
    assert released.update([[0, 49]], [[50, 99]]) == []  # moved: a reshard
    assert released.update([[0, 9]], []) == [[10, 49]]  # deleted: nobody has them
    assert released.update([[0, 9]], []) == [[10, 49]]  # said again while unowned
    assert released.update([[0, 9]], [[10, 19]]) == [[20, 49]]  # some taken meanwhile
    assert released.update([[0, 9], [20, 49]], [[10, 19]]) == []  # served again


@given(st.sets(st.integers(0, 16383), max_size=300))
def test_ranges_and_sets_round_trip(slots: set[int]) -> None:
    ranges = slot_ranges(slots)
    assert slot_set(ranges) == slots
    assert all(a <= b for a, b in ranges)
    assert all(prev[1] + 1 < nxt[0] for prev, nxt in itertools.pairwise(ranges))
