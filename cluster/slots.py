"""Slot claims and the ownership they imply, as Redis binds slots, kept as runs of slots.

Rules:
* A node claims a slot by listing it in a `slots` message, at that message's epoch. The claim
  stays when a later message of the node no longer lists the slot: it is then *unlisted*.
  Only the node's own `released` ranges, its leave or its forget withdraw a claim.
* An unlisted claim dies once a claim on the slot by another node that beats it has been
  seen, whichever arrived first: the node stopped listing the slot because the other took
  it (a reshard, a failover). A listed claim never dies; it waits behind better claims and
  takes the slot back if they are withdrawn (Redis: an unbound slot goes to its claimant).
* A claim beats another with a higher epoch, or the same epoch and a smaller node id (a tie:
  a conflict, counted per slot when a node lists a slot it did not list at that epoch
  while another node holds a claim on it at the same epoch).
* A slot's owner is its best living claim; a slot nobody holds is unassigned.

So ownership follows from each node's own messages and the set of claims ever seen, never
from their order: no interleaving of two nodes' messages during a move leaves a slot without
an owner, since the old owner's unlisted claim holds it until the new owner's claim arrives.

Representation: the slot space is a list of runs, each a start and a cell shared by all its
slots (the claims on them, and the best two claims ever seen from distinct nodes, which is
all "ever seen" needs). A claim, a release or a removal visits the runs its ranges cover,
so its cost follows the runs it changes, not the slots (a move of all 16384 slots between
two nodes is one run). Per node, the table keeps the epoch and ranges of its latest listing
and the ranges where it may hold claims, so no operation scans the slot space.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

__all__ = [
    "NUM_SLOTS",
    "ClaimResult",
    "Move",
    "SlotTable",
    "normalize",
    "subtract",
    "union",
]

NUM_SLOTS: Final = 16384

Ranges = tuple[tuple[int, int], ...]
"""Sorted, disjoint, non-adjacent inclusive `(start, end)` slot ranges."""
# A claim `(-epoch, node, listed)` and a remembered claim `(-epoch, node)`: tuples whose
# natural order puts the stronger claim first.
Claim = tuple[int, str, bool]
Seen = tuple[int, str]


class Cell(NamedTuple):
    """What a run of slots shares: living claims, strongest first, and the strongest two
    claims ever seen from distinct nodes."""

    claims: tuple[Claim, ...]
    seen: tuple[Seen, ...]


EMPTY: Final = Cell((), ())


class Move(NamedTuple):
    """Slots `start..end` (inclusive) passed from `old` to `new` owner; None is unassigned."""

    start: int
    end: int
    old: str | None
    new: str | None


class ClaimResult(NamedTuple):
    """`moves` in slot order, adjacent ones with the same owners joined; `conflicts` counts
    slots newly listed at an epoch another node's claim on them also has."""

    moves: list[Move]
    conflicts: int


Transform = Callable[[Cell], tuple[Cell, bool]]


class SlotTable:
    """The runs, the owners' slot counts, and per node its latest listing and holdings."""

    __slots__ = ("_cells", "_held", "_listed", "_starts", "assigned", "owned")

    def __init__(self) -> None:
        self._starts: list[int] = [0]
        self._cells: list[Cell] = [EMPTY]
        self._listed: dict[str, tuple[int, Ranges]] = {}
        # Ranges where the node may hold a claim (a superset: dead claims are not taken out).
        self._held: dict[str, Ranges] = {}
        self.owned: dict[str, int] = {}
        self.assigned = 0

    def claim(self, node: str, epoch: int, listed: Iterable[tuple[int, int]],
              released: Iterable[tuple[int, int]] = ()) -> ClaimResult:
        """Apply a `slots` message: `listed` at `epoch`, `released` given up.

        A node's messages must arrive with non-decreasing epochs; `released` should not
        overlap `listed` (where it does, the slot stays listed).
        """
        now_listed = normalize(listed)
        gone = subtract(normalize(released), now_listed)
        last_epoch, last_listed = self._listed.get(node, (epoch, ()))
        fresh = subtract(now_listed, last_listed) if last_epoch == epoch else now_listed
        unlisted = subtract(subtract(last_listed, now_listed), gone)
        if now_listed:
            self._listed[node] = (epoch, now_listed)
        else:
            self._listed.pop(node, None)
        held = subtract(union(self._held.get(node, ()), now_listed), gone)
        if held:
            self._held[node] = held
        else:
            self._held.pop(node, None)
        moves: list[Move] = []
        self._apply(gone, _without(node), moves)
        self._apply(unlisted, _unlisted(node), moves)
        conflicts = self._apply(fresh, _listed(node, epoch), moves)
        return ClaimResult(_joined(moves), conflicts)

    def remove(self, node: str) -> ClaimResult:
        """Withdraw every claim of `node` (it left or was forgotten)."""
        self._listed.pop(node, None)
        moves: list[Move] = []
        self._apply(self._held.pop(node, ()), _without(node), moves)
        return ClaimResult(_joined(moves), 0)

    def listed(self, node: str) -> Ranges:
        """The ranges of `node`'s latest listing."""
        entry = self._listed.get(node)
        return () if entry is None else entry[1]

    def owner_of(self, slot: int) -> str | None:
        claims = self._cells[bisect_right(self._starts, slot) - 1].claims
        return claims[0][1] if claims else None

    def owner_runs(self) -> list[tuple[int, int, str]]:
        """Contiguous runs of slots with the same owner, as `(start, end, owner)`; unowned
        slots are left out."""
        runs: list[tuple[int, int, str]] = []
        starts = self._starts
        for i, cell in enumerate(self._cells):
            if not cell.claims:
                continue
            owner = cell.claims[0][1]
            end = _end(starts, i)
            if runs and runs[-1][2] == owner and runs[-1][1] == starts[i] - 1:
                runs[-1] = (runs[-1][0], end, owner)
            else:
                runs.append((starts[i], end, owner))
        return runs

    def export(self) -> list[tuple[int, int, list[tuple[int, str, bool]], list[tuple[int, str]]]]:
        """The runs that hold or remember claims, for a snapshot: `(start, end, claims,
        seen)`, a claim as `(epoch, node, listed)`, a remembered one as `(epoch, node)`."""
        starts = self._starts
        return [(starts[i], _end(starts, i), [(-e, n, live) for e, n, live in cell.claims],
                 [(-e, n) for e, n in cell.seen])
                for i, cell in enumerate(self._cells) if cell != EMPTY]

    def restore(self, runs: Iterable[tuple[int, int, Sequence[tuple[int, str, bool]],
                                           Sequence[tuple[int, str]]]],
                keep: Callable[[str], bool]) -> list[Move]:
        """Replace the whole table with `export`ed runs, keeping the claims of the nodes
        `keep` accepts; the moves from the table it replaces.

        Raises:
            ValueError: the runs overlap or leave the slot space.
        """
        before = self.owner_runs()
        starts: list[int] = []
        cells: list[Cell] = []
        position = 0
        for start, end, claims, seen in sorted(runs, key=lambda run: run[0]):
            if not position <= start <= end < NUM_SLOTS:
                raise ValueError(f"run {start}-{end} overlaps or leaves the slot space")
            if start > position:
                starts.append(position)
                cells.append(EMPTY)
            living = sorted((-epoch, node, live) for epoch, node, live in claims if keep(node))
            remembered = sorted((-epoch, node) for epoch, node in seen)
            starts.append(start)
            cells.append(Cell(tuple(living), tuple(remembered[:2])))
            position = end + 1
        if position < NUM_SLOTS:
            starts.append(position)
            cells.append(EMPTY)
        self._starts, self._cells = _coalesced(starts, cells)
        self._reindex()
        return _diff(before, self.owner_runs())

    def _reindex(self) -> None:
        """Counts, listings and holdings recomputed from the runs (after a restore)."""
        self.owned, self.assigned = {}, 0
        listed: dict[str, tuple[int, list[tuple[int, int]]]] = {}
        held: dict[str, list[tuple[int, int]]] = {}
        starts = self._starts
        for i, cell in enumerate(self._cells):
            start, end = starts[i], _end(starts, i)
            if cell.claims:
                owner = cell.claims[0][1]
                self.owned[owner] = self.owned.get(owner, 0) + end - start + 1
                self.assigned += end - start + 1
            for neg_epoch, node, live in cell.claims:
                held.setdefault(node, []).append((start, end))
                if live:
                    listed.setdefault(node, (-neg_epoch, []))[1].append((start, end))
        self._held = {node: normalize(ranges) for node, ranges in held.items()}
        self._listed = {node: (epoch, normalize(ranges))
                        for node, (epoch, ranges) in listed.items()}

    def _apply(self, ranges: Ranges, transform: Transform, moves: list[Move]) -> int:
        """Transform the cells of `ranges`; the slots it reported a conflict for."""
        starts, cells = self._starts, self._cells
        conflicts = 0
        for start, end in reversed(ranges):  # later runs first: earlier indexes hold still
            first = self._split(start)
            last = self._split(end + 1)
            for i in range(first, last):
                cell = cells[i]
                new, conflict = transform(cell)
                if conflict:
                    conflicts += _end(starts, i) - starts[i] + 1
                if new == cell:
                    continue
                cells[i] = new
                old_owner = cell.claims[0][1] if cell.claims else None
                new_owner = new.claims[0][1] if new.claims else None
                if old_owner != new_owner:
                    self._count(moves, Move(starts[i], _end(starts, i), old_owner, new_owner))
            self._coalesce(first - 1, last)
        return conflicts

    def _count(self, moves: list[Move], move: Move) -> None:
        size = move.end - move.start + 1
        owned = self.owned
        if move.old is not None:
            left = owned[move.old] - size
            if left:
                owned[move.old] = left
            else:
                del owned[move.old]
            self.assigned -= size
        if move.new is not None:
            owned[move.new] = owned.get(move.new, 0) + size
            self.assigned += size
        moves.append(move)

    def _split(self, at: int) -> int:
        """The index of the run starting at slot `at` (split off if needed); the number of
        runs for `at == NUM_SLOTS`."""
        starts = self._starts
        if at >= NUM_SLOTS:
            return len(starts)
        i = bisect_right(starts, at) - 1
        if starts[i] == at:
            return i
        starts.insert(i + 1, at)
        self._cells.insert(i + 1, self._cells[i])
        return i + 1

    def _coalesce(self, low: int, high: int) -> None:
        """Join equal neighbours among runs `low..high`."""
        starts, cells = self._starts, self._cells
        for i in range(min(high, len(cells) - 1), max(low, 0), -1):
            if cells[i] == cells[i - 1]:
                del starts[i]
                del cells[i]


def _listed(node: str, epoch: int) -> Transform:
    mine: Seen = (-epoch, node)

    def transform(cell: Cell) -> tuple[Cell, bool]:
        conflict = False
        claims: list[Claim] = []
        for claim in cell.claims:
            if claim[1] == node:
                continue
            if claim[0] == mine[0]:
                conflict = True
            if not claim[2] and mine < claim[:2]:
                continue  # an unlisted claim this one beats: its node lost the slot
            claims.append(claim)
        claims.append((mine[0], node, True))
        claims.sort()
        return Cell(tuple(claims), _remember(cell.seen, mine)), conflict

    return transform


def _unlisted(node: str) -> Transform:
    def transform(cell: Cell) -> tuple[Cell, bool]:
        claims: list[Claim] = []
        for claim in cell.claims:
            if claim[1] != node:
                claims.append(claim)
            elif not _beaten(claim[:2], cell.seen):
                claims.append((claim[0], node, False))
        return Cell(tuple(claims), cell.seen), False

    return transform


def _without(node: str) -> Transform:
    def transform(cell: Cell) -> tuple[Cell, bool]:
        return Cell(tuple(c for c in cell.claims if c[1] != node), cell.seen), False

    return transform


def _remember(seen: tuple[Seen, ...], claim: Seen) -> tuple[Seen, ...]:
    others = [s for s in seen if s[1] != claim[1]]
    mine = min([claim, *(s for s in seen if s[1] == claim[1])])
    return tuple(sorted([*others, mine])[:2])


def _beaten(claim: Seen, seen: tuple[Seen, ...]) -> bool:
    """Whether another node's claim ever seen beats `claim`."""
    for other in seen:
        if other[1] != claim[1]:
            return other < claim
    return False


def _end(starts: list[int], i: int) -> int:
    return starts[i + 1] - 1 if i + 1 < len(starts) else NUM_SLOTS - 1


def _coalesced(starts: list[int], cells: list[Cell]) -> tuple[list[int], list[Cell]]:
    out_starts: list[int] = []
    out_cells: list[Cell] = []
    for start, cell in zip(starts, cells, strict=True):
        if out_cells and out_cells[-1] == cell:
            continue
        out_starts.append(start)
        out_cells.append(cell)
    return out_starts, out_cells


def _joined(moves: list[Move]) -> list[Move]:
    """`moves` in slot order, adjacent ones between the same owners joined."""
    moves.sort()
    joined: list[Move] = []
    for move in moves:
        if joined:
            last = joined[-1]
            if last.end + 1 == move.start and (last.old, last.new) == (move.old, move.new):
                joined[-1] = last._replace(end=move.end)
                continue
        joined.append(move)
    return joined


def _diff(before: list[tuple[int, int, str]], after: list[tuple[int, int, str]]) -> list[Move]:
    """The moves that turn owner runs `before` into `after`."""
    points = sorted({0, *(s for s, _e, _o in before), *(e + 1 for _s, e, _o in before),
                     *(s for s, _e, _o in after), *(e + 1 for _s, e, _o in after)} - {NUM_SLOTS})
    moves: list[Move] = []
    for i, start in enumerate(points):
        end = points[i + 1] - 1 if i + 1 < len(points) else NUM_SLOTS - 1
        old, new = _owner_at(before, start), _owner_at(after, start)
        if old != new:
            moves.append(Move(start, end, old, new))
    return _joined(moves)


def _owner_at(runs: list[tuple[int, int, str]], slot: int) -> str | None:
    i = bisect_right(runs, (slot, NUM_SLOTS, "\U0010ffff")) - 1
    if i >= 0 and runs[i][0] <= slot <= runs[i][1]:
        return runs[i][2]
    return None


def normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """`ranges` sorted, overlapping and adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return tuple(out)


def union(a: Ranges, b: Ranges) -> Ranges:
    return normalize((*a, *b)) if a and b else a or b


def subtract(a: Ranges, b: Ranges) -> Ranges:
    """The slots of `a` not in `b` (both normalized)."""
    if not a or not b:
        return a
    out: list[tuple[int, int]] = []
    j = 0
    for start, end in a:
        while j < len(b) and b[j][1] < start:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= end:
            if b[k][0] > start:
                out.append((start, b[k][0] - 1))
            start = max(start, b[k][1] + 1)
            k += 1
        if start <= end:
            out.append((start, end))
    return tuple(out)
