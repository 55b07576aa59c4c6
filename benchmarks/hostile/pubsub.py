"""Pub/sub: many patterns, huge patterns, a wide fan-out, and ACL changes on live
subscribers. A model event on clusterwatch is a ``BUS PUBLISH`` of a new node's
``hello`` (``+node`` on ``__cluster__:node``); on redis-server, a ``PUBLISH`` of the same
text on that channel. The subscribers are set up before the bystander starts."""

from __future__ import annotations

import gc
import json
import socket

from . import Target, case
from .net import command, connect, read_count, read_some

# Connections a setup opened for its attack, by server port.
_HELD: dict[int, list[socket.socket]] = {}

PATTERNS = 50_000
STARS_PAST_THE_LIMIT = b"a*" * 100_000 + b"b"  # 200 KB
QUESTIONS = b"*" + b"?" * 200_000 + b"[ab]*"


def _closed(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def _psubscribe(target: Target, patterns: list[bytes]) -> socket.socket:
    sock = connect(target.port, timeout=600)
    for start in range(0, len(patterns), 1000):
        sock.sendall(command("PSUBSCRIBE", *patterns[start:start + 1000]))
    read_count(sock, b":%d\r\n" % len(patterns), 1, timeout=600)
    return sock


def _events(target: Target, first: int, count: int) -> None:
    """``count`` model events (redis: PUBLISHes) in one request, its reply read."""
    with connect(target.port) as sock:
        if target.is_redis:
            sock.sendall(b"".join(command("PUBLISH", "__cluster__:node",
                                          f"+node master {n:040x} 10.0.0.1 7000 index={n}")
                                  for n in range(first, first + count)))
            read_count(sock, b"\r\n", count)
        else:
            sock.sendall(command("BUS", "PUBLISH", *(
                json.dumps({"v": 1, "type": "hello", "node": f"{n:040x}", "epoch": n,
                            "seq": 1, "addr": "10.0.0.1:7000"})
                for n in range(first, first + count))))
            read_count(sock, b"+applied", count)


def _hold(target: Target, *socks: socket.socket) -> None:
    """Keep ``socks`` for the attack; collect this process's garbage now, so that no
    collection holds the bystander's thread (it shares this process's GIL) mid-attack."""
    _HELD.setdefault(target.port, []).extend(socks)
    gc.collect()


def _release(target: Target) -> list[socket.socket]:
    return _HELD.pop(target.port, [])


def _many_prefixed(target: Target) -> None:
    _hold(target, _psubscribe(target, [b"__cluster__:n%d*" % i for i in range(PATTERNS - 1)]
                              + [b"__cluster__:*"]))


def _many_unprefixed(target: Target) -> None:
    _hold(target, _psubscribe(target, [b"*n%d?*" % i for i in range(PATTERNS - 1)]
                              + [b"__cluster__:*"]))


def _three_events_to_the_subscriber(target: Target) -> None:
    (subscriber,) = _release(target)
    with subscriber:
        _events(target, 1, 3)
        read_count(subscriber, b"+node ", 3)


@case("psubscribe-50k-then-events", setup=_many_prefixed)
def many_patterns(target: Target) -> None:
    """50k patterns with a literal prefix on one subscriber, then 3 events."""
    _three_events_to_the_subscriber(target)


@case("psubscribe-50k-unprefixed-then-events", setup=_many_unprefixed)
def many_unprefixed_patterns(target: Target) -> None:
    """50k patterns with no literal prefix (``*n<i>?*``), then 3 events.

    The first event parses the patterns on clusterwatch, in slices."""
    _three_events_to_the_subscriber(target)


_CHANNELS = [b"a" * 40, b"a" * 250_000, b"a" * 120 + b"b", b"__cluster__:node"]


def _channels(target: Target) -> None:
    sock = connect(target.port)
    sock.sendall(command("SUBSCRIBE", *_CHANNELS))
    read_count(sock, b":%d\r\n" % len(_CHANNELS), 1)
    _hold(target, sock)


@case("pubsub-channels-200kb-pattern", setup=_channels)
def pubsub_channels_huge_pattern(target: Target) -> None:
    """PUBSUB CHANNELS with a 200 KB ``a*a*a*...b`` pattern over four channels."""
    with connect(target.port) as sock:
        sock.sendall(command("PUBSUB", "CHANNELS", STARS_PAST_THE_LIMIT))
        read_some(sock, timeout=60)
    for held in _release(target):
        held.close()


def _huge_patterns(target: Target) -> None:
    _hold(target, _psubscribe(target, [STARS_PAST_THE_LIMIT, QUESTIONS, b"__cluster__:*"]))


@case("psubscribe-200kb-patterns-then-events", setup=_huge_patterns)
def huge_patterns(target: Target) -> None:
    """Two 200 KB patterns (100k stars; 200k ``?``) and ``__cluster__:*``, 3 events."""
    _three_events_to_the_subscriber(target)


SUBSCRIBERS = 400
PATTERNS_EACH = 25
EVENTS = 20


def _wide(target: Target) -> None:
    patterns = [b"__cluster__:*"] + [b"__cluster__:%s*" % b"node"[:1 + i % 4] + b"*" * (i // 4)
                                     for i in range(PATTERNS_EACH - 1)]
    socks = []
    for _ in range(SUBSCRIBERS):
        sock = connect(target.port)
        sock.sendall(command("PSUBSCRIBE", *patterns))
        socks.append(sock)
    for sock in socks:
        read_count(sock, b":%d\r\n" % PATTERNS_EACH, 1)
    _hold(target, *socks)


@case("fanout-400-subscribers-25-patterns", setup=_wide)
def wide_fanout(target: Target) -> None:
    """400 subscribers x 25 matching patterns, 20 events in one request: 200k deliveries."""
    socks = _release(target)
    _events(target, 1, EVENTS)
    for sock in socks:
        read_count(sock, b"+node ", EVENTS * PATTERNS_EACH)
        sock.close()


def _acl_subscribers(target: Target) -> None:
    with connect(target.port) as admin:
        admin.sendall(command("ACL", "SETUSER", "watcher", "on", ">pw", "+@all",
                              "resetchannels", "&__cluster__:*"))
        read_some(admin)
    socks = []
    for n in range(SUBSCRIBERS):
        sock = connect(target.port)
        sock.sendall(command("AUTH", "watcher", "pw") + command(
            "PSUBSCRIBE" if n % 2 else "SUBSCRIBE",
            "__cluster__:*" if n % 2 else "__cluster__:node"))
        socks.append(sock)
    for sock in socks:
        read_count(sock, b":1\r\n", 1)
    _hold(target, *socks)


@case("acl-resetchannels-400-subscribers", setup=_acl_subscribers)
def acl_resetchannels(target: Target) -> None:
    """``ACL SETUSER watcher resetchannels``: its 400 subscribed clients are cut."""
    socks = _release(target)
    with connect(target.port) as admin:
        admin.sendall(command("ACL", "SETUSER", "watcher", "resetchannels"))
        read_some(admin)
    for sock in socks:
        if not _closed(sock, timeout=10):
            raise RuntimeError("a subscriber was not disconnected")
        sock.close()
