"""``BUS PUBLISH`` replies waiting for their entries to be applied by this instance's reader.

The publisher registers each appended entry's id with its waiter; the reader, applying an
entry, settles it with the entry's outcome, and a waiter whose entries are all settled
answers. An entry can be read back before its ``XADD`` reply reaches the publisher, so while
appends are in flight the reader also keeps every outcome it produces (``early``).
"""

from __future__ import annotations

import asyncio

from clusterwatch.cluster import NodeMessage, Outcome
from clusterwatch.cluster.publishers import Publisher
from clusterwatch.commands import BusError, Deferred

__all__ = ["PublishWaits", "Waiter"]

# Outcomes kept for appends whose reply is still on its way.
_EARLY_MAX = 65_536


class Waiter:
    """A ``BUS PUBLISH`` waiting for its appended entries to be applied here."""

    __slots__ = ("appended", "behind", "decoded", "deferred", "indexes", "outcomes", "payloads",
                 "pending", "publisher", "timer")

    def __init__(self, outcomes: list[Outcome | None],
                 deferred: Deferred[list[Outcome] | BusError]) -> None:
        self.outcomes = outcomes
        self.deferred = deferred
        self.pending: dict[bytes, int] = {}  # entry id -> index in outcomes
        self.timer: asyncio.TimerHandle | None = None
        self.appended = False
        self.behind = False  # appended behind the last id read here: the stream was reset
        self.payloads: list[bytes] = []  # the valid messages, to append
        self.indexes: list[int] = []  # where each one's outcome goes
        # index -> (message, as decoded when validated): the reader need not decode it again
        self.decoded: dict[int, tuple[bytes, NodeMessage]] = {}
        self.publisher: Publisher | None = None


class PublishWaits:
    """The open waiters, and the entries they wait for, shared by publisher and reader."""

    __slots__ = ("appending", "by_entry", "early", "open")

    def __init__(self) -> None:
        self.open: set[Waiter] = set()
        self.by_entry: dict[bytes, tuple[Waiter, int]] = {}
        self.appending = 0  # appends whose reply has not arrived
        self.early: dict[bytes, Outcome] = {}

    def add(self, waiter: Waiter) -> None:
        self.open.add(waiter)

    def expect(self, waiter: Waiter, entry_id: bytes, index: int) -> None:
        waiter.pending[entry_id] = index
        self.by_entry[entry_id] = (waiter, index)

    def record_early(self, entry_id: bytes, outcome: Outcome) -> None:
        early = self.early
        early[entry_id] = outcome
        if len(early) > _EARLY_MAX:
            del early[next(iter(early))]

    def take_early(self) -> dict[bytes, Outcome]:
        """The outcomes recorded so far; forgotten here once no append is in flight."""
        early = self.early
        if not self.appending:
            self.early = {}
        return early

    def settle(self, waiter: Waiter, index: int, entry_id: bytes, outcome: Outcome) -> None:
        """The reader applied one of ``waiter``'s entries (already out of ``by_entry``)."""
        waiter.outcomes[index] = outcome
        del waiter.pending[entry_id]
        if not waiter.pending:
            self.finish(waiter, None)

    def answer_pending(self, waiter: Waiter, reason: str) -> None:
        """Answer now: each entry not applied yet is ``pending``, for ``reason``."""
        for entry_id, index in waiter.pending.items():
            self.by_entry.pop(entry_id, None)
            waiter.outcomes[index] = Outcome("pending", entry=entry_id.decode(), reason=reason)
        waiter.pending.clear()
        self.finish(waiter, None)

    def finish(self, waiter: Waiter, error: BusError | None) -> None:
        if waiter.deferred.done:
            return
        if waiter.timer is not None:
            waiter.timer.cancel()
        self.open.discard(waiter)
        for entry_id in waiter.pending:
            self.by_entry.pop(entry_id, None)
        if error is not None:
            waiter.deferred.resolve(error)
        else:
            waiter.deferred.resolve([o for o in waiter.outcomes if o is not None])

    def finish_all(self, error: BusError) -> None:
        for waiter in list(self.open):
            self.finish(waiter, error)
