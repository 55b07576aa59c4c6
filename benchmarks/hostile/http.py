"""The HTTP mirror: long polls that their clients abandon, long polls released by model
changes, and more HTTP connections than ``http-max-clients``. redis-server has no HTTP
port; its nearest equivalents run beside them: BLPOP clients (a blocked client on a key,
as a poll is on an index) and idle connections past ``maxclients``."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import redis

from tests.hostile.http_attack import close_all, heartbeats, hello, open_idle, open_polls

from . import HTTP_PORT, Target, case
from .net import command, connect

WAVES = 20
PER_WAVE = 1000  # clusterwatch's default http-max-clients
LIVE = 5000
CHANGES = 100
FLOOD = 3000


def client(target: Target) -> redis.Redis:
    return redis.Redis(port=target.port, password=target.password, socket_timeout=60)


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the server never got there")
        time.sleep(0.05)


def blocked(r: redis.Redis) -> int:
    return int(r.info("clients")["blocked_clients"])


def model_index(r: redis.Redis) -> int:
    info = r.execute_command("BUS", "INFO")
    fields = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2], strict=True))
    return int(fields[b"model_version"])


def seed(target: Target) -> None:
    if not target.is_redis:
        client(target).execute_command("BUS", "PUBLISH", hello())


def blpops(target: Target, keys: list[str]) -> list[socket.socket]:
    socks = []
    for key in keys:
        sock = connect(target.port)
        sock.sendall(command("BLPOP", key, "600"))
        socks.append(sock)
    return socks


@case("http-abandoned-polls-20k", setup=seed, clusterwatch_args=("--http-port", HTTP_PORT))
def abandoned_polls(target: Target) -> None:
    """20,000 long polls at distinct indexes in 20 waves of 1,000 (the default limit), each
    dropped by its clients, then 20 model changes (redis: BLPOP clients on distinct keys,
    then 20 LPUSHes)."""
    r = client(target)
    first = 0 if target.is_redis else model_index(r) + 1000
    for wave in range(WAVES):
        start = first + wave * PER_WAVE
        if target.is_redis:
            socks = blpops(target, [f"k{start + i}" for i in range(PER_WAVE)])
        else:
            assert target.http_port is not None
            socks = open_polls(target.http_port, [f"/ready?index={start + i}&wait=10m"
                                                  for i in range(PER_WAVE)])
        wait_for(lambda: blocked(r) == PER_WAVE)
        close_all(socks)
        wait_for(lambda: blocked(r) == 0)
    for seq in range(2, 22):
        if target.is_redis:
            r.lpush(f"k{seq}", "v")
        else:
            r.execute_command("BUS", "PUBLISH", *heartbeats(seq))
        time.sleep(0.02)


@case("http-live-polls-5k", setup=seed,
      clusterwatch_args=("--http-port", HTTP_PORT, "--http-max-clients", str(LIVE)))
def live_polls(target: Target) -> None:
    """5,000 long polls at distinct indexes, released 50 per model change by 100 changes
    (redis: BLPOP clients on distinct keys, 50 LPUSHes per pipeline)."""
    r = client(target)
    per_change = LIVE // CHANGES
    if target.is_redis:
        socks = blpops(target, [f"k{i}" for i in range(LIVE)])
    else:
        assert target.http_port is not None
        base = model_index(r)
        socks = open_polls(target.http_port, [f"/clusterStatus?index={base + i}&wait=10m"
                                              for i in range(LIVE)])
    wait_for(lambda: blocked(r) == LIVE)
    for change in range(CHANGES):
        if target.is_redis:
            pipe = r.pipeline(transaction=False)
            for i in range(change * per_change, (change + 1) * per_change):
                pipe.lpush(f"k{i}", "v")
            pipe.execute()
        else:
            r.execute_command("BUS", "PUBLISH", *heartbeats(2 + change * per_change,
                                                            per_change))
        time.sleep(0.01)
    wait_for(lambda: blocked(r) == 0)
    close_all(socks)


@case("http-connection-flood", clusterwatch_args=("--http-port", HTTP_PORT),
      redis_args=("--maxclients", "1000"))
def connection_flood(target: Target) -> None:
    """3,000 idle connections against a limit of 1,000 (clusterwatch's default
    http-max-clients; redis: --maxclients 1000 on its RESP port): 2,000 refused."""
    port = target.port if target.is_redis else target.http_port
    assert port is not None
    socks = open_idle(port, FLOOD)
    time.sleep(2)
    close_all(socks)
    time.sleep(0.5)
