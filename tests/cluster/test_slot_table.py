"""SlotTable against a from-scratch reference: owners, counts and conflicts after each claim."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.cluster.slots import NUM_SLOTS, SlotTable, owner_runs

NODES = ("a", "b", "c", "d")
# A few small regions, so claims overlap often; slot 16383 keeps the last one in play.
SLOTS = st.frozensets(st.sampled_from((0, 1, 2, 3, 100, 101, 5000, NUM_SLOTS - 1)), max_size=6)
STEPS = st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 2), SLOTS), max_size=30)


def reference(claims: dict[str, tuple[int, frozenset[int]]]) -> dict[int, str]:
    owners: dict[int, str] = {}
    for slot in {s for _, slots in claims.values() for s in slots}:
        owners[slot] = min((n for n, (_, slots) in claims.items() if slot in slots),
                           key=lambda n: (-claims[n][0], n))
    return owners


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_matches_reference(steps: list[tuple[str, int, frozenset[int]]]) -> None:
    table = SlotTable()
    claims: dict[str, tuple[int, frozenset[int]]] = {}
    epochs: dict[str, int] = {}
    for node, bump, slots in steps:
        epoch = epochs.get(node, 1) + bump  # non-decreasing per node
        epochs[node] = epoch
        old_epoch, old = claims.get(node, (epoch, frozenset()))
        added = slots - old if old_epoch == epoch else slots
        others = {n: c for n, c in claims.items() if n != node}
        expected_conflicts = sum(
            1 for slot in added
            if any(e == epoch and slot in s for e, s in others.values()))
        before = reference(claims)
        if slots:
            claims[node] = (epoch, slots)
        else:
            claims.pop(node, None)
        after = reference(claims)
        result = table.claim(node, epoch, slots)
        assert result.conflicts == expected_conflicts
        moved = [(s, before.get(s), after.get(s)) for s in sorted(set(before) | set(after))
                 if before.get(s) != after.get(s)]
        assert result.changes == moved
        assert {s: o for s, o in enumerate(table.owner) if o is not None} == after
        counts: dict[str, int] = {}
        for owner in after.values():
            counts[owner] = counts.get(owner, 0) + 1
        assert table.owned == counts and table.assigned == len(after)
        assert table.slots_of(node) == slots
    assert all(start <= end for start, end, _ in owner_runs(table.owner))
