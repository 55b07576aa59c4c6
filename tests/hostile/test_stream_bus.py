"""The Redis-stream bus against hostile or careless writers of its Redis: a real
redis-server and real clusterwatch instances (and, for the moments that pass too quickly to
catch from outside, the real bus class in-process against a real redis-server).

Found on main:
- one ``XADD`` with an id an hour ahead freezes bus time, so no node can fail for an hour
  (Redis gives every later ``XADD *`` that millisecond, with a growing sequence);
- a snapshot key of another type keeps a restarted instance from ever becoming ready,
  while the running ones log it at info level;
- after ``DEL`` of the stream (with ids behind the last one read, as after that XADD),
  ``BUS PUBLISH`` answers ``pending: ..., applied; outcome not recorded`` for messages no
  instance ever applies, and ``BUS INFO`` shows nothing wrong;
- a status nested deeper than the limit, written straight into the stream, is applied.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clusterwatch.cluster import ClusterModel, ModelConfig, Outcome
from clusterwatch.commands import BusError, Deferred
from clusterwatch.server.bus.redis_stream import RedisStreamBus, StreamSettings
from tests.conftest import ServerProcess, start_server
from tests.integration.cluster_helpers import A, B, C, message, node_flags, poll, three_masters
from tests.integration.redis_procs import (  # noqa: F401  (fixtures)
    RedisProcess,
    bus_info,
    bus_redis,
    connect,
    info_cluster,
    redis_factory,
)
from tests.integration.test_stream_bus import publish, wait_ready
from tests.integration.test_stream_outages import verbose_bus_check

pytestmark = pytest.mark.integration

STREAM = "clusterwatch:bus"
HOUR_MS = 3_600_000
D = "d" * 40

Instances = Callable[..., list[ServerProcess]]


@pytest.fixture
def instances(tmp_path: Path, bus_redis: RedisProcess) -> Any:  # noqa: F811
    started: list[ServerProcess] = []

    def start(count: int, *args: str) -> list[ServerProcess]:
        new = [start_server(tmp_path, "--bus", bus_redis.url, *args) for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for server in started:
        server.stop()


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def flags(server: ServerProcess) -> dict[str, str]:
    return node_flags(connect(server).execute_command("CLUSTER", "NODES"))


def warnings(server: ServerProcess) -> str:
    return "\n".join(line for line in server.logs().splitlines() if "level=warning" in line)


def test_an_entry_an_hour_ahead_does_not_stop_failure_detection(
        instances: Instances, bus_redis: RedisProcess) -> None:  # noqa: F811
    servers = instances(2, "--node-timeout", "1000")  # ticks of 100 ms, skew bound 500 ms
    for server in servers:
        wait_ready(server)
    publish(servers[0], three_masters())
    future = wall_ms() + HOUR_MS
    bus_redis.client().xadd(STREAM, {"tick": "from the future"}, id=f"{future}-0")
    # A and B keep heartbeating through either instance; C has gone silent.
    started = time.monotonic()
    seq = 10
    while time.monotonic() - started < 20:
        seq += 1
        publish(servers[seq % 2], [message("heartbeat", A, 1, seq),
                                   message("heartbeat", B, 2, seq)])
        if all("fail" in flags(server)[C] for server in servers):
            break
        time.sleep(0.1)
    seen = [flags(server) for server in servers]
    print(f"C judged after {time.monotonic() - started:.1f} s:", [s[C] for s in seen])
    for server, view in zip(servers, seen, strict=True):
        assert "fail" in view[C], view  # fail? then fail, as without the future entry
        assert "fail" not in view[A] and "fail" not in view[B], view
        info = bus_info(server)
        assert info["bus_clock_skewed_entries"] > 0
        assert info["bus_last_id"].startswith(str(future).encode())  # ids stay up there
        assert info_cluster(server)["clusterwatch_bus_clock_skewed_entries"] > 0
        assert "ahead of this instance's clock" in warnings(server)


def test_a_snapshot_key_of_another_type_is_reported_and_a_new_instance_replays(
        instances: Instances, bus_redis: RedisProcess) -> None:  # noqa: F811
    [first] = instances(1, "--bus-snapshot-interval", "300")
    wait_ready(first)
    publish(first, three_masters())
    client = bus_redis.client()
    client.delete(f"{STREAM}:snapshot")
    client.set(f"{STREAM}:snapshot", "not a snapshot")

    [second] = instances(1, "--bus-snapshot-interval", "300")
    wait_ready(second, timeout=20)  # main: never ready, retrying the snapshot forever
    assert {A, B, C} <= set(flags(second))
    assert "bus snapshot cannot be used: replaying the stream instead" in warnings(second)
    error = (f"{STREAM}:snapshot holds a string, not a snapshot hash: left as it "
             "is").encode()
    assert bus_info(second)["bus_snapshot_error"] == error
    # The running instance cannot write its snapshots there: it says so, at warning level.
    poll(lambda: bus_info(first)["bus_snapshot_error"], lambda e: e == error, timeout=20)
    assert "bus snapshot not written" in warnings(first)
    assert client.get(f"{STREAM}:snapshot") == b"not a snapshot"  # never overwritten

    client.delete(f"{STREAM}:snapshot")  # the operator clears it: snapshots resume
    poll(lambda: bus_info(first), lambda i: i["bus_snapshot_error"] == b""
         and i["bus_snapshots_written"] >= 1, timeout=20)
    assert client.type(f"{STREAM}:snapshot") == b"hash"


def test_a_stream_recreated_behind_the_last_id_read_is_read_again(
        instances: Instances, bus_redis: RedisProcess) -> None:  # noqa: F811
    servers = instances(2, "--node-timeout", "2000", "--bus-publish-timeout", "5000",
                        "--bus-snapshot-interval", "300")
    for server in servers:
        wait_ready(server)
    publish(servers[0], three_masters())
    client = bus_redis.client()
    future = wall_ms() + HOUR_MS
    client.xadd(STREAM, {"tick": "from the future"}, id=f"{future}-0")
    for server in servers:
        poll(lambda s=server: bus_info(s)["bus_last_id"],
             lambda last: last.startswith(str(future).encode()))
    client.delete(STREAM)  # XADD * now starts again from Redis's clock, an hour behind

    replies = connect(servers[0]).execute_command(
        "BUS", "PUBLISH", message("hello", D, 1, 1, addr="10.0.0.4:7000"))
    print(replies)
    assert replies == [b"applied"]
    poll(lambda: flags(servers[1]), lambda view: D in view)
    for server in servers:
        info = poll(lambda s=server: bus_info(s), lambda i: i["bus_state"] == b"up")
        assert info["bus_stream_resets"] >= 1
        assert int(info["bus_last_id"].split(b"-")[0]) < future
        assert poll(lambda s=server: verbose_bus_check(s)[0], lambda status: status == "UP")
        assert "stream was reset" in warnings(server)
    publish(servers[1], [message("heartbeat", D, 1, 2)])  # the bus goes on as before

    [late] = instances(1, "--node-timeout", "2000")
    wait_ready(late, timeout=20)
    assert {A, B, C, D} <= set(flags(late))


def test_a_deleted_stream_is_counted_and_logged_and_the_bus_goes_on(
        instances: Instances, bus_redis: RedisProcess) -> None:  # noqa: F811
    servers = instances(2)
    for server in servers:
        wait_ready(server)
    publish(servers[0], three_masters())
    bus_redis.client().delete(STREAM)
    for server in servers:
        poll(lambda s=server: bus_info(s)["bus_stream_resets"], lambda n: n >= 1)
        assert "stream was reset" in warnings(server)
    publish(servers[1], [message("hello", D, 1, 1, addr="10.0.0.4:7000")])
    for server in servers:
        poll(lambda s=server: flags(s), lambda view: {A, B, C, D} <= set(view))


def test_a_too_deep_status_written_straight_into_the_stream_is_refused_everywhere(
        instances: Instances, bus_redis: RedisProcess) -> None:  # noqa: F811
    servers = instances(2)
    for server in servers:
        wait_ready(server)
    publish(servers[0], [message("hello", D, 1, 1, addr="10.0.0.4:7000"),
                         message("heartbeat", D, 1, 2,
                                 services={"web": {"state": "running",
                                                   "status": {"debug": {"ok": True}}}})])
    deep = "[" * 500 + "0" + "]" * 500
    raw = (f'{{"v":1,"type":"heartbeat","node":"{D}","epoch":1,"seq":3,"services":'
           f'{{"web":{{"state":"running","status":{{"debug":{deep}}}}}}}}}')
    bus_redis.client().xadd(STREAM, {"m": raw})
    for server in servers:
        info = poll(lambda s=server: connect(s, 3).execute_command("BUS", "INFO"),
                    lambda i: i[b"rejected_by_reason"][b"depth"] == 1)
        assert info[b"rejected"] == 1
        status = connect(server).execute_command("STATUS", "SERVICE", f"{D}/web", "LEVEL",
                                                 "debug", "FORMAT", "JSON")
        assert json.loads(status)["status"] == {"ok": True}


# --- in-process: the moments a server process's ticks end too soon to watch ----------

async def applied(deferred: Any) -> list[Outcome] | BusError:
    if isinstance(deferred, list):
        return deferred
    assert isinstance(deferred, Deferred)
    done: asyncio.Future[list[Outcome] | BusError] = asyncio.get_running_loop().create_future()
    deferred.add_callback(done.set_result)
    return await asyncio.wait_for(done, 30)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_while_the_stream_is_gone_or_read_again_the_bus_says_so(
        bus_redis: RedisProcess) -> None:  # noqa: F811
    """Ticks every 3 s (a server ticks at most every second), so the stream stays gone
    long enough to see what BUS INFO and HEALTH's busFresh (``self_check``) say."""
    stream = "cw:gone"
    model = ClusterModel(ModelConfig(node_timeout_ms=30_000))
    bus = RedisStreamBus(model, StreamSettings(
        url=bus_redis.url, stream=stream, maxlen=0, retention_ms=0, publish_timeout_ms=10_000,
        snapshot_interval_ms=600_000, wait_replicas=0, tick_ms=3000),
        instance="test", on_applied=lambda _: None, max_message_bytes=65536)
    client = bus_redis.client()
    await bus.start()
    try:
        await until(lambda: bus.ready and bus.state == "up")
        hello = message("hello", A, 1, 1, addr="10.0.0.1:7000")
        assert [o.kind for o in await applied(bus.publish([hello]))] == ["applied"]  # type: ignore[union-attr]

        client.delete(stream)
        await until(lambda: bus.self_check() is not None)
        check = bus.self_check()
        assert check is not None and check.status == "DOWN"
        assert check.reason.endswith(f"the stream {stream} is gone (deleted?): waiting for it "
                                     "to be recreated")
        fields = dict(bus.info())
        assert (fields["bus_state"], fields["bus_stream_resets"]) == ("down", 1)
        assert "is gone" in str(fields["bus_down_reason"])
        again = message("hello", B, 2, 1, addr="10.0.0.2:7000")
        assert [o.kind for o in await applied(bus.publish([again]))] == ["applied"]  # type: ignore[union-attr]
        await until(lambda: bus.self_check() is None)

        future = wall_ms() + HOUR_MS
        client.xadd(stream, {"tick": "from the future"}, id=f"{future}-0")
        await until(lambda: bus.last_id == f"{future}-0")
        client.delete(stream)
        client.xadd(stream, {"tick": "after the delete"})  # an hour behind the last id read
        await until(lambda: bus.self_check() is not None and "behind" in bus.self_check().reason)  # type: ignore[union-attr]
        assert dict(bus.info())["bus_state"] == "down"
        late = message("hello", C, 3, 1, addr="10.0.0.3:7000")
        outcomes = await applied(bus.publish([late]))
        assert [o.kind for o in outcomes] == ["applied"]  # type: ignore[union-attr]
        await until(lambda: bus.self_check() is None)
        assert bus.stream_resets == 2
        assert int(bus.last_id.split("-")[0]) < future
        assert {row[0] for row in model.node_rows()} == {A, B, C}
    finally:
        await bus.aclose()
