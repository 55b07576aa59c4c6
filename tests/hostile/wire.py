"""Raw RESP over a socket, for attacks that need bytes a client library would never send.
The hostile tests and ``benchmarks/hostile/`` share it."""

from __future__ import annotations

import socket
import time


def command(*args: str | bytes) -> bytes:
    """One request in canonical multibulk form."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def connect(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until(sock: socket.socket, end: bytes, timeout: float = 60.0) -> bytes:
    """Bytes until they end with ``end``; ConnectionError if the peer closes first."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(end):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed after {data[-200:]!r}")
        data += chunk
    return data


def read_count(sock: socket.socket, marker: bytes, count: int, timeout: float = 60.0) -> bytes:
    """Bytes until ``marker`` was seen ``count`` times."""
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(marker) < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed: no {marker!r} after {data[-200:]!r}")
        data += chunk
    return data


def read_some(sock: socket.socket, timeout: float = 10.0, until: bytes = b"\r\n") -> bytes:
    """Bytes until ``until`` ends them, the peer closes, or ``timeout`` passes."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(until):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data
