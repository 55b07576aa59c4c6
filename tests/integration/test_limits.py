"""Limits and bad input over real sockets. Each case shows the documented outcome for
the offending client while a second client, connected beforehand, keeps getting correct
answers and the server stays alive."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import ServerProcess

from .helpers import PONG, connect, exchange_on, pings, read_until_closed, wait_for

pytestmark = pytest.mark.integration


class Witness:
    """The second client: an open connection that must keep working."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = connect(port)
        assert self.ping()

    def ping(self) -> bool:
        return exchange_on(self.sock, b"PING\r\n", PONG) == PONG

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def witness_for() -> Iterator[object]:
    made: list[Witness] = []

    def make(server: ServerProcess) -> Witness:
        witness = Witness(server.port)
        made.append(witness)
        return witness

    yield make
    for witness in made:
        witness.close()


def _assert_unaffected(server: ServerProcess, witness: Witness) -> None:
    assert server.alive(), server.logs()
    assert witness.ping(), "the second client stopped getting answers"
    assert pings(server.port), "a new client is not served"


def _protocol_error_then_close(port: int, payload: bytes, message: str) -> None:
    with connect(port) as sock:
        sock.sendall(payload)
        data, closed = read_until_closed(sock, timeout=5)
    assert data == f"-ERR Protocol error: {message}\r\n".encode()
    assert closed, "the connection was not closed after the protocol error"


# --- protocol-level limits ---------------------------------------------------------------


def test_oversized_bulk_length(server_factory: object, witness_for: object) -> None:
    server = server_factory("--max-bulk-length", "1024")  # type: ignore[operator]
    witness = witness_for(server)  # type: ignore[operator]
    # Only the header: the error comes at once, without waiting for 2048 bytes.
    _protocol_error_then_close(server.port, b"*2\r\n$4\r\nECHO\r\n$2048\r\n",
                               "invalid bulk length")
    _assert_unaffected(server, witness)
    # The limit itself is accepted.
    arg = b"x" * 1024
    with connect(server.port) as sock:
        reply = exchange_on(sock, b"*2\r\n$4\r\nECHO\r\n$1024\r\n" + arg + b"\r\n",
                            b"$1024\r\n" + arg + b"\r\n")
        assert reply == b"$1024\r\n" + arg + b"\r\n"


def test_oversized_multibulk_count(server_factory: object, witness_for: object) -> None:
    server = server_factory("--max-multibulk-length", "16")  # type: ignore[operator]
    witness = witness_for(server)  # type: ignore[operator]
    _protocol_error_then_close(server.port, b"*17\r\n", "invalid multibulk length")
    _protocol_error_then_close(server.port, b"*1048577\r\n$4\r\nPING\r\n",
                               "invalid multibulk length")
    _assert_unaffected(server, witness)
    # Sixteen arguments are parsed (and refused by the command, connection kept).
    request = b"*16\r\n$4\r\nECHO\r\n" + b"$1\r\na\r\n" * 15
    with connect(server.port) as sock:
        expected = b"-ERR wrong number of arguments for 'echo' command\r\n"
        assert exchange_on(sock, request, expected) == expected
        assert exchange_on(sock, b"PING\r\n", PONG) == PONG


def test_endless_inline_request(server_factory: object, witness_for: object) -> None:
    server = server_factory("--max-inline-size", "1024")  # type: ignore[operator]
    witness = witness_for(server)  # type: ignore[operator]
    with connect(server.port) as sock:
        sock.sendall(b"A" * 1000)  # under the limit, no newline: the server waits
        data, closed = read_until_closed(sock, timeout=0.5)
        assert (data, closed) == (b"", False)
        assert witness.ping()
        sock.sendall(b"A" * 100)  # now over it, still no newline
        data, closed = read_until_closed(sock, timeout=5)
    assert data == b"-ERR Protocol error: too big inline request\r\n"
    assert closed
    _assert_unaffected(server, witness)


def test_query_buffer_limit(server_factory: object, witness_for: object) -> None:
    server = server_factory("--max-query-buffer", "4096")  # type: ignore[operator]
    witness = witness_for(server)  # type: ignore[operator]
    # A bulk under max-bulk-length whose bytes pile up past the query buffer limit.
    _protocol_error_then_close(server.port,
                               b"*2\r\n$4\r\nECHO\r\n$100000\r\n" + b"x" * 8192,
                               "query buffer limit exceeded")
    _assert_unaffected(server, witness)


@pytest.mark.parametrize(("payload", "message"), [
    (b"*abc\r\n", "invalid multibulk length"),
    (b"*1\r\n$x\r\n", "invalid bulk length"),
    (b"*1\r\n:5\r\n", "expected '$', got ':'"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*2\r\n$4\r\nECHO\r\n*1\r\n", "expected '$', got '*'"),
    (b'SET "unbalanced\r\n', "unbalanced quotes in request"),
])
def test_protocol_error_replies_once_then_closes(server: ServerProcess, witness_for: object,
                                                 payload: bytes, message: str) -> None:
    witness = witness_for(server)  # type: ignore[operator]
    _protocol_error_then_close(server.port, payload, message)
    _assert_unaffected(server, witness)


def test_requests_before_a_protocol_error_are_answered(server: ServerProcess,
                                                       witness_for: object) -> None:
    witness = witness_for(server)  # type: ignore[operator]
    with connect(server.port) as sock:
        sock.sendall(b"PING\r\n*1\r\n$4\r\nPING\r\n*abc\r\nPING\r\n")
        data, closed = read_until_closed(sock, timeout=5)
    assert data == b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    assert closed
    _assert_unaffected(server, witness)


def test_command_errors_keep_the_connection_open(server: ServerProcess) -> None:
    cases = [
        (b"NOSUCH a b\r\n",
         b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"),
        (b"*1\r\n$4\r\nECHO\r\n", b"-ERR wrong number of arguments for 'echo' command\r\n"),
        (b"PING a b\r\n", b"-ERR wrong number of arguments for 'ping' command\r\n"),
        (b"CLIENT NOSUCH\r\n", b"-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n"),
        (b"CONFIG GET\r\n", b"-ERR wrong number of arguments for 'config|get' command\r\n"),
        # Redis turns CR/LF inside an echoed argument into spaces: one line per error.
        (b"*2\r\n$6\r\nNOSUCH\r\n$4\r\na\r\nb\r\n",
         b"-ERR unknown command 'NOSUCH', with args beginning with: 'a  b' \r\n"),
    ]
    with connect(server.port) as sock:
        for request, expected in cases:
            assert exchange_on(sock, request, expected) == expected
            assert exchange_on(sock, b"PING\r\n", PONG) == PONG
        # All of it pipelined in one write: answered in order.
        expected = b"".join(reply + PONG for _, reply in cases)
        payload = b"".join(request + b"PING\r\n" for request, _ in cases)
        assert exchange_on(sock, payload, expected) == expected
    assert server.alive()


# --- connection-level limits -------------------------------------------------------------


def test_idle_timeout_closes_only_idle_clients(server_factory: object) -> None:
    server = server_factory("--timeout", "1")  # type: ignore[operator]
    active = connect(server.port)
    idle = connect(server.port)
    try:
        assert exchange_on(idle, b"PING\r\n", PONG) == PONG
        idle.sendall(b"*1\r\n$4\r\nPI")  # half a request, then silence
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < 6:
            assert exchange_on(active, b"PING\r\n", PONG) == PONG, "active client was closed"
            data, closed = read_until_closed(idle, timeout=0.3)
            assert data == b""
            if closed:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "the idle client was never closed"
        # Keep the active client busy past another timeout period: it stays open.
        for _ in range(6):
            time.sleep(0.3)
            assert exchange_on(active, b"PING\r\n", PONG) == PONG
    finally:
        active.close()
        idle.close()
    assert "closing idle client" in server.logs()
    assert pings(server.port)


def test_max_clients(server_factory: object) -> None:
    server = server_factory("--max-clients", "3")  # type: ignore[operator]
    clients = [connect(server.port) for _ in range(3)]
    try:
        for sock in clients:
            assert exchange_on(sock, b"PING\r\n", PONG) == PONG
        with connect(server.port) as fourth:
            data, closed = read_until_closed(fourth, timeout=5)
        assert data == b"-ERR max number of clients reached\r\n"
        assert closed
        for sock in clients:  # the admitted ones are unaffected
            assert exchange_on(sock, b"PING\r\n", PONG) == PONG

        clients.pop().close()

        def admitted() -> bool:
            with connect(server.port) as sock:
                return exchange_on(sock, b"PING\r\n", PONG) == PONG

        assert wait_for(admitted, timeout=5), "no client admitted after one disconnected"
        info = exchange_on(clients[0], b"INFO stats\r\n", b"$")
        assert info == b"$"
        rest, _ = read_until_closed(clients[0], timeout=0.5)
        match = re.search(rb"rejected_connections:(\d+)\r\n", rest)
        assert match
        assert int(match.group(1)) >= 1
    finally:
        for sock in clients:
            sock.close()
    assert server.alive()


# --- a client that pipelines without reading -----------------------------------------------

OUTPUT_LIMIT = 1024 * 1024


def _slow_client_entry(admin: redis.Redis, local_port: int) -> dict[str, str] | None:
    for entry in admin.client_list():
        if entry["addr"] == f"127.0.0.1:{local_port}":
            return entry
    return None


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("command", [b"INFO", b"PING"])
def test_client_that_never_reads(server_factory: object, command: bytes, loop: str) -> None:
    """The server stops reading from (and executing for) a client whose replies are not
    being read, so what it holds for that client stays bounded; other clients are served
    throughout. Past --output-buffer-limit the client would be disconnected instead."""
    server = server_factory("--output-buffer-limit", str(OUTPUT_LIMIT),  # type: ignore[operator]
                            "--event-loop", loop)
    name = command.decode().lower()
    own = {"ping": 0, "info": 0}  # this test's own PINGs and INFOs, not the slow client's
    witness = Witness(server.port)
    own["ping"] += 1
    admin = redis.Redis(port=server.port, protocol=2, decode_responses=True, socket_timeout=5)

    def calls() -> int:
        value = int(admin.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))
        own["info"] += 1
        return value

    baseline = calls()

    def executed() -> int:
        """Requests of the slow client the server has executed so far."""
        before = own[name]
        return calls() - baseline - before

    total = 2_000_000 if command == b"INFO" else 3_000_000
    rss_before = int(admin.info("memory")["used_memory_rss"])
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    slow.connect(("127.0.0.1", server.port))
    local_port = slow.getsockname()[1]
    written = [0]

    def writer() -> None:
        chunk = (command + b"\r\n") * 1000
        with contextlib.suppress(OSError):
            for _ in range(total // 1000):
                slow.sendall(chunk)
                written[0] += 1000

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        # Sample until the slow client is gone or its executed count has stood still for
        # four samples (0.75 s): the server has stopped working for it.
        samples: list[tuple[float, int, dict[str, str] | None]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.25)
            started = time.monotonic()
            assert witness.ping(), "the second client stopped getting answers"
            own["ping"] += 1
            latency = time.monotonic() - started
            done = executed()
            recent_max = int(admin.info("clients")["client_recent_max_output_buffer"])
            own["info"] += 1
            assert recent_max <= OUTPUT_LIMIT
            entry = _slow_client_entry(admin, local_port)
            samples.append((latency, done, entry))
            if entry is None:
                break
            assert int(entry["omem"]) <= OUTPUT_LIMIT, entry
            if len(samples) >= 4 and len({s[1] for s in samples[-4:]}) == 1:
                break
        final = samples[-1][1]
        disconnected = samples[-1][2] is None
        omems = [int(s[2]["omem"]) for s in samples if s[2] is not None]
        print(f"\nnon-reading {name} client: written={written[0]}/{total} executed={final} "
              f"disconnected={disconnected} omem={omems} "
              f"witness_latency_max={max(s[0] for s in samples) * 1000:.1f}ms")
        # Backpressure: far from all requests were executed, and the server's memory did
        # not grow with them (INFO replies for all of them would be ~5 GB, PONGs ~20 MB
        # plus per-object overhead).
        assert 0 < final < total // 2
        rss_growth = int(admin.info("memory")["used_memory_rss"]) - rss_before
        assert rss_growth < 64 * 1024 * 1024, rss_growth
        if disconnected:
            stats = admin.info("stats")
            assert stats["client_output_buffer_limit_disconnections"] >= 1
            assert "client output buffer limit reached" in server.logs()
        else:
            # Paused: the server stopped reading, so the rest of the requests wait in the
            # kernel's buffers (the writer is blocked) and nothing more is executed.
            assert thread.is_alive(), "the server read every request of a paused client"
            assert len(samples) >= 4
            assert samples[-4][1] == final, "still executing for a client that does not read"
            assert int(samples[-1][2]["omem"]) > 0
            # Reading resumes it: more of its requests get executed.
            drained = 0
            slow.settimeout(5)
            while drained < 4 * OUTPUT_LIMIT:
                chunk = slow.recv(1 << 20)
                assert chunk
                drained += len(chunk)
            assert wait_for(lambda: executed() > final)
        _assert_unaffected(server, witness)
    finally:
        slow.close()
        thread.join(5)
        admin.close()
        witness.close()
    assert not thread.is_alive()


def test_a_huge_argument_count_is_refused_before_it_costs_anything(
        server: ServerProcess, witness_for: object) -> None:
    """hiredis allocates the whole argument list when it reads ``*N``; freeing a list of
    three billion slots would hold the event loop for seconds. The reader refuses the
    header before hiredis sees it, answering the request sent before it first."""
    witness = witness_for(server)  # type: ignore[operator]
    with connect(server.port) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n*3000000000\r\n")
        data, closed = read_until_closed(sock, timeout=5)
    assert data == b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    assert closed
    started = time.monotonic()
    assert witness.ping()
    # Generous: the point is that no multi-second stall follows, not a latency figure.
    assert time.monotonic() - started < 1.0
    _assert_unaffected(server, witness)


def _echo(payload: bytes) -> bytes:
    return b"*2\r\n$4\r\nECHO\r\n$%d\r\n%b\r\n" % (len(payload), payload)


def _bulk(payload: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(payload), payload)


def test_large_replies_go_out_whole_and_in_order(server: ServerProcess,
                                                 witness_for: object) -> None:
    """Replies over the piece size leave a piece per loop turn; what follows them in the
    pipeline, small or large, arrives after them, byte for byte, and QUIT closes only
    once everything queued is out."""
    witness = witness_for(server)  # type: ignore[operator]
    big = bytes(range(256)) * 3000  # 768,000 bytes: three pieces
    other = b"z" * 300_000
    expected = _bulk(big) + PONG + _bulk(other) + _bulk(b"tail") + b"+OK\r\n"
    with connect(server.port) as sock:
        sock.sendall(_echo(big) + b"PING\r\n" + _echo(other) + _echo(b"tail")
                     + b"*1\r\n$4\r\nQUIT\r\n")
        data, closed = read_until_closed(sock, timeout=10.0)
    assert data == expected
    assert closed
    _assert_unaffected(server, witness)


def test_one_reply_larger_than_the_output_buffer_limit_goes_out_whole(
        server_factory: object) -> None:
    """The reply being written does not count against --output-buffer-limit: a client
    that reads gets a reply larger than the limit, and what follows it."""
    server = server_factory("--output-buffer-limit", "1000000")  # type: ignore[operator]
    big = bytes(range(256)) * 6000  # 1,536,000 bytes
    with connect(server.port) as sock:
        sock.sendall(_echo(big) + b"PING\r\n" + b"*1\r\n$4\r\nQUIT\r\n")
        data, closed = read_until_closed(sock, timeout=10.0)
    assert data == _bulk(big) + PONG + b"+OK\r\n"
    assert closed
    admin = redis.Redis(port=server.port)
    assert int(admin.info("stats")["client_output_buffer_limit_disconnections"]) == 0
    assert "client output buffer limit reached" not in server.logs()


def test_a_large_reply_counts_against_the_output_buffer_limit(server_factory: object) -> None:
    """Replies queued behind the largest one count: a batch of pipelined requests whose
    replies pass --output-buffer-limit cuts the client that does not read them. (Requests
    that arrive after the output backs up are not run until it drains: reading and running
    stop at the write buffer's high watermark.)"""
    # A limit of about one reply (COMMAND DOCS is ~29 KB): the second reply queued passes it
    # whatever the turn's time backstop (5 ms, reached sooner on a loaded machine) allows.
    server = server_factory("--output-buffer-limit", "32768")  # type: ignore[operator]
    with connect(server.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n" * 100)  # ~3 MB of replies
        assert wait_for(lambda: "client output buffer limit reached" in server.logs(),
                        timeout=10)
    admin = redis.Redis(port=server.port)
    assert int(admin.info("stats")["client_output_buffer_limit_disconnections"]) == 1
    assert admin.ping()
