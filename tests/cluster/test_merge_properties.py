"""Property tests of the merge rules over generated per-node message scripts."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import (
    NUM_SLOTS,
    ClusterModel,
    ModelConfig,
    NodeState,
    NodeStateChanged,
)
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    brute_force_info,
    encode,
    heartbeat,
    info_fields,
    views,
)

NODE_IDS = ("a", "b", "c", "d")
CONFIG = ModelConfig(node_timeout_ms=TIMEOUT)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Script = dict[str, list[bytes]]

small_ranges = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=3,
)
big_ranges = st.sampled_from([[(0, NUM_SLOTS - 1)], [(0, 8191)], [(8192, NUM_SLOTS - 1)]])


def bodies(node: str) -> st.SearchStrategy[dict[str, Any]]:
    others = [n for n in NODE_IDS if n != node]
    hello = st.builds(
        lambda port, master: {
            "type": "hello",
            "addr": f"10.0.0.1:{port}",
            **({"role": "replica", "replicaof": master} if master else {}),
        },
        st.integers(7000, 7003),
        st.none() | st.sampled_from(others),
    )
    heartbeat = st.builds(
        lambda state, failing, flags, forgets: {
            "type": "heartbeat",
            **({"node_state": state} if state else {}),
            **({"failing": failing} if failing is not None else {}),
            # Which of them the sender flags FAIL (rule 5), when it says.
            **({"failed": [n for n, flag in zip(failing, flags, strict=False) if flag]}
               if failing and flags is not None else {}),
            # An id none of the nodes has: forgetting is for good (rule 8), not for here.
            **({"forgotten": ["zz"]} if forgets else {}),
        },
        st.none() | st.sampled_from(["RUNNING", "STOPPING"]),
        st.none() | st.lists(st.sampled_from(others), unique=True, max_size=3),
        st.none() | st.lists(st.booleans(), min_size=3, max_size=3),
        st.booleans(),
    )
    claim = st.builds(
        lambda ranges, released, moving: {
            "type": "slots",
            "ranges": [list(r) for r in ranges],
            "released": [list(r) for r in released if not any(
                r[0] <= end and start <= r[1] for start, end in ranges)],
            **({"migrating" if moving[0] else "importing": {str(moving[1]): moving[2]}}
               if moving else {}),
        },
        small_ranges | big_ranges,
        small_ranges,
        st.none() | st.tuples(st.booleans(), st.integers(0, 60), st.sampled_from(others)),
    )
    report = st.sampled_from(others).map(
        lambda target: {"type": "fail_report", "target": target, "state": "pfail"}
    )
    return st.one_of(hello, heartbeat, heartbeat, claim, claim, report, st.just({"type": "leave"}))


@st.composite
def node_script(draw: st.DrawFn, node: str) -> list[bytes]:
    epoch = draw(st.integers(0, 3))
    seq = draw(st.integers(0, 2))
    out = []
    for bump, body in draw(
        st.lists(st.tuples(st.booleans(), bodies(node)), min_size=1, max_size=5)
    ):
        if bump:
            epoch, seq = epoch + draw(st.integers(1, 2)), 0
        else:
            seq += draw(st.integers(1, 2))
        out.append(encode({"v": 1, "node": node, "epoch": epoch, "seq": seq, **body}))
    return out


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    nodes = draw(st.lists(st.sampled_from(NODE_IDS), min_size=1, max_size=4, unique=True))
    return {node: draw(node_script(node)) for node in nodes}


@st.composite
def interleaving(draw: st.DrawFn, script: Script) -> list[bytes]:
    """One delivery order that keeps each node's own order."""
    labels = draw(st.permutations([node for node, msgs in script.items() for _ in msgs]))
    cursors = dict.fromkeys(script, 0)
    order = []
    for node in labels:
        order.append(script[node][cursors[node]])
        cursors[node] += 1
    return order


def deliver(messages: list[bytes], step_ms: int = 100) -> tuple[ClusterModel, int]:
    model = ClusterModel(CONFIG)
    now = T0
    for data in messages:
        assert model.publish(data, now).kind == "applied"
        now += step_ms
    return model, now


def epoch_of(data: bytes) -> int:
    epoch = msgspec.json.decode(data)["epoch"]
    assert isinstance(epoch, int)
    return epoch


def ever_failed(model: ClusterModel) -> bool:
    return any(isinstance(e, NodeStateChanged) and e.new is NodeState.FAIL
               for e in model.drain_events())


def evidence_free_views(model: ClusterModel, now: int) -> tuple[Any, ...]:
    """The views without what failure states change: flags `fail?`/`fail`, the link, the
    slot counts per state, the cluster state, SLOTS' replicas and SHARDS' health."""
    lines = []
    for line in model.cluster_nodes_text(now).splitlines():
        f = line.split(" ")
        flags = ",".join(flag for flag in f[2].split(",") if flag not in ("fail?", "fail"))
        lines.append([f[0], f[1], flags, f[3], f[6], *f[8:]])
    fields = info_fields(model.cluster_info_text(now))
    kept = ("cluster_slots_assigned", "cluster_known_nodes", "cluster_size",
            "cluster_current_epoch")
    return (
        lines,
        {name: fields[name] for name in kept},
        [(row.start, row.end, row.master) for row in model.cluster_slots(now)],
        {n.id: model.count_failure_reports(n.id, now) for n in model.nodes()},
    )


@FAST
@given(st.data(), scripts())
def test_rule4_owners_epochs_roles_and_reports_do_not_depend_on_the_order(
    data: st.DataObject, script: Script
) -> None:
    forward = [msg for node in sorted(script) for msg in script[node]]
    backward = [msg for node in sorted(script, reverse=True) for msg in script[node]]
    reference, end = deliver(forward)
    expected = evidence_free_views(reference, end)
    for order in (backward, data.draw(interleaving(script))):
        model, _ = deliver(order)
        assert evidence_free_views(model, end) == expected


@FAST
@given(st.data(), scripts())
def test_rule4_any_interleaving_gives_the_same_views_unless_a_fail_outlived_its_quorum(
    data: st.DataObject, script: Script
) -> None:
    """Where no node was ever `fail` in either interleaving, everything is the same; where
    one was, the latch is history (test below)."""
    forward = [msg for node in sorted(script) for msg in script[node]]
    reference, end = deliver(forward)
    expected = views(reference, end, mask_pong=True)
    reference_failed = ever_failed(reference)
    for order in ([msg for node in sorted(script, reverse=True) for msg in script[node]],
                  data.draw(interleaving(script))):
        model, _ = deliver(order)
        if ever_failed(model) or reference_failed:
            continue
        assert views(model, end, mask_pong=True) == expected
        assert model.cluster_info_text(end) == reference.cluster_info_text(end)


def last_lists(script: Script) -> dict[str, tuple[int, int, dict[str, list[str]]]]:
    """Each node still known at the end: its last `(epoch, seq)` and `failing` and `failed`
    lists (the ones it sent)."""
    known: dict[str, tuple[int, int, dict[str, list[str]]]] = {}
    for node, messages in script.items():
        lists: dict[str, list[str]] = {}
        for data in messages:
            doc = msgspec.json.decode(data)
            if doc["type"] == "leave":
                lists = {}
            elif doc["type"] == "heartbeat":
                lists = {k: doc[k] for k in ("failing", "failed") if k in doc}
            known[node] = (doc["epoch"], doc["seq"], lists)
        if msgspec.json.decode(messages[-1])["type"] == "leave":
            del known[node]
    return known


def settle(model: ClusterModel, script: Script, end: int) -> int:
    """Every node still known speaks again every half timeout from past the report validity
    to past the undo time after it, restating its last `failing` and `failed` lists; the last
    time."""
    known = last_lists(script)
    now = end + 2 * TIMEOUT + 1
    for step in range(1, 8):
        for node in sorted(known):
            epoch, seq, lists = known[node]
            outcome = model.publish(heartbeat(node, epoch, seq + step, **lists), now)
            assert outcome.kind == "applied"
        now += TIMEOUT // 2
    return now


@FAST
@given(st.data(), scripts())
def test_rule4_once_every_node_spoke_past_the_undo_time_any_interleaving_is_the_same(
    data: st.DataObject, script: Script
) -> None:
    forward = [msg for node in sorted(script) for msg in script[node]]
    reference, end = deliver(forward)
    last = settle(reference, script, end)
    expected = views(reference, last, mask_pong=True)
    for order in ([msg for node in sorted(script, reverse=True) for msg in script[node]],
                  data.draw(interleaving(script))):
        model, _ = deliver(order)
        settle(model, script, end)
        assert views(model, last, mask_pong=True) == expected


@FAST
@given(st.data(), scripts())
def test_rule1_redelivery_changes_nothing(data: st.DataObject, script: Script) -> None:
    messages = data.draw(interleaving(script))
    model, end = deliver(messages)
    before, version = views(model, end), model.version
    # A stale copy from a `fail?` node is noted (its verdict becomes `stale`, the one
    # version it may add: cluster/liveness.py); nothing else moves.
    pfail = {n.id for n in model.nodes() if n.state is NodeState.PFAIL}
    again = data.draw(st.lists(st.sampled_from(messages), max_size=10))
    outcomes = [model.publish(msg, end) for msg in again]
    assert all(o.kind == "stale" for o in outcomes)
    noted = {msgspec.json.decode(msg)["node"] for msg in again} & pfail
    assert (views(model, end), model.version) == (before, version + len(noted))
    assert model.counters().stale == len(again)


@FAST
@given(st.data(), scripts())
def test_rule1_stale_messages_are_counted_and_never_applied(
    data: st.DataObject, script: Script
) -> None:
    everything = [msg for msgs in script.values() for msg in msgs]
    chaos = data.draw(
        st.permutations(everything + data.draw(st.lists(st.sampled_from(everything))))
    )
    model = ClusterModel(CONFIG)
    stale = 0
    for msg in chaos:
        version, text = model.version, model.cluster_nodes_text(T0)
        outcome = model.publish(msg, T0)
        assert outcome.kind in ("applied", "stale")
        if outcome.kind == "stale":
            stale += 1
            assert (model.version, model.cluster_nodes_text(T0)) == (version, text)
        else:
            assert model.version > version
    assert model.counters().stale == stale
    assert model.counters().applied == len(chaos) - stale


@FAST
@given(st.data(), scripts())
def test_rule2_current_epoch_never_decreases(data: st.DataObject, script: Script) -> None:
    everything = [msg for msgs in script.values() for msg in msgs]
    model = ClusterModel(CONFIG)
    highest = 0
    for msg in data.draw(st.permutations(everything)):
        before = model.current_epoch
        if model.publish(msg, T0).kind == "applied":
            highest = max(highest, epoch_of(msg))
        assert before <= model.current_epoch == highest


@FAST
@given(
    st.data(),
    scripts(),
    st.lists(st.integers(0, 3 * TIMEOUT), min_size=30, max_size=30),
)
def test_slot_counts_always_add_up_and_match_a_recount(
    data: st.DataObject, script: Script, gaps: list[int]
) -> None:
    model = ClusterModel(CONFIG)
    now = T0
    for msg, gap in zip(data.draw(interleaving(script)), gaps, strict=False):
        model.publish(msg, now)
        for probe in (now, now + gap // 2):
            fields = info_fields(model.cluster_info_text(probe))
            parts = ("ok", "pfail", "fail")
            assert sum(int(fields[f"cluster_slots_{p}"]) for p in parts) == int(
                fields["cluster_slots_assigned"]
            )
            recount = brute_force_info(model, probe)
            assert {k: fields[k] for k in recount} == {k: str(v) for k, v in recount.items()}
        now += gap


@FAST
@given(st.data(), scripts(), st.lists(st.integers(0, 2 * TIMEOUT), min_size=30, max_size=30))
def test_refresh_frequency_does_not_change_the_model(
    data: st.DataObject, script: Script, gaps: list[int]
) -> None:
    messages = data.draw(interleaving(script))
    lazy, eager = ClusterModel(CONFIG), ClusterModel(CONFIG)
    now = T0
    for msg, gap in zip(messages, gaps, strict=False):
        assert lazy.publish(msg, now) == eager.publish(msg, now)
        for tick in range(now, now + gap, 1000):
            eager.refresh(tick)
        now += gap
    end = now + data.draw(st.integers(0, 4 * TIMEOUT))
    assert views(lazy, end) == views(eager, end)
