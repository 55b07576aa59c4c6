"""One test per merge rule (docs/merge-rules.md states them in full)."""

from __future__ import annotations

import itertools

from clusterwatch.cluster import (
    ClusterModel,
    ClusterStateChanged,
    EpochChanged,
    Heartbeat,
    Hello,
    ModelConfig,
    NodeJoined,
    NodeLeft,
    NodeState,
    Slots,
    SlotsMoved,
)
from tests.cluster.clusterkit import (
    T0,
    fail_report,
    heartbeat,
    hello,
    info_fields,
    leave,
    message,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
    views,
)


def test_rule1_stale_messages_are_counted_not_applied() -> None:
    model = ClusterModel()
    publish_ok(model, hello("a", 2, 5), T0)
    version = model.version
    for data in (hello("a", 2, 5, port=9), hello("a", 2, 4, port=9), hello("a", 1, 99, port=9)):
        outcome = model.publish(data, T0 + 1)
        assert (outcome.kind, outcome.last) == ("stale", (2, 5))
    assert model.version == version
    info = model.node("a")
    assert info is not None and info.port == 7000 and info.last_seen_ms == T0
    counters = model.counters()
    assert counters.stale == 3 and counters.applied == 1 and counters.received["hello"] == 4


def test_rule1_newer_seq_or_epoch_applies() -> None:
    model = ClusterModel()
    publish_ok(model, hello("a", 2, 5), T0)
    publish_ok(model, hello("a", 2, 6, port=8000), T0)
    publish_ok(model, hello("a", 3, 0, port=9000), T0)
    info = model.node("a")
    assert info is not None and (info.config_epoch, info.seq, info.port) == (3, 0, 9000)


def test_rule1_redelivery_and_reordering_are_harmless() -> None:
    script = [hello("a", 1, 1), slots("a", 1, 2, (0, 99)), heartbeat("a", 1, 3)]
    script += [slots("a", 2, 0, (50, 199)), heartbeat("a", 2, 1)]
    clean = ClusterModel()
    for data in script:
        clean.publish(data, T0)
    noisy = ClusterModel()
    for data in [*script[:3], script[1], script[0], *script[3:], *reversed(script)]:
        noisy.publish(data, T0)
    assert views(noisy, T0) == views(clean, T0)
    assert noisy.counters().stale == 2 + len(script)
    assert noisy.version == clean.version


def test_rule2_current_epoch_is_the_largest_applied_epoch() -> None:
    model = ClusterModel()
    publish_ok(model, hello("a", 4, 1), T0)
    publish_ok(model, hello("b", 9, 1), T0)
    publish_ok(model, hello("c", 2, 1), T0)
    assert model.current_epoch == 9
    publish_ok(model, leave("b", 9, 2), T0)
    assert model.current_epoch == 9
    assert model.publish(hello("a", 3, 1), T0).kind == "stale"
    assert model.current_epoch == 9
    assert info_fields(model.cluster_info_text(T0))["cluster_current_epoch"] == "9"
    assert [e for e in model.drain_events() if isinstance(e, EpochChanged)] == [
        EpochChanged(old=0, new=4),
        EpochChanged(old=4, new=9),
    ]


def test_rule2_config_epoch_is_the_latest_applied_epoch() -> None:
    model = ClusterModel()
    publish_ok(model, hello("a", 1, 1), T0)
    publish_ok(model, heartbeat("a", 5, 0), T0)
    info = model.node("a")
    assert info is not None and info.config_epoch == 5
    assert nodes_lines(model.cluster_nodes_text(T0))["a"][6] == "5"


def test_rule3_higher_config_epoch_wins_the_slot() -> None:
    model = ClusterModel()
    publish_ok(model, slots("a", 5, 1, (0, 100)), T0)
    publish_ok(model, slots("b", 3, 1, (50, 200)), T0)
    rows = [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)]
    assert rows == [(0, 100, "a"), (101, 200, "b")]
    publish_ok(model, slots("b", 6, 2, (50, 200)), T0)
    rows = [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)]
    assert rows == [(0, 49, "a"), (50, 200, "b")]
    assert model.counters().slot_conflicts == 0


def test_rule3_equal_epochs_go_to_the_smaller_node_id_and_count_a_conflict() -> None:
    for order in (("zed", "abe"), ("abe", "zed")):
        model = ClusterModel()
        for node in order:
            publish_ok(model, slots(node, 4, 1, (10, 19)), T0)
        assert [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)] == [(10, 19, "abe")]
        assert model.counters().slot_conflicts == 10


def test_rule3_a_slot_stays_with_its_owner_until_another_claims_it_or_it_is_released() -> None:
    model = ClusterModel()
    publish_ok(model, slots("a", 1, 1, (0, 9)), T0)
    publish_ok(model, slots("b", 1, 1, (5, 14)), T0)  # 5-9 tie at epoch 1: a keeps them
    publish_ok(model, slots("a", 1, 2, (0, 2), (12, 12)), T0)  # no longer lists 3-9
    rows = [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)]
    assert rows == [(0, 9, "a"), (10, 11, "b"), (12, 12, "a"), (13, 14, "b")]
    publish_ok(model, slots("b", 1, 2), T0)  # an empty listing gives nothing up
    assert [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)] == rows
    publish_ok(model, slots("b", 1, 3, released=[[10, 14]]), T0)
    rows = [(r.start, r.end, r.master.id) for r in model.cluster_slots(T0)]
    assert rows == [(0, 9, "a"), (12, 12, "a")]
    moves = [e for e in model.drain_events() if isinstance(e, SlotsMoved)]
    assert moves == [
        SlotsMoved(start=0, end=9, old=None, new="a"),
        SlotsMoved(start=10, end=14, old=None, new="b"),
        SlotsMoved(start=12, end=12, old="b", new="a"),
        SlotsMoved(start=10, end=11, old="b", new=None),
        SlotsMoved(start=13, end=14, old="b", new=None),
    ]
    assert model.counters().slot_conflicts == 6  # 5-9 when b listed them, 12 when a did


def test_rule3_an_old_claim_does_not_grow_stronger_with_its_owner_epoch() -> None:
    model = ClusterModel()
    publish_ok(model, slots("old", 1, 1, (0, 9)), T0)
    publish_ok(model, slots("new", 2, 1, (0, 9)), T0)
    publish_ok(model, heartbeat("old", 7, 0), T0)
    assert [r.master.id for r in model.cluster_slots(T0)] == ["new"]


def test_rule4_any_interleaving_of_per_node_sequences_gives_the_same_model() -> None:
    per_node = {
        "a": [hello("a", 1, 1), slots("a", 1, 2, (0, 8191)), fail_report("a", 1, 3, "c")],
        "b": [slots("b", 1, 1, (4000, 16383)), hello("b", 2, 0, port=7001)],
        "c": [hello("c", 1, 1, role="replica", replicaof="a"), leave("c", 1, 2)],
        "d": [slots("d", 3, 1, (100, 200)), slots("d", 3, 2, (100, 150))],
    }
    labels = [n for n, msgs in per_node.items() for _ in msgs]
    seen = set()
    for order in itertools.islice(itertools.permutations(labels), 0, None, 9973):
        model = ClusterModel()
        cursors = dict.fromkeys(per_node, 0)
        for node in order:
            publish_ok(model, per_node[node][cursors[node]], T0)
            cursors[node] += 1
        seen.add(repr(views(model, T0)))
    assert len(seen) == 1


def test_rule5_silence_past_the_node_timeout_is_pfail() -> None:
    model = three_masters()
    model.refresh(T0 + 15_000)
    assert {n.state for n in model.nodes()} == {NodeState.PFAIL}


def test_rule6_invalid_message_is_rejected_and_the_model_untouched() -> None:
    model = three_masters()
    before = (model.version, views(model, T0), model.counters().received)
    bad = [
        b"{nope",
        message("slots", "a", 9, 9, ranges=[[0, 20000]]),
        message("bogus", "a", 9, 9),
        message("hello", "a", 9, 9),
        b"x" * 70_000,
    ]
    outcomes = [model.publish(data, T0) for data in bad]
    assert [o.kind for o in outcomes] == ["rejected"] * 5
    assert [(o.error.field, o.error.code) for o in outcomes if o.error] == [
        ("", "json"),
        ("ranges[0][1]", "range"),
        ("type", "unknown_type"),
        ("addr", "missing_field"),
        ("", "too_large"),
    ]
    assert (model.version, views(model, T0), model.counters().received) == before
    assert model.counters().rejected == {
        "json": 1,
        "range": 1,
        "unknown_type": 1,
        "missing_field": 1,
        "too_large": 1,
    }
    assert model.drain_events()[-1] == ClusterStateChanged(old="fail", new="ok")


def test_apply_validates_like_publish() -> None:
    model = ClusterModel()
    good = Hello(v=1, node="a", epoch=1, seq=1, addr="h:1")
    assert model.apply(good, T0).kind == "applied"
    bad = Slots(v=1, node="a", epoch=1, seq=2, ranges=[(5, 1)])
    outcome = model.apply(bad, T0)
    assert outcome.kind == "rejected" and outcome.error is not None
    assert outcome.error.field == "ranges[0]"
    assert model.apply(Heartbeat(v=1, node="a", epoch=1, seq=1), T0).kind == "stale"


def test_leave_removes_the_node_and_withdraws_its_slots() -> None:
    model = three_masters()
    model.drain_events()
    publish_ok(model, leave("c", 3, 3), T0 + 1)
    assert model.node("c") is None
    assert sorted(nodes_lines(model.cluster_nodes_text(T0 + 1))) == ["a", "b"]
    fields = info_fields(model.cluster_info_text(T0 + 1))
    assert fields["cluster_slots_assigned"] == str(16384 - 5461)
    assert fields["cluster_state"] == "fail" and fields["cluster_known_nodes"] == "2"
    assert model.count_failure_reports("c", T0 + 1) is None
    assert model.drain_events() == [
        SlotsMoved(start=10923, end=16383, old="c", new=None),
        NodeLeft(node="c"),
        ClusterStateChanged(old="ok", new="fail"),
    ]


def test_leave_tombstone_keeps_late_copies_stale_and_a_restart_rejoins() -> None:
    model = three_masters()
    publish_ok(model, leave("c", 3, 3), T0)
    for late in (slots("c", 3, 2, (10923, 16383)), hello("c", 3, 1), leave("c", 3, 3)):
        assert model.publish(late, T0).last == (3, 3)
    assert model.node("c") is None
    publish_ok(model, heartbeat("c", 4, 0), T0 + 5)
    info = model.node("c")
    assert info is not None and info.addr is None and info.slots_owned == 0
    assert nodes_lines(model.cluster_nodes_text(T0 + 5))["c"][1:3] == [":0@0", "master,noaddr"]
    assert NodeJoined(node="c") in model.drain_events()


def test_leave_from_an_unknown_node_only_records_the_tombstone() -> None:
    model = ClusterModel()
    publish_ok(model, leave("x", 2, 1), T0)
    assert model.node("x") is None and model.current_epoch == 2
    assert model.publish(heartbeat("x", 2, 1), T0).kind == "stale"
    assert [type(e) for e in model.drain_events()] == [EpochChanged]


def test_a_node_enters_only_with_its_own_messages() -> None:
    model = ClusterModel()
    publish_ok(model, hello("r", 1, 1, role="replica", replicaof="m"), T0)
    publish_ok(model, fail_report("r", 1, 2, "ghost"), T0)
    assert [n.id for n in model.nodes()] == ["r"]


def test_heartbeat_payload_is_kept_as_sent() -> None:
    model = ClusterModel()
    publish_ok(model, heartbeat("a", 1, 1, node_state="RUNNING", serving=True), T0)
    info = model.node("a")
    assert info is not None and info.heartbeat is not None
    assert (info.heartbeat.node_state, info.heartbeat.serving) == ("RUNNING", True)
    topology = model.topology_version
    publish_ok(model, heartbeat("a", 1, 2, node_state="STOPPING"), T0 + 1)
    info = model.node("a")
    assert info is not None and info.heartbeat is not None
    assert info.heartbeat.node_state == "STOPPING" and info.last_seen_ms == T0 + 1
    assert model.topology_version == topology


def test_events_are_bounded_and_drained() -> None:
    model = ClusterModel(ModelConfig(max_events=3))
    for i in range(5):
        publish_ok(model, heartbeat(f"n{i}", 0, 1), T0)
    events = model.drain_events()
    assert events == [NodeJoined(node="n2"), NodeJoined(node="n3"), NodeJoined(node="n4")]
    assert model.counters().events_dropped == 2
    assert model.drain_events() == []


def test_a_messages_current_epoch_raises_the_current_epoch_and_never_lowers_it() -> None:
    from tests.cluster.clusterkit import fail_report, heartbeat, hello, message, three_masters

    model = three_masters()
    assert model.current_epoch == 3
    assert model.publish(heartbeat("a", 1, 3, current_epoch=6), T0).kind == "applied"
    assert model.current_epoch == 6
    assert model.publish(heartbeat("b", 2, 3, current_epoch=4), T0).kind == "applied"
    assert model.current_epoch == 6
    # Any message type carries it (Redis sends currentEpoch in every cluster-bus header).
    assert model.publish(hello("z", 1, 1, current_epoch=9), T0).kind == "applied"
    assert model.current_epoch == 9
    first = model.publish(message("slots", "n", 1, 1, ranges=[], current_epoch=11), T0)
    assert first.kind == "applied" and model.current_epoch == 11
    assert model.publish(fail_report("c", 3, 9, "z"), T0).kind == "applied"
    assert model.current_epoch == 11
    # A stale message's current_epoch does not count (rule 2: only applied messages do).
    stale = model.publish(heartbeat("a", 1, 3, current_epoch=20), T0)
    assert stale.kind == "stale" and model.current_epoch == 11


def test_current_epoch_is_validated_like_epoch() -> None:
    from tests.cluster.clusterkit import heartbeat, hello

    model = ClusterModel()
    for bad, code in ((-1, "range"), (2**63, "range"), ("7", "type"), (1.5, "type")):
        outcome = model.publish(hello("x", 1, 1, current_epoch=bad), T0)
        assert outcome.kind == "rejected" and outcome.error is not None, bad
        assert outcome.error.field == "current_epoch" and outcome.error.code == code, bad
    # Valid, but one message may move the current epoch at most 2^20 past where it is.
    refused = model.publish(heartbeat("x", 1, 1, current_epoch=2**63 - 1), T0)
    assert refused.kind == "rejected" and refused.error is not None
    assert (refused.error.field, refused.error.code) == ("current_epoch", "range")
    assert model.publish(heartbeat("x", 1, 1, current_epoch=2**20), T0).kind == "applied"
    assert model.current_epoch == 2**20
