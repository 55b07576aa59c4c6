"""Socket tools the attacks share (``tests/hostile/wire.py``), and AUTH."""

from __future__ import annotations

import socket

from tests.hostile.wire import command, connect, read_count, read_some, read_until

__all__ = ["auth", "command", "connect", "read_count", "read_some", "read_until"]


def auth(sock: socket.socket, password: str | None) -> None:
    if password is not None:
        sock.sendall(command("AUTH", password))
        reply = read_some(sock)
        if reply != b"+OK\r\n":
            raise RuntimeError(f"AUTH failed: {reply!r}")
