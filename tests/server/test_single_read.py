"""The one-request read (``RequestReader.take_single`` + ``RespProtocol.answer_single``)
against the general path (``feed`` + ``process``): for every command in the table, and
for sessions that switch protocol, authenticate, queue a transaction and quit, the same
bytes go out and the same statistics, counters and slow-log entries come out."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from clusterwatch.commands import build_table
from clusterwatch.resp import RequestReader
from clusterwatch.resp._reader import encode_request
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from clusterwatch.server.protocol import RespProtocol

NOW_MS = 1_780_000_000_000


class RecordingTransport:
    """What ``RespProtocol`` needs of a transport; keeps every byte written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def get_extra_info(self, key: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 7379)}.get(key)

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _server(config: ServerConfig) -> Server:
    ticks: Iterator[int] = itertools.count(step=1_500)
    server = Server(config, table=build_table(perf_ns=lambda: next(ticks)))
    server.now_ms = lambda: NOW_MS  # type: ignore[method-assign]
    server.now_us = lambda: NOW_MS * 1000  # type: ignore[method-assign]
    server.clock_ms = NOW_MS
    server.identity = dataclasses.replace(server.identity, run_id="0" * 40)
    return server


# What the process itself measures (CPU, memory) differs between any two calls.
_MEASURED = re.compile(rb"((?:used_cpu|used_memory|mem_|rss|allocator)\w*):[^\r]*")


def _comparable(reply: bytes) -> bytes:
    masked = _MEASURED.sub(rb"\1:-", reply)
    if masked == reply:
        return reply
    return re.sub(rb"^[$=]\d+\r\n", b"", masked)


class Side:
    """One server and one client connection on it, taking one of the two paths."""

    def __init__(self, single: bool, config: ServerConfig) -> None:
        self.server = _server(config)
        self.transport = RecordingTransport()
        self.connection = RespProtocol(self.server)
        self.connection.connection_made(self.transport)  # type: ignore[arg-type]
        self.server.clock_ms += 5_000  # so that each request's interaction time shows
        self.singles = 0
        reader = self.connection.reader
        assert reader is not None
        if single:
            answer = self.connection.answer_single

            def counted(argv: list[bytes]) -> None:
                self.singles += 1
                answer(argv)

            self.connection.answer_single = counted  # type: ignore[method-assign]
        else:
            def general(data: bytes, reader: RequestReader = reader) -> None:
                reader.feed(data)

            reader.take_single = general  # type: ignore[assignment,method-assign]

    def send(self, argv: list[bytes] | bytes) -> bytes:
        """One read: ``argv`` encoded as multibulk, or bytes as they are."""
        before = len(self.transport.written)
        if not self.transport.closed:
            self.connection.data_received(
                argv if isinstance(argv, bytes) else encode_request(argv))
        return bytes(self.transport.written[before:])

    def observed(self) -> dict[str, Any]:
        stats = self.server.stats
        session = self.connection.session
        assert session is not None
        return {
            "commands": {name: (stat.calls, stat.nsec, stat.failed_calls, stat.rejected_calls,
                                stat.latency_counts())
                         for name, stat in stats.commands.items()},
            "errors": (stats.total_error_replies, dict(stats.errors)),
            "io": (stats.total_reads_processed, stats.total_writes_processed,
                   stats.total_net_input_bytes, stats.total_net_output_bytes),
            "slowlog": [(entry.duration_us, entry.args) for entry in stats.slowlog.entries],
            "acl_log": len(self.server.acl.log._entries),
            "session": (session.last_command, session.protocol, session.authenticated,
                        session.user, session.name, session.multi, session.close_after_reply,
                        session.last_interaction_ms),
            "closed": self.transport.closed,
            "reading": self.transport.reading,
        }


def _compare(requests: list[list[bytes]] | list[bytes],
             config: ServerConfig | None = None) -> int:
    """Run ``requests`` one read each down both paths; return how many took the single."""
    config = config or ServerConfig()

    async def both() -> int:
        single, general = Side(True, config), Side(False, config)
        for argv in requests:
            one, other = single.send(argv), general.send(argv)
            if isinstance(argv, list) and [part.lower() for part in argv[:2]] in _RANDOM:
                one, other = one[:5], other[:5]  # the length: $64\r\n
            assert _comparable(one) == _comparable(other), argv
            assert single.observed() == general.observed(), argv
        return single.singles

    return asyncio.run(both())


def _invocations() -> list[list[bytes]]:
    """Each runnable command with just enough placeholder arguments for its arity, and
    once more with one argument too many when its arity is fixed."""
    table = build_table(perf_ns=lambda: 0)
    found = []
    for spec in table.runnable():
        name = [part.encode() for part in spec.full_name.split("|")]
        argv = name + [b"x"] * (spec.min_argc - len(name))
        found.append(argv)
        if spec.max_argc == spec.min_argc:
            found.append([*argv, b"x"])
    return found


# Replies drawn at random: only their shape can be compared.
_RANDOM = [[b"acl", b"genpass"]]
# Commands that stop or pause the whole server or sleep are left to their own tests.
_UNSAFE = {b"shutdown", b"debug"}


@pytest.mark.parametrize("argv", [argv for argv in _invocations()
                                  if argv[0] not in _UNSAFE],
                         ids=lambda argv: b" ".join(argv).decode())
def test_every_command_answers_the_same_down_both_paths(argv: list[bytes]) -> None:
    singles = _compare([argv, [b"PING"]])
    assert singles >= 1  # PING at least went the single way


def test_a_session_answers_the_same_down_both_paths() -> None:
    config = ServerConfig(requirepass="secret", slowlog_log_slower_than=2)
    session = [
        [b"PING"], [b"CLUSTER", b"INFO"], [b"AUTH", b"wrong"], [b"AUTH", b"secret"],
        [b"HELLO", b"3"], [b"PING"], [b"CLIENT", b"SETNAME", b"probe"], [b"MULTI"],
        [b"PING"], [b"HEALTH", b"READY"], [b"EXEC"], [b"NOSUCH", b"x"], [b"GET"],
        [b"ping"], [b"Cluster", b"info"], [b"HELLO", b"2"], [b"SLOWLOG", b"GET"],
        [b"CLIENT", b"INFO"], [b"INFO", b"stats"], [b"QUIT"], [b"PING"],
    ]
    assert _compare(session, config) >= 10


def test_inline_requests_answer_the_same_down_both_paths() -> None:
    reads = [b"PING\r\n", b"ECHO hello\r\n", b"ping a b\r\n", b"\r\n", b"  \r\n",
             b'ECHO "a b"\r\n', b"PING\r\nPING\r\n", b"CLUSTER INFO\n", b"cluster\tinfo\r\n",
             b"NOSUCH 1 2\r\n", b"PI", b"NG\r\n", b"x" * 70_000 + b"\r\n"]
    assert _compare(reads) == 6


def test_stars_inside_a_request_and_huge_counts_answer_the_same() -> None:
    reads = [b"*2\r\n$4\r\nECHO\r\n$3\r\na*b\r\n", b"*2\r\n$4\r\nECHO\r\n$1\r\n*\r\n",
             b"*2\r\n$4\r\nECHO\r\n*3000000000\r\n"]
    # The connection sends any read with a second '*' the general way.
    assert _compare(reads) == 0
    # The reader itself takes one whose second '*' is inside an argument.
    reader = RequestReader()
    assert reader.take_single(reads[0]) == [b"ECHO", b"a*b"]
    assert reader.take_single(reads[1]) is None
    assert reader.drain() == [[b"ECHO", b"*"]]


def test_unauthenticated_limits_hold_on_the_single_path() -> None:
    config = ServerConfig(requirepass="secret")
    too_many = [b"PING"] + [b"x"] * 11
    assert _compare([[b"PING"], too_many], config) == 1
    assert _compare([b"PING\r\n", b"PING" + b" x" * 11 + b"\r\n"], config) == 1


def test_reads_that_are_not_one_whole_request_go_the_general_way() -> None:
    async def run() -> tuple[Side, bytes]:
        side = Side(True, ServerConfig())
        written = side.transport.written
        for data in (b"*1\r\n$4\r\nPING\r\n" * 2, b"PING\r\nPING\r\n", b"*1\r\n$4\r\nPI", b"NG\r\n",
                     b"*1\r\n$4\r\nPING\r\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n$3\r\n*ab\r\n",
                     b"*1\r\n$04\r\nPING\r\n"):  # refused, as redis-server does
            side.connection.data_received(data)
        return side, bytes(written)

    side, written = asyncio.run(run())
    assert written == (b"+PONG\r\n" * 7 + b"$3\r\n*ab\r\n"
                       + b"-ERR Protocol error: invalid bulk length\r\n")
    assert side.transport.closed
    assert side.singles == 0


def test_a_blocked_request_answers_the_same_down_both_paths() -> None:
    async def run() -> None:
        single, general = Side(True, ServerConfig()), Side(False, ServerConfig())
        for side in (single, general):
            assert side.send([b"CLUSTER", b"WAIT", b"1000000", b"20"]) == b""
            assert side.send([b"PING"]) == b""  # read behind the blocked request
            assert side.transport.reading  # kept reading, to see a disconnect at once
        await asyncio.sleep(0.1)
        assert single.transport.written == general.transport.written
        assert single.transport.written.endswith(b"+PONG\r\n")
        assert single.observed() == general.observed()
        assert single.singles == 1

    asyncio.run(run())
