"""Rule 3 as Redis binds slots (issue 22): a slot stays with its last owner until a better
claim or a release, whatever order two nodes' messages arrive in; open slots on CLUSTER
NODES."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import NUM_SLOTS, ClusterModel, ModelConfig
from tests.cluster.clusterkit import (
    T0,
    THIRDS,
    TIMEOUT,
    heartbeat,
    hello,
    info_fields,
    leave,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
)


def owners(model: ClusterModel, now: int = T0) -> list[tuple[int, int, str]]:
    return [(r.start, r.end, r.master.id) for r in model.cluster_slots(now)]


def fields(model: ClusterModel, now: int = T0) -> dict[str, str]:
    return info_fields(model.cluster_info_text(now))


def test_a_reshard_never_unassigns_a_slot_whichever_agent_publishes_first() -> None:
    """a gives 5000-5460 to b, which bumps its epoch (4) as Redis does on a reshard."""
    give = slots("a", 1, 3, (0, 4999))
    take = slots("b", 4, 3, (5000, 10922))
    for order in ((give, take), (take, give)):
        model = three_masters()
        for data in order:
            publish_ok(model, data, T0)
            assert (fields(model)["cluster_state"],
                    fields(model)["cluster_slots_assigned"]) == ("ok", str(NUM_SLOTS))
        assert owners(model) == [(0, 4999, "a"), (5000, 10922, "b"), (10923, 16383, "c")]


@st.composite
def reshards(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], dict[int, str]]:
    """Moves of slot ranges back and forth between masters a and b (a holds 0-8191 and b
    8192-16383 at first), each as Redis makes it: the importing node bumps its epoch above
    both, marks the slots importing, the source marks them migrating; then the target lists
    them and the source stops listing them. Each node's own messages, and who owns what."""
    held = {"a": set(range(0, 8192)), "b": set(range(8192, NUM_SLOTS))}
    epoch, seq = {"a": 1, "b": 2}, {"a": 1, "b": 1}
    out: dict[str, list[bytes]] = {
        "a": [slots("a", 1, 1, (0, 8191))], "b": [slots("b", 2, 1, (8192, NUM_SLOTS - 1))]}
    for _ in range(draw(st.integers(1, 6))):
        source = draw(st.sampled_from(["a", "b"]))
        target = "b" if source == "a" else "a"
        if not held[source]:
            continue
        first = draw(st.sampled_from(sorted(held[source])))
        moving = {s for s in range(first, first + draw(st.integers(1, 300)))
                  if s in held[source]}
        slot = str(min(moving))
        seq[target] += 1
        out[target].append(slots(target, epoch[target], seq[target], *_runs(held[target]),
                                 importing={slot: source}))
        seq[source] += 1
        out[source].append(slots(source, epoch[source], seq[source], *_runs(held[source]),
                                 migrating={slot: target}))
        epoch[target] = max(epoch.values()) + 1
        held[target] |= moving
        held[source] -= moving
        seq[target] += 1
        out[target].append(slots(target, epoch[target], seq[target], *_runs(held[target])))
        seq[source] += 1
        out[source].append(slots(source, epoch[source], seq[source], *_runs(held[source])))
    owner = {s: node for node, mine in held.items() for s in mine}
    return out["a"], out["b"], owner


def _runs(held: set[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for s in sorted(held):
        if runs and runs[-1][1] == s - 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reshards(), st.data())
def test_property_no_interleaving_of_two_nodes_slot_messages_leaves_a_slot_unowned(
    moves: tuple[list[bytes], list[bytes], dict[int, str]], data: st.DataObject
) -> None:
    of_a, of_b, owner = moves
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))
    publish_ok(model, of_a[0], T0)
    publish_ok(model, of_b[0], T0)
    queues = {"a": iter(of_a[1:]), "b": iter(of_b[1:])}
    for label in data.draw(st.permutations(["a"] * (len(of_a) - 1) + ["b"] * (len(of_b) - 1))):
        publish_ok(model, next(queues[label]), T0)
        assert fields(model)["cluster_slots_assigned"] == str(NUM_SLOTS)
    assert {s: o for start, end, o in owners(model) for s in range(start, end + 1)} == owner


def test_a_failover_takes_the_slots_for_good_in_either_order() -> None:
    for old_master_first in (True, False):
        model = three_masters(replicas=True)
        promoted = slots("rc", 4, 2, THIRDS[2])  # the replica's claim at a higher epoch
        demoted = slots("c", 4, 5)  # the old master, now a replica, lists nothing
        for data in (demoted, promoted) if old_master_first else (promoted, demoted):
            publish_ok(model, data, T0)
            assert fields(model)["cluster_slots_assigned"] == str(NUM_SLOTS)
        assert owners(model)[2] == (10923, 16383, "rc")
        publish_ok(model, leave("rc", 4, 3), T0)  # c lost them: it gets nothing back
        assert owners(model) == [(0, 5460, "a"), (5461, 10922, "b")]
    # A master cut off keeps listing its slots, as its own view shows them: its claim waits,
    # and takes the slots back if the better one is withdrawn (Redis binds an unassigned
    # slot to whoever claims it).
    model = three_masters(replicas=True)
    publish_ok(model, slots("rc", 4, 2, THIRDS[2]), T0)
    publish_ok(model, slots("c", 3, 5, THIRDS[2]), T0)
    assert owners(model)[2] == (10923, 16383, "rc")
    publish_ok(model, leave("rc", 4, 3), T0)
    assert owners(model)[2] == (10923, 16383, "c")


def test_a_node_restarted_empty_under_a_new_id_claims_nothing_until_the_old_is_forgotten() -> None:
    model = three_masters()
    publish_ok(model, hello("c2", 0, 1, port=7002), T0)
    publish_ok(model, slots("c2", 0, 2, released=[[0, NUM_SLOTS - 1]]), T0)  # all unassigned
    assert owners(model) == [(0, 5460, "a"), (5461, 10922, "b"), (10923, 16383, "c")]
    assert nodes_lines(model.cluster_nodes_text(T0))["c2"][6] == "0"
    for node, epoch in (("a", 1), ("b", 2)):  # del-node: every node forgets the old id
        publish_ok(model, heartbeat(node, epoch, 10, forgotten=["c"]), T0 + 1)
    assert model.node("c") is None
    assert fields(model, T0 + 1)["cluster_slots_assigned"] == str(NUM_SLOTS - 5461)
    publish_ok(model, slots("c2", 0, 3, THIRDS[2]), T0 + 2)  # ADDSLOTS: unassigned, any epoch
    assert owners(model, T0 + 2)[2] == (10923, 16383, "c2")


def test_slots_a_node_stops_listing_stay_its_own_until_released() -> None:
    model = three_masters()
    publish_ok(model, slots("a", 1, 3, (0, 5100)), T0)
    assert owners(model)[0] == (0, 5460, "a")
    publish_ok(model, slots("a", 1, 4, (0, 5000), released=[[5001, 5460], [6000, 7000]]), T0)
    assert owners(model) == [(0, 5000, "a"), (5461, 10922, "b"), (10923, 16383, "c")]
    assert (fields(model)["cluster_state"], fields(model)["cluster_slots_assigned"]) == (
        "fail", str(NUM_SLOTS - 460))


def test_leave_withdraws_the_slots_a_node_stopped_listing_too() -> None:
    model = three_masters()
    publish_ok(model, slots("a", 1, 3, (0, 99)), T0)
    assert owners(model)[0] == (0, 5460, "a")
    publish_ok(model, leave("a", 1, 4), T0)
    assert owners(model) == [(5461, 10922, "b"), (10923, 16383, "c")]


def test_migrating_and_importing_slots_show_on_the_senders_cluster_nodes_line() -> None:
    model = three_masters()
    publish_ok(model, slots("a", 1, 3, THIRDS[0], migrating={"5460": "b", "17": "c"}), T0)
    publish_ok(model, slots("b", 2, 3, THIRDS[1], importing={"5460": "a"}), T0)
    lines = nodes_lines(model.cluster_nodes_text(T0))
    assert lines["a"][8:] == ["0-5460", "[17->-c]", "[5460->-b]"]
    assert lines["b"][8:] == ["5461-10922", "[5460-<-a]"]
    publish_ok(model, slots("a", 1, 4, THIRDS[0]), T0)
    assert nodes_lines(model.cluster_nodes_text(T0))["a"][8:] == ["0-5460"]
    publish_ok(model, heartbeat("b", 2, 4), T0)
    assert nodes_lines(model.cluster_nodes_text(T0))["b"][8:] == ["5461-10922", "[5460-<-a]"]


def test_a_move_of_every_slot_costs_the_model_its_ranges_not_its_slots() -> None:
    model = ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))
    publish_ok(model, slots("a", 1, 1, (0, NUM_SLOTS - 1)), T0)
    start = time.process_time()
    for i in range(100):
        taker, leaver = ("b", "a") if i % 2 == 0 else ("a", "b")
        publish_ok(model, slots(taker, 2 + i, 10 + i, (0, NUM_SLOTS - 1)), T0)
        publish_ok(model, slots(leaver, 2 + i, 11 + i), T0)
        assert owners(model) == [(0, NUM_SLOTS - 1, taker)]
    per_move = (time.process_time() - start) / 100
    assert per_move < 0.003, f"{per_move * 1e3:.2f} ms per move of 16384 slots"
