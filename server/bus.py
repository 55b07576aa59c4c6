"""The bus: how node messages reach the cluster model.

``Bus`` is the interface the server holds; ``MemoryBus`` is the embedded default, where
``BUS PUBLISH`` on the server itself (or the bundled agent and simulator) feeds the model
directly. A Redis-stream bus (DESIGN.md "Bus") will implement the same interface: its
``publish`` validates and appends to the stream, and its ``start`` runs the task that reads
the stream back and applies each entry with the time it was read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from cluster import ClusterModel, Outcome

__all__ = ["Bus", "MemoryBus"]


class Bus(Protocol):
    """Carries raw JSON node messages to the server's ``ClusterModel``."""

    #: Short name shown by ``BUS INFO`` and ``INFO cluster``.
    name: str

    def publish(self, messages: Sequence[bytes]) -> list[Outcome]:
        """Hand over a batch, in order; one outcome per message, in the same order.

        A malformed message is answered ``rejected`` and changes nothing but the reject
        counters; a valid one is never dropped.
        """
        ...

    async def start(self) -> None:
        """Begin delivering (a no-op for the memory bus)."""
        ...

    async def aclose(self) -> None:
        """Stop delivering and release resources."""
        ...


class MemoryBus:
    """The embedded bus: a published batch is applied at once, with one receive time.

    ``clock`` is the server's wall clock in milliseconds; every message of a batch is
    stamped with a single reading, as if the batch arrived in one network read.
    """

    name = "memory"

    def __init__(self, model: ClusterModel, clock: Callable[[], int]) -> None:
        self.model = model
        self._clock = clock

    def publish(self, messages: Sequence[bytes]) -> list[Outcome]:
        now_ms = self._clock()
        publish = self.model.publish
        return [publish(data, now_ms) for data in messages]

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
