"""SlotTable against a from-scratch, slot-by-slot reference of its rules (cluster/slots.py):
owners, counts, conflicts and moves after each claim, release and removal."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.cluster.slots import NUM_SLOTS, Move, SlotTable, normalize, subtract

NODES = ("a", "b", "c", "d")
# A few small regions, so claims overlap often; slot 16383 keeps the last one in play.
POINTS = (0, 1, 2, 3, 100, 101, 5000, NUM_SLOTS - 1)
SLOTS = st.frozensets(st.sampled_from(POINTS), max_size=6)
STEP = st.one_of(
    st.tuples(st.just("claim"), st.sampled_from(NODES), st.integers(0, 2), SLOTS, SLOTS),
    st.tuples(st.just("remove"), st.sampled_from(NODES), st.just(0), st.just(frozenset()),
              st.just(frozenset())),
)


class Reference:
    """The rules slot by slot: every claim ever seen, each node's claim per slot."""

    def __init__(self) -> None:
        self.claims: dict[str, dict[int, tuple[int, bool]]] = {}  # node -> slot -> (epoch, listed)
        self.seen: dict[int, set[tuple[int, str]]] = {}

    def claim(self, node: str, epoch: int, listed: frozenset[int],
              released: frozenset[int]) -> int:
        mine = self.claims.setdefault(node, {})
        conflicts = 0
        for slot in listed:
            if mine.get(slot) != (epoch, True) and any(
                    other != node and slot in held and held[slot][0] == epoch
                    and self.living(other, slot) for other, held in self.claims.items()):
                conflicts += 1
        for slot in list(mine):
            if slot in released and slot not in listed:
                del mine[slot]
            elif slot not in listed:
                mine[slot] = (mine[slot][0], False)
        for slot in listed:
            if mine.get(slot) != (epoch, True):
                mine[slot] = (epoch, True)
            self.seen.setdefault(slot, set()).add((epoch, node))
        return conflicts

    def remove(self, node: str) -> None:
        self.claims.pop(node, None)

    def living(self, node: str, slot: int) -> bool:
        held = self.claims.get(node, {}).get(slot)
        if held is None:
            return False
        epoch, listed = held
        return listed or not any(other != node and (-e, other) < (-epoch, node)
                                 for e, other in self.seen.get(slot, ()))

    def owners(self) -> dict[int, str]:
        owners: dict[int, str] = {}
        for slot in POINTS:
            living = [(-held[slot][0], node) for node, held in self.claims.items()
                      if slot in held and self.living(node, slot)]
            if living:
                owners[slot] = min(living)[1]
        return owners


def ranges(slots: frozenset[int]) -> list[tuple[int, int]]:
    return [(s, s) for s in sorted(slots)]


@settings(max_examples=400, deadline=None)
@given(st.lists(STEP, max_size=30))
def test_matches_reference(
    steps: list[tuple[str, str, int, frozenset[int], frozenset[int]]],
) -> None:
    table, ref = SlotTable(), Reference()
    epochs: dict[str, int] = {}
    for kind, node, bump, listed, released in steps:
        before = ref.owners()
        if kind == "remove":
            ref.remove(node)
            result = table.remove(node)
            expected_conflicts = 0
        else:
            epoch = epochs.get(node, 1) + bump  # non-decreasing per node
            epochs[node] = epoch
            released = released - listed
            expected_conflicts = ref.claim(node, epoch, listed, released)
            result = table.claim(node, epoch, ranges(listed), ranges(released))
            assert table.listed(node) == normalize(ranges(listed))
        after = ref.owners()
        assert result.conflicts == expected_conflicts
        moved = [Move(s, s, before.get(s), after.get(s)) for s in sorted(set(before) | set(after))
                 if before.get(s) != after.get(s)]
        assert [m for m in result.moves] == _split(result.moves, moved)
        assert {s: table.owner_of(s) for s in POINTS if table.owner_of(s)} == after
        counts: dict[str, int] = {}
        for owner in after.values():
            counts[owner] = counts.get(owner, 0) + 1
        assert table.owned == counts and table.assigned == len(after)
        runs = table.owner_runs()
        assert {s: o for start, end, o in runs for s in range(start, end + 1)} == after
        restored = SlotTable()
        restored.restore(table.export(), lambda _node: True)
        assert restored.owner_runs() == runs and restored.owned == table.owned
        assert restored.export() == table.export()


def _split(moves: list[Move], expected: list[Move]) -> list[Move]:
    """`moves` as they must be: every expected slot move inside one of them, joined."""
    slots = [Move(s, s, m.old, m.new) for m in moves for s in range(m.start, m.end + 1)]
    assert slots == expected
    return moves


def test_a_move_of_every_slot_costs_its_ranges_not_its_slots() -> None:
    table = SlotTable()
    table.claim("a", 1, [(0, NUM_SLOTS - 1)])
    start = time.process_time()
    for i in range(200):
        taker, leaver = ("b", "a") if i % 2 == 0 else ("a", "b")
        moved = table.claim(taker, 2 + i, [(0, NUM_SLOTS - 1)]).moves
        assert moved == [Move(0, NUM_SLOTS - 1, leaver, taker)]
        assert table.claim(leaver, 2 + i, []).moves == []
    per_move = (time.process_time() - start) / 200
    assert per_move < 0.002, f"{per_move * 1e3:.2f} ms per move of 16384 slots"


def test_subtract() -> None:
    assert subtract(((0, 10), (20, 30)), ((5, 6), (9, 22), (30, 30))) == (
        (0, 4), (7, 8), (23, 29))
    assert subtract(((0, 10),), ()) == ((0, 10),)
    assert subtract(((0, 10),), ((0, 10),)) == ()
