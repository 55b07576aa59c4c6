"""Every view shows the model's one liveness verdict on every node, at every step.

Random scripts of node messages (heartbeats, hellos without a heartbeat, failure reports,
stale copies, leaves) and clock steps (short, past the node timeout, past Puppet's status
timeouts) and the bus turning stale and fresh drive one server through its command table.
After every step, for every node, the verdict of `ClusterModel.liveness` is what each view
shows in its own words (docs/liveness.md's table): CLUSTER NODES' flags, STATUS
SERVICES/SIMPLE, STATUS NODE, CLUSTER STATUS's hostAlive, HEALTH NODE, the cluster's HEALTH
`nodes` check and /metrics; and a node that is not reachable is never running, serving,
alive or UP anywhere (but in HEALTH LIVE NODE, whose Zeebe grace window says UP for 10
minutes of an outage, naming it: docs/health-rules.md).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import SelfCheck
from clusterwatch.cluster.liveness import CLUSTER_FLAG, Liveness, Verdict
from tests.commands.test_cluster_commands import T0, Harness, msg

NODES = tuple(ch * 40 for ch in "abcd")
QUARTERS = ((0, 4095), (4096, 8191), (8192, 12287), (12288, 16383))
TIMEOUT = 15_000
UP_CHECKS = {"listening": SelfCheck("UP"), "busFresh": SelfCheck("UP"),
             "eventLoop": SelfCheck("UP")}
_METRIC = re.compile(r'clusterwatch_node_up\{[^}]*node="([^"]+)"[^}]*\} ([0-9.]+)')
_VERDICT = re.compile(r'clusterwatch_node_verdict\{[^}]*node="([^"]+)"[^}]*'
                      r'verdict="([a-z]+)"[^}]*\} 1')


def addr(node: str) -> str:
    return f"10.0.0.{NODES.index(node) + 1}:7000"


class Script:
    """One server and the messages of the nodes, in order per node."""

    def __init__(self) -> None:
        self.h = Harness(node_timeout=TIMEOUT)
        self.h.server.self_checks = dict(UP_CHECKS)
        self.h.server.health.started_ms = T0
        self.seq = itertools.count(10)
        self.first: dict[str, bytes] = {}
        self.beat_ms: dict[str, int] = {}
        batch = []
        for node, span in zip(NODES, QUARTERS, strict=True):
            hello = msg("hello", node, 1, next(self.seq), addr=addr(node))
            self.first[node] = hello
            batch += [hello, msg("slots", node, 1, next(self.seq), ranges=[list(span)])]
        self.h.publish(*batch)
        for node in NODES:
            self.beat(node)

    def beat(self, node: str) -> None:
        i = NODES.index(node)
        [outcome] = self.h.publish(msg(
            "heartbeat", node, 1, next(self.seq), node_state="RUNNING", serving=True,
            services={"redis": {"state": "running"}},
            partitions=[{"id": i, "role": "leader", "health": "healthy"}]))
        if outcome == b"applied":  # refused after a leave until the node says hello
            self.beat_ms[node] = self.h.now

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        h = self.h
        if kind == "beat":
            self.beat(step[1])
        elif kind == "hello":
            h.publish(msg("hello", step[1], 1, next(self.seq), addr=addr(step[1])))
        elif kind == "report":
            h.publish(msg("fail_report", step[1], 1, next(self.seq), target=step[2],
                          state="fail"))
        elif kind == "stale":
            h.publish(self.first[step[1]])
        elif kind == "leave":
            h.publish(msg("leave", step[1], 1, next(self.seq)))
            self.beat_ms.pop(step[1], None)
        elif kind == "clock":
            h.now += step[1]
        elif kind == "bus":
            h.server.model.set_bus_fresh(step[1], h.now)


_node = st.sampled_from(NODES)
_step = st.one_of(
    st.tuples(st.just("beat"), _node),
    st.tuples(st.just("hello"), _node),
    st.tuples(st.just("report"), _node, _node),
    st.tuples(st.just("stale"), _node),
    st.tuples(st.just("leave"), _node),
    st.tuples(st.just("clock"), st.sampled_from((100, 5_000, 15_001, 31_000, 61_000))),
    st.tuples(st.just("bus"), st.booleans()),
)


def verdicts(script: Script) -> dict[str, Liveness]:
    model = script.h.server.model
    found = {}
    for node in NODES:
        live = model.liveness(node, script.h.now)
        if live is not None and live.verdict is not Verdict.LEFT:
            found[node] = live
    return found


def check_views(script: Script) -> None:
    h = script.h
    now = h.now
    live = verdicts(script)
    known = {node for node in NODES if h.server.model.node(node) is not None}
    assert set(live) == known
    down = {node for node, v in live.items() if not v.reachable}

    # CLUSTER NODES: Redis's flags, except under `bus` (the last model's flags).
    flags = {}
    for line in h.call("CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if fields[0] in NODES:  # not clusterwatch's own `myself` line
            flags[fields[0]] = set(fields[2].split(","))
    assert set(flags) == known
    for node, v in live.items():
        word = CLUSTER_FLAG[v.verdict]
        if v.verdict is Verdict.BUS:
            continue
        assert ("fail?" in flags[node]) == (word == "fail?"), (node, v, flags[node])
        assert ("fail" in flags[node]) == (word == "fail"), (node, v, flags[node])

    # CLUSTER SHARDS: Redis's health, `fail` only for FAIL (`fail?` is `online` there too).
    health = {}
    for shard in h.reply("CLUSTER", "SHARDS", proto=3):
        for member in shard[b"nodes"]:
            health[member[b"id"].decode()] = member[b"health"].decode()
    for node, v in live.items():
        if node in health and v.verdict is not Verdict.BUS:
            assert (health[node] == "fail") == (v.verdict is Verdict.FAIL), (node, v, health)

    # STATUS SERVICES: unknown at once when not reachable; running while reachable and fresh.
    services = json.loads(h.call("STATUS", "SERVICES", "FORMAT", "JSON"))
    for node, v in live.items():
        entry = services.get(f"{node}/redis")
        if entry is None:
            continue
        if not v.reachable:
            assert entry["state"] == "unknown", (node, v, entry)
            assert str(v.verdict) in entry["status"]
        elif now - script.beat_ms[node] <= 60_000:
            assert entry["state"] == "running", (node, v, entry)

    # STATUS SIMPLE names every service that is not running.
    simple = h.reply("STATUS", "SIMPLE")
    reporting = {name.split("/")[0] for name in services}
    if down & reporting:
        text = str(simple)
        assert text.startswith("unknown"), text
        for node in down & reporting:
            assert f"{node}/redis unknown (node {live[node].verdict} " in text

    # STATUS NODE: not ready, not serving, no RUNNING; CLUSTER STATUS: hostAlive.
    hosts = json.loads(h.call("CLUSTER", "STATUS", "FORMAT", "JSON"))["clusterStatus"]
    for node, v in live.items():
        doc = json.loads(h.call("STATUS", "NODE", node, "FORMAT", "JSON"))
        if not v.reachable:
            assert (doc["isReady"], doc["isServing"]) == (False, False), (node, v, doc)
            assert doc["nodeState"] not in ("RUNNING", "WAITING"), (node, v, doc)
        elif node in script.beat_ms:
            assert (doc["isReady"], doc["isServing"], doc["nodeState"]) == (
                True, True, "RUNNING"), (node, v, doc)
        host = hosts.get(addr(node)) or hosts[node]
        assert host["hostAlive"] is v.reachable, (node, v, host)

        # HEALTH NODE: the reachable check is the verdict; HEALTH, STARTUP and READY (its
        # latch included) are not UP. LIVE may be: Zeebe's grace window, said in its reason.
        for probe in ("HEALTH", "STARTUP", "READY"):
            report = json.loads(h.call("HEALTH", probe, "NODE", node, "VERBOSE", "FORMAT",
                                       "JSON"))
            if "reachable" not in report["components"]:  # READY latched: its one check
                assert v.reachable and report["status"] == "UP", (node, v, report)
                continue
            reachable = report["components"]["reachable"]["status"]
            want = ("UP" if v.reachable else "UNKNOWN" if v.verdict is Verdict.BUS
                    else "DOWN")
            assert reachable == want, (node, v, probe, report)
            if not v.reachable:
                assert report["status"] != "UP", (node, v, probe, report)

    # The cluster's HEALTH: `nodes` is UP only when every node is reachable.
    cluster = json.loads(h.call("HEALTH", "VERBOSE", "FORMAT", "JSON"))
    nodes_check = cluster["components"]["nodes"]
    assert (nodes_check["status"] == "UP") == (bool(known) and not down), (live, nodes_check)

    # /metrics: node_up and node_verdict.
    text = h.server.metrics.scrape().decode()
    up = {node: float(value) for node, value in _METRIC.findall(text)}
    named = dict(_VERDICT.findall(text))
    assert set(up) == known
    for node, v in live.items():
        assert up[node] == (1.0 if v.reachable else 0.0), (node, v)
        assert named[node] == v.verdict.value


@pytest.fixture
def script() -> Iterator[Script]:
    one = Script()
    yield one
    one.h.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=1, max_size=25))
def test_every_view_shows_the_one_verdict_at_every_step(steps: list[tuple[Any, ...]]) -> None:
    script = Script()
    try:
        check_views(script)
        for step in steps:
            script.step(step)
            check_views(script)
            for live in verdicts(script).values():
                event(f"verdict {live.verdict}")
    finally:
        script.h.close()


def test_a_killed_master_is_unknown_everywhere_at_fail_not_after_the_status_timeout(
        script: Script) -> None:
    """The issue's incident: at +16 s (past the 15 s node timeout) the master is fail?
    and its redis service unknown, long before Puppet's 60 s status timeout."""
    dead = NODES[0]
    script.h.now += 16_000
    for node in NODES[1:]:
        script.beat(node)
    check_views(script)
    entry = json.loads(script.h.call("STATUS", "SERVICE", f"{dead}/redis", "FORMAT", "JSON"))
    assert entry["state"] == "unknown"
    assert entry["status"].startswith(f"Node {dead} is not reachable: pfail (")
    simple = str(script.h.reply("STATUS", "SIMPLE"))
    assert simple == (f"unknown (4 services; not all running: {dead}/redis unknown "
                      f"(node pfail since {T0 + TIMEOUT}))")
    doc = json.loads(script.h.call("STATUS", "NODE", dead, "FORMAT", "JSON"))
    assert (doc["nodeState"], doc["isReady"], doc["isServing"]) == ("ERROR", False, False)


def test_a_stale_publisher_and_a_stale_bus_are_verdicts_of_their_own(script: Script) -> None:
    h = script.h
    model = h.server.model
    h.now += 16_000
    live = model.liveness(NODES[0], h.now)
    assert live is not None and live.verdict is Verdict.PFAIL
    script.step(("stale", NODES[0]))  # its publisher speaks behind itself
    live = model.liveness(NODES[0], h.now)
    assert live is not None and live.verdict is Verdict.STALE
    assert live.since_ms == T0 + TIMEOUT and "stale" in live.reason
    check_views(script)
    for node in NODES[1:]:
        script.beat(node)
    script.step(("bus", False))
    live = model.liveness(NODES[1], h.now)
    assert live is not None and live.verdict is Verdict.BUS and live.since_ms == h.now
    check_views(script)
    script.step(("bus", True))
    live = model.liveness(NODES[1], h.now)
    assert live is not None and live.reachable
    check_views(script)


def test_a_node_that_left_is_left(script: Script) -> None:
    script.step(("leave", NODES[3]))
    live = script.h.server.model.liveness(NODES[3], script.h.now)
    assert live is not None and live.verdict is Verdict.LEFT
    assert script.h.server.model.liveness("never-seen", script.h.now) is None
    check_views(script)
