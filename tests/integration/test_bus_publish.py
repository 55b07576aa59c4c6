"""BUS PUBLISH and BUS INFO over the wire, and failure detection end to end in real time."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess

from .cluster_helpers import (
    EPOCH,
    RA,
    A,
    B,
    C,
    info_fields,
    message,
    node_flags,
    poll,
    three_masters,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]

BASE = {"v": 1, "type": "heartbeat", "node": A, "epoch": 1, "seq": 100}


def doc(**changes: Any) -> bytes:
    fields = {**BASE, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


# (message, reject reason code, the error text after "ERR invalid message: ")
BAD_MESSAGES = [
    pytest.param(b"{not json", "json", "invalid JSON: JSON is malformed", id="wrong-json"),
    pytest.param(doc(epoch="1"), "type", "epoch: Expected `int`, got `str`", id="wrong-type"),
    pytest.param(b"[1, 2]", "type", "Expected `object`, got `array`", id="not-an-object"),
    pytest.param(doc(type="gossip"), "unknown_type", "type: Invalid value 'gossip'",
                 id="unknown-type"),
    pytest.param(doc(node=...), "missing_field", "node: Object missing required field `node`",
                 id="missing-field"),
    pytest.param(doc(type="slots", ranges=[[0, 16384]]), "range",
                 "ranges[0][1]: Expected `int` <= 16383", id="slot-out-of-range"),
    pytest.param(doc(type="slots", ranges=[[10, 5]]), "range", "ranges[0]: start 10 > end 5",
                 id="slot-range-reversed"),
    pytest.param(doc(epoch=-1), "range", "epoch: Expected `int` >= 0", id="negative-epoch"),
    pytest.param(doc(v=2), "version", "v: unsupported schema version 2, expected 1",
                 id="schema-version"),
    pytest.param(doc(type="hello", addr="nowhere"), "format",
                 "addr: expected host:port[@busport], port 1..65535, bus port 0..65535",
                 id="bad-address"),
    pytest.param(doc(pad="x" * 600), "too_large", "message is 716 bytes, limit is 512",
                 id="over-size-limit"),
]


@pytest.fixture
def quiet_server(server_factory: Factory) -> ServerProcess:
    """A server whose nodes never time out during a test, and a 512-byte message limit."""
    return server_factory("--node-timeout", "3600000", "--max-message-size", "512")


def connect(server: ServerProcess, protocol: int = 2) -> redis.Redis:
    return redis.Redis(port=server.port, protocol=protocol, socket_timeout=20)


def bus_info(r: redis.Redis) -> dict[bytes, Any]:
    flat = r.execute_command("BUS", "INFO")
    return dict(zip(flat[::2], flat[1::2], strict=True))


def snapshot(r: redis.Redis) -> tuple[bytes, ...]:
    info = r.execute_command("CLUSTER", "INFO")
    return (info.split(b"cluster_stats_messages_sent")[0],
            r.execute_command("CLUSTER", "NODES"),
            json.dumps(r.execute_command("CLUSTER", "SLOTS"), default=repr).encode())


@pytest.mark.parametrize(("data", "code", "text"), BAD_MESSAGES)
def test_a_bad_message_is_answered_with_its_field_and_reason_and_changes_nothing(
        quiet_server: ServerProcess, data: bytes, code: str, text: str) -> None:
    r = connect(quiet_server)
    assert r.execute_command("BUS", "PUBLISH", *three_masters(replicas=True)) == [b"applied"] * 9
    before_model = snapshot(r)
    before_info = r.execute_command("CLUSTER", "INFO")
    version = bus_info(r)[b"model_version"]
    [reply] = r.execute_command("BUS", "PUBLISH", data)
    assert isinstance(reply, redis.ResponseError)
    assert str(reply).startswith(f"invalid message: {text}"), str(reply)
    assert "\n" not in str(reply)
    assert r.execute_command("CLUSTER", "INFO") == before_info
    assert snapshot(r) == before_model
    info = bus_info(r)
    assert info[b"model_version"] == version
    assert info[b"rejected"] == 1
    reasons = dict(zip(info[b"rejected_by_reason"][::2], info[b"rejected_by_reason"][1::2],
                       strict=True))
    assert reasons[code.encode()] == 1
    assert sum(reasons.values()) == 1


def test_valid_messages_around_bad_ones_are_all_applied(quiet_server: ServerProcess) -> None:
    r = connect(quiet_server)
    batch = [*three_masters(), b"oops", message("heartbeat", A, 1, 3), b"{}",
             message("heartbeat", B, 2, 3)]
    replies = r.execute_command("BUS", "PUBLISH", *batch)
    kinds = ["error" if isinstance(x, redis.ResponseError) else x.decode() for x in replies]
    assert kinds == ["applied"] * 6 + ["error", "applied", "error", "applied"]
    info = bus_info(r)
    assert (info[b"applied"], info[b"rejected"], info[b"nodes"]) == (8, 2, 3)


def test_stale_messages_name_the_current_pair(quiet_server: ServerProcess) -> None:
    r = connect(quiet_server)
    r.execute_command("BUS", "PUBLISH", *three_masters())
    r.execute_command("BUS", "PUBLISH", message("heartbeat", A, 1, 7))
    replies = r.execute_command("BUS", "PUBLISH", message("heartbeat", A, 1, 7),
                                message("heartbeat", A, 0, 99), message("heartbeat", A, 1, 8))
    assert replies == [b"stale: have epoch 1 seq 7", b"stale: have epoch 1 seq 7", b"applied"]
    r3 = connect(quiet_server, protocol=3)
    assert r3.execute_command("BUS", "PUBLISH", message("heartbeat", A, 1, 8)) == \
        [b"stale: have epoch 1 seq 8"]
    info = r3.execute_command("BUS", "INFO")
    assert (info[b"stale"], info[b"applied"]) == (3, 8)
    assert info[b"received"][b"heartbeat"] == 5


def test_pipelined_batches_lose_nothing(quiet_server: ServerProcess) -> None:
    r = connect(quiet_server)
    r.execute_command("BUS", "PUBLISH", *three_masters())
    pipe = r.pipeline(transaction=False)
    seq = {A: 10, B: 10, C: 10}
    total = 0
    for _ in range(40):
        batch = []
        for node in (A, B, C) * 50:
            seq[node] += 1
            batch.append(message("heartbeat", node, EPOCH[node], seq[node],
                                 serving=True, node_state="RUNNING"))
        total += len(batch)
        pipe.execute_command("BUS", "PUBLISH", *batch)
    results = pipe.execute()
    assert all(reply == b"applied" for batch in results for reply in batch)
    info = bus_info(r)
    assert info[b"applied"] == 6 + total and info[b"stale"] == 0 and info[b"rejected"] == 0
    fields = info_fields(r.execute_command("CLUSTER", "INFO"))
    assert fields["cluster_stats_messages_heartbeat_received"] == str(total)


# --- failure detection in real time ---------------------------------------------------------


class Heartbeats:
    """Heartbeats for chosen nodes every ``interval`` seconds from a background thread."""

    def __init__(self, port: int, nodes: set[str], interval: float = 0.05) -> None:
        self.client = redis.Redis(port=port, socket_timeout=20)
        self.nodes = set(nodes)
        self.interval = interval
        self.seq = 1000
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.interval)

    def beat(self) -> None:
        try:
            self.publish(lambda seq: [message("heartbeat", n, EPOCH[n], seq)
                                      for n in sorted(self.nodes)])
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def publish(self, build: Callable[[int], list[bytes]]) -> list[Any]:
        """Publish with the next sequence number, in order with the heartbeats."""
        with self._lock:
            self.seq += 1
            batch = build(self.seq)
            return list(self.client.execute_command("BUS", "PUBLISH", *batch)) if batch else []

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.errors, self.errors


@pytest.fixture
def fast_server(server_factory: Factory) -> Iterator[ServerProcess]:
    # Reports, not time, turn pfail into fail here: fail_after is an hour.
    yield server_factory("--node-timeout", "1000", "--fail-after", "3600000")


def test_silent_master_goes_pfail_then_fail_then_recovers(fast_server: ServerProcess) -> None:
    r = connect(fast_server)
    r.execute_command("BUS", "PUBLISH", *three_masters())
    nodes = lambda: r.execute_command("CLUSTER", "NODES")  # noqa: E731
    info = lambda: info_fields(r.execute_command("CLUSTER", "INFO"))  # noqa: E731
    with Heartbeats(fast_server.port, {B, C}) as beats:
        flags = poll(nodes, lambda t: node_flags(t)[A] == "master,fail?", what="A fail?")
        assert node_flags(flags)[B] == "master" and node_flags(flags)[C] == "master"
        fields = info()
        assert fields["cluster_slots_pfail"] == "5461"
        assert fields["cluster_slots_fail"] == "0"
        assert fields["cluster_state"] == "ok"  # pfail alone keeps the cluster up
        assert b"disconnected" in next(ln for ln in nodes().splitlines() if ln.startswith(
            A.encode()))
        # The other masters report A; a majority of them makes it fail.
        assert beats.publish(lambda seq: [
            message("fail_report", B, 2, seq, target=A, state="pfail"),
            message("fail_report", C, 3, seq, target=A, state="pfail")]) == [b"applied"] * 2
        assert r.execute_command("CLUSTER", "COUNT-FAILURE-REPORTS", A) == 2
        poll(nodes, lambda t: node_flags(t)[A] == "master,fail", what="A fail")
        fields = poll(info, lambda f: f["cluster_state"] == "fail", what="cluster fail")
        assert fields["cluster_slots_fail"] == "5461"
        assert fields["cluster_slots_ok"] == str(16384 - 5461)
        beats.nodes.add(A)  # A speaks again
        poll(info, lambda f: f["cluster_state"] == "ok" and f["cluster_slots_ok"] == "16384",
             what="cluster ok again")
        assert node_flags(nodes())[A] == "master"
    assert f"node={A}" in fast_server.logs()  # the transitions were logged
    assert "cluster state changed" in fast_server.logs()


def test_fail_after_turns_a_lone_silent_master_fail(server_factory: Factory) -> None:
    server = server_factory("--node-timeout", "300", "--fail-after", "300")
    r = connect(server)
    r.execute_command("BUS", "PUBLISH", message("hello", A, 1, 1, addr="10.0.0.1:7000"),
                      message("slots", A, 1, 2, ranges=[[0, 16383]]))
    info = lambda: info_fields(r.execute_command("CLUSTER", "INFO"))  # noqa: E731
    assert info()["cluster_state"] == "ok"
    fields = poll(info, lambda f: f["cluster_slots_fail"] == "16384", what="A fail")
    assert fields["cluster_state"] == "fail"
    assert node_flags(r.execute_command("CLUSTER", "NODES"))[A] == "master,fail"
    r.execute_command("BUS", "PUBLISH", message("heartbeat", A, 1, 3))
    fields = info()  # a message clears fail at once
    assert (fields["cluster_state"], fields["cluster_slots_ok"]) == ("ok", "16384")
    assert "level=warning" in server.logs() and "new=fail" in server.logs()


def test_bus_info_names_the_failure_rule_in_force(server_factory: Factory) -> None:
    """`auto` is the timer until the bus carries a fail_report, Redis's rule from then on;
    a chosen rule stays."""
    auto = connect(server_factory("--node-timeout", "3600000"))
    chosen = connect(server_factory("--node-timeout", "3600000", "--fail-rule", "timer"))
    for r in (auto, chosen):
        r.execute_command("BUS", "PUBLISH", *three_masters())
        assert bus_info(r)[b"fail_rule"] == b"timer"
        r.execute_command("BUS", "PUBLISH", message("fail_report", A, EPOCH[A], 50, target=C,
                                                    state="pfail"))
    assert bus_info(auto)[b"fail_rule"] == b"redis"
    assert bus_info(chosen)[b"fail_rule"] == b"timer"


def test_failover_with_a_higher_epoch_moves_the_slots(quiet_server: ServerProcess) -> None:
    r = connect(quiet_server)
    r.execute_command("BUS", "PUBLISH", *three_masters(replicas=True))
    assert r.execute_command(
        "BUS", "PUBLISH", message("hello", RA, 4, 2, addr="10.0.0.1:7100", role="master"),
        message("slots", RA, 4, 3, ranges=[[0, 5460]]),
        message("hello", A, 4, 3, addr="10.0.0.1:7000", role="replica", replicaof=RA),
        message("slots", A, 4, 4, ranges=[])) == [b"applied"] * 4
    slots = r.execute_command("CLUSTER", "SLOTS")
    first = next(row for row in slots if row[0] == 0)
    assert first[2][2] == RA.encode() and first[3][2] == A.encode()
    lines = {ln.split(b" ")[0]: ln.split(b" ") for ln in
             r.execute_command("CLUSTER", "NODES").splitlines()}
    assert lines[RA.encode()][2] == b"master" and lines[RA.encode()][-1] == b"0-5460"
    assert lines[A.encode()][2:4] == [b"slave", RA.encode()]
    fields = info_fields(r.execute_command("CLUSTER", "INFO"))
    assert (fields["cluster_current_epoch"], fields["cluster_state"]) == ("4", "ok")
    assert "slots moved" in quiet_server.logs()
