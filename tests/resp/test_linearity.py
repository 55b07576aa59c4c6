"""The reader's work is linear in its input, counted, not timed: the Python lines it runs
(``sys.settrace`` line events in ``resp/``) and the bytes it hands to hiredis, for the
same stream of N and of 10 N arguments (or requests), fed in reads and drained after each,
as a connection does. Ten times the input may cost about ten times the work. On main it
cost about a hundred times: every read of an incomplete request re-scanned it from its
first byte, and every request hiredis refused (``*-5``, an inline line) had the rest of
the read fed to a new hiredis."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import hiredis
import pytest

import clusterwatch.resp
from clusterwatch.resp import ReaderLimits, RequestReader

RESP = str(Path(clusterwatch.resp.__file__).parent)
READ = 1024


@dataclass
class Work:
    lines: int = 0  # Python lines run in resp/
    hiredis_bytes: int = 0  # bytes fed to any hiredis reader


@contextmanager
def counted() -> Iterator[Work]:
    work = Work()
    original = hiredis.Reader

    class CountingReader(original):  # type: ignore[misc, valid-type]
        def feed(self, data: Any, offset: int = 0, length: int = -1) -> None:
            work.hiredis_bytes += len(data) - offset if length < 0 else length
            super().feed(data, offset, length)

    def line_events(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        if event == "call":
            return line_events if frame.f_code.co_filename.startswith(RESP) else None
        if event == "line":
            work.lines += 1
        return line_events

    hiredis.Reader = CountingReader
    sys.settrace(line_events)
    try:
        yield work
    finally:
        sys.settrace(None)
        hiredis.Reader = original


def multibulk(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)


def one_long_request(n: int) -> bytes:
    return multibulk([b"PING", *[b"a"] * n])


def json_arguments(n: int) -> bytes:
    return multibulk([b"BUS", b"PUBLISH", *[b'{"v":1,"type":"heartbeat","node":"n%d"}' % i
                                             for i in range(n)]])


def requests_and_empty_ones(n: int) -> bytes:
    """Requests, each behind a negative count (an empty request to Redis, one hiredis
    refuses: on main each made it re-feed the rest of the read)."""
    return b"".join(b"*-5\r\n" + multibulk([b"SET", b"key:%d" % i, b"x" * (i % 50)])
                    for i in range(n))


def work_for(stream: bytes, read: int) -> tuple[Work, int]:
    requests = 0
    with counted() as work:
        reader = RequestReader(ReaderLimits(max_multibulk_length=2**20, max_query_buffer=2**30))
        for start in range(0, len(stream), read):
            reader.feed(stream[start:start + read])
            while batch := reader.drain(512):
                requests += len(batch)
    return work, requests


@pytest.mark.parametrize(("make", "n", "read"), [
    pytest.param(one_long_request, 2_000, 1024, id="one-request-of-one-byte-arguments"),
    pytest.param(json_arguments, 1_000, 1024, id="one-request-of-json-arguments"),
    pytest.param(requests_and_empty_ones, 500, 1 << 20, id="requests-and-empty-ones"),
])
def test_ten_times_the_input_costs_about_ten_times_the_work(
        make: Callable[[int], bytes], n: int, read: int) -> None:
    small, small_requests = work_for(make(n), read)
    large, large_requests = work_for(make(10 * n), read)
    assert large_requests == 10 * small_requests or large_requests == small_requests == 1
    print(f"lines {small.lines} -> {large.lines}, hiredis bytes {small.hiredis_bytes} -> "
          f"{large.hiredis_bytes} for {len(make(n))} -> {len(make(10 * n))} bytes")
    assert large.lines < 13 * small.lines
    assert large.hiredis_bytes < 13 * max(small.hiredis_bytes, 1)
    # Each byte goes to hiredis a bounded number of times.
    assert large.hiredis_bytes <= 4 * len(make(10 * n))


def test_a_long_requests_arguments_cost_less_than_a_python_line_each() -> None:
    """Where the guard allows, hiredis reads a long request's arguments for the scanner,
    once per read (64 KB reads here, each its own object as from a socket): fewer Python
    lines than arguments. The scanner's own loop takes about ten lines an argument; main
    took more, again for every read."""
    n = 300_000
    work, requests = work_for(one_long_request(n), 65536)
    print(f"{work.lines} Python lines for {n} arguments")
    assert requests == 1
    assert work.lines < n
