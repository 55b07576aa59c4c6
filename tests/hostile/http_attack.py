"""Attacks on the HTTP mirror that the hostile suite and ``benchmarks/hostile/http.py``
share: many long polls from one process, raw requests with bytes no HTTP client would
send, and the model changes that wake the polls."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NODE = "f" * 40


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request(target: bytes, method: bytes = b"GET") -> bytes:
    return b"%b %b HTTP/1.1\r\nHost: clusterwatch\r\nConnection: close\r\n\r\n" % (method,
                                                                                   target)


def raw_get(port: int, target: bytes, *, timeout: float = 10.0) -> RawAnswer:
    """Send one request line as given (any bytes) and read the answer until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request(target))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse(data)


def parse(data: bytes) -> RawAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {key.lower(): value for key, _, value in
               (line.partition(": ") for line in lines[1:])}
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def read_answer(sock: socket.socket) -> RawAnswer:
    """One answer on a kept-alive connection: its head, then Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    answer = parse(data)
    body = answer.body
    while len(body) < int(answer.headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawAnswer(answer.status, answer.headers, body)


def open_polls(port: int, targets: Iterable[str], *, timeout: float = 60.0
               ) -> list[socket.socket]:
    """One connection per target, its GET sent and left waiting (keep-alive)."""
    socks = []
    try:
        for target in targets:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            socks.append(sock)
            sock.sendall(b"GET %b HTTP/1.1\r\nHost: clusterwatch\r\n\r\n" % target.encode())
    except BaseException:
        close_all(socks)
        raise
    return socks


def open_idle(port: int, count: int, *, timeout: float = 60.0) -> list[socket.socket]:
    """Connections that send nothing."""
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=timeout))
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: Sequence[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def hello() -> bytes:
    return json.dumps({"v": 1, "type": "hello", "node": NODE, "epoch": 1, "seq": 1,
                       "addr": "10.0.0.9:7000"}).encode()


def heartbeats(first_seq: int, count: int = 1) -> list[bytes]:
    """``count`` heartbeats of one node: each applied one raises the model index by one."""
    return [json.dumps({"v": 1, "type": "heartbeat", "node": NODE, "epoch": 1,
                        "seq": seq}).encode() for seq in range(first_seq, first_seq + count)]
