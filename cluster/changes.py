"""`ChangeLog`: which keys (node ids) changed, for any number of readers, each at its own pace.

A writer appends a key each time its record changes; a reader keeps a cursor (an absolute
position, -1 before its first read) and `since(cursor)` gives the keys appended after it. The
log keeps at least `limit` recent keys; a reader that fell further behind, or one whose
writer `reset` the log (everything changed: a new order, a new member), gets None and
rebuilds from scratch. Appending is O(1) amortized and costs the same for any number of
readers.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ChangeLog"]

_MIN_LIMIT: Final = 4096


class ChangeLog:
    __slots__ = ("_base", "_keys", "limit")

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._base = 0  # the absolute position of _keys[0]
        self.limit = _MIN_LIMIT

    def add(self, key: str) -> None:
        keys = self._keys
        keys.append(key)
        if len(keys) > 2 * self.limit:
            drop = len(keys) - self.limit
            del keys[:drop]
            self._base += drop

    def reset(self) -> None:
        """Everything changed: every reader rebuilds on its next `since`."""
        self._base += len(self._keys) + 1
        self._keys.clear()

    def fit(self, size: int) -> None:
        """Keep at least a few times `size` keys (the number of records the keys name)."""
        self.limit = max(_MIN_LIMIT, 4 * size)

    @property
    def end(self) -> int:
        """The cursor of a reader that has seen everything."""
        return self._base + len(self._keys)

    def since(self, cursor: int) -> tuple[list[str] | None, int]:
        """The keys added after `cursor` (None: rebuild everything) and the new cursor."""
        end = self._base + len(self._keys)
        if cursor < self._base:
            return None, end
        return self._keys[cursor - self._base:], end
