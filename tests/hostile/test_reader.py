"""Hostile input for the request reader, each against a real server process while a
bystander PINGs it: counts and lengths a client claims are checked before anything is
allocated for them, before and after authentication, on a one-request read as in a
pipeline; one request's parse is linear in its size; framing errors get redis-server's
words (each checked against redis-server 7.0.15 on the wire); and the unauthenticated
limits apply request by request, so a request behind a successful AUTH in the same write
gets the authenticated ones, as in Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import hiredis
import pytest

from tests.conftest import ServerProcess
from tests.hostile.bystander import process_usage

from .conftest import BystanderFactory
from .wire import command

pytestmark = pytest.mark.integration

PASSWORD = "pw"
ServerFactory = Callable[..., ServerProcess]


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_pieces(sock: socket.socket, *pieces: bytes, pause: float = 0.0) -> None:
    """Each piece in its own write (``pause`` apart); a server that has closed is fine."""
    for index, piece in enumerate(pieces):
        if index and pause:
            time.sleep(pause)
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return


def read_until_closed(sock: socket.socket, timeout: float = 20.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout`` passes)."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:  # closed, and our late bytes drew a reset
            return data
        if not chunk:
            return data
        data += chunk
    return data + b"<still open>"


def read_replies(sock: socket.socket, count: int, timeout: float = 20.0) -> list[object]:
    parser = hiredis.Reader()
    replies: list[object] = []
    deadline = time.monotonic() + timeout
    while len(replies) < count:
        reply = parser.gets()
        if reply is not False:
            replies.append(reply)
            continue
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(replies)} of {count} replies: {replies!r}"
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        assert chunk, f"closed after {len(replies)} of {count} replies: {replies!r}"
        parser.feed(chunk)
    return replies


def attack(server: ServerProcess, *pieces: bytes, login: bytes = b"",
           pause: float = 0.0) -> bytes:
    """What the attacker gets back, up to the server closing the connection."""
    with connect(server) as sock:
        if login:
            sock.sendall(login)
            assert read_replies(sock, 1) == [b"OK"]
        send_pieces(sock, *pieces, pause=pause)
        return read_until_closed(sock)


def assert_intact(server: ServerProcess, password: str | None = PASSWORD) -> None:
    """A new client is served: the server and its model are there."""
    with connect(server) as sock:
        requests = [command("PING"), command("CLUSTER", "INFO")]
        if password is not None:
            requests.insert(0, command("AUTH", password))
        sock.sendall(b"".join(requests))
        replies = read_replies(sock, len(requests))
    assert replies[-2] == b"PONG"
    assert isinstance(replies[-1], bytes) and replies[-1].startswith(b"cluster_state:")
    assert server.alive()


def protocol_error(message: str) -> bytes:
    return b"-ERR Protocol error: " + message.encode() + b"\r\n"


LOGIN = command("AUTH", PASSWORD)


# --- counts a client claims ------------------------------------------------------------

REDIS_PREAUTH_COUNT = [  # what redis-server answers before AUTH
    pytest.param(b"2147483647", "unauthenticated multibulk length", id="2^31-1"),
    pytest.param(b"3000000000", "invalid multibulk length", id="3e9"),
    pytest.param(b"4294967295", "invalid multibulk length", id="2^32-1"),
]


@pytest.mark.parametrize(("count", "error"), REDIS_PREAUTH_COUNT)
def test_a_huge_count_before_auth_is_refused_at_once(
        server_factory: ServerFactory, bystander: BystanderFactory, count: bytes,
        error: str) -> None:
    """A lone ``*<count>`` from a client that never authenticated: on main hiredis
    allocated the whole argument list first (4 s held for 2^31-1, a MemoryError for
    2^32-1). Two clients at once, as a starving attack would."""
    server = server_factory("--requirepass", PASSWORD)
    with bystander(server, password=PASSWORD) as watcher:
        before = process_usage(server.proc.pid)
        results: list[bytes] = []
        attackers = [threading.Thread(target=lambda: results.append(
            attack(server, b"*" + count + b"\r\n"))) for _ in range(2)]
        for thread in attackers:
            thread.start()
        for thread in attackers:
            thread.join()
        after = process_usage(server.proc.pid)
    print(f"server CPU {after.cpu_seconds - before.cpu_seconds:.3f} s, "
          f"peak RSS {after.peak_rss_bytes / 2**20:.0f} MB")
    assert results == [protocol_error(error)] * 2
    assert_intact(server)
    watcher.check()


@pytest.mark.parametrize("count", [b"2147483647", b"3000000000", b"4294967295"])
def test_a_huge_count_after_auth_is_refused_at_once(
        server_factory: ServerFactory, bystander: BystanderFactory, count: bytes) -> None:
    """The same after AUTH, in a read of its own (the one-request path): over
    ``max-multibulk-length`` (1 MiB arguments by default). redis-server has no such
    limit and waits for the arguments, allocating 1024 slots at most."""
    server = server_factory("--requirepass", PASSWORD)
    with bystander(server, password=PASSWORD) as watcher:
        got = attack(server, b"*" + count + b"\r\n", login=LOGIN)
    assert got == protocol_error("invalid multibulk length")
    assert_intact(server)
    watcher.check()


NESTED = [  # hiredis allocates (or builds) a RESP3 aggregate's slots from its header
    pytest.param(b"*1\r\n>200000000\r\n", b">", False, id="push-one-request"),
    pytest.param(command("PING") + b"*1\r\n>200000000\r\n", b">", False, id="push-pipelined"),
    pytest.param(b"*1\r\n~2000000000\r\n", b"~", True, id="set-one-request-after-auth"),
    pytest.param(command("PING") + b"*2\r\n$4\r\nECHO\r\n|2000000000\r\n", b"|", True,
                 id="attribute-pipelined-after-auth"),
]


@pytest.mark.parametrize(("data", "type_byte", "login"), NESTED)
def test_a_huge_resp3_aggregate_where_an_argument_belongs_is_refused(
        server_factory: ServerFactory, bystander: BystanderFactory, data: bytes,
        type_byte: bytes, login: bool) -> None:
    """A RESP3 push, set or attribute header of 200 million or 2 billion where a ``$``
    belongs: Redis refuses the type byte. On main hiredis built it first (4 s and 1.5 GB
    for the push, 16 s for the set)."""
    server = server_factory("--requirepass", PASSWORD)
    with bystander(server, password=PASSWORD) as watcher:
        got = attack(server, data, login=LOGIN if login else b"")
    pinged = (b"-NOAUTH Authentication required.\r\n" if not login else b"+PONG\r\n"
              ) if data.startswith(command("PING")) else b""
    assert got == pinged + b"-ERR Protocol error: expected '$', got '" + type_byte + b"'\r\n"
    assert_intact(server)
    watcher.check()


# --- one long request --------------------------------------------------------------------

def test_300k_arguments_in_64kb_pieces_are_parsed_in_linear_time(
        server_factory: ServerFactory, bystander: BystanderFactory) -> None:
    """Four clients each send PING with 300,000 arguments (2 MB) in 64 KB writes; each gets
    redis-server's arity error. On main every read re-scanned the request from its first
    byte (4 s per request, 350 ms per read late in it): with four at once the bystander
    waited seconds. Now each byte is looked at a bounded number of times."""
    server = server_factory()
    request = command("PING", *([b"a"] * 300_000))
    pieces = [request[i:i + 65536] for i in range(0, len(request), 65536)]
    with bystander(server) as watcher:
        before = process_usage(server.proc.pid)
        results: list[bytes] = []

        def one() -> None:
            with connect(server) as sock:
                send_pieces(sock, *pieces)
                results.append(read_replies(sock, 1, timeout=120)[0])  # type: ignore[arg-type]

        attackers = [threading.Thread(target=one) for _ in range(4)]
        for thread in attackers:
            thread.start()
        for thread in attackers:
            thread.join()
        after = process_usage(server.proc.pid)
    print(f"server CPU for 4 x 300k arguments: {after.cpu_seconds - before.cpu_seconds:.3f} s")
    assert [str(reply) for reply in results] == [
        "ERR wrong number of arguments for 'ping' command"] * 4
    assert_intact(server, password=None)
    watcher.check()


# --- framing ---------------------------------------------------------------------------

ELEMENTS = [b"+PING", b"_", b":1", b"#t", b",1.5", b"(12", b"=8\r\ntxt:PING", b"%1"]


def test_a_non_bulk_element_gets_redis_protocol_error(
        server_factory: ServerFactory, bystander: BystanderFactory) -> None:
    """``*1\\r\\n+PING\\r\\n`` and its family: redis-server answers ``expected '$', got
    '<type byte>'`` and closes. On main ``+PING`` ran as PING and ``_`` got another error."""
    server = server_factory()
    with bystander(server) as watcher:
        got = {element: attack(server, b"*1\r\n" + element + b"\r\n") for element in ELEMENTS}
    assert got == {element: b"-ERR Protocol error: expected '$', got '"
                   + element[:1] + b"'\r\n" for element in ELEMENTS}
    assert_intact(server, password=None)
    watcher.check()


def test_a_bulk_argument_is_never_run_as_inline_commands(
        server_factory: ServerFactory, bystander: BystanderFactory) -> None:
    """A simple string where a bulk belongs, then (in the next read) a request whose
    argument holds lines: on main the first request ran (``+PONG``), the reader lost count
    of the bytes, and the argument's lines ran as inline commands (``CLIENT SETNAME``
    answered ``+OK``). Redis refuses the first request; so does clusterwatch, and nothing
    else runs."""
    server = server_factory()
    payload = b"x\r\nCLIENT SETNAME injected\r\n"
    second = b"*2\r\n$4\r\nECHO\r\n$%d\r\n%b\r\n" % (len(payload), payload)
    with bystander(server) as watcher, connect(server) as sock:
        sock.sendall(b"*1\r\n+PING\r\n")
        first = read_replies(sock, 1)[0]
        # Read first: bytes sent to a closed connection draw a reset, which could cost
        # the client what it has not read yet.
        send_pieces(sock, second)
        rest = read_until_closed(sock)
    assert (str(first), rest) == ("ERR Protocol error: expected '$', got '+'", b"")
    assert_intact(server, password=None)
    watcher.check()


# --- the unauthenticated limits, request by request --------------------------------------

BIG = b"x" * 100_000


@pytest.mark.parametrize(("login", "expected"), [
    pytest.param(LOGIN, b"OK", id="AUTH"),
    pytest.param(b"AUTH " + PASSWORD.encode() + b"\r\n", b"OK", id="inline-AUTH"),
    pytest.param(command("HELLO", "3", "AUTH", "default", PASSWORD), dict, id="HELLO-3-AUTH"),
])
def test_a_large_request_behind_auth_in_the_same_write_runs(
        server_factory: ServerFactory, bystander: BystanderFactory, login: bytes,
        expected: object) -> None:
    """AUTH and a 100 KB ECHO (over the 16 KiB unauthenticated bulk limit) in one write:
    redis-server runs both, because it checks each request against the limits in force
    when it reaches it. On main the ECHO was refused (``unauthenticated bulk length``)."""
    server = server_factory("--requirepass", PASSWORD)
    with bystander(server, password=PASSWORD) as watcher, connect(server) as sock:
        sock.sendall(login + command("ECHO", BIG))
        first, echoed = read_replies(sock, 2)
        # The other side of it: after a wrong password the unauthenticated limits hold.
        # (The length line alone: a server closing with bytes unread sends a reset, which
        # can cost the client the replies it has not read yet.)
        refused = attack(server, command("AUTH", "wrong") + b"*2\r\n$4\r\nECHO\r\n$%d\r\n"
                         % len(BIG))
    assert first == expected if isinstance(expected, bytes) else isinstance(first, expected)
    assert echoed == BIG
    assert refused == (b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                       + protocol_error("unauthenticated bulk length"))
    assert_intact(server)
    watcher.check()


def test_requests_of_many_arguments_pipelined_behind_auth_run(
        server_factory: ServerFactory, bystander: BystanderFactory) -> None:
    """AUTH, then three requests of 12 arguments (over the 10 allowed before AUTH) in the
    same write: each gets its own reply, as from redis-server. On main: ``unauthenticated
    multibulk length`` and close."""
    server = server_factory("--requirepass", PASSWORD)
    many = command("PING", *(["x"] * 11))
    with bystander(server, password=PASSWORD) as watcher, connect(server) as sock:
        sock.sendall(LOGIN + many * 3 + command("PING"))
        replies = read_replies(sock, 5)
    assert [str(reply) for reply in replies[1:4]] == [
        "ERR wrong number of arguments for 'ping' command"] * 3
    assert (replies[0], replies[4]) == (b"OK", b"PONG")
    assert_intact(server)
    watcher.check()
