"""Hostile pub/sub: many patterns, huge patterns, many subscribers, and ACL changes on
live subscribers, each against a real server while a bystander PINGs it.

The model's events are made by ``BUS PUBLISH`` of a ``hello`` for a new node (``+node``
on ``__cluster__:node``, and the epoch's change). What the attacker sees is shown, then
that the server and its model are intact, then the bystander's latency (printed; asserted
under the suite's generous bound)."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.conftest import ROOT, ServerProcess, start_server
from tests.integration.redis_procs import RedisProcess

from . import wire
from .conftest import BystanderFactory
from .wire import command, read_count, read_until

pytestmark = pytest.mark.integration

PATTERNS = 50_000


def connect(port: int, password: tuple[str, str] | None = None) -> socket.socket:
    sock = wire.connect(port, timeout=60)
    if password is not None:
        sock.sendall(command("AUTH", *password))
        assert read_until(sock, b"\r\n") == b"+OK\r\n"
    return sock


def closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server closed the connection (after whatever it still sent)."""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            del chunk
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def psubscribe_many(sock: socket.socket, patterns: list[bytes], chunk: int = 1000) -> None:
    for start in range(0, len(patterns), chunk):
        sock.sendall(command("PSUBSCRIBE", *patterns[start:start + chunk]))
    read_until(sock, b":%d\r\n" % len(patterns))


def hello(n: int) -> bytes:
    return msgspec.json.encode({"v": 1, "type": "hello", "node": f"{n:040x}", "epoch": n,
                                "seq": 1, "addr": f"10.0.0.{n % 250}:7000"})


def bus_publish(port: int, *messages: bytes, password: tuple[str, str] | None = None) -> bytes:
    with connect(port, password) as sock:
        sock.sendall(command("BUS", "PUBLISH", *messages))
        return read_until(sock, b"\r\n" * 1) if len(messages) == 1 else read_count(
            sock, b"+applied", len(messages))


def ask(port: int, *args: str | bytes, password: tuple[str, str] | None = None) -> bytes:
    with connect(port, password) as sock:
        sock.sendall(command(*args))
        sock.settimeout(30)
        data = sock.recv(1 << 20)
        time.sleep(0.05)
        sock.settimeout(0.2)
        try:
            while chunk := sock.recv(1 << 20):
                data += chunk
        except TimeoutError:
            pass
        return data


@pytest.fixture
def aclfile(tmp_path: Path) -> Path:
    path = tmp_path / "users.acl"
    shutil.copy(ROOT / "docs" / "users.acl.example", path)
    return path


# --- many patterns -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["default", "monitor"])
def test_fifty_thousand_patterns_cost_an_event_its_receivers(
        tmp_path: Path, aclfile: Path, bystander: BystanderFactory, role: str) -> None:
    """50,000 patterns from one subscriber (the read-only ``monitor`` role may hold them
    too): each model event used to try every pattern with a regex compiled per message,
    seconds of loop time; now an event costs about its receivers."""
    server = start_server(tmp_path, "--aclfile", str(aclfile))
    try:
        login = (role, f"change-me-{'admin' if role == 'default' else role}")
        admin = ("default", "change-me-admin")
        subscriber = connect(server.port, login)
        patterns = [b"__cluster__:n%d*" % i for i in range(PATTERNS)] + [b"__cluster__:*"]
        psubscribe_many(subscriber, patterns)
        with bystander(server, password="change-me-admin") as watcher:
            for n in range(1, 4):
                assert bus_publish(server.port, hello(n), password=admin) == \
                    b"*1\r\n+applied\r\n"
            seen = read_count(subscriber, b"+node ", 3)
            # The attacker's subscriber got each event, in order, from the one pattern
            # that matches; the server holds every pattern and the model every node.
            nodes = [seen.index(b"+node master %040x" % n) for n in range(1, 4)]
            assert nodes == sorted(nodes)
            assert seen.count(b"pmessage") >= 3
            assert ask(server.port, "PUBSUB", "NUMPAT", password=admin) == b":%d\r\n" % (
                PATTERNS + 1)
            assert b"cluster_known_nodes:3" in ask(server.port, "CLUSTER", "INFO",
                                                    password=admin)
            # Gone, its patterns are forgotten (a slice per loop turn).
            subscriber.close()
            deadline = time.monotonic() + 30
            while ask(server.port, "PUBSUB", "NUMPAT", password=admin) != b":0\r\n":
                assert time.monotonic() < deadline, "the patterns were never forgotten"
                time.sleep(0.01)
        watcher.check(worst_ms=1000)
    finally:
        server.stop()


# --- huge patterns -----------------------------------------------------------------------

# 200 KB: 100,000 stars, past Redis's 1000 (such a pattern matches nothing there), and
# one of 1000 stars padded to 200 KB by its last segment, which a name can match.
STARS_PAST_THE_LIMIT = b"a*" * 100_000 + b"b"
STARS_AT_THE_LIMIT = b"a*" * 1000 + b"a" * 198_000
CHANNELS = [b"a" * 40, b"a" * 250_000, b"a" * 120 + b"b", b"__cluster__:node"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(Path(tmp_path_factory.mktemp("redis-pubsub")))
    yield proc
    proc.stop()


def test_pubsub_channels_with_a_200kb_pattern_answers_as_redis_at_once(
        server: ServerProcess, redis_server: RedisProcess,
        bystander: BystanderFactory) -> None:
    """PUBSUB CHANNELS with a 200 KB ``a*a*a*...`` pattern over subscribed channels: the
    answer is redis-server's, given the same subscriptions and pattern (nothing: past 1000
    stars Redis matches nothing), and comes at once (a regex made from the pattern took
    seconds to compile)."""
    answers = []
    for port in (server.port, redis_server.port):
        holder = connect(port)
        holder.sendall(command("SUBSCRIBE", *CHANNELS))
        read_until(holder, b":%d\r\n" % len(CHANNELS))
        if port == server.port:
            with bystander(server) as watcher:
                answers.append(ask(port, "PUBSUB", "CHANNELS", STARS_PAST_THE_LIMIT))
        else:
            answers.append(ask(port, "PUBSUB", "CHANNELS", STARS_PAST_THE_LIMIT))
        holder.close()
    assert answers == [b"*0\r\n", b"*0\r\n"]
    assert ask(server.port, "PING") == b"+PONG\r\n"
    watcher.check(worst_ms=1000)


def test_pubsub_channels_with_a_200kb_pattern_a_long_name_matches(
        server: ServerProcess, bystander: BystanderFactory) -> None:
    """1000 stars (Redis's limit) and a 198 KB tail, over a 250 KB channel name: the
    name matches, found in one pass. (redis-server backtracks over the stars here for
    longer than this test waits, so it is not asked.)"""
    holder = connect(server.port)
    holder.sendall(command("SUBSCRIBE", *CHANNELS))
    read_until(holder, b":%d\r\n" % len(CHANNELS))
    with bystander(server) as watcher:
        answer = ask(server.port, "PUBSUB", "CHANNELS", STARS_AT_THE_LIMIT)
    assert answer == b"*1\r\n$250000\r\n" + b"a" * 250_000 + b"\r\n"
    watcher.check(worst_ms=1000)
    holder.close()


def test_a_200kb_pattern_subscribed_costs_an_event_little(
        server: ServerProcess, bystander: BystanderFactory) -> None:
    """PSUBSCRIBE of 200 KB star patterns, then model events: the patterns are tried
    against each event's channels without building a regex per message."""
    attacker = connect(server.port)
    attacker.sendall(command("PSUBSCRIBE", STARS_PAST_THE_LIMIT, STARS_AT_THE_LIMIT,
                             b"*" + b"?" * 100_000 + b"[ab]*", b"__cluster__:*"))
    read_until(attacker, b":4\r\n")
    with bystander(server) as watcher:
        for n in range(1, 4):
            assert bus_publish(server.port, hello(n)) == b"*1\r\n+applied\r\n"
        seen = read_count(attacker, b"+node ", 3)
    assert seen.count(b"$13\r\n__cluster__:*\r\n") >= 3  # only the short pattern matched
    assert b"cluster_known_nodes:3" in ask(server.port, "CLUSTER", "INFO")
    watcher.check(worst_ms=1000)
    attacker.close()


# --- many subscribers ----------------------------------------------------------------------

SUBSCRIBERS = 400
PATTERNS_EACH = 25
EVENTS = 20


def test_many_subscribers_get_every_event_in_order(
        tmp_path: Path, bystander: BystanderFactory) -> None:
    """400 subscribers with 25 matching patterns each, and a batch of 20 joins: 200,000
    deliveries from one BUS PUBLISH. They go out in slices between which the bystander is
    served; every subscriber gets every event once per pattern, in publication order."""
    server = start_server(tmp_path, "--max-clients", "1000")
    try:
        patterns = [b"__cluster__:*"] + [b"__cluster__:%s*" % b"node"[:1 + i % 4] + b"*" * (i // 4)
                                         for i in range(PATTERNS_EACH - 1)]
        subscribers = []
        for _ in range(SUBSCRIBERS):
            sock = connect(server.port)
            sock.sendall(command("PSUBSCRIBE", *patterns))
            subscribers.append(sock)
        for sock in subscribers:
            read_until(sock, b":%d\r\n" % PATTERNS_EACH)
        with bystander(server) as watcher:
            bus_publish(server.port, *(hello(n) for n in range(1, EVENTS + 1)))
            received = [read_count(sock, b"+node ", EVENTS * PATTERNS_EACH)
                        for sock in subscribers]
        for data in received:
            order = [int(part[7:47], 16) for part in data.split(b"+node ")[1:]
                     if part.startswith(b"master ")]
            assert order == sorted(order) and len(set(order)) == EVENTS
        assert b"cluster_known_nodes:%d" % EVENTS in ask(server.port, "CLUSTER", "INFO")
        watcher.check(worst_ms=1000)
        for sock in subscribers:
            sock.close()
    finally:
        server.stop()


# --- ACL changes on live subscribers ---------------------------------------------------------

# (rules given to the subscribers' user afterwards, the subscription) -> what redis-server
# 7.0.15 does to the subscriber: disconnect it (True) or keep it (False). Measured by
# ``test_acl_changes_disconnect_subscribers_as_redis_server_does`` on both servers.
ACL_CHANGES = [
    (("resetchannels",), "channel", True),
    (("resetchannels",), "pattern", True),
    (("resetchannels", "&other"), "channel", True),
    (("&other",), "channel", False),
    (("resetchannels", "&__cluster__:node"), "channel", False),
    (("resetchannels", "&__cluster__:node"), "pattern", True),
    (("resetchannels", "&__clu*"), "pattern", True),  # patterns compare as written
    (("resetchannels", "&__clu*"), "channel", False),
    (("off",), "channel", False),  # Redis keeps a disabled user's connections
    (("reset",), "channel", True),
    (("-subscribe",), "channel", False),
]


def _acl_case(port: int, rules: tuple[str, ...], kind: str) -> tuple[bool, bool]:
    """(the subscriber was disconnected, a plain client of the same user still works)."""
    admin = connect(port)
    admin.sendall(command("ACL", "DELUSER", "watcher") + command(
        "ACL", "SETUSER", "watcher", "on", ">pw", "+@all", "resetchannels",
        "&__cluster__:*"))
    read_until(admin, b"+OK\r\n")
    subscriber = connect(port, ("watcher", "pw"))
    subscriber.sendall(command("SUBSCRIBE" if kind == "channel" else "PSUBSCRIBE",
                               "__cluster__:node" if kind == "channel" else "__cluster__:*"))
    read_until(subscriber, b":1\r\n")
    plain = connect(port, ("watcher", "pw"))
    admin.sendall(command("ACL", "SETUSER", "watcher", *rules))
    assert read_until(admin, b"\r\n") == b"+OK\r\n"
    gone = closed(subscriber, timeout=1.0)
    plain.sendall(command("PING"))
    alive = read_until(plain, b"\r\n", timeout=5) == b"+PONG\r\n"
    for sock in (admin, subscriber, plain):
        sock.close()
    return gone, alive


def test_acl_changes_disconnect_subscribers_as_redis_server_does(
        server: ServerProcess, redis_server: RedisProcess,
        bystander: BystanderFactory) -> None:
    """A user stripped of a channel (or pattern) its client is subscribed to loses the
    client, as in Redis 7; the same changes on redis-server give the same outcomes."""
    with bystander(server) as watcher:
        ours = [_acl_case(server.port, rules, kind) for rules, kind, _ in ACL_CHANGES]
    theirs = [_acl_case(redis_server.port, rules, kind) for rules, kind, _ in ACL_CHANGES]
    assert ours == theirs
    assert [gone for gone, _ in ours] == [expected for _, _, expected in ACL_CHANGES]
    # The user's other clients stay, and work (but after ``reset``: no commands left).
    assert [alive for _, alive in ours] == [rules != ("reset",) for rules, _, _ in ACL_CHANGES]
    watcher.check(worst_ms=1000)


def test_a_subscriber_stripping_its_own_channel_gets_its_reply_then_is_closed(
        server: ServerProcess) -> None:
    """redis-server 7.0.15 crashes here (its client freed while the command still runs);
    clusterwatch answers the command, then disconnects the client."""
    ask(server.port, "ACL", "SETUSER", "self", "on", ">pw", "+@all", "&__cluster__:*")
    sock = connect(server.port, ("self", "pw"))
    sock.sendall(command("HELLO", "3"))
    read_until(sock, b"modules\r\n*0\r\n")
    sock.sendall(command("SUBSCRIBE", "__cluster__:node"))
    read_until(sock, b":1\r\n")
    sock.sendall(command("ACL", "SETUSER", "self", "resetchannels"))
    assert read_until(sock, b"\r\n") == b"+OK\r\n"
    assert closed(sock)
    assert ask(server.port, "PING") == b"+PONG\r\n"


def test_acl_load_disconnects_the_subscribers_it_strips(tmp_path: Path) -> None:
    """ACL LOAD of a file that narrows a user's channels disconnects that user's
    subscribers it no longer allows and keeps the rest (as Redis 7.2; 7.0 disconnected
    every client of every user but ``default``)."""
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n"
                       "user narrow on >pw &__cluster__:* +@all\n"
                       "user steady on >pw &__cluster__:* +@all\n")
    server = start_server(tmp_path, "--aclfile", str(aclfile))
    try:
        stripped = connect(server.port, ("narrow", "pw"))
        stripped.sendall(command("PSUBSCRIBE", "__cluster__:*"))
        read_until(stripped, b":1\r\n")
        allowed = connect(server.port, ("narrow", "pw"))
        allowed.sendall(command("SUBSCRIBE", "__cluster__:node"))
        read_until(allowed, b":1\r\n")
        steady = connect(server.port, ("steady", "pw"))
        steady.sendall(command("PSUBSCRIBE", "__cluster__:*"))
        read_until(steady, b":1\r\n")
        aclfile.write_text("user default on nopass ~* &* +@all\n"
                           "user narrow on >pw &__cluster__:node +@all\n"
                           "user steady on >pw &__cluster__:* +@all\n")
        assert ask(server.port, "ACL", "LOAD") == b"+OK\r\n"
        assert closed(stripped)
        assert not closed(allowed, timeout=0.5) and not closed(steady, timeout=0.5)
        assert bus_publish(server.port, hello(7)) == b"*1\r\n+applied\r\n"
        assert b"+node master" in read_count(allowed, b"+node", 1)
        assert b"+node master" in read_count(steady, b"+node", 1)
    finally:
        server.stop()
