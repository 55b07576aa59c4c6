"""Watching the model over pub/sub and the journal, with real clients: redis-cli
(PSUBSCRIBE), redis-py's PubSub (RESP2 and RESP3, sync and asyncio) and raw sockets.

A master going silent yields ``+pfail`` then ``+fail`` on ``__cluster__:node`` and the
``cluster_state`` change, in order, with rising indexes; a failover yields the slot move,
the epoch change and the role change; BUS JOURNAL holds the same messages.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.conftest import ServerProcess, require_tool, start_server
from tests.integration.cluster_helpers import (
    EPOCH,
    RA,
    RB,
    A,
    B,
    C,
    message,
    poll,
    three_masters,
)
from tests.integration.helpers import connect, exchange_on, read_until_closed

pytestmark = pytest.mark.integration

NODE_TIMEOUT = 400


class Heartbeats:
    """Some nodes keep talking (so only the others go silent) until stopped."""

    def __init__(self, port: int, nodes: tuple[str, ...]) -> None:
        self.client = redis.Redis(port=port, protocol=2)
        self.nodes = list(nodes)
        self.seq = 100
        self.extra: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seq += 1
            batch = [message("heartbeat", node, EPOCH[node], self.seq) for node in self.nodes]
            self.client.execute_command("BUS", "PUBLISH", *batch, *self.extra)
            self._stop.wait(NODE_TIMEOUT / 4000)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path, "--node-timeout", str(NODE_TIMEOUT))
    yield server
    server.stop()


def publish(port: int, *messages: bytes) -> None:
    replies = redis.Redis(port=port, protocol=2).execute_command("BUS", "PUBLISH", *messages)
    assert all(reply == b"applied" for reply in replies), replies


def _index(text: str) -> int:
    match = re.search(r"index=(\d+)$", text)
    assert match, text
    return int(match.group(1))


def _fail_a(port: int) -> Heartbeats:
    """Start the cluster with replica RA, keep B, C, RA alive; they report A once it is
    silent, as Redis Cluster's gossip would."""
    publish(port, *three_masters(replicas=True)[:8])
    return Heartbeats(port, (B, C, RA, RB))


def _fail_reports(beats: Heartbeats) -> None:
    beats.seq += 10
    beats.extra = [message("fail_report", node, EPOCH[node], 2_000_000 + beats.seq, target=A,
                           state="pfail") for node in (B, C)]


def _messages(pubsub: redis.client.PubSub, until: re.Pattern[str],
              timeout: float = 20) -> list[tuple[str, str]]:
    """(channel, data) of every message until one whose data matches ``until``."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = pubsub.get_message(timeout=0.2)
        if item is None or item["type"] not in ("message", "pmessage"):
            continue
        channel, data = item["channel"], item["data"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        data = data.decode() if isinstance(data, bytes) else data
        seen.append((channel, data))
        if until.search(data):
            return seen
    raise AssertionError(f"no message matching {until.pattern}; saw {seen}")


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_silent_master_goes_pfail_then_fail_and_the_cluster_fails_in_order(
        watched: ServerProcess, protocol: int) -> None:
    client = redis.Redis(port=watched.port, protocol=protocol)
    pubsub = client.pubsub()
    pubsub.psubscribe("__cluster__:*")
    pubsub.subscribe("__health__:health")
    sentinel_style = client.pubsub()
    sentinel_style.subscribe("+sdown", "+odown")
    beats = _fail_a(watched.port)
    try:
        joined = _messages(pubsub, re.compile(r"^state=ok"))
        assert sum(data.startswith("+node ") for _, data in joined) == 5
        assert ("__cluster__:slots" in {channel for channel, _ in joined})
        seen = _messages(pubsub, re.compile(rf"^\+pfail master {A}"))
        _fail_reports(beats)
        seen += _messages(pubsub, re.compile(r"^state=fail previous=ok"))
    finally:
        beats.stop()
    node_events = [data for channel, data in seen if channel == "__cluster__:node"]
    assert node_events[-1].startswith(f"+fail master {A} 10.0.0.1 7000 index=")
    assert node_events[-2].startswith(f"+pfail master {A} 10.0.0.1 7000 index=")
    # The same two events on Sentinel's channels, in Sentinel's payload shape.
    sentinel_seen = _messages(sentinel_style, re.compile(rf"^master {A} .* index="
                                                         rf"{_index(node_events[-1])}$"))
    assert [(channel, data) for channel, data in sentinel_seen if A in data] == [
        ("+sdown", node_events[-2].removeprefix("+pfail ")),
        ("+odown", node_events[-1].removeprefix("+fail "))]
    indexes = [_index(data) for _, data in seen]
    assert indexes == sorted(indexes)
    assert _index(node_events[-1]) > _index(node_events[-2])
    journal = client.execute_command("BUS", "JOURNAL", "SINCE", _index(node_events[-2]) - 1)
    if protocol == 2:
        journal = [dict(zip(entry[::2], entry[1::2], strict=True)) for entry in journal]
    texts = [entry[b"message"].decode() for entry in journal]
    assert node_events[-2] in texts and node_events[-1] in texts
    assert texts.index(node_events[-2]) < texts.index(node_events[-1])


def test_a_failover_moves_slots_raises_the_epoch_and_changes_roles(
        watched: ServerProcess) -> None:
    client = redis.Redis(port=watched.port, protocol=3)
    pubsub = client.pubsub()
    pubsub.psubscribe("__cluster__:*")
    publish(watched.port, *three_masters(replicas=True))
    _messages(pubsub, re.compile(r"^state=ok"))
    publish(watched.port,
            message("hello", RA, 4, 5, addr="10.0.0.1:7100", role="master"),
            message("slots", RA, 4, 6, ranges=[[0, 5460]]))
    seen = _messages(pubsub, re.compile(rf"^\+role master {RA}"))
    assert ("__cluster__:slots", f"slots=0-5460 from={A} to={RA} epoch=4") in [
        (channel, data.rsplit(" index=", 1)[0]) for channel, data in seen]
    assert ("__cluster__:epoch", "epoch=4 previous=3") in [
        (channel, data.rsplit(" index=", 1)[0]) for channel, data in seen]


async def test_asyncio_pubsub_gets_health_transitions(watched: ServerProcess) -> None:
    client = redis.asyncio.Redis(port=watched.port, protocol=3)
    pubsub = client.pubsub()
    await pubsub.subscribe("__health__:ready")
    try:
        publish(watched.port, *three_masters())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            item = await pubsub.get_message(timeout=0.5)
            if item and item["type"] == "message":
                assert item["channel"] == b"__health__:ready"
                assert item["data"].startswith(b"status=UP previous=")
                break
        else:
            raise AssertionError("no __health__:ready message")
    finally:
        await pubsub.aclose()
        await client.aclose()


def test_redis_cli_psubscribe_prints_the_messages(watched: ServerProcess) -> None:
    cli = subprocess.Popen([require_tool("redis-cli"), "-p", str(watched.port),
                            "PSUBSCRIBE", "__cluster__:*"], stdout=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline().strip() == "psubscribe"
        poll(lambda: redis.Redis(port=watched.port).execute_command("PUBSUB", "NUMPAT"),
             lambda n: n == 1, what="redis-cli subscribed")
        publish(watched.port, message("hello", A, 1, 1, addr="10.0.0.1:7000"))
        assert [cli.stdout.readline().strip() for _ in range(2)] == ["__cluster__:*", "1"]
        seen = []
        while not seen or not seen[-1][3].startswith("+node "):
            seen.append(tuple(cli.stdout.readline().strip() for _ in range(4)))
        assert seen[-1][:3] == ("pmessage", "__cluster__:*", "__cluster__:node")
        assert seen[-1][3].startswith(f"+node master {A} 10.0.0.1 7000 index=")
    finally:
        cli.terminate()
        cli.wait(5)


def test_resp2_subscribed_mode_rules_match_redis(watched: ServerProcess) -> None:
    with connect(watched.port) as sock:
        payload = b"SUBSCRIBE a b\r\nPING\r\nPING x\r\nINFO\r\nCLUSTER INFO\r\n" \
                  b"UNSUBSCRIBE a b\r\nPING\r\n"
        expected = (
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n"
            b":2\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
            b"-ERR Can't execute 'info': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
            b"QUIT / RESET are allowed in this context\r\n"
            b"-ERR Can't execute 'cluster|info': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
            b"PING / QUIT / RESET are allowed in this context\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n+PONG\r\n")
        # Byte for byte what redis-server 7.0.15 sends for the same bytes (a bare UNSUBSCRIBE
        # would answer in Redis's hash-table order, hence the named channels).
        assert exchange_on(sock, payload, expected) == expected


def test_a_subscriber_that_never_reads_is_cut_and_the_others_keep_receiving(
        tmp_path: Path) -> None:
    server = start_server(tmp_path, "--pubsub-hard-limit", "65536")
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(b"SUBSCRIBE __cluster__:node\r\n")
        good = redis.Redis(port=server.port, protocol=3).pubsub()
        good.subscribe("__cluster__:node")
        poll(lambda: redis.Redis(port=server.port).execute_command(
            "PUBSUB", "NUMSUB", "__cluster__:node")[1], lambda n: n == 2, what="2 subscribers")
        total = 0
        received = 0
        admin = redis.Redis(port=server.port)
        # 100 nodes join and leave: 200 messages a round, until the kernel's socket buffers
        # (up to 4 MiB on loopback) are full and the server's own buffer passes the limit.
        for round_ in range(400):
            if admin.info("stats")["client_output_buffer_limit_disconnections"]:
                break
            batch = []
            for i in range(100):
                node = f"{i + 1:040x}"
                batch.append(message("hello", node, 1, 2 * round_ + 1,
                                     addr=f"10.1.0.1:{i + 1}"))
                batch.append(message("leave", node, 1, 2 * round_ + 2))
            publish(server.port, *batch)
            total += 200
            while (item := good.get_message(timeout=0.01)) is not None:
                received += item["type"] == "message"
        deadline = time.monotonic() + 20
        while received < total and time.monotonic() < deadline:
            item = good.get_message(timeout=0.2)
            received += bool(item and item["type"] == "message")
        assert received == total
        _, closed = read_until_closed(slow, 10.0)
        assert closed
        info = redis.Redis(port=server.port).info("stats")
        assert info["client_output_buffer_limit_disconnections"] == 1
        assert redis.Redis(port=server.port).execute_command(
            "PUBSUB", "NUMSUB", "__cluster__:node")[1] == 1
    finally:
        server.stop()


def test_bus_journal_since_count_and_gone(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--journal-size", "5")
    try:
        client = redis.Redis(port=server.port, protocol=3)
        publish(server.port, message("hello", A, 1, 1, addr="10.0.0.1:7000"))
        # The probes are judged at the next 10 Hz tick.
        first = poll(lambda: client.execute_command("BUS", "JOURNAL"), lambda e: len(e) >= 4,
                     what="the probes' transitions")
        assert [(entry[b"channel"], entry[b"message"].decode().split(" index=")[0])
                for entry in first] == [
            (b"__cluster__:epoch", "epoch=1 previous=0"),
            (b"__cluster__:node", f"+node master {A} 10.0.0.1 7000"),
            (b"__health__:ready", "status=UP previous=DOWN"),
            (b"__health__:health", "status=UP previous=DOWN")]
        assert {entry[b"index"] for entry in first} == {1}
        index = first[0][b"index"]
        assert client.execute_command("BUS", "JOURNAL", "SINCE", index) == []
        publish(server.port, *(message("hello", f"{i:040x}", 1, 1, addr=f"10.1.0.1:{i + 1}")
                               for i in range(1, 9)))
        assert len(client.execute_command("BUS", "JOURNAL", "COUNT", 3)) == 3
        with pytest.raises(redis.exceptions.ResponseError, match="^GONE the journal no longer "
                           f"reaches back to index {index}"):
            client.execute_command("BUS", "JOURNAL", "SINCE", index)
        with pytest.raises(redis.exceptions.ResponseError, match="syntax error"):
            client.execute_command("BUS", "JOURNAL", "SINCE")
    finally:
        server.stop()
