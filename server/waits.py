"""Blocked waits on the model (CLUSTER WAIT, HEALTH WAIT): Consul's blocking query and
Elasticsearch's ``wait_for_status`` without polling.

A wait is a check that the command layer wrote (it returns the answer once the condition
holds, None before) and a time-out answer. The server calls ``changed()`` when the model
may have changed (a bus batch applied, the 10 Hz housekeeping tick that runs failure
detection and re-judges its own checks); each open wait's check runs then, and only then.
A waiting client costs a timer and a list entry until its condition holds or its time runs
out; nothing runs on its behalf in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from commands import Deferred

__all__ = ["Waits"]


class _Wait:
    __slots__ = ("check", "deferred", "on_timeout", "timer")

    def __init__(self, check: Callable[[], Any | None], on_timeout: Callable[[], Any],
                 deferred: Deferred[Any]) -> None:
        self.check = check
        self.on_timeout = on_timeout
        self.deferred = deferred
        self.timer: asyncio.TimerHandle | None = None


class Waits:
    def __init__(self) -> None:
        self._open: dict[int, _Wait] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, check: Callable[[], Any | None], timeout_ms: int,
            on_timeout: Callable[[], Any]) -> Deferred[Any]:
        deferred: Deferred[Any] = Deferred()
        answer = check()
        if answer is not None:
            deferred.resolve(answer)
            return deferred
        wait = _Wait(check, on_timeout, deferred)
        wait.timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, self._expire,
                                                           wait)
        self._open[id(wait)] = wait
        return deferred

    def changed(self) -> None:
        if not self._open:
            return
        for key, wait in list(self._open.items()):
            answer = wait.check()
            if answer is not None:
                del self._open[key]
                if wait.timer is not None:
                    wait.timer.cancel()
                wait.deferred.resolve(answer)

    def _expire(self, wait: _Wait) -> None:
        if self._open.pop(id(wait), None) is not None:
            wait.deferred.resolve(wait.on_timeout())

    def close(self) -> None:
        """Answer every open wait as timed out (shutdown)."""
        for wait in list(self._open.values()):
            if wait.timer is not None:
                wait.timer.cancel()
            self._expire(wait)
