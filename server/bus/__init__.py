"""The bus: how node messages reach the cluster model.

``Bus`` is the interface the server holds. Two implementations:

- ``MemoryBus`` (``memory.py``), the embedded default: ``BUS PUBLISH`` on the server itself
  (or the bundled agent and simulator) feeds the model at once, stamped with the server's
  wall clock.
- ``RedisStreamBus`` (``redis_stream.py``): a Redis Stream on a real Redis server, read back
  by every instance, so several instances hold one model (see its module header).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from clusterwatch.cluster import Outcome, Publisher, SelfCheck
from clusterwatch.commands import BusError, Deferred

from .memory import MemoryBus

__all__ = ["Bus", "MemoryBus", "PublishResult"]

#: What a waiting publish resolves to: the outcomes, or the error to answer instead.
PublishResult = list[Outcome] | BusError


class Bus(Protocol):
    """Carries raw JSON node messages to the server's ``ClusterModel``."""

    #: Short name shown by ``BUS INFO`` and ``INFO cluster``.
    name: str

    def publish(self, messages: Sequence[bytes], *, wait: bool = True,
                publisher: Publisher | None = None) -> list[Outcome] | Deferred[PublishResult]:
        """Hand over a batch, in order, published as ``publisher`` (its key patterns and
        the nodes' bindings decide which messages it may publish, ``cluster.publishers``);
        one outcome per message, in the same order.

        A malformed message is answered ``rejected`` and changes nothing but the reject
        counters; a valid one is never dropped. A bus that must wait for its engine, or
        (the memory bus) applies a large batch in slices between other clients' requests,
        answers with a ``Deferred``; with ``wait=False`` (inside EXEC) it must answer at
        once or raise ``BusError``, as it does when it cannot take messages now.
        """
        ...

    def now_ms(self) -> int:
        """The model's clock: receive times and failure detection run on it."""
        ...

    @property
    def ready(self) -> bool:
        """The model holds everything the bus retained when this instance started."""
        ...

    def self_check(self) -> SelfCheck | None:
        """The ``busFresh`` check when the bus itself is the problem; None otherwise."""
        ...

    def info(self) -> Sequence[tuple[str, str | int]]:
        """The bus's own fields for BUS INFO and INFO cluster."""
        ...

    async def start(self) -> None:
        """Begin delivering; the Redis-stream bus starts its reader (and replay)."""
        ...

    async def aclose(self) -> None:
        """Stop delivering and release resources."""
        ...
