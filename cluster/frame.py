"""`Frame`: bytes made of one part per item in order, where single parts can be replaced.

A reply kept per node (the lines of CLUSTER NODES, a map's members per node) is kept as the
joined bytes alone, plus each part's size and offset (4 bytes each), rather than as the
parts and their join: one copy of the bytes, not two. Replacing some parts copies the
unchanged stretches around the new parts into new bytes, as a join of the parts would.
"""

from __future__ import annotations

from array import array
from itertools import accumulate

__all__ = ["Frame"]


class Frame:
    """`data` is a header of `start` bytes, each part in order, then a trailer."""

    __slots__ = ("data", "offsets", "sizes", "start")

    def __init__(self) -> None:
        self.data = b""
        self.start = 0
        self.sizes = array("I")
        self.offsets = array("I", (0,))  # of each part from `start`, then the end

    def __len__(self) -> int:
        return len(self.sizes)

    def fill(self, head: bytes, parts: list[bytes], tail: bytes = b"") -> None:
        self.sizes = array("I", map(len, parts))
        self.offsets = array("I", accumulate(self.sizes, initial=0))
        self.start = len(head)
        self.data = b"".join((head, *parts, tail))

    def part(self, i: int) -> bytes:
        start = self.start
        return self.data[start + self.offsets[i]:start + self.offsets[i + 1]]

    def parts(self) -> list[bytes]:
        data, start, offsets = self.data, self.start, self.offsets
        return [data[start + offsets[i]:start + offsets[i + 1]] for i in range(len(self.sizes))]

    def patch(self, head: bytes, changes: list[tuple[int, bytes]], tail: bytes = b"") -> None:
        """Replace the parts at the (ascending, distinct) indexes of `changes`, and the
        header and trailer."""
        offsets, sizes, start = self.offsets, self.sizes, self.start
        with memoryview(self.data) as old:
            pieces: list[bytes | memoryview] = [head]
            resized = False
            prev = 0
            for i, part in changes:
                pieces.append(old[start + offsets[prev]:start + offsets[i]])
                pieces.append(part)
                if sizes[i] != len(part):
                    sizes[i] = len(part)
                    resized = True
                prev = i + 1
            pieces.append(old[start + offsets[prev]:start + offsets[-1]])
            pieces.append(tail)
            self.data = b"".join(pieces)
            for piece in pieces:
                if type(piece) is memoryview:
                    piece.release()
        if resized:
            self.offsets = array("I", accumulate(sizes, initial=0))
        self.start = len(head)
