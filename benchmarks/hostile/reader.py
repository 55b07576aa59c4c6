"""The request reader: lengths and counts a client claims, checked before anything is
allocated for them; one long request parsed in linear time; the unauthenticated limits
applied request by request. Each case mirrors a test of ``tests/hostile/test_reader.py``."""

from __future__ import annotations

import functools
import socket
import threading

from . import Target, case
from .net import auth, command, connect, read_some

JSON = b'{"v":1,"type":"heartbeat","node":"node-0001","epoch":1,"seq":1,"ts_ms":1}'
BIG = b"x" * 100_000


def _send_all(sock: socket.socket, data: bytes, piece: int = 65536) -> None:
    for start in range(0, len(data), piece):
        try:
            sock.sendall(data[start:start + piece])
        except (BrokenPipeError, ConnectionResetError):
            return


def _count_attack(target: Target, count: bytes, *, login: bool, clients: int = 2) -> None:
    """``clients`` connections at once, each sending a lone ``*<count>``. redis-server
    waits for the arguments after AUTH (it has no count limit): give up after 1 s."""
    def one() -> None:
        with connect(target.port) as sock:
            if login:
                auth(sock, target.password)
            sock.sendall(b"*" + count + b"\r\n")
            read_some(sock, timeout=15.0 if not login or not target.is_redis else 1.0)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@case("preauth-count-2^31", password="pw")
def preauth_huge_count(target: Target) -> None:
    """`*2147483647` from two clients that never authenticated (a password is set)."""
    _count_attack(target, b"2147483647", login=False)


@case("preauth-count-3e9", password="pw")
def preauth_count_3e9(target: Target) -> None:
    """`*3000000000` from two clients that never authenticated."""
    _count_attack(target, b"3000000000", login=False)


@case("preauth-count-2^32-1", password="pw")
def preauth_count_2_32(target: Target) -> None:
    """`*4294967295` from two clients that never authenticated."""
    _count_attack(target, b"4294967295", login=False)


@case("auth-count-2^31", password="pw")
def auth_count_2_31(target: Target) -> None:
    """`*2147483647` after AUTH, a read of its own (clusterwatch: over max-multibulk-length)."""
    _count_attack(target, b"2147483647", login=True)


@case("auth-count-2^32-1", password="pw")
def auth_count_2_32(target: Target) -> None:
    """`*4294967295` after AUTH, a read of its own."""
    _count_attack(target, b"4294967295", login=True)


@case("nested-push-2e8")
def nested_push(target: Target) -> None:
    """`*1\\r\\n>200000000\\r\\n`: a RESP3 push header where a bulk belongs (one read)."""
    with connect(target.port) as sock:
        sock.sendall(b"*1\r\n>200000000\r\n")
        read_some(sock, timeout=15.0)


@case("pipelined-set-2e9")
def pipelined_set(target: Target) -> None:
    """PING, then `*1\\r\\n~2000000000\\r\\n` (a RESP3 set header) in the same write."""
    with connect(target.port) as sock:
        sock.sendall(command("PING") + b"*1\r\n~2000000000\r\n")
        read_some(sock, timeout=15.0, until=b"'\r\n")


@functools.cache
def _ping_with(arg: bytes, count: int) -> bytes:
    """PING with ``count`` copies of ``arg``: a cheap arity error once parsed, so the case
    measures the parse alone. Built before the bystander starts (``setup``): building it
    holds this process's GIL, which the bystander's thread would count as server time."""
    return command("PING", *([arg] * count))


def _long_request(target: Target, request: bytes, clients: int) -> None:
    """``request`` from ``clients`` connections at once, each in 64 KB writes."""

    def one() -> None:
        with connect(target.port) as sock:
            _send_all(sock, request)
            read_some(sock, timeout=120.0)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _warm_300k(target: Target) -> None:
    _ping_with(b"a", 300_000)


def _warm_json(target: Target) -> None:
    _ping_with(JSON, 200_000)


@case("args-300k-64k", setup=_warm_300k)
def args_300k(target: Target) -> None:
    """PING with 300,000 one-byte arguments (2 MB), in 64 KB writes."""
    _long_request(target, _ping_with(b"a", 300_000), clients=1)


@case("args-300k-64k-x4", setup=_warm_300k)
def args_300k_x4(target: Target) -> None:
    """The same from four clients at once."""
    _long_request(target, _ping_with(b"a", 300_000), clients=4)


@case("args-200k-json-64k", setup=_warm_json)
def args_200k_json(target: Target) -> None:
    """PING with 200,000 heartbeat-sized JSON arguments (16 MB, a BUS PUBLISH's shape)."""
    _long_request(target, _ping_with(JSON, 200_000), clients=1)


@case("simple-string-element")
def simple_string_element(target: Target) -> None:
    """`*1\\r\\n+PING\\r\\n`, 200 connections one after another: a protocol error each."""
    for _ in range(200):
        with connect(target.port) as sock:
            sock.sendall(b"*1\r\n+PING\r\n")
            read_some(sock, timeout=5.0)


def _auth_then_big(target: Target, login: bytes, replies: int) -> None:
    request = login + command("ECHO", BIG)
    for _ in range(100):
        with connect(target.port) as sock:
            sock.sendall(request)
            got = b""
            while got.count(b"\r\n") < replies and len(got) < len(BIG) + 64:
                chunk = read_some(sock, timeout=5.0, until=BIG[-8:] + b"\r\n")
                if not chunk:
                    break
                got += chunk
                if got.endswith(BIG[-8:] + b"\r\n"):
                    break


@case("auth-then-echo-100k", password="pw")
def auth_then_echo(target: Target) -> None:
    """AUTH and a 100 KB ECHO in one write, 100 times (Redis runs both)."""
    _auth_then_big(target, command("AUTH", "pw"), 2)


@case("hello3-auth-then-echo-100k", password="pw")
def hello_then_echo(target: Target) -> None:
    """HELLO 3 AUTH default pw and a 100 KB ECHO in one write, 100 times."""
    _auth_then_big(target, command("HELLO", "3", "AUTH", "default", "pw"), 2)
