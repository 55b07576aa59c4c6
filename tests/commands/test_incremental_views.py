"""The per-node incremental replies equal a from-scratch render after every step.

CLUSTER NODES, CLUSTER STATUS and STATUS SERVICES keep their replies as per-node parts and
re-encode only the nodes the model logged as changed. Random message sequences (hello,
heartbeat with services, partitions, queries and store lags, slots, fail reports, leave,
stale copies, bursts of heartbeats from several nodes) and clock advances (past the node
timeout, past the services' timeouts) drive one server through the command table; after
every step (or every few steps, so that several changes pile up) each reply, in RESP2,
RESP3 and FORMAT JSON, must be byte for byte what a fresh render of the same model gives:

- CLUSTER NODES: a fresh `Views` over the model's state;
- CLUSTER STATUS: a fresh `ClusterStatusView`, encoded whole;
- HEALTH [probe] VERBOSE: a second `HealthTracker`, fed the same calls, whose cluster facts
  are rebuilt from scratch and whose `observe` looks at every node, every time;
- STATUS SERVICES: `OldServices`, the report as the view built it before (a scan of every
  node per model version, cached until the version moves or a fresh entry turns stale, so
  a stale entry's age is the one at that scan), encoded whole;
- STATUS SIMPLE of everything: `OldServices.simple`, a look at every node's states.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import ClusterModel
from clusterwatch.cluster.clusterstatus import ClusterStatusView
from clusterwatch.cluster.health import HealthTracker
from clusterwatch.cluster.healthfacts import FactsKeeper
from clusterwatch.cluster.records import Outcome
from clusterwatch.cluster.services import (
    NAMED,
    Level,
    SimpleStatus,
    _entry,
    _node_services,
    _NodeServices,
    summarize_states,
)
from clusterwatch.cluster.views import Views
from clusterwatch.commands._statusreply import json_bulk, to_reply
from clusterwatch.commands.bus import outcome_reply
from clusterwatch.resp import Verbatim, encode
from tests.commands.test_cluster_commands import T0, Harness, msg

NODES = ("n1", "n2", "n3", "n4")
LEVELS = ("critical", "info", "debug")
SERVICE_OPTIONS: tuple[tuple[Level, int | None], ...] = (
    ("critical", None), ("info", None), ("debug", None), ("debug", 2), ("info", 1))
_FOREVER = 2**63


class OldServices:
    """STATUS SERVICES' document as the view computed it before per-node listings."""

    def __init__(self, model: ClusterModel) -> None:
        self.model = model
        self.by_node: dict[str, _NodeServices] = {}
        self.version = -1
        self.cache: dict[tuple[str, int], tuple[int, int, dict[str, Any]]] = {}

    def doc(self, now: int, level: Level, timeout_s: int | None) -> dict[str, Any]:
        timeout = timeout_s or (30 if level == "critical" else 60)
        key = (level, timeout)
        if self.version == self.model.version:
            hit = self.cache.get(key)
            if hit is not None and hit[0] <= now < hit[1]:
                return hit[2]
        else:
            self.cache.clear()
            self.version = self.model.version
        nodes = {}
        for node_id, _state, _seen, beat, received, _addr in self.model.node_rows():
            if beat is None or not beat.services or received is None:
                continue
            old = self.by_node.get(node_id)
            same = old is not None and old.heartbeat is beat
            nodes[node_id] = old if same else _node_services(node_id, beat, received)
        self.by_node = nodes
        flip = _FOREVER
        doc: dict[str, Any] = {}
        for node_id in sorted(nodes):
            node = nodes[node_id]
            if node.received_ms + timeout * 1000 >= now:
                flip = min(flip, node.received_ms + timeout * 1000 + 1)
            live = self.model.current_liveness(node_id)
            down = None if live is None or live.reachable else live
            for inst in node.instances:
                if down is not None:  # the node's verdict, whatever the timeout
                    entry = _entry(inst, level, None, timeout, inst.received_ms, down=down)
                else:
                    entry = _entry(inst, level, None, timeout, now)
                doc[entry.name] = entry.to_json()
        self.cache[key] = (now, flip, doc)
        return doc

    def simple(self, now: int, timeout_s: int | None) -> SimpleStatus:
        """STATUS SIMPLE as it was computed before the tally: a look at every node."""
        self.doc(now, "critical", timeout_s)  # brings `by_node` to the model's version
        timeout_ms = (timeout_s or 30) * 1000
        states: set[str] = set()
        named: list[tuple[str, str, str]] = []
        for node_id in sorted(self.by_node):
            node = self.by_node[node_id]
            live = self.model.current_liveness(node_id)
            fresh = node.received_ms + timeout_ms >= now
            for inst in node.instances:
                if live is not None and not live.reachable:
                    why = (inst.key, "unknown", f"node {live.verdict} since {live.since_ms}")
                elif not fresh:
                    why = (inst.key, "unknown", f"status older than {timeout_ms} ms, "
                           f"received at {inst.received_ms}")
                elif inst.status.state != "running":
                    why = (inst.key, inst.status.state, "reported")
                else:
                    states.add("running")
                    continue
                states.add(why[1])
                named.append(why)
        count = sum(len(node.instances) for node in self.by_node.values())
        code = 200 if states <= {"running"} else 503
        return SimpleStatus(summarize_states(states), code, count, tuple(named[:NAMED]),
                            len(named))


# --- messages -------------------------------------------------------------------------------

_status = st.fixed_dictionaries({}, optional={
    "critical": st.sampled_from([None, {"a": 1}, {"a": 2, "b": [1, 2]}]),
    "info": st.sampled_from([None, {"b": "x"}, "text", 0.5]),
    "debug": st.sampled_from([None, {"c": True}, {"a": None}]),
})
_service = st.fixed_dictionaries(
    {"state": st.sampled_from(["running", "error", "starting", "stopping", "unknown"])},
    optional={
        "version": st.sampled_from(["1.0", "2.1"]),
        "status_version": st.integers(1, 2),
        "status": _status,
        "alerts": st.lists(st.fixed_dictionaries({"severity": st.sampled_from(["warning"]),
                                                  "message": st.sampled_from(["m", "é"])}),
                           max_size=2),
    })
_heartbeat = st.fixed_dictionaries({}, optional={
    "services": st.dictionaries(st.sampled_from(["api", "db", "web"]), _service, max_size=3),
    "node_state": st.sampled_from(["RUNNING", "BOOTING", "ERROR"]),
    "partitions": st.lists(st.fixed_dictionaries({
        "id": st.integers(0, 2), "role": st.sampled_from(["leader", "follower"]),
        "health": st.sampled_from(["healthy", "unhealthy"])}), max_size=2),
    "queries": st.dictionaries(st.sampled_from(["q1", "q2"]), st.fixed_dictionaries({}, optional={
        "active_stores": st.lists(st.sampled_from(["s1", "s2"]), max_size=2),
        "active_partitions": st.lists(st.fixed_dictionaries(
            {"topic": st.just("t"), "partition": st.integers(0, 3)}), max_size=2)}), max_size=2),
    "store_lags": st.dictionaries(st.sampled_from(["s1"]), st.dictionaries(
        st.sampled_from(["0", "3", "10"]), st.fixed_dictionaries(
            {"current_offset": st.integers(0, 9), "end_offset": st.integers(0, 9),
             "offset_lag": st.integers(0, 9)}), max_size=2), max_size=1),
    "ts_ms": st.integers(0, 10**6),
})
_body = st.one_of(
    st.fixed_dictionaries({"type": st.just("hello"),
                           "addr": st.sampled_from(["10.0.0.1:7000", "10.0.0.2:7000",
                                                    "10.0.0.1:7000@17001"])},
                          optional={"hostname": st.sampled_from(["h1", "h2"]),
                                    "role": st.just("replica"),
                                    "replicaof": st.sampled_from(NODES)}),
    _heartbeat.map(lambda fields: {"type": "heartbeat", **fields}),
    _heartbeat.map(lambda fields: {"type": "heartbeat", **fields}),
    st.sampled_from([[[0, 8191]], [[8192, 16383]], [[0, 16383]], []]).map(
        lambda ranges: {"type": "slots", "ranges": ranges}),
    st.sampled_from(NODES).map(lambda target: {"type": "fail_report", "target": target,
                                               "state": "fail"}),
    st.just({"type": "leave"}),
)
_step = st.one_of(
    st.tuples(st.just("msg"), st.sampled_from(NODES), _body, st.integers(0, 9)),
    st.tuples(st.just("clock"), st.sampled_from([1, 150, 1200, 2500, 31_000, 61_000])),
    # a heartbeat from several nodes at once: many parts change within one topology
    st.tuples(st.just("burst"), st.lists(st.tuples(st.sampled_from(NODES), _heartbeat),
                                         min_size=2, max_size=4)),
)


# --- the replies ------------------------------------------------------------------------------

def _requests() -> Iterator[tuple[tuple[str, ...], str]]:
    yield ("CLUSTER", "NODES"), "nodes"
    yield ("CLUSTER", "STATUS"), "status"
    yield ("CLUSTER", "STATUS", "FORMAT", "JSON"), "status-json"
    for level, timeout in SERVICE_OPTIONS:
        args = ("STATUS", "SERVICES", "LEVEL", level)
        if timeout is not None:
            args += ("TIMEOUT", str(timeout))
        yield args, "services"
        yield (*args, "FORMAT", "JSON"), "services-json"


def _expected(h: Harness, old: OldServices, args: tuple[str, ...], kind: str,
              proto: int) -> bytes:
    from clusterwatch.commands.cluster import myself_line

    model = h.server.model
    now = h.server.model_now_ms()
    model.refresh(now)
    if kind == "nodes":
        text = Views(model._state).cluster_nodes()
        return encode(Verbatim(myself_line(h.ctx) + text), proto)  # type: ignore[arg-type]
    if kind.startswith("status"):
        doc = ClusterStatusView(model).cluster_status(now)
        if kind == "status-json":
            return encode(json_bulk(doc), proto)  # type: ignore[arg-type]
        return encode(to_reply(doc["clusterStatus"]), proto)  # type: ignore[arg-type]
    level: Level = args[3]  # type: ignore[assignment]
    timeout = int(args[5]) if len(args) > 5 and args[4] == "TIMEOUT" else None
    services = old.doc(now, level, timeout)
    if kind == "services-json":
        return encode(json_bulk(services), proto)  # type: ignore[arg-type]
    return encode(to_reply(services), proto)  # type: ignore[arg-type]


def _check_health(h: Harness, ref: HealthTracker) -> None:
    """The server's tracker (incremental facts and observe) against `ref`, made to rebuild
    everything from scratch, both fed the same calls."""
    now = h.server.model_now_ms()
    checks = h.server.self_checks
    ref._facts = FactsKeeper(h.server.model)
    ref._observed_cursor = -1
    h.server.health.observe(now, checks)
    ref.observe(now, checks)
    assert h.server.health._node_ready_ms == ref._node_ready_ms
    assert h.server.health._cluster_facts(now) == ref._cluster_facts(now)
    for probe in ("HEALTH", "LIVE", "STARTUP"):
        for proto in (2, 3):
            got = h.raw("HEALTH", probe, "VERBOSE", proto=proto)
            report = ref.evaluate(now, probe.lower(), self_checks=checks)
            assert got == encode(to_reply(report.to_json(verbose=True)), proto)  # type: ignore[arg-type]


_RUN = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=8, max_size=40))
def test_replies_equal_a_from_scratch_render_after_every_step(
    steps: list[tuple[Any, ...]]
) -> None:
    h = Harness(node_timeout=1000, fail_after=2000)
    try:
        old = OldServices(h.server.model)
        h.server.health.started_ms = T0
        ref = HealthTracker(h.server.model, started_ms=T0, config=h.server.health.config)
        seqs = {node: [1, 0] for node in NODES}
        # One run in two asks for the replies only every fourth step; one in three asks in
        # one protocol at a time, so the other's frame falls behind and catches up.
        run = next(_RUN)
        every = 1 + run % 2 * 3
        one_at_a_time = run % 3 == 0
        for i, step in enumerate(steps):
            if step[0] == "clock":
                h.now += step[1]
            elif step[0] == "burst":
                for node, fields in step[1]:
                    seqs[node][1] += 1
                    h.publish(msg("heartbeat", node, *seqs[node], **fields))
            else:
                _kind, node, body, skew = step
                pair = seqs[node]
                if skew == 0:
                    pair[0] += 1  # a new epoch
                    pair[1] = 0
                pair[1] += 1
                seq = pair[1] - 2 if skew == 1 and pair[1] > 2 else pair[1]  # a stale copy
                h.publish(msg(body["type"], node, pair[0], seq,
                              **{k: v for k, v in body.items() if k != "type"}))
            if i % every and i != len(steps) - 1:
                continue
            _check_health(h, ref)
            now = h.server.model_now_ms()
            for timeout_s in (None, 2):
                got_simple = h.server.services.simple(now, timeout_s=timeout_s)
                assert got_simple == old.simple(now, timeout_s), timeout_s
            for level, timeout_s in SERVICE_OPTIONS:
                report = h.server.services.services(now, level=level, timeout_s=timeout_s)
                states = [entry["state"] for entry in old.doc(now, level, timeout_s).values()]
                assert report.http_status == (200 if set(states) <= {"running"} else 503)
            last = i == len(steps) - 1
            protos = (2, 3) if last or not one_at_a_time else ((2,) if i % 5 else (3,))
            for args, kind in _requests():
                for proto in protos:
                    got = h.raw(*args, proto=proto)
                    want = _expected(h, old, args, kind, proto)
                    assert got == want, (args, proto, got[:400], want[:400])
    finally:
        h.close()


def _fifty_nodes(h: Harness) -> list[str]:
    """Fifty nodes, each with a hello and a heartbeat with one running service."""
    nodes = [f"node{i:03}" for i in range(50)]
    svc = {"api": {"state": "running", "status": {"debug": {"n": 1}}}}
    h.publish(*(msg("hello", n, 1, 1, addr=f"10.0.{i}.1:7000") for i, n in enumerate(nodes)))
    h.publish(*(msg("heartbeat", n, 1, 2, services=svc) for n in nodes))
    return nodes


def test_the_parts_follow_a_single_heartbeat_among_many() -> None:
    """A heartbeat changes one node's part: the reply changes there and nowhere else."""
    h = Harness(node_timeout=60_000)
    try:
        nodes = _fifty_nodes(h)
        first = {args: h.raw(*args, proto=3) for args, _kind in _requests()}
        h.now += 5
        svc2 = {"api": {"state": "error", "status": {"debug": {"n": 2}}}}
        h.publish(msg("heartbeat", nodes[7], 1, 3, services=svc2))
        old = OldServices(h.server.model)
        for args, kind in _requests():
            got = h.raw(*args, proto=3)
            assert got == _expected(h, old, args, kind, 3)
            assert got != first[args]
    finally:
        h.close()


def test_a_reply_queued_in_multi_keeps_its_content() -> None:
    """A map reply read after its parts moved on (EXEC encodes its replies at the end) is
    the reply as it was, in either protocol."""
    h = Harness(node_timeout=60_000)
    try:
        nodes = _fifty_nodes(h)
        requests = [(args, kind) for args, kind in _requests() if kind != "nodes"]
        for args, _kind in requests:
            h.raw(*args, proto=2)
        for proto in (2, 3):
            h.now += 5
            seq = 3 + 2 * proto
            svc2 = {"api": {"state": "error", "status": {"debug": {"n": seq}}}}
            h.publish(msg("heartbeat", nodes[7], 1, seq, services=svc2))
            old = OldServices(h.server.model)
            before = [_expected(h, old, args, kind, proto) for args, kind in requests]
            h.raw("MULTI", proto=proto)
            for args, _kind in requests:
                h.raw(*args, proto=proto)
            h.raw("BUS", "PUBLISH", msg("heartbeat", nodes[8], 1, seq + 1, services=svc2),
                  proto=proto)
            for args, _kind in requests:
                h.raw(*args, proto=proto)
            got = h.raw("EXEC", proto=proto)
            after = [_expected(h, old, args, kind, proto) for args, kind in requests]
            head = b"*%d\r\n" % (2 * len(requests) + 1)
            published = encode([outcome_reply(Outcome("applied"))], proto)  # type: ignore[arg-type]
            assert got == b"".join((head, *before, published, *after))
    finally:
        h.close()

