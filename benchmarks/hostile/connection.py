"""A connection's fairness and memory: blocked clients that leave, pipelines of costly
requests, one huge request, and clients that never read their replies.

Each attack prints what it left behind (clients, descriptors, disconnections), so the
table's latency and memory figures can be read against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time

from . import Target, case
from .net import command, connect, read_some

_NODES = [hashlib.sha1(b"node-%d" % i).hexdigest().encode() for i in range(1000)]


def heartbeat(index: int) -> bytes:
    """Node ``index % 1000``'s heartbeat number ``index // 1000 + 1``: ~90 bytes."""
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":%d}' % (
        _NODES[index % 1000], index // 1000 + 1)


def _status_heartbeat(node: int, seq: int) -> bytes:
    """A heartbeat with two services and their status at every level (~500 bytes)."""
    services = (b'"services":{"api":{"version":"1.4.2","state":"running","status":'
                b'{"critical":{"listening":true},"info":{"connections":17},"debug":'
                b'{"pool":{"idle":3,"busy":5},"gc_ms":12}}},"storage":{"version":"1.4.2",'
                b'"state":"running","status":{"critical":{"writable":true},"info":'
                b'{"free_bytes":123456789},"debug":{"compactions":42}}}}')
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":%d,%s}' % (
        _NODES[node], seq, services)


def _hello(node: int) -> bytes:
    return (b'{"v":1,"type":"hello","node":"%s","epoch":1,"seq":1,"addr":"10.0.%d.%d:7000",'
            b'"hostname":"host-%d"}' % (_NODES[node], node // 250, node % 250, node))


def _info(port: int, section: str, password: str | None = None) -> dict[str, str]:
    with connect(port) as sock:
        if password is not None:
            sock.sendall(command("AUTH", password))
            read_some(sock)
        sock.sendall(command("INFO", section))
        reply = read_some(sock, until=b"\r\n\r\n")
    return dict(line.split(":", 1) for line in reply.decode(errors="replace").splitlines()
                if ":" in line and not line.startswith("#"))


def _report(target: Target, what: str) -> None:
    clients = _info(target.port, "clients", target.password)
    stats = _info(target.port, "stats", target.password)
    fds = len(os.listdir(f"/proc/{target.pid}/fd"))
    print(f"  [{target.kind}] {what}: connected_clients={clients.get('connected_clients')} "
          f"blocked_clients={clients.get('blocked_clients')} fds={fds} "
          f"output_buffer_disconnections="
          f"{stats.get('client_output_buffer_limit_disconnections')}", flush=True)


# --- blocked clients that leave -----------------------------------------------------------


@case("blocked-connect-close-500")
def blocked_connect_close(target: Target) -> None:
    """500 clients each block (CLUSTER WAIT / BLPOP on a missing key, 10 min) and close."""
    request = (command("BLPOP", "missing", "600") if target.is_redis
               else command("CLUSTER", "WAIT", "999999999", "600000"))
    for _ in range(500):
        with connect(target.port) as sock:
            sock.sendall(request)
            time.sleep(0.001)
    time.sleep(0.3)
    _report(target, "after 500 connect-block-close cycles")


# --- pipelines of costly requests ------------------------------------------------------------


class _Counter:
    """Counts reply headers across reads (a header may be split between two reads)."""

    def __init__(self, header: bytes) -> None:
        self.header = header
        self.total = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self.total += data.count(self.header)
        self._tail = data[-(len(self.header) - 1):] if len(self.header) > 1 else b""


def _count_replies(target: Target, requests: list[bytes], header: bytes,
                   replies: int) -> int:
    counter = _Counter(header)
    with connect(target.port) as sock:
        writer = threading.Thread(target=sock.sendall, args=(b"".join(requests),),
                                  daemon=True)
        writer.start()
        deadline = time.monotonic() + 120
        while counter.total < replies and time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            counter.feed(chunk)
        writer.join(10)
    return counter.total


def _greet(target: Target) -> None:
    """The 1000 nodes' hellos at seq 0, so their heartbeats apply on a server that refuses
    messages from a node that never said hello (--require-hello); redis: nothing."""
    if target.is_redis:
        return
    hellos = [b'{"v":1,"type":"hello","node":"%s","epoch":1,"seq":0,"addr":"10.0.%d.%d:7000"}'
              % (_NODES[n], n // 250, n % 250) for n in range(1000)]
    with connect(target.port, timeout=60) as sock:
        sock.sendall(command("BUS", "PUBLISH", *hellos))
        reply = read_some(sock, timeout=60, until=b"+applied\r\n" * 2)
        while reply.count(b"\r\n") < 1001:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            reply += chunk


@case("pipelined-publish-3000x100", setup=_greet)
def pipelined_publish(target: Target) -> None:
    """3000 pipelined BUS PUBLISH of 100 heartbeats (redis: RPUSH of the same bytes)."""
    requests = []
    for number in range(3000):
        messages = [heartbeat(number * 100 + i) for i in range(100)]
        verb = ("RPUSH", "list") if target.is_redis else ("BUS", "PUBLISH")
        requests.append(command(*verb, *messages))
    got = _count_replies(target, requests, b":" if target.is_redis else b"*100\r\n", 3000)
    print(f"  [{target.kind}] {got} of 3000 replies", flush=True)


def _one_big_publish(target: Target, messages: int) -> None:
    verb = ("RPUSH", "list") if target.is_redis else ("BUS", "PUBLISH")
    request = command(*verb, *(heartbeat(i) for i in range(messages)))
    started = time.monotonic()
    with connect(target.port, timeout=120) as sock:
        sock.sendall(request)
        if target.is_redis:
            reply = read_some(sock, timeout=120)
        else:  # the header, then the outcomes until the last one
            reply = read_some(sock, timeout=120, until=b"+applied\r\n" * 2)
            while reply.count(b"\r\n") < messages + 1:
                sock.settimeout(120)
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                reply += chunk
    print(f"  [{target.kind}] {len(request) / 2**20:.1f} MB request answered in "
          f"{time.monotonic() - started:.2f} s ({reply[:12]!r}...)", flush=True)


@case("publish-16mb-200k", setup=_greet)
def huge_publish(target: Target) -> None:
    """One BUS PUBLISH of 200k heartbeats, 17 MB (redis: one RPUSH of the same bytes)."""
    _one_big_publish(target, 200_000)


@case("publish-2mb-25k", setup=_greet)
def large_publish(target: Target) -> None:
    """One BUS PUBLISH of 25k heartbeats, 2 MB (redis: one RPUSH of the same bytes)."""
    _one_big_publish(target, 25_000)


# --- clients that never read ---------------------------------------------------------------


def _seed(target: Target) -> None:
    """1000 nodes with two services each (redis: one 150 KB string)."""
    with connect(target.port, timeout=60) as sock:
        if target.is_redis:
            sock.sendall(command("SET", "big", b"x" * 150_000))
            read_some(sock)
            return
        for start in range(0, 1000, 250):
            nodes = range(start, start + 250)
            sock.sendall(command("BUS", "PUBLISH", *(_hello(n) for n in nodes),
                                 *(_status_heartbeat(n, 2) for n in nodes)))
            read_some(sock, until=b"+applied\r\n" * 2)
            time.sleep(0.05)
            while True:  # drain the rest of the reply
                sock.settimeout(0.2)
                try:
                    if not sock.recv(1 << 20):
                        break
                except TimeoutError:
                    break


_LARGE = (("CLUSTER", "NODES"), ("CLUSTER", "STATUS"), ("STATUS", "SERVICES", "LEVEL", "debug"),
          ("INFO", "everything"))


@case("non-reading-large-replies", setup=_seed,
      redis_args=("--client-output-buffer-limit", "normal 32mb 0 0"))
def non_reading_clients(target: Target) -> None:
    """4 clients pipeline 3000 large replies each and never read (CLUSTER NODES, CLUSTER
    STATUS, STATUS SERVICES LEVEL debug, INFO at 1000 nodes; redis: GET of 150 KB)."""
    socks: list[socket.socket] = []
    for index in range(4):
        sock = connect(target.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        socks.append(sock)
        request = command("GET", "big") if target.is_redis else command(*_LARGE[index])
        threading.Thread(target=_send_quietly, args=(sock, request * 3000),
                         daemon=True).start()
    time.sleep(4)
    _report(target, "4 non-reading clients after 4 s")
    for sock in socks:
        sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
