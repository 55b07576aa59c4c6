"""Slot claims and the ownership they imply.

Each node holds at most one claim: a set of slots and the epoch of the `slots` message that
made it. A slot's owner is its claimant with the highest claim epoch, ties going to the smaller
node id. The owner of every slot is kept up to date as claims change, touching only the slots
whose claim changed, so a claim costs O(changed slots * claimants per slot).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Final, NamedTuple

__all__ = ["NUM_SLOTS", "ClaimResult", "SlotTable", "expand_ranges", "owner_runs", "to_ranges"]

NUM_SLOTS: Final = 16384
_NO_SLOTS: Final[frozenset[int]] = frozenset()


class ClaimResult(NamedTuple):
    """`changes` holds `(slot, old_owner, new_owner)` in slot order; `conflicts` counts slots
    where the new claim tied on epoch with another node's claim."""

    changes: list[tuple[int, str | None, str | None]]
    conflicts: int


class SlotTable:
    """Claims per node, the owner of each slot, and the other claimants of contested slots.

    A claim is kept as its slot ranges. A slot's claimants are its owner plus `_rivals[slot]`,
    which exists only while another node claims the slot too; a claimant's epoch is its
    claim's. So an uncontested cluster costs one list of owners and one claim per master.
    """

    __slots__ = ("_claims", "_rivals", "assigned", "owned", "owner")

    def __init__(self) -> None:
        self.owner: list[str | None] = [None] * NUM_SLOTS
        self.owned: dict[str, int] = {}
        self.assigned = 0
        self._rivals: dict[int, set[str]] = {}
        self._claims: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {}

    def claim(self, node: str, epoch: int, slots: frozenset[int]) -> ClaimResult:
        """Replace `node`'s claim with `slots` at `epoch` (an empty set withdraws it).

        A node's claims must arrive with non-decreasing epochs.
        """
        previous = self._claims.get(node)
        old_epoch, old = (epoch, _NO_SLOTS) if previous is None else (
            previous[0], expand_ranges(previous[1]))
        if slots:
            self._claims[node] = (epoch, tuple(to_ranges(slots)))
        else:
            self._claims.pop(node, None)
        changes: list[tuple[int, str | None, str | None]] = []
        for slot in old - slots:
            self._withdraw(node, slot, changes)
        conflicts = 0
        for slot in slots - old if old_epoch == epoch else slots:
            conflicts += self._add(node, epoch, slot, changes)
        changes.sort()
        return ClaimResult(changes, conflicts)

    def slots_of(self, node: str) -> frozenset[int]:
        """The slots `node` claims (not necessarily owns)."""
        claim = self._claims.get(node)
        return _NO_SLOTS if claim is None else expand_ranges(claim[1])

    def _withdraw(
        self, node: str, slot: int, changes: list[tuple[int, str | None, str | None]]
    ) -> None:
        rivals = self._rivals.get(slot)
        if self.owner[slot] != node:
            assert rivals is not None
            rivals.discard(node)
            if not rivals:
                del self._rivals[slot]
            return
        best: str | None = None
        if rivals:
            claims = self._claims
            best_epoch = -1
            for other in rivals:
                epoch = claims[other][0]
                if epoch > best_epoch or (epoch == best_epoch and best is not None
                                          and other < best):
                    best, best_epoch = other, epoch
            rivals.discard(best)
            if not rivals:
                del self._rivals[slot]
        self._move(slot, node, best, changes)

    def _add(
        self, node: str, epoch: int, slot: int, changes: list[tuple[int, str | None, str | None]]
    ) -> int:
        owner = self.owner[slot]
        if owner is None:
            self._move(slot, None, node, changes)
            return 0
        claims = self._claims
        rivals = self._rivals.get(slot)
        conflicts = 0
        if owner != node and claims[owner][0] == epoch:
            conflicts = 1
        elif rivals:
            for other in rivals:
                if other != node and claims[other][0] == epoch:
                    conflicts = 1
                    break
        if owner == node:
            return conflicts
        owner_epoch = claims[owner][0]
        if rivals is None:
            rivals = self._rivals[slot] = set()
        if epoch > owner_epoch or (epoch == owner_epoch and node < owner):
            rivals.discard(node)
            rivals.add(owner)
            self._move(slot, owner, node, changes)
        else:
            rivals.add(node)
        return conflicts

    def _move(
        self,
        slot: int,
        old: str | None,
        new: str | None,
        changes: list[tuple[int, str | None, str | None]],
    ) -> None:
        self.owner[slot] = new
        if old is not None:
            left = self.owned[old] - 1
            if left:
                self.owned[old] = left
            else:
                del self.owned[old]
            self.assigned -= 1
        if new is not None:
            self.owned[new] = self.owned.get(new, 0) + 1
            self.assigned += 1
        changes.append((slot, old, new))


def expand_ranges(ranges: Iterable[tuple[int, int]]) -> frozenset[int]:
    """The slots covered by inclusive `(start, end)` ranges."""
    slots: set[int] = set()
    for start, end in ranges:
        slots.update(range(start, end + 1))
    return frozenset(slots)


def to_ranges(slots: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted slots folded into inclusive `(start, end)` ranges."""
    ranges: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if ranges and ranges[-1][1] == slot - 1:
            ranges[-1] = (ranges[-1][0], slot)
        else:
            ranges.append((slot, slot))
    return ranges


def owner_runs(owner: Sequence[str | None]) -> list[tuple[int, int, str]]:
    """Contiguous runs of slots with the same owner, as `(start, end, owner)`; unowned slots
    are left out."""
    runs: list[tuple[int, int, str]] = []
    start = 0
    for node, group in groupby(owner):
        size = len(list(group))
        if node is not None:
            runs.append((start, start + size - 1, node))
        start += size
    return runs
