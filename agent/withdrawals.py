"""What a node stopped saying, said out loud: the agent remembers its node's earlier views.

A Redis node's CLUSTER NODES says what is; what disappeared from it is said by nothing.
clusterwatch needs both, so the agent compares each read of its node with the earlier ones.

Forgotten nodes (``ForgottenNodes``). Redis drops a node from its table only on CLUSTER
FORGET (``redis-cli --cluster del-node`` sends it to every node) or CLUSTER RESET, and after
a FORGET it refuses the node for 60 s (its forget blacklist, ``CLUSTER_BLACKLIST_TTL``). An id
the node listed in an earlier read and no longer lists is therefore reported as forgotten
from the read that first missed it until ``FORGET_WINDOW_S`` (60 s) later, or until the node
lists it again. Only ids listed outside a handshake count (a handshake's id is made up and
replaced by the real one). Memory starts with the agent: a restarted agent reports nothing
it did not see go.

Released slots (``ReleasedSlots``). A slot the node served in an earlier read, and that its
own view now shows with no owner at all, was given up for good (CLUSTER DELSLOTS): it is
released. A slot its view shows on another node moved (SETSLOT NODE, a failover, a reshard):
that is no release, the new owner's claim at a higher epoch settles it, and the slot is no
longer remembered. A released slot is reported with every ``slots`` message while the view
shows it unowned, so a message lost on the way costs nothing; once any node serves it
again it is an ordinary slot.

Both trackers are pure: the caller passes the time (seconds, any monotonic clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["FORGET_WINDOW_S", "ForgottenNodes", "ReleasedSlots", "slot_ranges", "slot_set"]

FORGET_WINDOW_S: Final = 60.0


class ForgottenNodes:
    def __init__(self, window_s: float = FORGET_WINDOW_S) -> None:
        self.window_s = window_s
        self._listed: set[str] = set()
        self._gone: dict[str, float] = {}  # id -> when the node first no longer listed it

    def update(self, listed: Iterable[str], now: float) -> list[str]:
        """The ids forgotten as of this read, sorted."""
        current = set(listed)
        for node_id in self._listed - current:
            self._gone.setdefault(node_id, now)
        for node_id in current & self._gone.keys():
            del self._gone[node_id]
        self._listed = current
        for node_id in [n for n, since in self._gone.items() if now - since >= self.window_s]:
            del self._gone[node_id]
        return sorted(self._gone)


class ReleasedSlots:
    def __init__(self) -> None:
        self._served: set[int] = set()  # slots the node served and nobody else has since
        self._last: tuple[object, object, list[list[int]]] | None = None

    def update(self, mine: Sequence[Sequence[int]], taken: Sequence[Sequence[int]]
               ) -> list[list[int]]:
        """The ranges released as of this read: served before, owned by no node now."""
        key = (tuple(map(tuple, mine)), tuple(map(tuple, taken)))
        if self._last is not None and self._last[:2] == key:
            return self._last[2]
        own, elsewhere = slot_set(mine), slot_set(taken)
        self._served -= elsewhere
        self._served |= own
        released = slot_ranges(self._served - own)
        self._last = (*key, released)
        return released


def slot_set(ranges: Iterable[Sequence[int]]) -> set[int]:
    slots: set[int] = set()
    for start, end in ranges:
        slots.update(range(start, end + 1))
    return slots


def slot_ranges(slots: Iterable[int]) -> list[list[int]]:
    """Sorted slots as ``[[start, end], ...]`` runs."""
    ranges: list[list[int]] = []
    for slot in sorted(slots):
        if ranges and ranges[-1][1] == slot - 1:
            ranges[-1][1] = slot
        else:
            ranges.append([slot, slot])
    return ranges
