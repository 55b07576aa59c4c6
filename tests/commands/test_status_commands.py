"""STATUS, HEALTH and CLUSTER STATUS through the command table, fed by BUS PUBLISH, on a fake clock.

The server is built but never started (see test_cluster_commands.Harness): each reply is
encoded for the wire in RESP2 or RESP3 and parsed back with hiredis, so the tests see what a
client sees. clusterwatch's own checks are set by hand (the server re-judges them at 10 Hz).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest

from clusterwatch.agent.simulate import demo_simulation
from clusterwatch.cluster import SelfCheck
from clusterwatch.commands._docs import command_docs, usage
from tests.commands.test_cluster_commands import T0, THIRDS, Harness, msg

A, B, C = ("a" * 40, "b" * 40, "c" * 40)
_SEQ = itertools.count(10)
UP_CHECKS = {"listening": SelfCheck("UP"), "busFresh": SelfCheck("UP"),
             "eventLoop": SelfCheck("UP")}


class StatusHarness(Harness):
    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        # The tracker started on the real clock; the tests run on the fake one.
        self.server.health.started_ms = T0

    def cluster(self, **beat_fields: Any) -> None:
        """Three masters with a third of the slots each, and one heartbeat each."""
        batch = []
        for i, (node, span) in enumerate(zip((A, B, C), THIRDS, strict=True)):
            batch += [msg("hello", node, 1, 1, addr=f"10.0.0.{i + 1}:7000"),
                      msg("slots", node, 1, 2, ranges=[list(span)])]
        assert self.publish(*batch) == [b"applied"] * len(batch)
        for node in (A, B, C):
            self.heartbeat(node, **beat_fields)

    def heartbeat(self, node: str, **fields: Any) -> None:
        assert self.publish(msg("heartbeat", node, 1, next(_SEQ), **fields)) == [b"applied"]

    def later(self, ms: int) -> None:
        """`ms` later, with the nodes still speaking (a hello each, no heartbeat): they stay
        reachable, so what their old heartbeats said meets the status timeouts."""
        self.now += ms
        batch = [msg("hello", node, 1, next(_SEQ), addr=f"10.0.0.{i + 1}:7000")
                 for i, node in enumerate((A, B, C))]
        assert self.publish(*batch) == [b"applied"] * 3

    def error(self, *argv: str, proto: int = 2) -> str:
        value = self.reply(*argv, proto=proto)
        assert isinstance(value, hiredis.ReplyError), f"not an error: {value!r}"
        return str(value)

    def doc(self, *argv: str) -> Any:
        """A FORMAT JSON reply, parsed."""
        raw = self.call(*argv)
        assert isinstance(raw, bytes)
        return json.loads(raw)


@pytest.fixture
def h() -> Iterator[StatusHarness]:
    harness = StatusHarness(node_timeout=15_000)
    harness.server.self_checks = dict(UP_CHECKS)
    yield harness
    harness.close()


def running(**extra: Any) -> dict[str, Any]:
    return {"version": "2.0", "state": "running", **extra}


# --- HEALTH ---------------------------------------------------------------------------------


def test_health_plain_is_up_or_an_error_starting_with_the_status(h: StatusHarness) -> None:
    # Nothing known yet: not ready, cluster awareness down.
    assert h.error("HEALTH", "READY").startswith("DOWN ready: clusterAwareness DOWN (")
    assert h.error("HEALTH").startswith("DOWN health: ")
    assert h.call("HEALTH", "STARTUP") == b"UP"
    h.cluster()
    for probe in ("READY", "ready", "Readiness", "LIVE", "HEALTH", "STARTUP"):
        assert h.call("HEALTH", probe) == b"UP"
    assert h.call("HEALTH") == b"UP"
    assert h.raw("HEALTH", "READY", proto=2) == h.raw("HEALTH", "READY", proto=3) == b"+UP\r\n"


def test_ready_never_reverts_health_does(h: StatusHarness) -> None:
    h.cluster()
    assert h.call("HEALTH", "READY") == b"UP"
    h.now += 60_000  # every node silent for four node timeouts
    assert h.call("HEALTH", "READY") == b"UP"
    text = h.error("HEALTH")
    assert text.startswith("DOWN health: ")
    assert "clusterAwareness DOWN (none of 3 known nodes is reachable)" in text
    # LIVE tolerates the outage inside the 5-minute awareness window.
    assert h.call("HEALTH", "LIVE") == b"UP"
    h.now += 300_000
    assert h.error("HEALTH", "LIVE").startswith("DOWN live: livenessClusterAwareness DOWN")


def test_degraded_partitions(h: StatusHarness) -> None:
    h.cluster()
    h.heartbeat(A, partitions=[{"id": 1, "role": "leader", "health": "healthy"}])
    h.heartbeat(B, partitions=[{"id": 2, "role": "leader", "health": "unhealthy"}])
    assert h.error("HEALTH").startswith(
        "DEGRADED health: partitions DEGRADED (1 of 2 partitions without a healthy leader: 2)")
    verbose = h.reply("HEALTH", "VERBOSE", proto=3)
    assert verbose[b"status"] == b"DEGRADED"
    assert verbose[b"components"][b"partitions"] == {
        b"status": b"DEGRADED",
        b"details": {b"reason": b"1 of 2 partitions without a healthy leader: 2"}}
    # The node whose partition is unhealthy: DOWN (all its partitions unhealthy).
    assert h.error("HEALTH", "HEALTH", "NODE", B).startswith(f"DOWN health NODE {B}: partitions")
    assert h.call("HEALTH", "NODE", A) == b"UP"


def test_health_verbose_and_json_documents(h: StatusHarness) -> None:
    h.cluster()
    resp3 = h.reply("HEALTH", "READY", "VERBOSE", proto=3)
    assert resp3 == {b"status": b"UP", b"components": {b"readiness": {
        b"status": b"UP", b"details": {b"reason": f"ready since {T0}; once ready, never unready"
                                       .encode()}}}}
    resp2 = h.reply("HEALTH", "READY", "VERBOSE", proto=2)
    assert resp2[:2] == [b"status", b"UP"] and resp2[2] == b"components"
    assert h.doc("HEALTH", "READY", "FORMAT", "JSON") == {"status": "UP"}
    assert h.doc("HEALTH", "format", "json", "VERBOSE") == \
        h.server.health.evaluate(h.now, "health", self_checks=h.server.self_checks
                                 ).to_json(verbose=True)
    # VERBOSE answers a map even when the status is not UP; FORMAT JSON a document.
    h.now += 60_000
    assert h.reply("HEALTH", "VERBOSE", proto=3)[b"status"] == b"DOWN"
    assert h.doc("HEALTH", "FORMAT", "JSON") == {"status": "DOWN"}
    # A check without a reason has no details (Spring's document).
    components = h.call("HEALTH", "VERBOSE")
    assert dict(zip(components[3][::2], components[3][1::2], strict=True))[b"listening"] == \
        [b"status", b"UP"]


def test_health_exclude(h: StatusHarness) -> None:
    h.cluster()
    assert h.call("HEALTH", "READY") == b"UP"  # latches readiness
    h.now += 60_000
    assert h.error("HEALTH").startswith("DOWN")
    names = ("clusterAwareness", "partitionLeaderAwareness", "partitions", "clusterState",
             "nodes")
    assert h.call("HEALTH", "EXCLUDE", *names) == b"UP"
    verbose = h.reply("HEALTH", "EXCLUDE", *names, "VERBOSE", proto=3)
    assert set(verbose[b"components"]) == {b"readiness", b"listening", b"busFresh",
                                           b"eventLoop"}
    # The list ends at the next keyword; options in any order.
    assert h.reply("HEALTH", "VERBOSE", "EXCLUDE", "nodes", "FORMAT", "JSON") == \
        h.reply("HEALTH", "FORMAT", "JSON", "EXCLUDE", "nodes", "VERBOSE")
    node_doc = h.doc("HEALTH", "EXCLUDE", "partitions", "NODE", A, "VERBOSE", "FORMAT", "JSON")
    assert "partitions" not in node_doc["components"]
    assert "reachable" in node_doc["components"]


def test_health_self_checks_count(h: StatusHarness) -> None:
    h.cluster()
    h.server.self_checks = {**UP_CHECKS, "eventLoop": SelfCheck("DOWN", "loop lag 1500 ms")}
    assert h.error("HEALTH") == "DOWN health: eventLoop DOWN (loop lag 1500 ms)"
    assert h.call("HEALTH", "READY") == b"UP"


HEALTH_ERRORS = [
    (("HEALTH", "READYY"), "ERR unknown probe 'READYY', expected STARTUP, READY, LIVE or HEALTH"),
    (("HEALTH", "NODE", "nosuch"), "ERR unknown node 'nosuch'"),
    (("HEALTH", "READY", "EXCLUDE", "nosuch"),
     "ERR unknown check 'nosuch' for HEALTH READY; checks: listening, busFresh, "
     "clusterAwareness"),
    (("HEALTH", "NODE", A, "EXCLUDE", "busFresh"),
     f"ERR unknown check 'busFresh' for HEALTH HEALTH NODE {A}; checks: readiness, reachable, "
     "started, nodeState, partitions"),
    (("HEALTH", "FORMAT", "XML"), "ERR unknown format 'XML', the only format is JSON"),
    (("HEALTH", "VERBOSE", "VERBOSE"), "ERR syntax error"),
    (("HEALTH", "READY", "READY"), "ERR syntax error"),
    (("HEALTH", "NODE"), "ERR syntax error"),
    (("HEALTH", "NODE", A, "NODE", B), "ERR syntax error"),
    (("HEALTH", "EXCLUDE"), "ERR syntax error"),
    (("HEALTH", "EXCLUDE", "VERBOSE"), "ERR syntax error"),
    (("HEALTH", "EXCLUDE", "nodes", "EXCLUDE", "partitions"), "ERR syntax error"),
    (("HEALTH", "FORMAT"), "ERR syntax error"),
    (("HEALTH", "READY", "BOGUS"), "ERR syntax error"),
]


# --- STATUS SIMPLE --------------------------------------------------------------------------

SIMPLE_TABLE = [
    (["running", "running"], "+running"),
    # The answer names the instances that are not running (issue 24).
    (["running", "error"], f"-error (2 services; not all running: {B}/db error)"),
    (["running", "unknown", "error"],
     f"-error (3 services; not all running: {B}/db unknown, {C}/db error)"),
    (["running", "starting", "stopping"],
     f"-stopping (3 services; not all running: {B}/db starting, {C}/db stopping)"),
    (["running", "unknown", "starting"],
     f"-unknown (3 services; not all running: {B}/db unknown, {C}/db starting)"),
    (["running", "starting"], f"-starting (2 services; not all running: {B}/db starting)"),
]


@pytest.mark.parametrize(("states", "wire"), SIMPLE_TABLE)
def test_status_simple_follows_puppets_table(h: StatusHarness, states: list[str],
                                             wire: str) -> None:
    h.cluster()
    for node, state in zip((A, B, C), states, strict=False):
        h.heartbeat(node, services={"db": {"state": state}})
    for proto in (2, 3):
        assert h.raw("STATUS", "SIMPLE", proto=proto) == wire.encode() + b"\r\n"


def test_status_simple_no_services_is_puppets_200_unknown(h: StatusHarness) -> None:
    assert h.raw("STATUS", "SIMPLE") == b"+unknown\r\n"


def test_status_simple_by_name_timeout_and_not_found(h: StatusHarness) -> None:
    h.cluster()
    h.heartbeat(A, services={"db": running(), "web": {"state": "starting"}})
    h.heartbeat(B, services={"db": running()})
    assert h.call("STATUS", "SIMPLE", "db") == b"running"
    assert h.call("STATUS", "simple", f"{A}/db") == b"running"
    assert h.error("STATUS", "SIMPLE", "web") == (
        f"starting (1 service named web; not all running: {A}/web starting)")
    assert h.error("STATUS", "SIMPLE", "nosuch") == "ERR not found: nosuch"
    assert h.error("STATUS", "SIMPLE", f"{C}/db") == f"ERR not found: {C}/db"
    # Critical-level data older than 30 s (the default) is unknown; TIMEOUT stretches it.
    h.later(31_000)
    assert h.error("STATUS", "SIMPLE", "db").startswith("unknown (2 services named db;")
    assert h.call("STATUS", "SIMPLE", "db", "TIMEOUT", "60") == b"running"
    assert h.error("STATUS", "SIMPLE", "TIMEOUT", "60").startswith("starting (3 services;")


def test_status_simple_probe_reply_is_rendered_once(h: StatusHarness) -> None:
    h.cluster(services={"db": {"state": "error"}})
    ctx = h.ctx
    first = h.server.table.dispatch(ctx, [b"STATUS", b"SIMPLE"])
    assert h.server.table.dispatch(ctx, [b"STATUS", b"SIMPLE"]) is first


# --- STATUS SERVICES / SERVICE --------------------------------------------------------------


def _services(h: StatusHarness) -> None:
    h.cluster()
    h.heartbeat(A, services={"db": running(
        status={"critical": {"up": True}, "info": {"conns": 3}, "debug": {"lag_s": 0.25}},
        status_version=2,
        status_versions={"1": {"critical": {"old": True}}},
        alerts=[{"severity": "warning", "message": "disk 80% full"}])})
    h.heartbeat(B, services={"web": {"state": "starting", "version": "1.1",
                                     "status": {"critical": None}}})


def test_status_services_levels_and_types(h: StatusHarness) -> None:
    _services(h)
    resp3 = h.reply("STATUS", "SERVICES", proto=3)
    assert list(resp3) == [f"{A}/db".encode(), f"{B}/web".encode()]
    assert resp3[f"{A}/db".encode()] == {
        b"service_version": b"2.0", b"service_status_version": 2, b"detail_level": b"info",
        b"state": b"running", b"status": {b"up": True, b"conns": 3},
        b"active_alerts": [{b"severity": b"warning", b"message": b"disk 80% full"}]}
    assert resp3[f"{B}/web".encode()][b"status"] is None
    debug = h.reply("STATUS", "SERVICES", "level", "DEBUG", proto=3)
    assert debug[f"{A}/db".encode()][b"status"] == {b"up": True, b"conns": 3, b"lag_s": 0.25}
    critical = h.reply("STATUS", "SERVICES", "LEVEL", "critical", proto=3)
    assert critical[f"{A}/db".encode()][b"status"] == {b"up": True}
    # RESP2: flat arrays, booleans as integers, doubles as bulk strings.
    resp2 = h.reply("STATUS", "SERVICES", "LEVEL", "debug", proto=2)
    assert resp2[0] == f"{A}/db".encode()
    entry = resp2[1]
    assert entry[:6] == [b"service_version", b"2.0", b"service_status_version", 2,
                         b"detail_level", b"debug"]
    assert entry[9] == [b"up", 1, b"conns", 3, b"lag_s", b"0.25"]


def test_status_services_json_is_puppets_document(h: StatusHarness) -> None:
    _services(h)
    for args in ((), ("LEVEL", "debug"), ("TIMEOUT", "5", "LEVEL", "critical")):
        doc = h.doc("STATUS", "SERVICES", *args, "FORMAT", "JSON")
        level = dict(zip(args[::2], args[1::2], strict=True))
        view = h.server.services.services(h.now, level=level.get("LEVEL", "info"),
                                          timeout_s=int(level.get("TIMEOUT", 0)) or None)
        assert doc == json.loads(json.dumps(view.to_json()))
    raw = h.call("STATUS", "SERVICES", "FORMAT", "json")
    assert b" " not in raw.replace(b"disk 80% full", b"")  # compact


def test_status_services_timeout_reports_unknown(h: StatusHarness) -> None:
    _services(h)
    h.later(61_000)
    doc = h.doc("STATUS", "SERVICES", "FORMAT", "JSON")
    entry = doc[f"{A}/db"]
    assert entry["state"] == "unknown" and entry["active_alerts"] == []
    assert entry["status"].startswith("Status check timed out after 60 seconds")
    fresh = h.doc("STATUS", "SERVICES", "TIMEOUT", "120", "FORMAT", "JSON")
    assert fresh[f"{A}/db"]["state"] == "running"


def test_status_service(h: StatusHarness) -> None:
    _services(h)
    one = h.reply("STATUS", "SERVICE", "db", proto=3)
    assert one[b"service_name"] == f"{A}/db".encode()
    assert one[b"service_status_version"] == 2
    old = h.reply("STATUS", "SERVICE", f"{A}/db", "VERSION", "1", "LEVEL", "debug", proto=3)
    assert (old[b"service_status_version"], old[b"status"]) == (1, {b"old": True})
    doc = h.doc("STATUS", "SERVICE", "web", "FORMAT", "JSON")
    assert doc == {"service_version": "1.1", "service_status_version": 1,
                   "detail_level": "info", "state": "starting", "status": None,
                   "active_alerts": [], "service_name": f"{B}/web"}
    # Same name on two nodes: ambiguous, name the nodes.
    h.heartbeat(C, services={"db": running()})
    assert h.error("STATUS", "SERVICE", "db").startswith(
        f"ERR ambiguous service name 'db': reported by nodes {A}, {C}")


def test_status_service_renders_once_per_status_and_follows_every_change(
        h: StatusHarness) -> None:
    """A large status is rendered once while its entry shows the same data; a new
    heartbeat, another level or format, or the time-out each gives a new answer."""
    wide = {"info": {f"k{i}": [{"n": i, "deep": [[i]]}] for i in range(200)}}
    h.cluster()
    h.heartbeat(A, services={"db": running(status=wide)})
    first = h.server.table.dispatch(h.ctx, [b"STATUS", b"SERVICE", b"db"])
    again = h.server.table.dispatch(h.ctx, [b"STATUS", b"SERVICE", b"db"])
    assert again is first  # the encoded frame, not a second render
    assert h.reply("STATUS", "SERVICE", "db", proto=3)[b"status"][b"k7"] == [
        {b"n": 7, b"deep": [[7]]}]
    h.heartbeat(A, services={"db": running(status={"info": {"k7": "changed"}})})
    assert h.reply("STATUS", "SERVICE", "db", proto=3)[b"status"] == {b"k7": b"changed"}
    assert h.doc("STATUS", "SERVICE", "db", "FORMAT", "JSON")["status"] == {"k7": "changed"}
    assert h.reply("STATUS", "SERVICE", "db", "LEVEL", "critical", proto=3)[b"status"] is None
    h.later(61_000)
    stale = h.reply("STATUS", "SERVICE", "db", proto=3)
    assert stale[b"state"] == b"unknown"
    assert stale[b"status"].startswith(b"Status check timed out")


STATUS_ERRORS = [
    (("STATUS", "SERVICES", "LEVEL", "verbose"), "ERR Invalid level: verbose"),
    (("STATUS", "SERVICES", "TIMEOUT", "-5"),
     "ERR Invalid timeout. Timeout must be greater than zero but was -5"),
    (("STATUS", "SERVICES", "TIMEOUT", "0"),
     "ERR Invalid timeout. Timeout must be greater than zero but was 0"),
    (("STATUS", "SERVICES", "TIMEOUT", "soon"),
     "ERR Invalid timeout. Should be an integer but was soon"),
    (("STATUS", "SERVICES", "TIMEOUT", "1.5"),
     "ERR Invalid timeout. Should be an integer but was 1.5"),
    (("STATUS", "SERVICES", "FORMAT", "yaml"),
     "ERR unknown format 'yaml', the only format is JSON"),
    (("STATUS", "SERVICES", "LEVEL", "info", "LEVEL", "debug"), "ERR syntax error"),
    (("STATUS", "SERVICES", "LEVEL"), "ERR syntax error"),
    (("STATUS", "SERVICES", "VERSION", "1"), "ERR syntax error"),
    (("STATUS", "SERVICE", "db", "VERSION", "9"),
     f"ERR No status function with version 9 found for service {A}/db"),
    (("STATUS", "SERVICE", "db", "VERSION", "two"),
     "ERR Invalid service_status_version. Should be an integer but was two"),
    (("STATUS", "SERVICE", "nosuch"), "ERR not found: nosuch"),
    (("STATUS", "SERVICE", "db", "LEVEL", "x"), "ERR Invalid level: x"),
    (("STATUS", "SERVICE", "db", "TIMEOUT"), "ERR syntax error"),
    (("STATUS", "SERVICE"), "ERR wrong number of arguments for 'status|service' command"),
    (("STATUS", "SIMPLE", "db", "TIMEOUT", "-1"),
     "ERR Invalid timeout. Timeout must be greater than zero but was -1"),
    (("STATUS", "SIMPLE", "TIMEOUT", "x"), "ERR Invalid timeout. Should be an integer but was x"),
    (("STATUS", "SIMPLE", "nosuch"), "ERR not found: nosuch"),
    (("STATUS", "SIMPLE", "db", "LEVEL", "info"), "ERR syntax error"),
    (("STATUS", "SIMPLE", "db", "TIMEOUT", "5", "TIMEOUT", "6"), "ERR syntax error"),
    (("STATUS", "NODE", "nosuch"), "ERR unknown node 'nosuch'"),
    (("STATUS", "NODE", "nosuch", "FORMAT", "JSON"), "ERR unknown node 'nosuch'"),
    (("STATUS", "NODE", A, "FORMAT", "xml"), "ERR unknown format 'xml', the only format is JSON"),
    (("STATUS", "NODE", A, "VERBOSE"), "ERR syntax error"),
    (("STATUS", "NODES"), "ERR unknown subcommand 'NODES'. Try STATUS HELP."),
    (("CLUSTER", "STATUS", "FORMAT", "csv"), "ERR unknown format 'csv', the only format is JSON"),
    (("CLUSTER", "STATUS", "JSON"), "ERR syntax error"),
]


@pytest.mark.parametrize(("argv", "error"), STATUS_ERRORS + HEALTH_ERRORS)
def test_bad_input_is_a_clear_error_and_leaves_the_model_alone(
        h: StatusHarness, argv: tuple[str, ...], error: str) -> None:
    _services(h)
    model = h.server.model
    version, topology = model.version, model.topology_version
    for proto in (2, 3):
        assert h.error(*argv, proto=proto) == error
    assert (model.version, model.topology_version) == (version, topology)
    assert h.call("HEALTH", "READY") == b"UP"  # and the server still answers


# --- STATUS NODE ----------------------------------------------------------------------------


def test_status_node_for_a_monitored_node(h: StatusHarness) -> None:
    h.cluster(node_state="RUNNING", config_state="CONFIGURED", transaction_id="tx-9",
              serving=True, admin_serving=False, plugins_initialized=True, service_role="rt",
              thread_pool={"active": 3, "max": 8, "queued": 1},
              requests={"active": 1, "max": 4, "total": 99, "per_second": 12.5})
    resp3 = h.reply("STATUS", "NODE", A, proto=3)
    assert resp3 == {
        b"isReady": True, b"nodeState": b"RUNNING", b"clusterState": b"CONNECTED",
        b"configurationState": b"CONFIGURED", b"transactionId": b"tx-9", b"isServing": True,
        b"isAdminServing": False, b"pluginsInitialized": True, b"serviceRole": b"rt",
        b"threadPool": {b"active": 3, b"max": 8, b"queued": 1, b"utilizationRate": 0.375},
        b"httpRequests": {b"active": 1, b"max": 4, b"total": 99, b"utilizationRate": 0.25,
                          b"perSecond": 12.5}}
    assert all(type(resp3[key]) is bool for key in (b"isReady", b"isServing"))
    resp2 = h.reply("STATUS", "NODE", A, proto=2)
    assert resp2[:2] == [b"isReady", 1] and resp2[3] == b"RUNNING"
    assert resp2[-1] == [b"active", 1, b"max", 4, b"total", 99, b"utilizationRate", b"0.25",
                         b"perSecond", b"12.5"]
    doc = h.doc("STATUS", "NODE", A, "FORMAT", "JSON")
    assert list(doc) == ["isReady", "nodeState", "clusterState", "configurationState",
                         "transactionId", "isServing", "isAdminServing", "pluginsInitialized",
                         "serviceRole", "threadPool", "httpRequests"]
    assert doc["threadPool"]["utilizationRate"] == 0.375
    # Silent past the node timeout: disconnected, not ready, not serving.
    h.now += 20_000
    late = h.doc("STATUS", "NODE", A, "FORMAT", "JSON")
    assert (late["isReady"], late["clusterState"], late["isServing"]) == \
        (False, "DISCONNECTED", False)


def test_status_node_without_id_is_clusterwatch_itself(h: StatusHarness) -> None:
    resp3 = h.reply("STATUS", "NODE", proto=3)
    assert resp3[b"nodeState"] == b"RUNNING" and resp3[b"isReady"] is True
    assert resp3[b"serviceRole"] == b"clusterwatch"
    assert b"isAdminServing" not in resp3
    doc = h.doc("STATUS", "NODE", "FORMAT", "JSON")
    assert doc["nodeState"] == "RUNNING" and doc["configurationState"] == "CONFIGURED"
    assert doc["threadPool"] == {"active": 1, "max": 1, "queued": 0, "utilizationRate": 1.0}


# --- CLUSTER STATUS -------------------------------------------------------------------------


def test_cluster_status_is_ksqldbs_document(h: StatusHarness) -> None:
    h.cluster()
    h.heartbeat(A, ts_ms=T0 - 5, queries={"CTAS_Q_1": {
        "active_stores": ["store-1"], "active_partitions": [{"topic": "t", "partition": 0}]}},
        store_lags={"store-1": {"1": {"current_offset": 5, "end_offset": 9, "offset_lag": 4},
                                "0": {"current_offset": 9, "end_offset": 9, "offset_lag": 0}}})
    doc = h.doc("CLUSTER", "STATUS", "FORMAT", "JSON")
    assert doc == json.loads(json.dumps(h.server.cluster_status.cluster_status(h.now)))
    host = doc["clusterStatus"]["10.0.0.1:7000"]
    assert host == {
        "hostAlive": True, "lastStatusUpdateMs": T0,
        "activeStandbyPerQuery": {"CTAS_Q_1": {
            "activeStores": ["store-1"], "activePartitions": [{"topic": "t", "partition": 0}],
            "standByStores": [], "standByPartitions": []}},
        "hostStoreLags": {"stateStoreLags": {"store-1": {"lagByPartition": {
            "0": {"currentOffsetPosition": 9, "endOffsetPosition": 9, "offsetLag": 0},
            "1": {"currentOffsetPosition": 5, "endOffsetPosition": 9, "offsetLag": 4}},
            "size": 2}}, "updateTimeMs": T0 - 5}}
    # RESP: the inside of {"clusterStatus": ...}, host by host.
    resp3 = h.reply("CLUSTER", "STATUS", proto=3)
    assert list(resp3) == [b"10.0.0.1:7000", b"10.0.0.2:7000", b"10.0.0.3:7000"]
    assert resp3[b"10.0.0.1:7000"][b"hostAlive"] is True
    assert resp3[b"10.0.0.2:7000"][b"hostStoreLags"] == {b"stateStoreLags": {},
                                                         b"updateTimeMs": 0}
    resp2 = h.reply("cluster", "status", proto=2)
    assert resp2[0] == b"10.0.0.1:7000" and resp2[1][:4] == [b"hostAlive", 1,
                                                             b"lastStatusUpdateMs", T0]
    h.now += 20_000
    assert h.reply("CLUSTER", "STATUS", proto=3)[b"10.0.0.1:7000"][b"hostAlive"] is False


def test_demo_cluster_has_something_for_every_command(h: StatusHarness) -> None:
    sim = demo_simulation()
    outcomes = h.publish(*sim.initial())
    assert set(outcomes) == {b"applied"}
    assert h.call("HEALTH", "READY") == b"UP" and h.call("HEALTH") == b"UP"
    assert h.call("STATUS", "SIMPLE") == b"running"
    services = h.reply("STATUS", "SERVICES", "LEVEL", "debug", proto=3)
    assert len(services) == 12
    host = h.doc("CLUSTER", "STATUS", "FORMAT", "JSON")["clusterStatus"]["127.0.0.1:30001"]
    assert host["activeStandbyPerQuery"]["CTAS_ORDERS_BY_REGION_3"]["activeStores"] == [
        "Aggregate-Aggregate-Materialize"]
    assert host["hostStoreLags"]["stateStoreLags"]
    replica = h.doc("CLUSTER", "STATUS", "FORMAT", "JSON")["clusterStatus"]["127.0.0.1:30002"]
    assert replica["activeStandbyPerQuery"]["CTAS_ORDERS_BY_REGION_3"]["standByPartitions"]
    node = h.doc("STATUS", "NODE", sim.nodes[0].id, "FORMAT", "JSON")
    assert node["isReady"] is True and node["threadPool"]["max"] == 16
    assert h.reply("HEALTH", "VERBOSE", proto=3)[b"components"][b"partitions"][b"status"] == b"UP"


# --- authentication -------------------------------------------------------------------------


def test_health_needs_no_auth_but_details_do() -> None:
    harness = StatusHarness(node_timeout=15_000, requirepass="pw")
    try:
        harness.server.self_checks = dict(UP_CHECKS)
        harness.ctx.session.authenticated = False
        assert harness.error("STATUS", "SIMPLE") == "NOAUTH Authentication required."
        assert harness.error("HEALTH", "READY") == "DOWN ready (AUTH for details)"
        assert harness.error("HEALTH") == "DOWN health (AUTH for details)"
        for argv in (("HEALTH", "VERBOSE"), ("HEALTH", "READY", "NODE", A),
                     ("HEALTH", "FORMAT", "JSON"), ("HEALTH", "EXCLUDE", "nodes")):
            assert harness.error(*argv) == "NOAUTH Authentication required."
        assert harness.error("HEALTH", "BOGUS").startswith("ERR unknown probe")
        harness.ctx.session.authenticated = True
        harness.cluster()
        harness.ctx.session.authenticated = False
        assert harness.call("HEALTH", "READY") == b"UP"
        assert harness.call("HEALTH") == b"UP"
        harness.ctx.session.authenticated = True
        assert harness.call("HEALTH", "READY", "VERBOSE")[1] == b"UP"
    finally:
        harness.close()


# --- COMMAND DOCS / INFO --------------------------------------------------------------------


def _docs(h: StatusHarness, *names: str) -> dict[bytes, Any]:
    value = h.reply("COMMAND", "DOCS", *names, proto=3)
    assert isinstance(value, dict)
    return value


def test_command_docs_for_every_new_command(h: StatusHarness) -> None:
    docs = _docs(h, "status", "health", "cluster")
    status, health = docs[b"status"], docs[b"health"]
    for doc in (status, health):
        assert doc[b"since"] == b"0.1.0" and doc[b"group"] == b"status" and doc[b"summary"]
    subs = status[b"subcommands"]
    assert set(subs) == {b"status|services", b"status|service", b"status|simple",
                         b"status|node", b"status|help"}
    for name in (b"status|services", b"status|service", b"status|simple", b"status|node"):
        assert subs[name][b"group"] == b"status" and subs[name][b"since"] == b"0.1.0"
        assert subs[name][b"summary"] and subs[name][b"arguments"]
    cluster_status = docs[b"cluster"][b"subcommands"][b"cluster|status"]
    assert cluster_status[b"group"] == b"status" and cluster_status[b"summary"]
    args = {arg[b"name"]: arg for arg in health[b"arguments"]}
    assert args[b"probe"][b"type"] == b"oneof"
    assert [a[b"token"] for a in args[b"probe"][b"arguments"]] == [
        b"STARTUP", b"READY", b"LIVE", b"HEALTH"]
    assert args[b"node-id"][b"token"] == b"NODE" and args[b"node-id"][b"flags"] == [b"optional"]
    exclude = args[b"exclude"]
    assert exclude[b"arguments"][0][b"token"] == b"EXCLUDE"
    assert exclude[b"arguments"][1][b"flags"] == [b"multiple"]
    services_args = {arg[b"name"]: arg for arg in subs[b"status|services"][b"arguments"]}
    assert services_args[b"level"][b"arguments"][0][b"token"] == b"LEVEL"
    assert services_args[b"seconds"][b"token"] == b"TIMEOUT"
    assert services_args[b"format"][b"flags"] == [b"optional"]


def test_usage_lines(h: StatusHarness) -> None:
    lines = [line.decode() for line in h.call("STATUS", "HELP")]
    # MAXAGE (issue 24) on every STATUS reading of node data and on HEALTH.
    assert ("SERVICES [LEVEL critical|info|debug] [TIMEOUT seconds] [MAXAGE ms] "
            "[FORMAT JSON]") in lines
    assert ("SERVICE name [LEVEL critical|info|debug] [VERSION version] [TIMEOUT seconds] "
            "[MAXAGE ms] [FORMAT JSON]") in lines
    assert "SIMPLE [name] [TIMEOUT seconds] [MAXAGE ms]" in lines
    assert "NODE [node-id] [MAXAGE ms] [FORMAT JSON]" in lines
    spec = h.server.table.commands[b"health"]
    assert usage(spec) == ("HEALTH [STARTUP|READY|LIVE|HEALTH] [NODE node-id] [VERBOSE] "
                           "[EXCLUDE check [check ...]] [MAXAGE ms] [FORMAT JSON]")
    assert command_docs(spec).items[0] == ("summary", spec.summary)


def test_command_info_flags(h: StatusHarness) -> None:
    info = {entry[0]: entry for entry in h.call("COMMAND", "INFO", "health", "status|simple",
                                               "status|services", "cluster|status")}
    assert set(info[b"health"][2]) == {b"loading", b"stale", b"fast", b"no_auth"}
    assert set(info[b"status|simple"][2]) == {b"loading", b"stale", b"fast"}
    assert b"no_auth" not in info[b"status|services"][2]
    assert info[b"cluster|status"][1] == -2
