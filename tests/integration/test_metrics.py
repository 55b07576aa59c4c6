"""`GET /metrics` against a real server process, parsed with prometheus-client's own
parser: the same numbers as CLUSTER INFO, BUS INFO, HEALTH, STATUS SERVICES and INFO
commandstats; a node going silent, then failing, then back; Basic auth."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
import redis
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, free_port
from tests.integration.cluster_helpers import (
    EPOCH,
    MASTERS,
    REPLICAS,
    A,
    B,
    C,
    info_fields,
    message,
    poll,
    three_masters,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]
Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    code: int
    headers: dict[str, str]
    body: bytes

    def samples(self) -> dict[tuple[str, Labels], float]:
        found = {}
        for family in text_string_to_metric_families(self.body.decode()):
            for sample in family.samples:
                found[sample.name, frozenset(sample.labels.items())] = sample.value
        return found


def scrape(port: int, *, method: str = "GET", user: tuple[str, str] | None = None) -> Scrape:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method=method)
    if user is not None:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Scrape(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Scrape(exc.code, dict(exc.headers), exc.read())


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def pairs(flat: list[Any]) -> dict[str, Any]:
    """A RESP2 map reply (a flat array; nested maps too) as a dict with str keys."""
    return {key.decode(): pairs(item) if isinstance(item, list) else item
            for key, item in zip(flat[::2], flat[1::2], strict=True)}


def cluster_figures(samples: dict[tuple[str, Labels], float]) -> dict[str, str]:
    """The CLUSTER INFO fields the metrics carry, named and formatted as CLUSTER INFO."""
    state = value(samples, "clusterwatch_cluster_state")
    return {
        "cluster_state": "ok" if state == 1 else "fail",
        **{f"cluster_slots_{slot_state}": str(int(value(
            samples, "clusterwatch_cluster_slots", state=slot_state)))
           for slot_state in ("assigned", "ok", "pfail", "fail")},
        "cluster_known_nodes": str(int(value(samples, "clusterwatch_cluster_known_nodes"))),
        "cluster_size": str(int(value(samples, "clusterwatch_cluster_size"))),
        "cluster_current_epoch": str(int(value(samples, "clusterwatch_cluster_current_epoch"))),
    }


def steady_scrape(r: redis.Redis, port: int) -> tuple[dict[str, str], dict[tuple[str, Labels],
                                                                            float]]:
    """CLUSTER INFO's figures and a scrape taken while they did not change (read before
    and after the scrape), so both describe the same moment."""
    def attempt() -> tuple[dict[str, str], dict[str, str], dict[tuple[str, Labels], float]]:
        before = info_fields(r.execute_command("CLUSTER", "INFO"))
        samples = scrape(port).samples()
        after = info_fields(r.execute_command("CLUSTER", "INFO"))
        return before, after, samples

    before, _, samples = poll(attempt, lambda got: _figures(got[0]) == _figures(got[1]),
                              what="CLUSTER INFO steady around a scrape")
    return _figures(before), samples


def _figures(fields: dict[str, str]) -> dict[str, str]:
    return {name: fields[name] for name in ("cluster_state", "cluster_slots_assigned",
                                            "cluster_slots_ok", "cluster_slots_pfail",
                                            "cluster_slots_fail", "cluster_known_nodes",
                                            "cluster_size", "cluster_current_epoch")}


def heartbeat(node: str, seq: int, state: str = "running") -> bytes:
    return message("heartbeat", node, EPOCH[node], seq, node_state="RUNNING",
                   services={"api": {"version": "1", "state": state,
                                     "status": {"critical": {"ok": state == "running"}}}})


@pytest.fixture
def served(server_factory: Factory) -> Iterator[tuple[redis.Redis, int]]:
    port = free_port()
    server = server_factory("--http-port", str(port))
    r = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
    yield r, port
    r.close()


def test_a_scrape_shows_what_the_resp_commands_show(served: tuple[redis.Redis, int]) -> None:
    r, port = served
    assert r.execute_command("BUS", "PUBLISH", *three_masters(replicas=True)) == (
        [b"applied"] * 9)
    replies = r.execute_command("BUS", "PUBLISH", heartbeat(A, 10), heartbeat(B, 10, "error"),
                                three_masters()[0], b"{", message("bogus", A, 1, 11))
    assert replies[:2] == [b"applied", b"applied"] and replies[2].startswith(b"stale")

    answer = scrape(port)
    assert answer.code == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    figures, samples = steady_scrape(r, port)
    assert cluster_figures(samples) == figures
    assert figures["cluster_slots_ok"] == "16384" and figures["cluster_known_nodes"] == "6"

    bus = pairs(r.execute_command("BUS", "INFO"))
    assert value(samples, "clusterwatch_model_index") == bus["model_version"]
    assert value(samples, "clusterwatch_bus_messages_total") == bus["messages"] == 14
    for kind, received in bus["received"].items():
        assert value(samples, "clusterwatch_bus_messages_received_total", type=kind) == received
    assert value(samples, "clusterwatch_bus_messages_applied_total") == bus["applied"] == 11
    assert value(samples, "clusterwatch_bus_messages_stale_total") == bus["stale"] == 1
    for reason, rejected in bus["rejected_by_reason"].items():
        assert value(samples, "clusterwatch_bus_messages_rejected_total",
                     reason=reason) == rejected
    assert bus["rejected"] == 2

    nodes = [(node, 7000 + i, "master") for i, node in enumerate(MASTERS)]
    nodes += [(node, 7100 + i, "replica") for i, node in enumerate(REPLICAS)]
    for node, node_port, role in nodes:
        labels = {"node": node, "addr": f"10.0.0.1:{node_port}", "role": role}
        assert value(samples, "clusterwatch_node_up", **labels) == 1
        assert value(samples, "clusterwatch_node_pfail", **labels) == 0
        assert value(samples, "clusterwatch_node_fail", **labels) == 0
        assert value(samples, "clusterwatch_node_config_epoch", **labels) == EPOCH[node]
        assert 0 <= value(samples, "clusterwatch_node_last_seen_age_seconds", **labels) < 15
    assert value(samples, "clusterwatch_cluster_nodes", state="ok", role="master") == 3
    assert value(samples, "clusterwatch_cluster_nodes", state="ok", role="replica") == 3
    assert value(samples, "clusterwatch_cluster_nodes", state="pfail", role="master") == 0

    services = r.execute_command("STATUS", "SERVICES", "FORMAT", "JSON")
    assert services.count(b'"state":"running"') == 1 and services.count(b'"state":"error"') == 1
    assert value(samples, "clusterwatch_services", state="running") == 1
    assert value(samples, "clusterwatch_services", state="error") == 1
    assert value(samples, "clusterwatch_services", state="unknown") == 0

    assert value(samples, "clusterwatch_connected_clients") == 1  # redis-py's connection
    assert value(samples, "clusterwatch_blocked_clients") == 0
    assert 0 <= value(samples, "clusterwatch_event_loop_lag_seconds") < 1


def test_probe_statuses_are_the_health_answers(served: tuple[redis.Redis, int]) -> None:
    r, port = served
    r.execute_command("BUS", "PUBLISH", *three_masters())

    def resp_and_metrics() -> tuple[dict[str, str], dict[str, str]]:
        resp = {probe: _health(r, probe) for probe in ("startup", "ready", "live", "health")}
        samples = scrape(port).samples()
        return resp, {probe: _current_status(samples, probe) for probe in resp}

    resp, shown = poll(resp_and_metrics, lambda got: got[0] == got[1] == {**got[0], "ready": "UP"},
                       what="probe statuses as HEALTH answers them")
    assert shown == resp


def _current_status(samples: dict[tuple[str, Labels], float], probe: str) -> str:
    """The status whose series is 1, checking the enum pattern: one series per status."""
    series = {dict(labels)["status"]: got for (name, labels), got in samples.items()
              if name == "clusterwatch_probe_status" and ("probe", probe) in labels}
    assert set(series) == {"UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN", "DEGRADED"}
    ones = [status for status, got in series.items() if got == 1]
    assert len(ones) == 1 and sum(series.values()) == 1, series
    return ones[0]


def _health(r: redis.Redis, probe: str) -> str:
    try:
        return str(r.execute_command("HEALTH", probe).decode())
    except redis.ResponseError as exc:
        return str(exc).split()[0]


def test_command_counters_and_the_latency_histogram(served: tuple[redis.Redis, int]) -> None:
    r, port = served
    r.ping()
    before = scrape(port).samples()
    pipe = r.pipeline(transaction=False)
    for _ in range(7):
        pipe.ping()
    pipe.echo("x")
    pipe.execute()
    r.execute_command("CLUSTER", "INFO")
    with pytest.raises(redis.ResponseError):
        r.execute_command("CLUSTER", "COUNT-FAILURE-REPORTS", "nosuchnode")
    after = scrape(port).samples()

    def calls(samples: dict[tuple[str, Labels], float], command: str) -> float:
        return samples.get(("clusterwatch_commands_total",
                            frozenset({("command", command)})), 0.0)

    assert calls(after, "ping") - calls(before, "ping") == 7
    assert calls(after, "echo") - calls(before, "echo") == 1
    assert calls(after, "cluster|info") - calls(before, "cluster|info") == 1
    assert value(after, "clusterwatch_commands_failed_total",
                 command="cluster|count-failure-reports") == 1

    commandstats = r.info("commandstats")
    for command in ("ping", "echo", "cluster|info"):
        assert calls(after, command) == commandstats[f"cmdstat_{command}"]["calls"]
    commands = {dict(labels)["command"] for name, labels in after
                if name == "clusterwatch_commands_total"}
    assert {"ping", "echo", "cluster|info", "cluster|count-failure-reports"} <= commands
    for command in commands:
        total = calls(after, command)
        assert value(after, "clusterwatch_command_duration_seconds_count",
                     command=command) == total
        buckets = sorted(
            (float(dict(labels)["le"]), got) for (name, labels), got in after.items()
            if name == "clusterwatch_command_duration_seconds_bucket"
            and ("command", command) in labels)
        assert len(buckets) == 10 and buckets[-1] == (float("inf"), total)
        assert [got for _, got in buckets] == sorted(got for _, got in buckets)  # cumulative
        assert 0 < value(after, "clusterwatch_command_duration_seconds_sum",
                         command=command) < total


def test_head_announces_the_get(served: tuple[redis.Redis, int]) -> None:
    _, port = served
    head = scrape(port, method="HEAD")
    assert (head.code, head.body) == (200, b"")
    assert head.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert int(head.headers["Content-Length"]) > 1000


def test_a_node_going_silent_failing_and_coming_back(server_factory: Factory) -> None:
    port = free_port()
    server = server_factory("--http-port", str(port), "--node-timeout", "500",
                            "--fail-after", "3000")
    r = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
    r.execute_command("BUS", "PUBLISH", *three_masters())
    seqs = count(10)
    c_labels = {"node": C, "addr": "10.0.0.1:7002", "role": "master"}

    def keep_a_and_b() -> tuple[dict[str, str], dict[tuple[str, Labels], float]]:
        seq = next(seqs)
        r.execute_command("BUS", "PUBLISH", heartbeat(A, seq), heartbeat(B, seq))
        return steady_scrape(r, port)

    def in_state(state: str) -> Callable[[tuple[dict[str, str], Any]], bool]:
        return lambda got: value(got[1], f"clusterwatch_node_{state}", **c_labels) == 1

    c_slots = str(16383 - 10923 + 1)
    figures, samples = poll(keep_a_and_b, in_state("pfail"), what="C pfail")
    assert cluster_figures(samples) == figures
    assert (figures["cluster_slots_pfail"], figures["cluster_slots_ok"]) == (
        c_slots, str(16384 - int(c_slots)))
    assert value(samples, "clusterwatch_node_up", **c_labels) == 0
    assert value(samples, "clusterwatch_node_last_seen_age_seconds", **c_labels) >= 0.5
    assert value(samples, "clusterwatch_node_up", node=A, addr="10.0.0.1:7000",
                 role="master") == 1
    assert value(samples, "clusterwatch_cluster_nodes", state="pfail", role="master") == 1

    figures, samples = poll(keep_a_and_b, in_state("fail"), what="C fail")
    assert cluster_figures(samples) == figures
    assert figures["cluster_state"] == "fail" and figures["cluster_slots_fail"] == c_slots
    assert value(samples, "clusterwatch_node_pfail", **c_labels) == 0
    assert value(samples, "clusterwatch_cluster_nodes", state="fail", role="master") == 1

    r.execute_command("BUS", "PUBLISH", heartbeat(A, next(seqs)), heartbeat(B, next(seqs)),
                      heartbeat(C, next(seqs)))
    figures, samples = steady_scrape(r, port)
    assert cluster_figures(samples) == figures
    assert figures["cluster_state"] == "ok" and figures["cluster_slots_ok"] == "16384"
    assert value(samples, "clusterwatch_node_up", **c_labels) == 1
    r.close()


def test_metrics_take_basic_auth_with_a_password(server_factory: Factory) -> None:
    port = free_port()
    server_factory("--http-port", str(port), "--requirepass", "s3cret")
    denied = scrape(port)
    assert denied.code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic ")
    assert scrape(port, user=("default", "wrong")).code == 401
    allowed = scrape(port, user=("default", "s3cret"))
    assert allowed.code == 200
    assert value(allowed.samples(), "clusterwatch_cluster_known_nodes") == 0
