"""Small socket tools the attacks share."""

from __future__ import annotations

import socket
import time


def connect(target_port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> socket.socket:
    sock = socket.create_connection((host, target_port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def command(*args: str | bytes) -> bytes:
    """One request in canonical multibulk form."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


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


def auth(sock: socket.socket, password: str | None) -> None:
    if password is not None:
        sock.sendall(command("AUTH", password))
        reply = read_some(sock)
        if reply != b"+OK\r\n":
            raise RuntimeError(f"AUTH failed: {reply!r}")
