"""`Frame`: bytes made of one part per item in order, where single parts can be replaced.

A reply kept per node (the lines of CLUSTER NODES, a map's members per node) is kept as the
joined bytes alone, plus each part's size and offset (4 bytes each), rather than as the
parts and their join: one copy of the bytes, not two. Replacing some parts copies the
unchanged stretches around the new parts into new bytes, as a join of the parts would.

Replacements can be staged and applied later (`stage`, `flush`), so a frame that nobody reads
(a reply in the protocol no client speaks) costs a copy only every so often. `snapshot`
captures what the frame is now, to be rendered later even if the frame moves on: the bytes
and arrays a frame holds are never changed in place, only replaced.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import NamedTuple

__all__ = ["Frame", "Snapshot"]


class Snapshot(NamedTuple):
    """A frame's content at one point: `render()` gives its bytes."""

    data: bytes
    start: int
    offsets: array[int]
    sizes: array[int]
    changes: Mapping[int, bytes]
    head: bytes
    tail: bytes

    def render(self) -> bytes:
        return _spliced(self.data, self.start, self.offsets, self.sizes,
                        sorted(self.changes.items()), self.head, self.tail)[0]


class Frame:
    """`data` is a header of `start` bytes, each part in order, then a trailer; staged
    replacements (`pending`, and the header and trailer to come) are not in it yet."""

    __slots__ = ("_dirty", "_head", "_pending", "_shared", "_tail", "data", "offsets", "sizes",
                 "start", "version")

    def __init__(self) -> None:
        self.data = b""
        self.start = 0
        self.sizes = array("I")
        self.offsets = array("I", (0,))  # of each part from `start`, then the end
        self._pending: dict[int, bytes] = {}
        self._head = b""
        self._tail = b""
        self._dirty = False  # something is staged
        self._shared = False  # a snapshot holds `_pending`: copy it before changing it
        self.version = 0  # moves with every change, staged or not

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def pending(self) -> int:
        """How many parts are staged."""
        return len(self._pending)

    def fill(self, head: bytes, parts: list[bytes], tail: bytes = b"") -> None:
        self.sizes = array("I", map(len, parts))
        self.offsets = array("I", accumulate(self.sizes, initial=0))
        self.start = len(head)
        self.data = b"".join((head, *parts, tail))
        self._pending = {}
        self._shared = False
        self._head, self._tail = head, tail
        self._dirty = False
        self.version += 1

    @property
    def dirty(self) -> bool:
        """Something is staged: `data` is not the frame's content."""
        return self._dirty

    def stage(self, head: bytes, changes: Iterable[tuple[int, bytes]], tail: bytes = b"") -> None:
        """Replace the parts at the indexes of `changes`, and the header and trailer, on the
        next `flush`."""
        if self._shared:
            self._pending = dict(self._pending)
            self._shared = False
        self._pending.update(changes)
        self._head, self._tail = head, tail
        self._dirty = True
        self.version += 1

    def flush(self) -> bytes:
        """Apply what was staged; the frame's bytes."""
        if self._dirty:
            self.data, self.offsets, self.sizes = _spliced(
                self.data, self.start, self.offsets, self.sizes, sorted(self._pending.items()),
                self._head, self._tail)
            self.start = len(self._head)
            self._pending = {}
            self._shared = False
            self._dirty = False
        return self.data

    def patch(self, head: bytes, changes: list[tuple[int, bytes]], tail: bytes = b"") -> None:
        """Replace the parts at the indexes of `changes`, and the header and trailer, now."""
        self.stage(head, changes, tail)
        self.flush()

    def snapshot(self) -> Snapshot:
        self._shared = True
        return Snapshot(self.data, self.start, self.offsets, self.sizes, self._pending,
                        self._head, self._tail)

    def part(self, i: int) -> bytes:
        """Part `i` as last flushed."""
        start = self.start
        return self.data[start + self.offsets[i]:start + self.offsets[i + 1]]

    def parts(self) -> list[bytes]:
        """Every part, with what is staged."""
        data, start, offsets = self.data, self.start, self.offsets
        parts = [data[start + offsets[i]:start + offsets[i + 1]] for i in range(len(self.sizes))]
        for i, part in self._pending.items():
            parts[i] = part
        return parts


def _spliced(data: bytes, start: int, offsets: array[int], sizes: array[int],
             changes: Iterable[tuple[int, bytes]], head: bytes, tail: bytes
             ) -> tuple[bytes, array[int], array[int]]:
    """`data` with the parts at the (ascending, distinct) indexes of `changes` replaced, and
    the header and trailer; new offsets and sizes (the given arrays are left as they are)."""
    new_sizes = sizes
    with memoryview(data) as old:
        pieces: list[bytes | memoryview] = [head]
        prev = 0
        for i, part in changes:
            pieces.append(old[start + offsets[prev]:start + offsets[i]])
            pieces.append(part)
            if new_sizes[i] != len(part):
                if new_sizes is sizes:
                    new_sizes = array("I", sizes)
                new_sizes[i] = len(part)
            prev = i + 1
        pieces.append(old[start + offsets[prev]:start + offsets[-1]])
        pieces.append(tail)
        joined = b"".join(pieces)
        for piece in pieces:
            if type(piece) is memoryview:
                piece.release()
    if new_sizes is sizes:
        return joined, offsets, sizes
    return joined, array("I", accumulate(new_sizes, initial=0)), new_sizes
