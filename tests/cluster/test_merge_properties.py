"""Property tests of the merge rules over generated per-node message scripts."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import NUM_SLOTS, ClusterModel, ModelConfig
from tests.cluster.clusterkit import T0, TIMEOUT, brute_force_info, encode, info_fields, views

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
        lambda state: {"type": "heartbeat", **({"node_state": state} if state else {})},
        st.none() | st.sampled_from(["RUNNING", "STOPPING"]),
    )
    claim = (small_ranges | big_ranges).map(
        lambda ranges: {"type": "slots", "ranges": [list(r) for r in ranges]}
    )
    report = st.sampled_from(others).map(
        lambda target: {"type": "fail_report", "target": target, "state": "pfail"}
    )
    return st.one_of(hello, heartbeat, claim, claim, report, st.just({"type": "leave"}))


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


@FAST
@given(st.data(), scripts())
def test_rule4_any_interleaving_gives_the_same_views(data: st.DataObject, script: Script) -> None:
    forward = [msg for node in sorted(script) for msg in script[node]]
    backward = [msg for node in sorted(script, reverse=True) for msg in script[node]]
    reference, end = deliver(forward)
    expected = views(reference, end, mask_pong=True)
    for order in (backward, data.draw(interleaving(script))):
        model, _ = deliver(order)
        assert views(model, end, mask_pong=True) == expected
        assert model.cluster_info_text(end) == reference.cluster_info_text(end)


@FAST
@given(st.data(), scripts())
def test_rule1_redelivery_changes_nothing(data: st.DataObject, script: Script) -> None:
    messages = data.draw(interleaving(script))
    model, end = deliver(messages)
    before, version = views(model, end), model.version
    again = data.draw(st.lists(st.sampled_from(messages), max_size=10))
    outcomes = [model.publish(msg, end) for msg in again]
    assert all(o.kind == "stale" for o in outcomes)
    assert (views(model, end), model.version) == (before, version)
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
