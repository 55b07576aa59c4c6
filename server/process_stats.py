"""The process's own figures, sampled as Redis's cron samples them: resident memory (from
/proc/self/statm, read through a descriptor kept open: opening the file costs ten times the
read), peak memory and CPU times (getrusage), and the instantaneous rates (commands, input
and output bytes per second) over the last `SAMPLES` ticks, Redis's
STATS_METRIC_SAMPLES. INFO reads what the last tick sampled, for free."""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from typing import Final

from clusterwatch.commands import CpuTimes, MemoryStats

__all__ = ["SAMPLES", "ProcessStats"]

SAMPLES: Final = 16
# The calling thread's usage (Linux); elsewhere the process's.
_RUSAGE_THREAD: Final = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class ProcessStats:
    """Memory, CPU and rates of this process; `close` gives the /proc descriptor back."""

    def __init__(self) -> None:
        self._memory: MemoryStats | None = None
        self._page_size = os.sysconf("SC_PAGE_SIZE")
        self._total_memory = self._page_size * os.sysconf("SC_PHYS_PAGES")
        self._samples: deque[tuple[float, int, int, int]] = deque(maxlen=SAMPLES + 1)
        try:
            self._statm_fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._statm_fd = None

    def close(self) -> None:
        if self._statm_fd is not None:
            os.close(self._statm_fd)
            self._statm_fd = None

    def memory(self) -> MemoryStats:
        """What the last tick sampled (sampled now before the first tick)."""
        if self._memory is None:
            self.sample_memory()
        assert self._memory is not None
        return self._memory

    def sample_memory(self) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._memory = MemoryStats(rss_bytes=self.current_rss() or peak, peak_rss_bytes=peak,
                                   total_system_memory=self._total_memory)

    @staticmethod
    def cpu_times() -> CpuTimes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        thread = resource.getrusage(_RUSAGE_THREAD)
        return CpuTimes(usage.ru_stime, usage.ru_utime, thread.ru_stime, thread.ru_utime)

    def current_rss(self) -> int:
        """Resident set size in bytes; 0 where /proc cannot say."""
        if self._statm_fd is None:
            return 0
        try:
            return int(os.pread(self._statm_fd, 128, 0).split()[1]) * self._page_size
        except (OSError, IndexError, ValueError):
            return 0

    def sample_rates(self, commands: int, input_bytes: int, output_bytes: int) -> None:
        """The running totals at this tick."""
        self._samples.append((time.monotonic(), commands, input_bytes, output_bytes))

    def instantaneous(self) -> tuple[float, float, float]:
        """Commands per second, input and output KB per second over the kept ticks."""
        if len(self._samples) < 2:
            return 0.0, 0.0, 0.0
        t0, c0, i0, o0 = self._samples[0]
        t1, c1, i1, o1 = self._samples[-1]
        elapsed = max(t1 - t0, 1e-9)
        return (c1 - c0) / elapsed, (i1 - i0) / elapsed / 1024, (o1 - o0) / elapsed / 1024
