"""The embedded bus: a published batch is applied here, with the server's receive time.

A batch the current connection's turn can afford (``server/turns.py``) is applied at once,
every message stamped with one clock reading, as if it arrived in one network read. A
larger one, one that comes after the turn's work is spent, or one of more than
``_ATOMIC_MESSAGES`` whose messages take longer than a turn's time (they cost more than
they are counted for), is answered with a ``Deferred``: its messages are applied in slices
of ``SLICE_UNITS`` (or a turn's time), one slice per turn of the event loop (publishes
waiting together take turns), each slice stamped with its own reading; the model-change
work (events, waits) runs after each slice, and the Deferred resolves with every outcome,
in order, after the last. Other clients, and their own publishes, are served between
slices; the publishing client's later requests wait for its reply. A client that goes
away meanwhile abandons the Deferred: its messages are still applied (nothing valid is
dropped), nobody is answered.

``wait=False`` (inside EXEC, and the server's own first publish) applies at once,
whatever the size: a transaction is not interleaved with other clients. So does a
publish made with no event loop running (the command tests), with nothing to yield to.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

from clusterwatch.cluster import ClusterModel, Outcome, Publisher, SelfCheck
from clusterwatch.commands import BusError, Deferred

from ..turns import SLICE_UNITS, Turn, message_units, one_message_units

__all__ = ["MemoryBus"]

_EVERYTHING = 1 << 62
_NO_DEADLINE = 1 << 63
# A publish of at most this many messages the turn can afford is applied whole, however
# long it takes: one that sets up a cluster (hellos and slot claims, ~5 ms a claim of a
# third of the slots) is seen by the waits and the watchers as one change, as before.
_ATOMIC_MESSAGES = 64


class _Publish:
    """A batch being applied a slice at a time."""

    __slots__ = ("deferred", "messages", "outcomes", "publisher")

    def __init__(self, messages: Sequence[bytes], publisher: Publisher | None) -> None:
        self.messages = messages
        self.publisher = publisher
        self.outcomes: list[Outcome] = []
        self.deferred: Deferred[list[Outcome] | BusError] = Deferred()


class MemoryBus:
    """``clock`` is the server's wall clock in milliseconds. ``on_applied(n)`` is called
    after each slice of a sliced batch with its message count (the server's bookkeeping
    for a batch applied at once is its caller's)."""

    name = "memory"
    ready = True

    def __init__(self, model: ClusterModel, clock: Callable[[], int], *,
                 turn: Turn | None = None,
                 on_applied: Callable[[int], None] | None = None) -> None:
        self.model = model
        self._clock = clock
        self._turn = turn or Turn()
        self._on_applied = on_applied
        self._sliced: deque[_Publish] = deque()

    def publish(self, messages: Sequence[bytes], *, wait: bool = True,
                publisher: Publisher | None = None
                ) -> list[Outcome] | Deferred[list[Outcome] | BusError]:
        turn = self._turn
        units = message_units(messages)
        job = _Publish(messages, publisher)
        loop = _running_loop() if wait else None
        if loop is None:  # inside EXEC, or no loop to give turns to: all at once
            turn.spent += units
            self._apply(job, _EVERYTHING, _NO_DEADLINE)
            return job.outcomes
        if not turn.affords(units):
            return self._slice(job, loop)
        turn.spent += units
        deadline = time.perf_counter_ns() + turn.time_ns
        if self._apply(job, _EVERYTHING, deadline, atomic=_ATOMIC_MESSAGES):
            return job.outcomes
        # Out of time (messages that cost more than they are counted for): what is
        # applied is accounted for as a slice, the rest goes on in slices.
        self._applied(len(job.outcomes))
        return self._slice(job, loop)

    def _slice(self, job: _Publish, loop: asyncio.AbstractEventLoop
               ) -> Deferred[list[Outcome] | BusError]:
        if not self._sliced:
            loop.call_soon(self._apply_slice)
        self._sliced.append(job)
        return job.deferred

    def _apply_slice(self) -> None:
        """One slice of the batch whose turn it is; the batch goes to the back."""
        if not self._sliced:  # applied by aclose meanwhile
            return
        job = self._sliced.popleft()
        before = len(job.outcomes)
        done = self._apply(job, SLICE_UNITS, time.perf_counter_ns() + self._turn.time_ns)
        self._applied(len(job.outcomes) - before)
        if done:
            job.deferred.resolve(job.outcomes)
        else:
            self._sliced.append(job)
        if self._sliced:
            asyncio.get_running_loop().call_soon(self._apply_slice)

    def _apply(self, job: _Publish, budget: int, deadline_ns: int, atomic: int = 0) -> bool:
        """Apply ``job``'s next messages worth ``budget`` units, stopping once the clock
        passes ``deadline_ns`` (the time backstop, ``turns.py``: a message can cost more
        than it is counted for) with at least ``atomic`` of them applied; True once all
        are in. One receive time for them all."""
        messages, outcomes = job.messages, job.outcomes
        index = len(outcomes)
        atomic += index
        now_ms = self._clock()
        publish = self.model.publish
        publisher = job.publisher
        clock = time.perf_counter_ns
        spent = 0
        while index < len(messages) and spent < budget:
            data = messages[index]
            outcomes.append(publish(data, now_ms, publisher))
            spent += one_message_units(data)
            index += 1
            if index >= atomic and clock() >= deadline_ns:
                break
        return index == len(messages)

    def _applied(self, count: int) -> None:
        if self._on_applied is not None and count:
            self._on_applied(count)

    def now_ms(self) -> int:
        return self._clock()

    def self_check(self) -> SelfCheck | None:
        return None

    def info(self) -> Sequence[tuple[str, str | int]]:
        return ()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        """Apply what is still being sliced (shutdown: no one else is waiting)."""
        while self._sliced:
            job = self._sliced.popleft()
            before = len(job.outcomes)
            self._apply(job, _EVERYTHING, _NO_DEADLINE)
            self._applied(len(job.outcomes) - before)
            job.deferred.resolve(job.outcomes)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
