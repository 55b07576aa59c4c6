"""Blocked waits on the model (CLUSTER WAIT, HEALTH WAIT, HTTP ``?index=&wait=``): Consul's
blocking query and Elasticsearch's ``wait_for_status`` without polling.

A wait is a check that the command layer wrote (it returns the answer once the condition
holds, None before) and a time-out answer. The server calls ``changed()`` when the model
may have changed (a bus batch applied, the 10 Hz housekeeping tick that runs failure
detection and re-judges its own checks); the open waits' checks run then, and only then.
A waiting client costs a timer and a dict entry until its condition holds, its time runs
out or it goes away (its Deferred is abandoned: its timer and entry are freed at once).

Rules, so that a change costs what it releases, not what waits:

- Waits that ask the same question (the same ``key``) share one check: five thousand
  clients waiting on one index cost one comparison per change.
- Index waits (key ``AboveIndex(n)``: "the model index is above n", CLUSTER WAIT and the
  HTTP blocking query) sit in a heap by ``n``. The index only rises, so while the lowest
  ``n``'s check does not answer no higher one would: a change costs one check, plus
  O(log n) per index it passes, however many indexes are waited on.
- Other keys (HEALTH WAIT's probe and status) are few; each runs its check per change.
- Released clients are answered ``WAKE_CHUNK`` per turn of the event loop, and passed
  indexes are taken from the heap only as the chunks need them, so a bystander's request
  is served between chunks however many clients or indexes one change releases.
- An index left without waiters stays in the heap until reached (skipped then) or until
  such leftovers outnumber the live indexes (the heap is rebuilt), so abandoned waits at
  ever new indexes cannot grow it without bound.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final

from clusterwatch.commands import Deferred
from clusterwatch.commands.waits import AboveIndex

__all__ = ["WAKE_CHUNK", "Waits"]

WAKE_CHUNK: Final = 64
# Leftover heap entries tolerated beyond twice the live indexes before a rebuild.
_HEAP_SLACK: Final = 64
_unique = itertools.count()


class _Group:
    """The waits that share one check. ``released`` once the check answered: its waits
    are then being answered by the wake chunks, and its time-outs no longer apply."""

    __slots__ = ("check", "key", "released", "waits")

    def __init__(self, key: Hashable, check: Callable[[], Any | None]) -> None:
        self.key = key
        self.check = check
        self.waits: dict[int, _Wait] = {}
        self.released = False


class _Wait:
    __slots__ = ("deferred", "group", "on_timeout", "timer")

    def __init__(self, group: _Group, on_timeout: Callable[[], Any],
                 deferred: Deferred[Any]) -> None:
        self.group = group
        self.on_timeout = on_timeout
        self.deferred = deferred
        self.timer: asyncio.TimerHandle | None = None


class Waits:
    def __init__(self) -> None:
        self._others: dict[Hashable, _Group] = {}
        self._by_index: dict[int, _Group] = {}
        self._indexes: list[int] = []  # a heap of the _by_index keys, with leftovers
        self._in_heap: set[int] = set()
        self._count = 0
        self._waking: deque[tuple[_Wait, Any]] = deque()
        self._wake_scheduled = False

    def __len__(self) -> int:
        """Clients still waiting for their condition."""
        return self._count

    @property
    def groups(self) -> int:
        """Distinct questions being waited on (one check each, or a heap entry)."""
        return len(self._others) + len(self._by_index)

    def add(self, check: Callable[[], Any | None], timeout_ms: int,
            on_timeout: Callable[[], Any], key: Hashable | None = None) -> Deferred[Any]:
        """Wait until ``check()`` answers, or answer ``on_timeout()`` after ``timeout_ms``.
        Waits given the same ``key`` must ask the same question: one check serves them."""
        deferred: Deferred[Any] = Deferred()
        answer = check()
        if answer is not None:
            deferred.resolve(answer)
            return deferred
        group = self._group(check, key)
        wait = _Wait(group, on_timeout, deferred)
        wait.timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, self._expire,
                                                           wait)
        group.waits[id(wait)] = wait
        self._count += 1
        deferred.on_abandon(lambda: self._drop(wait))
        return deferred

    def _group(self, check: Callable[[], Any | None], key: Hashable | None) -> _Group:
        if isinstance(key, AboveIndex):
            group = self._by_index.get(key.index)
            if group is None:
                group = self._by_index[key.index] = _Group(key, check)
                if key.index not in self._in_heap:
                    heapq.heappush(self._indexes, key.index)
                    self._in_heap.add(key.index)
            return group
        group_key = key if key is not None else ("unique", next(_unique))
        group = self._others.get(group_key)
        if group is None:
            group = self._others[group_key] = _Group(group_key, check)
        return group

    def changed(self) -> None:
        for key, group in list(self._others.items()):
            answer = group.check()
            if answer is not None:
                del self._others[key]
                self._release(group, answer)
        if not self._wake_scheduled and (self._waking or self._indexes):
            self._wake()

    def _release(self, group: _Group, answer: Any) -> None:
        group.released = True
        self._count -= len(group.waits)
        self._waking.extend(zip(group.waits.values(), itertools.repeat(answer)))

    def _release_lowest_index(self) -> bool:
        """Release the lowest waited-on index if the model passed it; False if not."""
        heap = self._indexes
        while heap:
            index = heap[0]
            group = self._by_index.get(index)
            if group is not None:
                answer = group.check()
                if answer is None:
                    return False
                del self._by_index[index]
            heapq.heappop(heap)
            self._in_heap.discard(index)
            if group is not None:
                self._release(group, answer)
                return True
        return False

    def _wake(self) -> None:
        """Answer one chunk of released clients; come back next turn for the rest."""
        self._wake_scheduled = False
        waking = self._waking
        budget = WAKE_CHUNK
        while budget:
            if not waking and not self._release_lowest_index():
                break
            wait, answer = waking.popleft()
            if wait.timer is not None:
                wait.timer.cancel()
            wait.deferred.resolve(answer)  # an abandoned one's answer goes nowhere
            budget -= 1
        if waking or (not budget and self._indexes):
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _drop(self, wait: _Wait) -> None:
        """Its client went away: free the timer and the entry now, not at the time-out."""
        if wait.timer is not None:
            wait.timer.cancel()
        self._leave(wait)

    def _expire(self, wait: _Wait) -> None:
        if self._leave(wait):
            wait.deferred.resolve(wait.on_timeout())

    def _leave(self, wait: _Wait) -> bool:
        """Take a wait out of its group before its answer; False if it is being answered."""
        group = wait.group
        if group.released or group.waits.pop(id(wait), None) is None:
            return False
        self._count -= 1
        if not group.waits:
            self._forget(group)
        return True

    def _forget(self, group: _Group) -> None:
        key = group.key
        if isinstance(key, AboveIndex):
            if self._by_index.get(key.index) is group:
                del self._by_index[key.index]
                if len(self._indexes) > 2 * len(self._by_index) + _HEAP_SLACK:
                    self._indexes = list(self._by_index)
                    heapq.heapify(self._indexes)
                    self._in_heap = set(self._indexes)
        elif self._others.get(key) is group:
            del self._others[key]

    def close(self) -> None:
        """Answer every open wait as timed out, and every released one (shutdown)."""
        for group in [*self._others.values(), *self._by_index.values()]:
            for wait in list(group.waits.values()):
                if wait.timer is not None:
                    wait.timer.cancel()
                self._expire(wait)
        while self._waking:
            wait, answer = self._waking.popleft()
            if wait.timer is not None:
                wait.timer.cancel()
            wait.deferred.resolve(answer)
