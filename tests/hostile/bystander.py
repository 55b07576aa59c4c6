"""A bystander: a client that keeps asking a server for PONG while someone else attacks
it, and says how long it waited. The hostile suite and ``benchmarks/hostile_bench.py``
share it, so a test and its benchmark measure the same thing.

It runs in its own thread with a blocking socket, sends a PING every ``interval`` seconds
and times each round trip. A PING that is not answered keeps its clock running: a frozen
server shows as one long wait, not as missing samples.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PONG = b"+PONG\r\n"


@dataclass(frozen=True)
class Latency:
    """What the bystander saw, in milliseconds."""

    samples: int
    p50_ms: float
    p99_ms: float
    worst_ms: float
    unanswered: bool

    def __str__(self) -> str:
        return (f"bystander: {self.samples} PINGs, p50 {self.p50_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, worst {self.worst_ms:.2f} ms"
                + (", last PING unanswered" if self.unanswered else ""))


class Bystander:
    """``with Bystander(port) as b: ...attack...``; then ``b.latency``."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", interval: float = 0.01,
                 password: str | None = None) -> None:
        self._address = (host, port)
        self._interval = interval
        self._password = password
        self._times: list[float] = []
        self._pending_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)
        self._sock: socket.socket | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> Bystander:
        sock = socket.create_connection(self._address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._password is not None:
            secret = self._password.encode()
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%b\r\n" % (len(secret), secret))
            if _read_line(sock) != b"+OK\r\n":
                raise RuntimeError("bystander could not authenticate")
        self._sock = sock
        self._round_trip()  # connected and answered before the attack starts
        self._times.clear()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=60)
        if self._sock is not None:
            self._sock.close()

    def _round_trip(self) -> float:
        assert self._sock is not None
        start = time.perf_counter()
        self._pending_since = start
        self._sock.sendall(b"PING\r\n")
        line = _read_line(self._sock)
        self._pending_since = None
        if line != PONG:
            raise RuntimeError(f"bystander got {line!r} instead of PONG")
        return time.perf_counter() - start

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._times.append(self._round_trip())
                self._stop.wait(self._interval)
        except BaseException as exc:  # reported through ``latency`` and ``error``
            self.error = exc

    @property
    def latency(self) -> Latency:
        times = sorted(self._times)
        pending = self._pending_since
        unanswered = pending is not None and self._stop.is_set() and self._thread.is_alive()
        if pending is not None and (unanswered or self.error is not None):
            times.append(time.perf_counter() - pending)
            times.sort()
        if not times:
            return Latency(0, 0.0, 0.0, 0.0, unanswered)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        return Latency(len(times), statistics.median(times) * 1000, p99 * 1000,
                       times[-1] * 1000, unanswered)

    def check(self, worst_ms: float = 1000.0) -> Latency:
        """The latency, after asserting the bystander was answered throughout and its
        worst wait stayed under ``worst_ms`` (generous: the failures are seconds)."""
        seen = self.latency
        print(seen)
        assert self.error is None, f"the bystander failed: {self.error!r}"
        assert not seen.unanswered, f"the bystander's last PING was never answered ({seen})"
        assert seen.samples > 0, "the bystander sent nothing"
        assert seen.worst_ms < worst_ms, f"the bystander waited too long: {seen}"
        return seen


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            raise ConnectionError("server closed the bystander's connection")
        data += chunk
    return data


@dataclass(frozen=True)
class ProcessUsage:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def process_usage(pid: int) -> ProcessUsage:
    """CPU time (user + system) and resident memory of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    status = Path(f"/proc/{pid}/status").read_text()
    values = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines()
              if ":" in line}
    return ProcessUsage(
        cpu_seconds=ticks / _CLOCK_TICKS,
        rss_bytes=int(values["VmRSS"].split()[0]) * 1024,
        peak_rss_bytes=int(values["VmHWM"].split()[0]) * 1024,
    )


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
