"""Byte-exact differential tests: the same request bytes go to a real redis-server and
to clusterwatch, and the reply bytes must be identical.

Known, deliberate differences are not compared here (HELLO's ``id`` and the order of
CONFIG GET's pairs); HELLO is compared by structure.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest

from tests.conftest import ServerProcess, free_port, require_tool, start_server
from tests.integration.helpers import read_until_closed

pytestmark = pytest.mark.integration

_MORE = object()


class RedisServer:
    def __init__(self, *args: str) -> None:
        binary = require_tool("redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("redis-server exited early") from None
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    real = RedisServer()
    yield real.port
    real.stop()


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    ours = start_server(tmp_path_factory.mktemp("cw"))
    yield ours
    ours.stop()


def exchange(port: int, payload: bytes, replies: int, timeout: float = 3.0) -> bytes:
    """Send ``payload`` in one write; return the bytes of the first ``replies`` replies."""
    reader = hiredis.Reader(notEnoughData=_MORE)
    data = b""
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        while got < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            reader.feed(chunk)
            while got < replies and reader.gets() is not _MORE:
                got += 1
    assert got == replies, (port, data)
    return data


def exchange_until_close(port: int, payload: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Send ``payload``; read until the server closes. Returns (bytes, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return read_until_closed(sock, timeout)


def bulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


SAME_REPLY = [
    pytest.param(bulk(b"PING"), 1, b"+PONG\r\n", id="ping"),
    pytest.param(bulk(b"ping", b"hello"), 1, b"$5\r\nhello\r\n", id="ping-arg"),
    pytest.param(bulk(b"PING", b"a", b"b"), 1,
                 b"-ERR wrong number of arguments for 'ping' command\r\n", id="ping-two-args"),
    pytest.param(bulk(b"ECHO", b"a\r\nb"), 1, b"$4\r\na\r\nb\r\n", id="echo"),
    pytest.param(bulk(b"ECHO"), 1, b"-ERR wrong number of arguments for 'echo' command\r\n",
                 id="echo-no-args"),
    pytest.param(b"PING\r\n", 1, b"+PONG\r\n", id="inline-ping"),
    pytest.param(b"PING\n", 1, b"+PONG\r\n", id="inline-lf"),
    pytest.param(b'ECHO "\\x41\\n" \'b\\\'c\'\r\n', 1, None, id="inline-quotes-escapes"),
    pytest.param(b"\r\n\r\nPING\r\n", 1, b"+PONG\r\n", id="inline-empty-lines"),
    pytest.param(b"*0\r\n*-1\r\nPING\r\n", 1, b"+PONG\r\n", id="empty-and-null-arrays"),
    pytest.param(b"*-5\r\nPING\r\n*-22\r\n" + bulk(b"ECHO", b"x"), 2, b"+PONG\r\n$1\r\nx\r\n",
                 id="negative-counts-skipped"),
    pytest.param(bulk(b"HELLO", b"4"), 1, b"-NOPROTO unsupported protocol version\r\n",
                 id="hello-4"),
    pytest.param(bulk(b"HELLO", b"abc"), 1,
                 b"-ERR Protocol version is not an integer or out of range\r\n", id="hello-abc"),
    pytest.param(b"HELLO 3 foo\r\n", 1, b"-ERR Syntax error in HELLO option 'foo'\r\n",
                 id="hello-bad-option"),
    pytest.param(bulk(b"FOO"), 1, b"-ERR unknown command 'FOO', with args beginning with: \r\n",
                 id="unknown"),
    pytest.param(bulk(b"foo", b"a", b"b"), 1,
                 b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
                 id="unknown-with-args"),
    pytest.param(b"FOO " + b"a " * 100 + b"\r\n", 1, None, id="unknown-many-args"),
    pytest.param(bulk(b"FOO", b"x" * 300), 1, None, id="unknown-long-arg"),
    pytest.param(bulk(b"F" * 300), 1, None, id="unknown-long-name"),
    pytest.param(bulk(b"FOO", b"a\r\nb"), 1, None, id="unknown-arg-with-crlf"),
    pytest.param(bulk(b"CLIENT", b"FOO"), 1,
                 b"-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n", id="client-foo"),
    pytest.param(bulk(b"CONFIG", b"FOO"), 1,
                 b"-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n", id="config-foo"),
    pytest.param(b"SLOWLOG nope\r\n", 1, None, id="slowlog-nope"),
    pytest.param(b"LATENCY nope\r\n", 1, None, id="latency-nope"),
    pytest.param(b"COMMAND nope\r\n", 1, None, id="command-nope"),
    pytest.param(bulk(b"CLIENT"), 1,
                 b"-ERR wrong number of arguments for 'client' command\r\n", id="client-alone"),
    pytest.param(b"CLIENT SETNAME\r\n", 1, None, id="client-setname-no-arg"),
    pytest.param(b'CLIENT SETNAME "a b"\r\n', 1, None, id="client-setname-space"),
    pytest.param(b"cLiEnT sEtNaMe x\r\ncLiEnT gEtNaMe\r\n", 2, b"+OK\r\n$1\r\nx\r\n",
                 id="client-setname-getname-mixed-case"),
    pytest.param(b"CLIENT GETNAME\r\n", 1, b"$-1\r\n", id="client-getname-unset"),
    pytest.param(b"CLIENT HELP x\r\n", 1, None, id="client-help-arity"),
    pytest.param(b"CONFIG GET\r\n", 1, None, id="config-get-no-arg"),
    pytest.param(b"CONFIG GET save\r\n", 1, b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n", id="config-save"),
    pytest.param(b"CONFIG GET appendonly\r\n", 1, None, id="config-appendonly"),
    pytest.param(bulk(b"AUTH", b"x"), 1,
                 b"-ERR AUTH <password> called without any password configured for the "
                 b"default user. Are you sure your configuration is correct?\r\n",
                 id="auth-no-password"),
    pytest.param(bulk(b"AUTH", b"someone", b"x"), 1, None, id="auth-unknown-user"),
    pytest.param(b"SELECT 0\r\n", 1, b"+OK\r\n", id="select-0"),
    pytest.param(b"SELECT x\r\n", 1, None, id="select-not-integer"),
    pytest.param(b"SELECT 99\r\n", 1, None, id="select-out-of-range"),
    pytest.param(b"DBSIZE\r\n", 1, b":0\r\n", id="dbsize"),
    pytest.param(b"SLOWLOG GET x\r\n", 1, None, id="slowlog-get-bad-count"),
    pytest.param(b"MULTI\r\nEXEC\r\n", 2, b"+OK\r\n*0\r\n", id="multi-exec-empty"),
    pytest.param(b"MULTI\r\nPING\r\nECHO x\r\nEXEC\r\n", 4, None, id="multi-exec"),
    pytest.param(b"MULTI\r\nMULTI\r\nEXEC\r\n", 3, None, id="multi-nested"),
    pytest.param(b"MULTI\r\nFOO\r\nEXEC\r\n", 3, None, id="multi-unknown-execabort"),
    pytest.param(b"MULTI\r\nECHO\r\nEXEC\r\n", 3, None, id="multi-arity-execabort"),
    pytest.param(b"MULTI\r\nHELLO 4\r\nSELECT x\r\nEXEC\r\n", 4, None,
                 id="multi-runtime-errors"),
    pytest.param(b"MULTI\r\nPING\r\nDISCARD\r\nEXEC\r\n", 4, None, id="multi-discard"),
    pytest.param(b"DISCARD\r\n", 1, b"-ERR DISCARD without MULTI\r\n", id="discard-alone"),
    pytest.param(b"EXEC\r\n", 1, b"-ERR EXEC without MULTI\r\n", id="exec-alone"),
    pytest.param(b"RESET\r\n", 1, b"+RESET\r\n", id="reset"),
    pytest.param(bulk(b"PING") + b"PING\r\n" + bulk(b"PING") + b"PING\n", 4,
                 b"+PONG\r\n" * 4, id="multibulk-inline-mixed"),
    pytest.param(b"*1\r\n$3\r\nfoo\r\n*1\r\n:5\r\n", 2, None, id="reply-before-protocol-error"),
]


@pytest.mark.parametrize(("payload", "replies", "expected"), SAME_REPLY)
def test_same_reply_bytes(redis_port: int, cw: ServerProcess, payload: bytes, replies: int,
                          expected: bytes | None) -> None:
    theirs = exchange(redis_port, payload, replies)
    ours = exchange(cw.port, payload, replies)
    assert ours == theirs
    if expected is not None:
        assert ours == expected


PROTOCOL_ERRORS = [
    pytest.param(b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n",
                 id="int-element"),
    pytest.param(b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n",
                 id="bad-count"),
    pytest.param(b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n",
                 id="missing-dollar"),
    pytest.param(b'PING "a\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n",
                 id="inline-unbalanced-double"),
    pytest.param(b"ECHO 'a\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n",
                 id="inline-unbalanced-single"),
    pytest.param(b'ECHO "a"b\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n",
                 id="inline-quote-then-text"),
    pytest.param(b"*1\r\n$x\r\n", b"-ERR Protocol error: invalid bulk length\r\n",
                 id="bad-bulk-length"),
    pytest.param(b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n",
                 id="null-bulk-element"),
    pytest.param(b"*01\r\n$4\r\nPING\r\n", b"-ERR Protocol error: invalid multibulk length\r\n",
                 id="count-leading-zero"),
    pytest.param(b"*1\r\n*1\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n",
                 id="nested-array"),
    pytest.param(b"*1\r\n$600000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n",
                 id="bulk-over-redis-max"),
    # No newline at all: Redis checks the inline size only while no line end is buffered.
    pytest.param(b"x" * 70000, b"-ERR Protocol error: too big inline request\r\n",
                 id="inline-too-big"),
    pytest.param(bulk(b"PING") + b"*1\r\n:5\r\n",
                 b"+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n",
                 id="after-a-good-request"),
]


@pytest.mark.parametrize(("payload", "expected"), PROTOCOL_ERRORS)
def test_protocol_errors_reply_then_close(redis_port: int, cw: ServerProcess, payload: bytes,
                                          expected: bytes) -> None:
    # A request after the bad one must never be answered (the inline vector has no
    # line end on purpose, so it gets none).
    if b"\n" in payload:
        payload += bulk(b"PING")
    theirs, theirs_closed = exchange_until_close(redis_port, payload)
    ours, ours_closed = exchange_until_close(cw.port, payload)
    assert theirs == expected, "redis-server changed; re-check the vector"
    assert ours == theirs
    assert theirs_closed and ours_closed


def test_quit_replies_ok_then_closes(redis_port: int, cw: ServerProcess) -> None:
    payload = b"QUIT\r\nPING\r\n"
    for port in (redis_port, cw.port):
        assert exchange_until_close(port, payload) == (b"+OK\r\n", True)
    for port in (redis_port, cw.port):
        assert exchange_until_close(port, bulk(b"quit")) == (b"+OK\r\n", True)


def _hello_shape(port: int, payload: bytes) -> tuple[list[object], object]:
    data = exchange(port, payload, 1)
    reader = hiredis.Reader()
    reader.feed(data)
    reply = reader.gets()
    assert isinstance(reply, dict), data
    assert reader.gets() is False
    return list(reply), reply[b"proto"]


@pytest.mark.parametrize("payload", [bulk(b"HELLO", b"3"), b"hello 3\r\n",
                                     b"HELLO 3 SETNAME x\r\n"], ids=["bulk", "inline", "setname"])
def test_hello_3_same_structure(redis_port: int, cw: ServerProcess, payload: bytes) -> None:
    theirs = _hello_shape(redis_port, payload)
    ours = _hello_shape(cw.port, payload)
    assert ours == theirs
    assert ours == ([b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"], 3)


def test_hello_2_same_structure(redis_port: int, cw: ServerProcess) -> None:
    shapes = []
    for port in (redis_port, cw.port):
        reader = hiredis.Reader()
        reader.feed(exchange(port, b"HELLO 2\r\n", 1))
        reply = reader.gets()
        assert isinstance(reply, list)
        shapes.append((reply[0::2], reply[reply.index(b"proto") + 1]))
    assert shapes[0] == shapes[1]


def test_resp3_session_replies_match(redis_port: int, cw: ServerProcess) -> None:
    """After HELLO 3, the replies that differ by protocol (null, map) match too."""
    payload = (b"HELLO 3\r\nCLIENT GETNAME\r\nCONFIG GET save\r\nMULTI\r\nEXEC\r\n"
               b"HELLO 4\r\nFOO\r\n")
    theirs = exchange(redis_port, payload, 7)
    ours = exchange(cw.port, payload, 7)
    hello_end = theirs.index(b"$7\r\nmodules\r\n*0\r\n") + len(b"$7\r\nmodules\r\n*0\r\n")
    ours_end = ours.index(b"$7\r\nmodules\r\n*0\r\n") + len(b"$7\r\nmodules\r\n*0\r\n")
    assert ours[ours_end:] == theirs[hello_end:]
    assert theirs[hello_end:].startswith(b"_\r\n%1\r\n$4\r\nsave\r\n$0\r\n\r\n")


PUBSUB_SESSION = (b"SUBSCRIBE a b\r\nPING\r\nPING x\r\nPSUBSCRIBE p*\r\nSUBSCRIBE a\r\n"
                  b"PUNSUBSCRIBE\r\nUNSUBSCRIBE b a\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n"
                  b"PUBSUB NUMSUB a z\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS\r\n"
                  b"PUBSUB CHANNELS __nothing*\r\nPUBSUB FOO\r\nSUBSCRIBE\r\n")
PUBSUB_REPLIES = 16  # subscribe 2, pings 2, psubscribe, subscribe, punsubscribe,
#                     unsubscribe 2, unsubscribe and punsubscribe with none left, pubsub 5,
#                     then the arity error. (A bare UNSUBSCRIBE with several channels
#                     answers in Redis's hash-table order, so the channels are named.)


def test_pubsub_session_matches_in_resp2(redis_port: int, cw: ServerProcess) -> None:
    theirs = exchange(redis_port, PUBSUB_SESSION, PUBSUB_REPLIES)
    assert exchange(cw.port, PUBSUB_SESSION, PUBSUB_REPLIES) == theirs
    assert theirs.startswith(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")


def test_pubsub_session_matches_in_resp3(redis_port: int, cw: ServerProcess) -> None:
    """RESP3 confirmations are push frames (``>3``), PING stays a plain reply."""
    payload = b"HELLO 3\r\n" + PUBSUB_SESSION
    theirs = exchange(redis_port, payload, PUBSUB_REPLIES + 1)
    ours = exchange(cw.port, payload, PUBSUB_REPLIES + 1)
    marker = b"$7\r\nmodules\r\n*0\r\n"
    theirs_tail = theirs[theirs.index(marker) + len(marker):]
    assert ours[ours.index(marker) + len(marker):] == theirs_tail
    assert theirs_tail.startswith(b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")


def test_pipelined_mix_in_one_write(redis_port: int, cw: ServerProcess) -> None:
    payload = b"".join([
        bulk(b"PING"),
        b"PING\r\n",
        bulk(b"ECHO", b"x"),
        bulk(b"HELLO", b"4"),
        b"FOO a b\r\n",
        bulk(b"CLIENT", b"FOO"),
        b"MULTI\r\n",
        bulk(b"PING", b"in-tx"),
        b"EXEC\r\n",
        b"DISCARD\r\n",
        bulk(b"PING", b"a", b"b"),
        b"CLIENT SETNAME pipe\r\n",
        b"CLIENT GETNAME\r\n",
        b"SELECT 0\r\n",
        bulk(b"AUTH", b"x"),
        b"DBSIZE\r\n",
    ])
    theirs = exchange(redis_port, payload, 16)
    ours = exchange(cw.port, payload, 16)
    assert ours == theirs
    assert theirs.startswith(b"+PONG\r\n+PONG\r\n$1\r\nx\r\n-NOPROTO")


def test_protocol_switch_inside_one_pipeline(redis_port: int, cw: ServerProcess) -> None:
    """HELLO in the middle of one write: the replies before it keep the old protocol, its
    own reply and those after it use the new one."""
    asked = b"CLIENT GETNAME\r\nCONFIG GET save\r\n"
    payload = asked + b"HELLO 3\r\n" + asked + bulk(b"HELLO", b"2") + asked
    hello = re.compile(rb"(?:%7|\*14)\r\n\$6\r\nserver\r\n.*?\$7\r\nmodules\r\n\*0\r\n",
                       re.DOTALL)
    theirs = hello.sub(b"<HELLO>", exchange(redis_port, payload, 8))
    ours = hello.sub(b"<HELLO>", exchange(cw.port, payload, 8))
    assert ours == theirs
    resp2 = b"$-1\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    resp3 = b"_\r\n%1\r\n$4\r\nsave\r\n$0\r\n\r\n"
    assert theirs == resp2 + b"<HELLO>" + resp3 + b"<HELLO>" + resp2


# --- with a password on both sides -------------------------------------------------------


@pytest.fixture(scope="module")
def locked_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    real = RedisServer("--requirepass", "pw")
    ours = start_server(Path(tmp_path_factory.mktemp("cw-locked")), "--requirepass", "pw")
    yield real.port, ours.port
    real.stop()
    ours.stop()


@pytest.mark.parametrize(
    ("payload", "replies"),
    [
        pytest.param(b"PING\r\n", 1, id="noauth"),
        pytest.param(b"AUTH nope\r\nPING\r\n", 2, id="auth-wrong"),
        pytest.param(b"AUTH pw\r\nPING\r\n", 2, id="auth-right"),
        pytest.param(b"AUTH default pw\r\nPING\r\n", 2, id="auth-user-right"),
        pytest.param(b"AUTH someone pw\r\n", 1, id="auth-other-user"),
        pytest.param(b"HELLO 3\r\n", 1, id="hello-before-auth"),
        pytest.param(b"FOO\r\n", 1, id="unknown-before-auth"),
        pytest.param(b"MULTI\r\n", 1, id="multi-before-auth"),
        pytest.param(b"HELLO 2 AUTH default nope\r\nPING\r\n", 2, id="hello-auth-wrong"),
    ],
)
def test_auth_replies_match(locked_pair: tuple[int, int], payload: bytes,
                            replies: int) -> None:
    real, ours = locked_pair
    assert exchange(ours, payload, replies) == exchange(real, payload, replies)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"*11\r\n", id="unauthenticated-count"),
        pytest.param(b"*1\r\n$16385\r\n", id="unauthenticated-bulk"),
    ],
)
def test_unauthenticated_limits_match(locked_pair: tuple[int, int], payload: bytes) -> None:
    real, ours = locked_pair
    theirs = exchange_until_close(real, payload)
    assert theirs[1] is True and theirs[0].startswith(b"-ERR Protocol error: unauthenticated")
    assert exchange_until_close(ours, payload) == theirs
