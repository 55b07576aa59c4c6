"""The request reader: lengths and counts a client claims, checked before anything is
allocated for them."""

from __future__ import annotations

from . import Target, case
from .net import connect, read_some


@case("preauth-count-2^31", password="pw")
def preauth_huge_count(target: Target) -> None:
    """`*2147483647` from a client that never authenticated (a password is set)."""
    with connect(target.port) as sock:
        sock.sendall(b"*2147483647\r\n")
        read_some(sock, timeout=15.0)
