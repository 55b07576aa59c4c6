"""A connection's fairness and memory, driven by hand on the real connection object with a
stand-in transport (``RecordingTransport``) and a real event loop: turns that end by work
done, publishes applied in slices with others served between them, blocked clients that
keep being read and leave at once, and output counted against the limits."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable

from clusterwatch.commands import build_table
from clusterwatch.resp._reader import encode_request
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from clusterwatch.server.protocol import _PIECE_BYTES, RespProtocol
from clusterwatch.server.turns import SLICE_UNITS, TURN_UNITS, message_units
from tests.server.test_single_read import RecordingTransport

NODES = [hashlib.sha1(b"node-%d" % i).hexdigest().encode() for i in range(1000)]
APPLIED = b"+applied\r\n"
PONG = b"+PONG\r\n"


def heartbeat(index: int) -> bytes:
    return b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":%d}' % (
        NODES[index % 1000], index // 1000 + 1)


def publish(first: int, count: int) -> list[bytes]:
    return [b"BUS", b"PUBLISH", *(heartbeat(i) for i in range(first, first + count))]


def publish_elsewhere(count: int) -> list[bytes]:
    """Heartbeats of nodes ``heartbeat`` never names."""
    return [b"BUS", b"PUBLISH", *(b'{"v":1,"type":"heartbeat","node":"%s","epoch":1,"seq":1}'
                                  % hashlib.sha1(b"other-%d" % i).hexdigest().encode()
                                  for i in range(count))]


class Client:
    """A connection to ``server`` through a transport that keeps what it is sent."""

    def __init__(self, server: Server, transport: RecordingTransport | None = None) -> None:
        self.transport = transport or RecordingTransport()
        self.connection = RespProtocol(server)
        self.connection.connection_made(self.transport)  # type: ignore[arg-type]

    def send(self, *requests: list[bytes]) -> None:
        """One read holding every request."""
        self.connection.data_received(b"".join(map(encode_request, requests)))

    @property
    def written(self) -> bytes:
        return bytes(self.transport.written)


async def turns_until(done: Callable[[], bool], limit: int = 10_000) -> int:
    """Loop turns until ``done()``; how many it took."""
    for turn in range(limit):
        if done():
            return turn
        await asyncio.sleep(0)
    raise AssertionError("never done")


# --- fair turns ------------------------------------------------------------------------------


def test_a_huge_publish_is_applied_a_slice_per_turn_while_others_are_served() -> None:
    """One BUS PUBLISH worth many turns is answered after its last slice; between slices
    another client is answered, its own publish applied at once. Main applied it all
    inside the read that completed it."""
    total = 20_000
    expected = b"*%d\r\n%b" % (total, APPLIED * total) + PONG

    async def run() -> None:
        server = Server(ServerConfig(require_hello=False))  # first messages: heartbeats
        attacker, other = Client(server), Client(server)
        attacker.send(publish(0, total), [b"PING"])
        assert server.bus_received < total
        assert attacker.written == b""
        slices = []
        while len(attacker.written) < len(expected):
            before = server.bus_received
            await asyncio.sleep(0)
            slices.append(server.bus_received - before)
            if len(slices) == 2:  # in the middle of it: the others are served at once
                other.send([b"PING"], publish_elsewhere(10))
                assert other.written == PONG + b"*10\r\n" + APPLIED * 10
                slices[-1] -= 10
        assert attacker.written == expected  # every outcome, in order, then what followed
        assert server.bus_received == total + 10
        assert server.model.node_count == 1010
        per_slice = SLICE_UNITS // message_units([heartbeat(0)]) + 1
        assert len([n for n in slices if n]) >= total // per_slice
        assert max(slices) <= per_slice

    asyncio.run(run())


def test_a_publisher_that_leaves_mid_way_loses_nothing_and_frees_its_slot() -> None:
    async def run() -> None:
        server = Server(ServerConfig(require_hello=False))  # first messages: heartbeats
        client = Client(server)
        client.send(publish(0, 20_000))
        await asyncio.sleep(0)
        assert 0 < server.bus_received < 20_000  # main had applied it all at once
        assert server.blocked_clients == 1
        client.connection.connection_lost(None)
        assert (server.blocked_clients, len(server.connections)) == (0, 0)
        await turns_until(lambda: server.bus_received == 20_000)
        assert server.model.counters().applied == 20_000
        assert client.written == b""

    asyncio.run(run())


def test_pipelined_publishes_yield_by_messages_applied_not_requests() -> None:
    """200 pipelined publishes of 100 messages are 200 requests, under the 512 that one
    turn of main ran at once: the turn now ends once a turn's work of messages is in."""
    batches = 200

    async def run() -> None:
        server = Server(ServerConfig(require_hello=False))  # first messages: heartbeats
        attacker, other = Client(server), Client(server)
        attacker.send(*(publish(i * 100, 100) for i in range(batches)))
        first_turn = server.bus_received
        assert first_turn * message_units([heartbeat(0)]) <= TURN_UNITS + 300
        other.send([b"PING"])
        assert other.written == PONG  # answered while the pipeline is far from done
        await turns_until(lambda: attacker.written.count(b"*100\r\n") == batches)
        assert attacker.written == (b"*100\r\n" + APPLIED * 100) * batches
        assert server.bus_received == batches * 100

    asyncio.run(run())


def test_a_pipeline_of_costly_requests_ends_its_turn_when_its_time_is_up() -> None:
    """The time backstop: with a clock that advances 1 ms a reading, 100 pipelined INFOs
    run a few per turn, all answered in order in the end. Main ran them all at once."""

    async def run() -> None:
        ticks = itertools.count(step=1_000_000)
        server = Server(ServerConfig(), table=build_table(perf_ns=lambda: next(ticks)))
        client = Client(server)
        client.send(*([b"INFO", b"server"] for _ in range(100)), [b"PING"])
        assert 0 < client.written.count(b"# Server") < 20
        await turns_until(lambda: client.written.endswith(PONG))
        assert client.written.count(b"# Server") == 100

    asyncio.run(run())


# --- blocked clients ---------------------------------------------------------------------


def test_a_blocked_client_keeps_being_read_and_runs_what_it_sent_after_its_reply() -> None:
    async def run() -> None:
        server = Server(ServerConfig())
        client = Client(server)
        version = server.model.version
        client.send([b"CLUSTER", b"WAIT", str(version).encode(), b"100"])
        assert server.blocked_clients == 1
        assert client.transport.reading  # main paused reading: a disconnect went unseen
        client.send([b"PING"])
        client.send([b"ECHO", b"after"])
        assert client.written == b""
        await asyncio.sleep(0.2)  # the wait times out after 100 ms
        await turns_until(lambda: client.written.endswith(b"$5\r\nafter\r\n"))
        assert client.written == b":%d\r\n+PONG\r\n$5\r\nafter\r\n" % version
        assert server.blocked_clients == 0

    asyncio.run(run())


def test_a_blocked_client_that_goes_away_frees_its_wait_and_its_slot_at_once() -> None:
    async def run() -> None:
        server = Server(ServerConfig())
        client = Client(server)
        client.send([b"CLUSTER", b"WAIT", b"999999", b"600000"])
        client.send([b"HEALTH", b"WAIT", b"READY", b"UP", b"600000"])  # held behind it
        assert (server.blocked_clients, len(server.waits), len(server.connections)) == (1, 1, 1)
        client.connection.connection_lost(None)
        assert (server.blocked_clients, len(server.waits), len(server.connections)) == (0, 0, 0)
        server.waits.changed()  # nothing left to answer, nothing counted twice
        await asyncio.sleep(0)
        assert server.blocked_clients == 0

    asyncio.run(run())


def test_a_blocked_client_is_closed_past_the_query_buffer_limit() -> None:
    """What a blocked client sends is held for it, up to ``max_query_buffer``; past that
    it is closed unanswered (its reply would come first), as redis-server closes a client
    past ``client-query-buffer-limit``, and its wait is freed."""

    async def run() -> None:
        server = Server(ServerConfig(max_query_buffer=100_000))
        client = Client(server)
        client.send([b"CLUSTER", b"WAIT", b"999999", b"600000"])
        for _ in range(10):
            client.send([b"ECHO", b"x" * 9_000])
        assert not client.transport.closed
        client.send([b"ECHO", b"x" * 20_000])
        assert client.transport.closed
        assert client.written == b""
        client.connection.connection_lost(None)
        assert (server.blocked_clients, len(server.waits)) == (0, 0)

    asyncio.run(run())


# --- output counted against the limits --------------------------------------------------------


def test_a_batch_of_replies_counts_all_but_its_largest_reply() -> None:
    """Four 600 KB replies written as one batch against a 1 MB limit: the largest one
    (being written) is exempt, the three behind it count, and the client is cut. Main
    exempted the whole batch as if it were one reply."""

    async def run() -> None:
        server = Server(ServerConfig(output_buffer_limit=1_000_000))
        client = Client(server)
        client.send(*([b"ECHO", b"y" * 600_000] for _ in range(4)))
        assert client.transport.closed
        assert server.stats.client_output_buffer_disconnects == 1

    asyncio.run(run())


def test_cached_frames_are_queued_by_reference_not_copied() -> None:
    """Twenty pipelined CLUSTER NODES at 3000 nodes (~300 KB each) queue twenty references
    to one cached frame, not a 6 MB copy of them (main joined the batch into one buffer)."""

    async def run() -> None:
        server = Server(ServerConfig(max_nodes=5000))
        messages = [b'{"v":1,"type":"hello","node":"%s","epoch":1,"seq":1,'
                    b'"addr":"10.%d.%d.%d:7000"}' % (hashlib.sha1(b"%d" % i).hexdigest().encode(),
                                                      i // 65536, i // 256 % 256, i % 256)
                    for i in range(3000)]
        server.bus_publish(messages, wait=False)
        Client(server).send([b"CLUSTER", b"NODES"])  # rendered once, then cached
        client = Client(server)
        client.send(*([b"CLUSTER", b"NODES"] for _ in range(20)))
        frames = {id(piece) for piece in client.connection.pieces}
        assert len(frames) == 1
        (frame,) = {bytes(piece) for piece in client.connection.pieces}
        assert len(frame) > _PIECE_BYTES
        assert client.connection.queued == 20 * len(frame)
        await turns_until(lambda: not client.connection.pieces)
        assert client.written.count(b"connected") >= 20 * 3000

    asyncio.run(run())


class BufferingTransport(RecordingTransport):
    """A client that reads nothing: every byte stays in the transport's buffer."""

    def get_write_buffer_size(self) -> int:
        return len(self.written)


def test_the_soft_limit_cuts_a_client_held_over_it_for_its_seconds() -> None:
    """``--output-buffer-soft-limit`` / ``--output-buffer-soft-seconds``: Redis's soft
    limit for normal clients. Over it for less than the seconds is fine; staying over it
    for the seconds is not, even with nothing more sent to the client."""

    async def run() -> None:
        config = ServerConfig(output_buffer_soft_limit=50_000, output_buffer_soft_seconds=1,
                              write_buffer_high=10_000, write_buffer_low=0)
        server = Server(config)
        client = Client(server, BufferingTransport())
        client.connection.pause_writing()  # the transport is past its high watermark
        client.connection.push(b"x" * 60_000)
        await asyncio.sleep(0.5)
        assert not client.transport.closed
        await asyncio.sleep(0.7)
        assert client.transport.closed
        assert server.stats.client_output_buffer_disconnects == 1

    asyncio.run(run())


def test_config_get_shows_the_normal_class_limits_as_redis_does() -> None:
    config = ServerConfig(output_buffer_limit=1 << 25, output_buffer_soft_limit=1 << 23,
                          output_buffer_soft_seconds=60)
    assert config.redis_style()["client-output-buffer-limit"] == (
        "normal 33554432 8388608 60 pubsub 33554432 8388608 60")


def test_reading_a_long_request_yields_the_loop_every_64_kb() -> None:
    """A request still incomplete costs no turn units, but its bytes are parsed as they
    arrive: after 64 KB read the connection stops reading until a later loop turn, so the
    32 reads libuv may hand it in one wake-up cannot hold the others for the whole parse.
    Main read on until the request was whole."""
    argv = [b"PING", *(b"a" for _ in range(100_000))]
    data = encode_request(argv)
    piece = 16 * 1024

    async def run() -> None:
        server = Server(ServerConfig())
        client = Client(server)
        transport = client.transport
        fed = 0
        while transport.reading:
            client.connection.data_received(data[fed:fed + piece])
            fed += piece
        assert fed == 64 * 1024  # four reads of 16 KB, then a pause
        await turns_until(lambda: transport.reading)  # resumed on a later turn
        pauses = 1
        while fed < len(data):
            if not transport.reading:
                await turns_until(lambda: transport.reading)
                pauses += 1
            client.connection.data_received(data[fed:fed + piece])
            fed += piece
        assert pauses >= len(data) // (64 * 1024)
        assert client.written == b"-ERR wrong number of arguments for 'ping' command\r\n"

    asyncio.run(run())
