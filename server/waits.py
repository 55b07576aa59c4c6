"""Blocked waits on the model (CLUSTER WAIT, HEALTH WAIT): Consul's blocking query and
Elasticsearch's ``wait_for_status`` without polling.

A wait is a check that the command layer wrote (it returns the answer once the condition
holds, None before) and a time-out answer. The server calls ``changed()`` when the model
may have changed (a bus batch applied, the 10 Hz housekeeping tick that runs failure
detection and re-judges its own checks); the open waits' checks run then, and only then.
A waiting client costs a timer and a dict entry until its condition holds, its time runs
out or it goes away (its Deferred is abandoned); nothing runs on its behalf in between.

Waits that ask the same question (the same ``key``: ``CLUSTER WAIT`` for one index,
``HEALTH WAIT`` for one probe and status) share one check per change, so five thousand
clients waiting on the same index cost one comparison per change, not five thousand. The
clients a change releases are answered ``WAKE_CHUNK`` at a time, one chunk per turn of the
event loop, so a bystander's request is served between chunks instead of after all of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final

from commands import Deferred

__all__ = ["WAKE_CHUNK", "Waits"]

WAKE_CHUNK: Final = 64
_unique = itertools.count()


class _Wait:
    __slots__ = ("deferred", "key", "on_timeout", "timer")

    def __init__(self, key: Hashable, on_timeout: Callable[[], Any],
                 deferred: Deferred[Any]) -> None:
        self.key = key
        self.on_timeout = on_timeout
        self.deferred = deferred
        self.timer: asyncio.TimerHandle | None = None


class _Group:
    """The waits that share one check."""

    __slots__ = ("check", "waits")

    def __init__(self, check: Callable[[], Any | None]) -> None:
        self.check = check
        self.waits: dict[int, _Wait] = {}


class Waits:
    def __init__(self) -> None:
        self._groups: dict[Hashable, _Group] = {}
        self._count = 0
        self._waking: deque[tuple[_Wait, Any]] = deque()
        self._wake_scheduled = False

    def __len__(self) -> int:
        """Clients still waiting for their condition."""
        return self._count

    def add(self, check: Callable[[], Any | None], timeout_ms: int,
            on_timeout: Callable[[], Any], key: Hashable | None = None) -> Deferred[Any]:
        """Wait until ``check()`` answers, or answer ``on_timeout()`` after ``timeout_ms``.
        Waits given the same ``key`` must ask the same question: one check serves them."""
        deferred: Deferred[Any] = Deferred()
        answer = check()
        if answer is not None:
            deferred.resolve(answer)
            return deferred
        group_key = key if key is not None else ("unique", next(_unique))
        wait = _Wait(group_key, on_timeout, deferred)
        wait.timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, self._expire,
                                                           wait)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = _Group(check)
        group.waits[id(wait)] = wait
        self._count += 1
        deferred.on_abandon(lambda: self._drop(wait))
        return deferred

    def changed(self) -> None:
        if not self._groups:
            return
        released = False
        for key, group in list(self._groups.items()):
            answer = group.check()
            if answer is None:
                continue
            del self._groups[key]
            self._count -= len(group.waits)
            for wait in group.waits.values():
                if wait.timer is not None:
                    wait.timer.cancel()
                self._waking.append((wait, answer))
            released = True
        if released:
            self._wake()

    def _wake(self) -> None:
        self._wake_scheduled = False
        waking = self._waking
        for _ in range(min(WAKE_CHUNK, len(waking))):
            wait, answer = waking.popleft()
            wait.deferred.resolve(answer)
        if waking and not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _drop(self, wait: _Wait) -> None:
        """Its client went away: free the timer and the entry now, not at the time-out."""
        if wait.timer is not None:
            wait.timer.cancel()
        group = self._groups.get(wait.key)
        if group is None or group.waits.pop(id(wait), None) is None:
            return
        self._count -= 1
        if not group.waits:
            del self._groups[wait.key]

    def _expire(self, wait: _Wait) -> None:
        group = self._groups.get(wait.key)
        if group is None or group.waits.pop(id(wait), None) is None:
            return
        self._count -= 1
        if not group.waits:
            del self._groups[wait.key]
        wait.deferred.resolve(wait.on_timeout())

    def close(self) -> None:
        """Answer every open wait as timed out, and every released one (shutdown)."""
        for group in list(self._groups.values()):
            for wait in list(group.waits.values()):
                if wait.timer is not None:
                    wait.timer.cancel()
                self._expire(wait)
        while self._waking:
            wait, answer = self._waking.popleft()
            wait.deferred.resolve(answer)
