"""The Redis-stream bus through outages of its Redis: a restart with an append-only file,
a 10 s freeze (SIGSTOP), and the master killed with Sentinel promoting its replica.

In each, a publisher keeps sending heartbeats through ``BUS PUBLISH`` and counts what was
acknowledged (``applied``). Afterwards every acknowledged message is in the stream, the
instances agree again, and the outage was visible while it lasted.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import ServerProcess, start_server

from .cluster_helpers import A, B, C, poll, three_masters
from .redis_procs import (
    RedisProcess,
    agreed_views,
    bus_info,
    connect,
    published_ids,
    redis_factory,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.integration

STREAM = "clusterwatch:bus"
NODE_TIMEOUT = "2000"


class Publisher:
    """Heartbeats from A, B and C every 50 ms through one instance, in a thread; counts
    acknowledged messages and TRYAGAIN refusals. A refused message is sent again with a
    new seq, as an agent does."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.acked: list[bytes] = []
        self.refused: list[str] = []
        self.slowest_refusal = 0.0
        self.seq = 10
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        client = redis.Redis(port=self.server.port, socket_timeout=30)
        while not self._stop.is_set():
            self.seq += 1
            batch = [json.dumps({"v": 1, "type": "heartbeat", "node": node, "epoch": epoch,
                                 "seq": self.seq}).encode()
                     for node, epoch in ((A, 1), (B, 2), (C, 3))]
            started = time.monotonic()
            try:
                replies = client.execute_command("BUS", "PUBLISH", *batch)
            except redis.ResponseError as exc:
                assert str(exc).startswith("bus unavailable"), exc
                self.refused.append(str(exc))
                self.slowest_refusal = max(self.slowest_refusal, time.monotonic() - started)
                time.sleep(0.05)
                continue
            self.acked.extend(m for m, r in zip(batch, replies, strict=True) if r == b"applied")
            time.sleep(0.05)

    def wait_acks(self, more: int, timeout: float = 30.0) -> None:
        target = len(self.acked) + more
        poll(lambda: len(self.acked), lambda n: n >= target, timeout=timeout)


def three_masters_on(tmp_path: Path, bus: str, cleanup: list[ServerProcess],
                     *args: str) -> list[ServerProcess]:
    """Two instances on ``bus`` that know masters A, B and C."""
    servers = [start_server(tmp_path, "--bus", bus, "--node-timeout", NODE_TIMEOUT, *args)
               for _ in range(2)]
    cleanup.extend(servers)
    poll(lambda: bus_info(servers[0])["bus_state"], lambda s: s == b"up")
    connect(servers[0]).execute_command("BUS", "PUBLISH", *three_masters())
    return servers


@pytest.fixture
def cleanup() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def verbose_bus_check(server: ServerProcess) -> tuple[str, str]:
    """busFresh's status and reason in HEALTH VERBOSE (RESP3)."""
    report = connect(server, protocol=3).execute_command("HEALTH", "VERBOSE")
    check = report[b"components"][b"busFresh"]
    return check[b"status"].decode(), check.get(b"details", {}).get(b"reason", b"").decode()


def assert_nothing_acked_is_lost(acked: list[bytes], client: redis.Redis) -> None:
    stored = set(published_ids(client))
    missing = [m for m in acked if m not in stored]
    assert acked and not missing, (f"{len(missing)} of {len(acked)} acknowledged lost: "
                                   f"{missing[:3]} stored {sorted(stored)[:3]} {len(stored)}")


def no_node_failed(servers: list[ServerProcess]) -> None:
    for server in servers:
        assert "new=pfail" not in server.logs(), server.logs()[-3000:]
        nodes = connect(server).execute_command("CLUSTER", "NODES").decode()
        assert "fail" not in nodes, nodes


def test_redis_restart_with_appendonly_loses_no_acknowledged_message(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        tmp_path: Path, cleanup: list[ServerProcess]) -> None:
    bus = redis_factory("--appendonly", "yes", "--appendfsync", "always")
    servers = three_masters_on(tmp_path, bus.url, cleanup)
    with Publisher(servers[0]) as publisher:
        publisher.wait_acks(30)
        bus.stop()  # a clean shutdown: the append-only file has every write
        info = poll(lambda: bus_info(servers[1]), lambda i: i["bus_state"] == b"down")
        assert info["bus_down_reason"]
        _, reason = poll(lambda: verbose_bus_check(servers[1]), lambda c: c[0] == "DOWN")
        assert "unavailable" in reason, reason
        poll(lambda: len(publisher.refused), lambda n: n >= 2)
        assert publisher.slowest_refusal < 2.5  # an error at once, not a hang
        bus.start()
        publisher.wait_acks(30)
    for server in servers:
        info = poll(lambda s=server: bus_info(s), lambda i: i["bus_state"] == b"up")
        assert info["bus_reconnects"] >= 1
    assert_nothing_acked_is_lost(publisher.acked, bus.client())
    agreed_views(servers)
    no_node_failed(servers)


def test_redis_frozen_for_10_s_fails_no_node_and_loses_nothing(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        tmp_path: Path, cleanup: list[ServerProcess]) -> None:
    bus = redis_factory()
    servers = three_masters_on(tmp_path, bus.url, cleanup)
    with Publisher(servers[0]) as publisher:
        publisher.wait_acks(30)
        bus.send(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            info = poll(lambda: bus_info(servers[1]), lambda i: i["bus_state"] == b"down",
                        timeout=9)
            assert info["bus_down_reason"]
            poll(lambda: verbose_bus_check(servers[1]), lambda c: c[0] == "DOWN", timeout=2)
            time.sleep(max(0.0, 10 - (time.monotonic() - frozen_at)))
        finally:
            bus.send(signal.SIGCONT)
        publisher.wait_acks(60)
    assert publisher.refused and publisher.slowest_refusal < 5
    assert_nothing_acked_is_lost(publisher.acked, bus.client())
    excused = poll(lambda: bus_info(servers[1]), lambda i: i["bus_clock_excused_ms"] > 0)
    assert excused["bus_clock_excused_ms"] >= 5000  # the freeze did not count as silence
    agreed_views(servers)
    no_node_failed(servers)


def test_master_killed_and_sentinel_promotes_the_replica(
        redis_factory: Callable[..., RedisProcess],  # noqa: F811
        tmp_path: Path, cleanup: list[ServerProcess]) -> None:
    quick_sync = ("--repl-diskless-sync-delay", "0")
    master = redis_factory(*quick_sync, name="master")
    replica = redis_factory(*quick_sync, "--replicaof", "127.0.0.1", str(master.port),
                            name="replica")
    poll(lambda: replica.client().info("replication")["master_link_status"],
         lambda s: s == "up")
    sentinel = redis_factory(
        f"sentinel monitor cw 127.0.0.1 {master.port} 1",
        "sentinel down-after-milliseconds cw 3000",
        "sentinel failover-timeout cw 10000",
        name="sentinel", sentinel=True)
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/cw"
    servers = three_masters_on(tmp_path, url, cleanup, "--bus-wait-replicas", "1")
    with Publisher(servers[0]) as publisher:
        publisher.wait_acks(30)
        master.stop(signal.SIGKILL)
        poll(lambda: bus_info(servers[1])["bus_state"], lambda state: state == b"down",
             timeout=10)
        poll(lambda: sentinel.client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "cw")[1], lambda p: int(p) == replica.port,
            timeout=30)
        master.start()  # Sentinel turns the old master into the new master's replica
        publisher.wait_acks(30, timeout=60)
    assert publisher.refused  # acknowledging needs a replica: refused until it is back
    assert_nothing_acked_is_lost(publisher.acked, replica.client())
    agreed_views(servers)
    assert all(bus_info(s)["bus_reconnects"] >= 1 for s in servers)
