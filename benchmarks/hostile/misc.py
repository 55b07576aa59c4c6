"""Status documents at their limits: a deep one refused at ingest, a wide one (as wide as
``--max-message-size`` lets it be) rendered again and again in every format. clusterwatch
only: Redis has no status documents."""

from __future__ import annotations

import json
import socket
from typing import Any

import hiredis

from . import Target, case
from .net import auth, command, connect

NODE = "n1"
HELLO = json.dumps({"v": 1, "type": "hello", "node": NODE, "epoch": 1, "seq": 1,
                    "addr": "10.0.0.1:7000"})


def _heartbeat(seq: int, debug_json: str) -> bytes:
    return (f'{{"v":1,"type":"heartbeat","node":"{NODE}","epoch":1,"seq":{seq},'
            f'"services":{{"web":{{"state":"running","status":{{"debug":{debug_json}}}}}}}}}'
            ).encode()


def _ask(sock: socket.socket, *requests: bytes) -> list[Any]:
    """Send the requests in one write; every reply, read whole."""
    reader = hiredis.Reader()
    sock.sendall(b"".join(requests))
    replies: list[Any] = []
    while len(replies) < len(requests):
        reply = reader.gets()
        if reply is False:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            reader.feed(chunk)
            continue
        replies.append(reply)
    return replies


def _seed_wide(target: Target) -> None:
    with connect(target.port) as sock:
        auth(sock, target.password)
        wide = json.dumps({"deep": json.loads("[" * 31 + "0" + "]" * 31), "wide": [7] * 31_500},
                          separators=(",", ":"))
        replies = _ask(sock, command("BUS", "PUBLISH", HELLO, _heartbeat(2, wide)))
        if replies != [[b"applied", b"applied"]]:
            raise RuntimeError(f"seeding the wide status failed: {replies!r}")


@case("status-wide-64k-render", redis=False, setup=_seed_wide)
def wide_status_render(target: Target) -> None:
    """STATUS SERVICE LEVEL debug of a 63 KB, 32-deep status, 20 times each in RESP2, RESP3
    and FORMAT JSON (breadth is bounded by --max-message-size, 64 KiB by default)."""
    with connect(target.port) as sock:
        auth(sock, target.password)
        one = command("STATUS", "SERVICE", f"{NODE}/web", "LEVEL", "debug")
        for _ in range(20):
            _ask(sock, one)
            _ask(sock, command("STATUS", "SERVICE", f"{NODE}/web", "LEVEL", "debug",
                               "FORMAT", "JSON"))
        _ask(sock, command("HELLO", "3"))
        for _ in range(20):
            _ask(sock, one)


@case("status-deep-refused", redis=False)
def deep_status_refused(target: Target) -> None:
    """BUS PUBLISH of 200 heartbeats whose status nests 33 to 30000 levels (each up to
    60 KB): every one refused at ingest (``depth``), none stored or rendered."""
    with connect(target.port) as sock:
        auth(sock, target.password)
        _ask(sock, command("BUS", "PUBLISH", HELLO))
        for seq in range(2, 202):
            depth = 33 + (seq * 151) % 29_967
            reply = _ask(sock, command("BUS", "PUBLISH",
                                       _heartbeat(seq, "[" * depth + "0" + "]" * depth)))
            if not isinstance(reply[0][0], hiredis.ReplyError):
                raise RuntimeError(f"a {depth}-deep status was accepted: {reply!r}")
