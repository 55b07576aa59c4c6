"""A reply that is not ready when its handler returns: Redis's blocked client.

A handler that must wait for something outside the command layer (the Redis-stream bus
applying what ``BUS PUBLISH`` appended) returns a ``Deferred``. The command table stops the
connection's batch after it; the server sends the reply when ``resolve`` is called, then
runs the requests that were pipelined behind it, so replies keep their order. Inside EXEC
(``Session.deny_blocking``) a handler must not return one, as Redis's blocking commands do
not block inside a transaction.

A client that goes away while it waits ``abandon``s its Deferred: whoever produces the
value (a wait, a bus append) hears of it through ``on_abandon`` and frees what it held for
the client at once, as redis-server unblocks a client that disconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Deferred"]

T = TypeVar("T")
U = TypeVar("U")

_UNSET = object()


class Deferred(Generic[T]):
    """A value given later, once; callbacks run on ``resolve`` (or at once if resolved)."""

    __slots__ = ("_abandon_hooks", "_callbacks", "_value")

    def __init__(self) -> None:
        self._value: object = _UNSET
        self._callbacks: list[Callable[[T], None]] = []
        self._abandon_hooks: list[Callable[[], None]] | None = []

    @property
    def done(self) -> bool:
        return self._value is not _UNSET

    def resolve(self, value: T) -> None:
        if self._value is not _UNSET:
            raise RuntimeError("Deferred resolved twice")
        self._value = value
        if self._abandon_hooks:
            self._abandon_hooks = []
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(value)

    @property
    def abandoned(self) -> bool:
        return self._abandon_hooks is None

    def on_abandon(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` if the value stops being wanted before it is given."""
        if self._abandon_hooks is None:
            hook()
        elif self._value is _UNSET:
            self._abandon_hooks.append(hook)

    def abandon(self) -> None:
        """Nobody waits for the value any more (its client went away): the hooks run once
        and the callbacks are dropped; a later ``resolve`` is accepted and goes nowhere."""
        hooks, self._abandon_hooks = self._abandon_hooks, None
        if hooks is None or self._value is not _UNSET:
            return
        self._callbacks = []
        for hook in hooks:
            hook()

    def add_callback(self, callback: Callable[[T], None]) -> None:
        if self._value is _UNSET:
            self._callbacks.append(callback)
        else:
            callback(self._value)  # type: ignore[arg-type]

    def map(self, transform: Callable[[T], U]) -> Deferred[U]:
        """A Deferred of ``transform(value)``, resolved when this one is."""
        mapped: Deferred[U] = Deferred()
        self.add_callback(lambda value: mapped.resolve(transform(value)))
        mapped.on_abandon(self.abandon)
        return mapped
