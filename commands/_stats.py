"""Counters kept by dispatch: per-command stats, error stats, the slow log and latency events."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ._redact import redacted

# Upper bounds (inclusive) of the command latency buckets: 10 µs to 100 ms, then +Inf.
LATENCY_BOUNDS_NS: Final = (10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000,
                            10_000_000, 50_000_000, 100_000_000)
_FIRST_BOUND_NS: Final = LATENCY_BOUNDS_NS[0]


def _no_calls() -> list[int]:
    return [0] * len(LATENCY_BOUNDS_NS)


@dataclass(slots=True)
class CommandStat:
    calls: int = 0
    # Nanoseconds, summed; INFO shows microseconds. Summing whole microseconds per call
    # would round every sub-microsecond command (PING) down to nothing.
    nsec: int = 0
    rejected_calls: int = 0
    failed_calls: int = 0
    # The calls slower than the first bound, per later bucket (the last is +Inf). The
    # first bucket's count is what is left of ``calls``: nearly every call lands there,
    # and the hot path then updates no list (see ``latency_counts``).
    slower: list[int] = field(default_factory=_no_calls)

    @property
    def usec(self) -> int:
        return self.nsec // 1000

    def record(self, calls: int, elapsed_ns: int) -> None:
        """Count ``calls`` calls that took ``elapsed_ns`` together.

        A run of several calls timed as one (see ``CommandTable._account``) goes into the
        bucket of its average per call: the run's own time cannot tell them apart.
        """
        self.calls += calls
        self.nsec += elapsed_ns
        if elapsed_ns > _FIRST_BOUND_NS * calls:
            # The average rounded up: a bound holds it exactly when it holds the true one.
            self.slower[bisect_left(LATENCY_BOUNDS_NS, -(-elapsed_ns // calls)) - 1] += calls

    def latency_counts(self) -> list[int]:
        """Calls per bucket of ``LATENCY_BOUNDS_NS`` and a last one for +Inf; not cumulative."""
        return [self.calls - sum(self.slower), *self.slower]

    def reset(self) -> None:
        self.calls = self.nsec = self.rejected_calls = self.failed_calls = 0
        self.slower = _no_calls()


@dataclass(frozen=True, slots=True)
class SlowLogEntry:
    id: int
    timestamp: int
    duration_us: int
    args: tuple[bytes, ...]
    client_addr: str
    client_name: str


# Redis SLOWLOG_ENTRY_MAX_ARGC / SLOWLOG_ENTRY_MAX_STRING.
_SLOWLOG_MAX_ARGC = 32
_SLOWLOG_MAX_STRING = 128


def slowlog_args(request: Sequence[bytes]) -> tuple[bytes, ...]:
    """The arguments as Redis stores them in the slow log: secrets redacted, truncated."""
    argv = redacted(request)
    shown = argv if len(argv) <= _SLOWLOG_MAX_ARGC else argv[: _SLOWLOG_MAX_ARGC - 1]
    args = [
        arg if len(arg) <= _SLOWLOG_MAX_STRING
        else arg[:_SLOWLOG_MAX_STRING] + b"... (%d more bytes)" % (len(arg) - _SLOWLOG_MAX_STRING)
        for arg in shown
    ]
    if len(argv) > _SLOWLOG_MAX_ARGC:
        args.append(b"... (%d more arguments)" % (len(argv) - _SLOWLOG_MAX_ARGC + 1))
    return tuple(args)


@dataclass(slots=True)
class SlowLog:
    slower_than_us: int = 10_000
    max_len: int = 128
    next_id: int = 0
    entries: deque[SlowLogEntry] = field(default_factory=deque)

    def record(self, entry_args: list[bytes], duration_us: int, timestamp: int,
               client_addr: str, client_name: str) -> None:
        if self.slower_than_us < 0 or duration_us < self.slower_than_us:
            return
        self.entries.appendleft(SlowLogEntry(
            self.next_id, timestamp, duration_us, slowlog_args(entry_args),
            client_addr, client_name,
        ))
        self.next_id += 1
        while len(self.entries) > self.max_len:
            self.entries.pop()


@dataclass(slots=True)
class LatencyEvent:
    """Redis's latency monitor record for one event: latest and all-time max (ms)."""

    timestamp: int
    latest_ms: int
    max_ms: int
    history: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=160))


@dataclass(slots=True)
class LatencyMonitor:
    threshold_ms: int = 0
    events: dict[str, LatencyEvent] = field(default_factory=dict)

    def record(self, event: str, duration_ms: int, timestamp: int) -> None:
        if self.threshold_ms <= 0 or duration_ms < self.threshold_ms:
            return
        current = self.events.get(event)
        if current is None:
            current = self.events[event] = LatencyEvent(timestamp, duration_ms, duration_ms)
        else:
            current.timestamp = timestamp
            current.latest_ms = duration_ms
            current.max_ms = max(current.max_ms, duration_ms)
        current.history.append((timestamp, duration_ms))


@dataclass(slots=True)
class Stats:
    """Server-wide counters (the stats fields of INFO)."""

    total_connections_received: int = 0
    rejected_connections: int = 0
    total_net_input_bytes: int = 0
    total_net_output_bytes: int = 0
    total_reads_processed: int = 0
    total_writes_processed: int = 0
    total_error_replies: int = 0
    unexpected_error_replies: int = 0
    client_output_buffer_disconnects: int = 0
    idle_disconnects: int = 0
    protocol_errors: int = 0
    commands: dict[str, CommandStat] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    slowlog: SlowLog = field(default_factory=SlowLog)
    latency: LatencyMonitor = field(default_factory=LatencyMonitor)
    # Commands at least this slow go to the slow log or the latency monitor (see configure).
    slow_threshold_ns: int = 10_000_000

    def configure(self, *, slowlog_slower_than_us: int, slowlog_max_len: int,
                  latency_threshold_ms: int) -> None:
        self.slowlog.slower_than_us = slowlog_slower_than_us
        self.slowlog.max_len = slowlog_max_len
        self.latency.threshold_ms = latency_threshold_ms
        candidates = [slowlog_slower_than_us] if slowlog_slower_than_us >= 0 else []
        if latency_threshold_ms > 0:
            candidates.append(latency_threshold_ms * 1000)
        self.slow_threshold_ns = min(candidates, default=2**62) * 1000

    @property
    def total_commands_processed(self) -> int:
        return sum(stat.calls for stat in self.commands.values())

    def command(self, full_name: str) -> CommandStat:
        stat = self.commands.get(full_name)
        if stat is None:
            stat = self.commands[full_name] = CommandStat()
        return stat

    def count_error(self, prefix: str) -> None:
        self.total_error_replies += 1
        self.errors[prefix] = self.errors.get(prefix, 0) + 1

    def reset(self) -> None:
        """CONFIG RESETSTAT. Command stats are zeroed in place: dispatch may hold one."""
        keep = (self.slowlog, self.latency, self.slow_threshold_ns, self.commands)
        fresh = Stats()
        for name in Stats.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
        self.slowlog, self.latency, self.slow_threshold_ns, self.commands = keep
        for stat in self.commands.values():
            stat.reset()
