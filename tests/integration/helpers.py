"""Small helpers shared by the integration tests: running real tools, raw sockets."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence

from tests.conftest import raw_exchange

PONG = b"+PONG\r\n"


def run(argv: Sequence[str], *, stdin: str | None = None,
        timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a real tool to completion, capturing text output."""
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)


def pings(port: int) -> bool:
    """A fresh client gets PONG: the server is alive and serving."""
    return raw_exchange(port, b"PING\r\n", expect=len(PONG), timeout=5.0) == PONG


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0,
             interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Read until the peer closes (returns ``closed=True``) or ``timeout`` passes."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange_on(sock: socket.socket, payload: bytes, expect: bytes,
                timeout: float = 5.0) -> bytes:
    """Send on an open connection and read exactly ``len(expect)`` bytes."""
    sock.sendall(payload)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < len(expect) and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(len(expect) - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data
