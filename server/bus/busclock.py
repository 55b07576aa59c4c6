"""The bus's clock: what "now" is for a model fed from a Redis Stream.

An entry's receive time is its stream id's millisecond part, stamped by the Redis master
when it was appended: one clock for every instance, however late each one reads. Between
entries, time stands still; an instance appends a ``tick`` entry when the stream has been
quiet for one to one and a half tick intervals (a random wait, so that one instance ticks
and the others read its tick), so time keeps moving in a quiet cluster.

A gap between two consecutive entries longer than ``gap_ms`` (three tick intervals) means
that nobody could append: Redis was down, frozen or failing over. Bus time then advances by
``gap_ms`` only and the rest of the gap is excused, so a node is never failed for silence
that only the bus's outage caused. Bus time is therefore Redis's clock minus every excused
gap; ``excused_ms`` says how far behind Redis's clock it runs.

Clock-skew rule: only the Redis master's clock counts. Senders' ``ts_ms`` are informational.
Redis keeps stream ids increasing even if its clock steps back, and a failover to a replica
whose clock is behind makes the first entries' ids continue from the last one, so bus time
never runs backwards.

Skew bound: an id's time more than ``max_skew_ms`` ahead of the reading instance's own wall
clock (``XADD`` with an explicit id an hour ahead, or a Redis clock set wrong) is not taken
as bus time: the entry counts at the instance's wall clock plus ``max_skew_ms``, and is
counted in ``skewed``. Without the bound one such id would stop bus time: Redis gives every
later ``XADD *`` the id ``max(now, last id + 1)``, so the ids after it keep that far-ahead
millisecond and only their sequence part grows, until Redis's clock reaches it. With it, bus
time follows the wall clock through such a stretch (each instance its own, so instances
agree within their clocks' difference and their read delays), runs on at the ids' time when
the wall clock gets within the bound, and holds at most ``max_skew_ms`` while Redis's clock
catches up with the stuck millisecond. The wall clock is handed in (``observe_wall``), once
per batch of entries read.
"""

from __future__ import annotations

__all__ = ["BusClock", "parse_entry_id"]


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1733000000000-3"`` as ``(1733000000000, 3)``; ValueError when malformed."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, sep, seq = text.partition("-")
    if not sep:
        raise ValueError(f"not a stream id: {text!r}")
    return int(ms), int(seq)


class BusClock:
    __slots__ = ("excused_ms", "gap_ms", "last_entry_ms", "limit_ms", "max_skew_ms", "now_ms",
                 "skewed")

    def __init__(self, gap_ms: int, max_skew_ms: int = 5000) -> None:
        self.gap_ms = gap_ms
        self.max_skew_ms = max_skew_ms
        # The last entry's time as taken (its id's time, or the bound it was held to).
        self.last_entry_ms: int | None = None
        self.now_ms = 0
        self.excused_ms = 0
        self.skewed = 0
        self.limit_ms = 2**63  # no wall clock seen yet: no bound

    def observe_wall(self, wall_ms: int) -> None:
        """The instance's own clock now: ids beyond it by more than the skew bound are
        held to the bound."""
        self.limit_ms = wall_ms + self.max_skew_ms

    def stamp(self, entry_ms: int) -> int:
        """Advance to an entry read in stream order; its receive time on the bus clock."""
        if entry_ms > self.limit_ms:
            self.skewed += 1
            entry_ms = self.limit_ms
        last = self.last_entry_ms
        if last is None:
            self.now_ms = entry_ms
            self.last_entry_ms = entry_ms
        elif entry_ms > last:
            step = entry_ms - last
            if step > self.gap_ms:
                self.excused_ms += step - self.gap_ms
                step = self.gap_ms
            self.now_ms += step
            self.last_entry_ms = entry_ms
        return self.now_ms

    def restore(self, last_entry_ms: int, now_ms: int) -> None:
        """Continue from a snapshot's clock (held to the skew bound, as entries are)."""
        self.last_entry_ms = min(last_entry_ms, self.limit_ms)
        self.now_ms = min(now_ms, self.last_entry_ms)
        self.excused_ms = max(0, self.last_entry_ms - self.now_ms)
