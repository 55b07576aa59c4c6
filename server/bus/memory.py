"""The embedded bus: a published batch is applied at once, with one receive time."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cluster import ClusterModel, Outcome, SelfCheck

__all__ = ["MemoryBus"]


class MemoryBus:
    """``clock`` is the server's wall clock in milliseconds; every message of a batch is
    stamped with a single reading, as if the batch arrived in one network read."""

    name = "memory"
    ready = True

    def __init__(self, model: ClusterModel, clock: Callable[[], int]) -> None:
        self.model = model
        self._clock = clock

    def publish(self, messages: Sequence[bytes], *, wait: bool = True) -> list[Outcome]:
        now_ms = self._clock()
        publish = self.model.publish
        return [publish(data, now_ms) for data in messages]

    def now_ms(self) -> int:
        return self._clock()

    def self_check(self) -> SelfCheck | None:
        return None

    def info(self) -> Sequence[tuple[str, str | int]]:
        return ()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
