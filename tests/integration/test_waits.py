"""CLUSTER WAIT and HEALTH WAIT over the wire: blocked clients answered by a change in the
model, or by their time-out, with requests pipelined behind them kept in order."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from tests.conftest import ServerProcess

from .cluster_helpers import three_masters
from .helpers import read_until_closed

pytestmark = pytest.mark.integration


def connect(server: ServerProcess, protocol: int = 2) -> redis.Redis:
    return redis.Redis(port=server.port, protocol=protocol, socket_timeout=20)


def index_of(server: ServerProcess) -> int:
    flat = connect(server).execute_command("BUS", "INFO")
    return int(dict(zip(flat[::2], flat[1::2], strict=True))[b"model_version"])


def publish_later(server: ServerProcess, delay: float, batch: list[bytes]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        connect(server).execute_command("BUS", "PUBLISH", *batch)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_cluster_wait_returns_on_a_change_and_the_same_index_on_timeout(
        server: ServerProcess) -> None:
    index = index_of(server)
    started = time.monotonic()
    assert connect(server).execute_command("CLUSTER", "WAIT", index, 150) == index
    assert time.monotonic() - started >= 0.14
    thread = publish_later(server, 0.2, three_masters())
    started = time.monotonic()
    after = connect(server).execute_command("CLUSTER", "WAIT", index, 10_000)
    thread.join()
    assert after > index
    assert time.monotonic() - started < 5
    # Already past: at once.
    assert connect(server).execute_command("CLUSTER", "WAIT", index, 10_000) == after


def test_health_wait_reaches_ready_or_says_timed_out(server: ServerProcess) -> None:
    r = connect(server, protocol=3)
    answer = r.execute_command("HEALTH", "WAIT", "ready", "UP", 100)
    assert answer[b"timed_out"] is True and answer[b"status"] != b"UP"
    thread = publish_later(server, 0.2, three_masters())
    answer = r.execute_command("HEALTH", "WAIT", "ready", "up", 10_000)
    thread.join()
    assert answer[b"status"] == b"UP" and answer[b"timed_out"] is False
    assert answer[b"index"] >= 6
    with pytest.raises(redis.ResponseError, match="unknown status 'GREEN'"):
        r.execute_command("HEALTH", "WAIT", "ready", "green", 10)
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        r.execute_command("HEALTH", "WAIT", "ready", "UP", -1)


def test_pipelined_requests_wait_behind_a_blocked_wait_and_multi_never_blocks(
        server: ServerProcess) -> None:
    index = index_of(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"CLUSTER WAIT %d 200\r\nPING\r\nQUIT\r\n" % index)
        data, closed = read_until_closed(sock, 10)
    assert closed and data == b":%d\r\n+PONG\r\n+OK\r\n" % index
    pipe = connect(server).pipeline(transaction=True)
    pipe.execute_command("CLUSTER", "WAIT", index, 60_000)
    started = time.monotonic()
    assert pipe.execute() == [index]
    assert time.monotonic() - started < 5


def test_five_thousand_waiting_clients_are_woken_by_one_change(
        server: ServerProcess) -> None:
    index = index_of(server)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=20)
             for _ in range(5000)]
    try:
        for sock in socks:
            sock.sendall(b"CLUSTER WAIT %d 30000\r\n" % index)
        # All of them blocked, and the server still answers others while they wait.
        deadline = time.monotonic() + 20
        while connect(server).info("clients")["blocked_clients"] < 5000:
            assert time.monotonic() < deadline, "the clients never all blocked"
        assert connect(server).ping() is True  # a bystander is answered while they wait
        connect(server).execute_command("BUS", "PUBLISH", three_masters()[0])
        answers = {sock.recv(64) for sock in socks}
        assert answers == {b":%d\r\n" % (index + 1)}
    finally:
        for sock in socks:
            sock.close()
