"""A connection's fairness and memory, attacked over real sockets: blocked clients that
leave, pipelines of costly requests, one huge publish, clients that never read their
replies, a blocked client that keeps sending. Each test shows what the attacker gets, that
the server and its model are intact, and how long a bystander PINGing every 10 ms waited."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import pytest
import redis

from tests.conftest import ServerProcess
from tests.integration.redis_procs import (
    RedisProcess,
    redis_factory,  # noqa: F401  (fixture)
)

from .bystander import process_usage
from .conftest import BystanderFactory
from .wire import command, connect

pytestmark = pytest.mark.integration

NODES = [hashlib.sha1(b"node-%d" % i).hexdigest().encode() for i in range(1000)]


def heartbeat(index: int) -> bytes:
    """Node ``index % 1000``'s heartbeat number ``index // 1000 + 1`` (~90 bytes)."""
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":%d}' % (
        NODES[index % 1000], index // 1000 + 1)


def admin(server: ServerProcess) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=60)


def bus_info(r: redis.Redis) -> dict[bytes, object]:
    info = r.execute_command("BUS", "INFO")
    if isinstance(info, dict):  # RESP3
        return info
    return dict(zip(info[::2], info[1::2], strict=True))


def descriptors(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check``; the timeout only bounds a hang, it decides nothing else."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def count_replies(sock: socket.socket, header: bytes, wanted: int, timeout: float = 120) -> int:
    """Read until ``wanted`` replies starting with ``header`` have come (or the peer
    closed, or ``timeout``); how many came."""
    seen, tail = 0, b""
    deadline = time.monotonic() + timeout
    while seen < wanted and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 20)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data = tail + chunk
        seen += data.count(header)
        tail = data[-(len(header) - 1):]
    return seen


# --- blocked clients that leave ---------------------------------------------------------------


def test_blocked_clients_that_disconnect_leave_at_once(
        server_factory: Callable[..., ServerProcess], bystander: BystanderFactory) -> None:
    """300 clients connect, block in CLUSTER WAIT or HEALTH WAIT for 10 minutes, and close,
    against --max-clients 100. On main their disconnects went unseen: the 101st client was
    refused and the descriptors were held for the 10 minutes. redis-server (BLPOP on a
    missing key) frees them at once, and so does clusterwatch now."""
    server = server_factory("--max-clients", "100")
    r = admin(server)
    fds_before = descriptors(server)
    waits = (command("CLUSTER", "WAIT", "999999999", "600000"),
             command("HEALTH", "WAIT", "READY", "UP", "600000"))
    with bystander(server) as watcher:
        for cycle in range(300):
            with connect(server.port) as sock:
                sock.sendall(waits[cycle % 2])
                sock.settimeout(0.005)
                # What the attacker sees: nothing, it is blocked (or, on main once the
                # slots were gone, the refusal).
                with contextlib.suppress(TimeoutError):
                    reply = sock.recv(1024)
                    assert reply == b"", reply
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0)
    clients = r.info("clients")
    print(f"\nafter 300 cycles: connected_clients={clients['connected_clients']} "
          f"blocked_clients={clients['blocked_clients']} descriptors={descriptors(server)} "
          f"(before: {fds_before})")
    assert clients["connected_clients"] <= 3  # this admin client and the bystander
    assert wait_for(lambda: descriptors(server) <= fds_before + 2)
    assert r.info("stats")["rejected_connections"] == 0
    with connect(server.port) as sock:  # a new client is served
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
    watcher.check()


def test_a_client_blocked_in_a_stream_bus_publish_leaves_at_once_and_its_messages_are_kept(
        server_factory: Callable[..., ServerProcess],
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        bystander: BystanderFactory) -> None:
    """On the Redis-stream bus a BUS PUBLISH waits for its own entries to come back. With
    the bus's Redis frozen (SIGSTOP), the publisher gives up and closes: it is gone from
    the server at once (on main it stayed, blocked, until the publish bound), and when
    Redis wakes the messages are appended and applied: nobody is answered, nothing lost."""
    bus = redis_factory()
    server = server_factory("--bus", bus.url, "--bus-publish-timeout", "20000")
    r = admin(server)
    assert wait_for(lambda: _started(r), timeout=30)
    node = "d" * 40
    message = (b'{"v":1,"type":"hello","node":"%s","epoch":1,"seq":1,"addr":"10.0.0.9:7000"}'
               % node.encode())
    with bystander(server) as watcher:
        bus.send(signal.SIGSTOP)
        try:
            with connect(server.port) as sock:
                sock.sendall(command("BUS", "PUBLISH", message))
                assert wait_for(lambda: r.info("clients")["blocked_clients"] == 1)
            # The publisher closed without its answer.
            assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0, timeout=5)
            assert r.info("clients")["connected_clients"] <= 3
        finally:
            bus.send(signal.SIGCONT)
        assert wait_for(lambda: node.encode() in r.execute_command("CLUSTER", "NODES"),
                        timeout=20)
    assert [fields[b"m"] for _, fields in bus.client().xrange("clusterwatch:bus")
            if b"m" in fields] == [message]
    watcher.check()


def _started(r: redis.Redis) -> bool:
    """Listening, and the bus replayed (HEALTH STARTUP answers UP, or an error)."""
    try:
        return bool(r.execute_command("HEALTH", "STARTUP"))
    except redis.ResponseError:
        return False


def test_a_blocked_client_that_keeps_sending_is_closed_at_the_query_buffer_limit(
        server_factory: Callable[..., ServerProcess], bystander: BystanderFactory) -> None:
    """A blocked client keeps being read, so what it sends is held for it: past
    --max-query-buffer it is closed unanswered, as redis-server closes a client past
    client-query-buffer-limit. On main reading was paused: its sender just stalled."""
    server = server_factory("--max-query-buffer", "1000000")
    r = admin(server)
    with bystander(server) as watcher, connect(server.port) as sock:
        sock.sendall(command("CLUSTER", "WAIT", "999999999", "600000"))
        assert wait_for(lambda: r.info("clients")["blocked_clients"] == 1)
        sent = 0
        with contextlib.suppress(OSError):
            sock.settimeout(10)
            while sent < 8_000_000:
                sock.sendall(command("ECHO", b"x" * 60_000))
                sent += 60_000
        sock.settimeout(10)
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        print(f"\nthe attacker sent {sent} bytes behind its wait and read {data!r}")
        assert data == b""  # closed, nothing answered
        assert sent < 8_000_000
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0)
    assert r.info("stats")["client_query_buffer_limit_disconnections"] == 1
    assert "client query buffer limit reached" in server.logs()
    watcher.check()


# --- pipelines of costly requests --------------------------------------------------------------


def _pipeline_publishes(port: int, first: int, batches: int, got: list[int]) -> None:
    with connect(port) as sock:
        data = b"".join(command("BUS", "PUBLISH", *(heartbeat(first + n * 100 + i)
                                                    for i in range(100)))
                        for n in range(batches))
        writer = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        writer.start()
        got.append(count_replies(sock, b"*100\r\n", batches))
        writer.join(30)


def test_pipelined_publishes_do_not_hold_the_others(
        server_factory: Callable[..., ServerProcess],
        bystander: BystanderFactory) -> None:
    """Three clients each pipeline 3000 BUS PUBLISH of 100 heartbeats. Main ran up to
    4096 requests a turn whatever they cost (400,000 messages): the bystander waited
    seconds. Turns now end by messages applied."""
    # Each node's first message is a heartbeat: the rule before --require-hello.
    server = server_factory("--require-hello", "no")
    r = admin(server)
    got: list[int] = []
    with bystander(server) as watcher:
        attackers = [threading.Thread(target=_pipeline_publishes,
                                      args=(server.port, k * 1000 * 300_000, 3000, got))
                     for k in range(3)]
        for thread in attackers:
            thread.start()
        for thread in attackers:
            thread.join(300)
    print(f"\nreplies per attacker: {got}")
    assert got == [3000, 3000, 3000]
    fields = bus_info(r)  # the attackers' heartbeats interleave: some are stale
    assert fields[b"messages"] == 900_000 and fields[b"rejected"] == 0
    assert fields[b"nodes"] == 1000
    watcher.check()


def test_a_pipeline_of_costly_requests_yields_by_time(
        server: ServerProcess, bystander: BystanderFactory) -> None:
    """CLIENT LIST with 1000 idle clients costs a millisecond or more: a request count
    cannot see it. 4000 of them pipelined held main's loop for 4096 of them a turn;
    the turn's time now ends it."""
    idle = [connect(server.port) for _ in range(1000)]
    try:
        r = admin(server)
        assert wait_for(lambda: r.info("clients")["connected_clients"] >= 1001)
        with bystander(server) as watcher, connect(server.port) as sock:
            writer = threading.Thread(target=sock.sendall,
                                      args=(command("CLIENT", "LIST") * 4000,), daemon=True)
            writer.start()
            got = count_replies(sock, b"$", 4000, timeout=2)  # for two seconds
            sock.close()  # the attacker leaves; what it sent is not all run
            writer.join(30)
        print(f"\nCLIENT LIST answered to the attacker in its two seconds: {got}")
        watcher.check()
        assert got > 0
        assert r.ping()
    finally:
        for sock in idle:
            sock.close()


def test_one_huge_publish_is_applied_in_slices_while_others_are_served(
        server_factory: Callable[..., ServerProcess],
        bystander: BystanderFactory) -> None:
    """One BUS PUBLISH of 100k heartbeats (9 MB). Main applied it in one go; it is now
    applied a slice per loop turn, the model seen growing from outside in between, and
    answered with every outcome once the last slice is in. (Parsing it is the reader's
    part: the bystander here starts once the publish is being applied.)"""
    total = 100_000
    # Each node's first message is a heartbeat: the rule before --require-hello.
    server = server_factory("--require-hello", "no")
    r = admin(server)
    request = command("BUS", "PUBLISH", *(heartbeat(i) for i in range(total)))
    replies: list[bytes] = []

    def attack() -> None:
        with connect(server.port, timeout=120) as sock:
            sock.sendall(request)
            data = b""
            while data.count(b"\r\n") < total + 1:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            replies.append(data)

    thread = threading.Thread(target=attack, daemon=True)
    thread.start()
    seen: list[int] = []

    def messages() -> int:
        count = int(bus_info(r)[b"messages"])  # type: ignore[call-overload]
        seen.append(count)
        return count

    assert wait_for(lambda: messages() > 0, timeout=120)
    with bystander(server) as watcher:
        assert wait_for(lambda: messages() == total, timeout=60)
        thread.join(60)
    partial = sorted({count for count in seen if 0 < count < total})
    print(f"\nBUS INFO messages seen while it was applied: {len(partial)} values "
          f"between 0 and {total}")
    assert partial  # main went from 0 to all of them at once
    assert replies == [b"*%d\r\n%b" % (total, b"+applied\r\n" * total)]
    assert bus_info(r)[b"nodes"] == 1000
    watcher.check()


# --- clients that never read ----------------------------------------------------------------


def _seed_thousand_nodes(port: int) -> None:
    services = (b'"services":{"api":{"version":"1.4.2","state":"running","status":'
                b'{"critical":{"listening":true},"info":{"connections":17},"debug":'
                b'{"pool":{"idle":3,"busy":5}}}}}')
    r = redis.Redis(port=port, socket_timeout=60)
    for start in range(0, 1000, 250):
        batch = []
        for n in range(start, start + 250):
            batch.append(b'{"v":1,"type":"hello","node":"%s","epoch":1,"seq":1,'
                         b'"addr":"10.0.%d.%d:7000"}' % (NODES[n], n // 250, n % 250))
            batch.append(b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":2,%s}'
                         % (NODES[n], services))
        assert all(reply == b"applied" for reply in r.execute_command("BUS", "PUBLISH", *batch))


def test_clients_that_never_read_cost_at_most_their_output_limit(
        server_factory: Callable[..., ServerProcess], bystander: BystanderFactory) -> None:
    """Four clients pipeline 3000 large replies each (CLUSTER NODES, CLUSTER STATUS,
    STATUS SERVICES LEVEL debug, INFO at 1000 nodes) and never read, against an 8 MB
    output limit. Main exempted a whole batch of replies as "the reply being written" and
    copied cached frames into it: hundreds of MB. Every byte queued now counts."""
    server = server_factory("--output-buffer-limit", str(8 * 1024 * 1024))
    _seed_thousand_nodes(server.port)
    r = admin(server)
    before = process_usage(server.proc.pid)
    requests = (command("CLUSTER", "NODES"), command("CLUSTER", "STATUS"),
                command("STATUS", "SERVICES", "LEVEL", "debug"), command("INFO", "everything"))
    socks = []
    with bystander(server) as watcher:
        for request in requests:
            sock = connect(server.port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            socks.append(sock)
            threading.Thread(target=_send_quietly, args=(sock, request * 3000),
                             daemon=True).start()
        time.sleep(3)
        after = process_usage(server.proc.pid)
        cut = r.info("stats")["client_output_buffer_limit_disconnections"]
        clients = r.info("clients")["connected_clients"]
        for sock in socks:
            sock.close()
    growth = (after.peak_rss_bytes - before.rss_bytes) / 2**20
    print(f"\npeak RSS {after.peak_rss_bytes / 2**20:.0f} MB (+{growth:.0f} MB); "
          f"{cut} of 4 cut at the limit, {clients - 2} left paused")
    # Four clients at 8 MB each, and the transient of encoding one batch of replies.
    assert growth < 4 * 8 + 64
    assert r.execute_command("CLUSTER", "INFO").startswith(b"cluster_state:")
    assert bus_info(r)[b"nodes"] == 1000
    watcher.check()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
