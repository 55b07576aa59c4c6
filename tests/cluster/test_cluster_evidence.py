"""Rules 5 and 7 from the cluster's evidence (issue 22): heartbeats' `failing` and
`forgotten` lists, Redis's FAIL and when it clears, forgetting by a majority.

Three masters a, b, c (epochs 1..3) with replicas ra, rb, rc, node timeout 15 s: a report is
valid 30 s, the FAIL undo time is 30 s. Every time is explicit.
"""

from __future__ import annotations

from clusterwatch.cluster import (
    NUM_SLOTS,
    ClusterModel,
    ClusterStateChanged,
    ModelConfig,
    NodeLeft,
    NodeState,
)
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    fail_report,
    heartbeat,
    hello,
    info_fields,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
)

UNDO = 2 * TIMEOUT
VALIDITY = 2 * TIMEOUT
MAJORITY_SIDE = ("a", "b", "ra", "rb")


class Cluster:
    """A model and a sequence number per node, so each test only says who says what when."""

    def __init__(self, rule: str = "auto", masters: int = 3) -> None:
        config = ModelConfig(node_timeout_ms=TIMEOUT, fail_rule=rule)
        self.model = (three_masters(replicas=True, config=config) if masters == 3
                      else _masters(masters, config))
        self.seq = 1000  # above the seqs the tests publish directly

    def beat(self, now: int, *nodes: str, **fields: object) -> None:
        for node in nodes:
            info = self.model.node(node)
            epoch = 0 if info is None else info.config_epoch
            self.seq += 1
            publish_ok(self.model, heartbeat(node, epoch, self.seq, **fields), now)

    def state(self, node: str) -> NodeState:
        info = self.model.node(node)
        assert info is not None
        return info.state

    def info(self, now: int) -> dict[str, str]:
        return info_fields(self.model.cluster_info_text(now))


def _masters(n: int, config: ModelConfig) -> ClusterModel:
    model = ClusterModel(config)
    share = NUM_SLOTS // n
    for i in range(n):
        end = NUM_SLOTS - 1 if i == n - 1 else (i + 1) * share - 1
        publish_ok(model, hello(f"m{i}", i + 1, 1, port=7000 + i), T0)
        publish_ok(model, slots(f"m{i}", i + 1, 2, (i * share, end)), T0)
    return model


def partition_c(cw: Cluster, now: int, *, with_replica: bool = False) -> None:
    """c (and rc) cut off from the others, all of them still heard by clusterwatch."""
    cut = ["c", "rc"] if with_replica else ["c"]
    for node in MAJORITY_SIDE:
        cw.beat(now, node, failing=cut)
    cw.beat(now, "c", failing=[*MAJORITY_SIDE, *([] if with_replica else ["rc"])])
    cw.beat(now, "rc", failing=list(MAJORITY_SIDE))


# --- rule 5: fail from the majority's reports, whether or not the node speaks --------------


def test_a_quorum_of_fail_maybe_waits_for_a_real_nodes_fail_flag() -> None:
    """Senders that say which reports are FAILs (`failed`): a quorum of `fail?` alone is what
    the majority's nodes show before one of them gathers it by gossip; the first FAIL flag
    fails the node, as Redis's FAIL broadcast does."""
    cw = Cluster()
    t = T0 + 1000
    cw.beat(t, "a", failing=["c"], failed=[])
    cw.beat(t + 1, "b", failing=["c"], failed=[])
    assert cw.state("c") is NodeState.OK
    assert cw.info(t + 1)["cluster_state"] == "ok"
    cw.beat(t + 200, "ra", failing=["c"], failed=["c"])  # a replica got the FAIL broadcast
    assert cw.state("c") is NodeState.FAIL
    assert cw.info(t + 200)["cluster_state"] == "fail"


def test_a_fail_flag_without_a_quorum_fails_nothing() -> None:
    """One node's FAIL flag is not evidence enough: forging a FAIL still takes a quorum of
    the slot-serving masters."""
    cw = Cluster()
    t = T0 + 1000
    cw.beat(t, "a", failing=["c"], failed=["c"])
    cw.beat(t, "ra", "rb", failing=["c"], failed=["c"])
    assert cw.state("c") is NodeState.OK
    cw.beat(t + 1, "b", failing=["c"], failed=[])
    assert cw.state("c") is NodeState.FAIL


def test_a_failed_list_is_validated_like_failing() -> None:
    cw = Cluster()
    outcome = cw.model.publish(heartbeat("a", 1, 10**6, failing=["c"], failed=["a"]), T0)
    assert outcome.kind == "rejected"
    assert outcome.error is not None and outcome.error.field == "failed[0]"


def test_a_partitioned_master_is_fail_while_clusterwatch_still_hears_it() -> None:
    cw = Cluster()
    t = T0 + 1000
    cw.beat(t, "a", failing=["c"])
    assert cw.state("c") is NodeState.OK  # one master of three
    cw.beat(t + 1, "b", failing=["c"])
    assert cw.state("c") is NodeState.FAIL
    assert cw.model.fail_rule == "redis"
    for step in range(1, 20):  # c keeps speaking; the majority keeps reporting it
        now = t + step * 200
        cw.beat(now, "c", failing=["a", "b"])
        cw.beat(now, "a", "b", failing=["c"])
        assert cw.state("c") is NodeState.FAIL
    fields = cw.info(now)
    assert (fields["cluster_state"], fields["cluster_slots_fail"]) == ("fail", "5461")
    line = nodes_lines(cw.model.cluster_nodes_text(now))["c"]
    assert (line[2], line[7]) == ("master,fail", "disconnected")


def test_a_master_and_its_replica_cut_off_are_both_fail_and_the_cluster_is_down() -> None:
    """The issue's numbers: every real node said fail, 10922 slots ok, 5462 fail."""
    cw = Cluster()
    partition_c(cw, T0 + 1000, with_replica=True)
    assert (cw.state("c"), cw.state("rc")) == (NodeState.FAIL, NodeState.FAIL)
    fields = cw.info(T0 + 1000)
    assert fields["cluster_state"] == "fail"
    assert (fields["cluster_slots_ok"], fields["cluster_slots_fail"]) == ("10923", "5461")
    assert all(cw.state(n) is NodeState.OK for n in MAJORITY_SIDE)


def test_the_minority_side_reports_fail_nobody_and_fail_nobody_pfail() -> None:
    cw = Cluster()
    for step in range(10):
        cw.beat(T0 + step * 200, "c", failing=[*MAJORITY_SIDE, "rc"])
        cw.beat(T0 + step * 200, *MAJORITY_SIDE, "rc")
    assert cw.model.count_failure_reports("a", T0 + 2000) == 1  # counted, one of three
    assert all(cw.state(n) is NodeState.OK for n in (*MAJORITY_SIDE, "rc"))
    assert cw.info(T0 + 2000)["cluster_state"] == "ok"


def test_the_outage_before_a_promotion_shows_as_on_the_majority() -> None:
    cw = Cluster()
    cw.model.drain_events()
    partition_c(cw, T0 + 1000)
    assert cw.info(T0 + 1000)["cluster_state"] == "fail"
    publish_ok(cw.model, slots("rc", 4, 200, (10923, NUM_SLOTS - 1)), T0 + 1500)
    assert cw.info(T0 + 1500)["cluster_state"] == "ok"
    states = [(e.old, e.new) for e in cw.model.drain_events()
              if isinstance(e, ClusterStateChanged)]
    assert states == [("ok", "fail"), ("fail", "ok")]


def test_an_id_no_longer_listed_is_withdrawn_at_once() -> None:
    cw = Cluster()
    cw.beat(T0 + 1000, "a", failing=["c"])
    assert cw.model.count_failure_reports("c", T0 + 1000) == 1
    cw.beat(T0 + 1200, "a", failing=[])
    assert cw.model.count_failure_reports("c", T0 + 1200) == 0
    cw.beat(T0 + 1400, "a", failing=["c"])
    cw.beat(T0 + 1600, "a")  # an absent list is an empty one
    cw.beat(T0 + 1600, "b", failing=["c"])
    assert cw.model.count_failure_reports("c", T0 + 1600) == 1
    assert cw.state("c") is NodeState.OK


def test_a_listed_id_counts_at_the_last_heartbeat_listing_it_for_the_report_validity() -> None:
    cw = Cluster()
    cw.beat(T0, "a", failing=["rc"])
    cw.beat(T0 + VALIDITY, "a", failing=["rc"])  # listed again: valid from here
    cw.beat(T0 + VALIDITY + 1, "b", failing=["rc"])
    assert cw.state("rc") is NodeState.FAIL
    other = Cluster()
    other.beat(T0, "a", failing=["rc"])  # not listed again: expired 1 ms before b's
    other.beat(T0 + VALIDITY + 1, "b", failing=["rc"])
    assert other.state("rc") is not NodeState.FAIL


def test_a_reporter_a_majority_reports_does_not_count() -> None:
    """Five masters; m3 and m4 cut off report the other three; m1, flaky, also reports m2.
    Without the exclusion m2 would have three reporters (m1, m3, m4), a majority."""
    cw = Cluster(masters=5)
    now = T0 + 1000
    cw.beat(now, "m0", failing=["m3", "m4"])
    cw.beat(now, "m1", failing=["m2", "m3", "m4"])
    cw.beat(now, "m2", failing=["m3", "m4"])
    cw.beat(now, "m3", "m4", failing=["m0", "m1", "m2"])
    assert (cw.state("m3"), cw.state("m4")) == (NodeState.FAIL, NodeState.FAIL)
    assert cw.state("m2") is NodeState.OK
    assert cw.model.count_failure_reports("m2", now) == 3  # what Redis's command counts


def test_an_expired_report_lets_its_target_count_as_a_reporter_again_at_its_expiry() -> None:
    cw = Cluster(masters=5)
    for reporter in ("m0", "m1", "m2"):
        publish_ok(cw.model, fail_report(reporter, int(reporter[1]) + 1, 50, "m4"), T0)
    assert cw.state("m4") is NodeState.FAIL
    now = T0
    while now <= T0 + VALIDITY + 1000:  # m0, m1 and m4 list m3; m4's word does not count yet
        cw.beat(now, "m0", "m1", "m4", failing=["m3"])
        cw.beat(now, "m2", "m3")
        cw.model.refresh(now)
        expect = NodeState.FAIL if now >= T0 + VALIDITY + 1 else NodeState.OK
        assert cw.state("m3") is expect, now
        now += 500


# --- rule 5: fail outlives its quorum; the node's own messages clear it where Redis would ---


def test_a_replica_is_cleared_by_its_first_message_once_the_quorum_is_gone() -> None:
    cw = Cluster()
    cw.beat(T0 + 1000, "a", "b", failing=["rc"])
    assert cw.state("rc") is NodeState.FAIL
    cw.beat(T0 + 1100, "rc")
    assert cw.state("rc") is NodeState.FAIL  # still reported
    cw.beat(T0 + 1200, "a", "b", failing=[])
    assert cw.state("rc") is NodeState.FAIL  # the quorum is gone, but rc has not spoken
    cw.beat(T0 + 1300, "rc")
    assert cw.state("rc") is NodeState.OK


def test_a_master_with_slots_is_cleared_only_after_the_undo_time() -> None:
    cw = Cluster()
    cw.beat(T0 + 1000, "a", "b", failing=["c"])
    for now in range(T0 + 2000, T0 + 1000 + UNDO, 5000):
        cw.beat(now, *MAJORITY_SIDE, "rc", failing=[])
        cw.beat(now, "c")
        assert cw.state("c") is NodeState.FAIL
    cw.beat(T0 + 1000 + UNDO, *MAJORITY_SIDE, "rc")
    cw.beat(T0 + 1000 + UNDO, "c")  # fail for exactly the undo time: not more
    assert cw.state("c") is NodeState.FAIL
    cw.beat(T0 + 1001 + UNDO, "c")
    assert cw.state("c") is NodeState.OK
    assert cw.info(T0 + 1001 + UNDO)["cluster_state"] == "ok"


def test_a_master_whose_slots_were_taken_is_cleared_at_once() -> None:
    cw = Cluster()
    partition_c(cw, T0 + 1000)
    publish_ok(cw.model, slots("rc", 4, 200, (10923, NUM_SLOTS - 1)), T0 + 1500)
    cw.beat(T0 + 1600, "c")
    assert cw.state("c") is NodeState.FAIL  # still reported by the majority
    cw.beat(T0 + 2000, "a", "b", failing=[])  # the partition heals
    cw.beat(T0 + 2100, "c")
    assert cw.state("c") is NodeState.OK
    line = nodes_lines(cw.model.cluster_nodes_text(T0 + 2100))["c"]
    assert line[2] == "master" and line[8:] == []


def test_a_silent_node_stays_fail_after_its_quorum_is_gone_until_it_speaks() -> None:
    cw = Cluster()
    for step in range(1, 200):
        now = T0 + step * 500
        cw.beat(now, *MAJORITY_SIDE, "rc", failing=["c"] if step < 10 else [])
        cw.model.refresh(now)
        assert cw.state("c") is NodeState.FAIL
    cw.beat(now, "c")
    assert cw.state("c") is NodeState.OK


def test_under_the_timer_rule_a_node_that_speaks_is_never_fail() -> None:
    cw = Cluster(rule="timer")
    for step in range(10):
        now = T0 + step * 200
        cw.beat(now, "a", "b", failing=["c"])
        cw.beat(now, "c")
    assert cw.state("c") is NodeState.OK
    cw.beat(T0 + 2000 + TIMEOUT, "a", "b", failing=["c"])  # c silent: the timer rule's way
    cw.model.refresh(T0 + 2000 + TIMEOUT)
    assert cw.state("c") is NodeState.FAIL
    assert cw.model.fail_rule == "timer"


def test_a_heartbeat_carrying_failing_even_empty_switches_auto_to_redis() -> None:
    cw = Cluster()
    cw.beat(T0, "a")
    assert cw.model.fail_rule == "timer"
    cw.beat(T0, "a", failing=[])
    assert cw.model.fail_rule == "redis"


# --- rule 8: forgetting follows the cluster ----------------------------------------------


def test_a_node_a_majority_forgot_is_forgotten_and_refused_while_listed() -> None:
    cw = Cluster()
    cw.model.drain_events()
    cw.beat(T0 + 1000, "a", forgotten=["rc"])
    assert cw.model.node("rc") is not None  # one master of three
    cw.beat(T0 + 1100, "b", forgotten=["rc"])
    assert cw.model.node("rc") is None
    assert NodeLeft(node="rc") in cw.model.drain_events()
    outcome = cw.model.publish(heartbeat("rc", 1, 999), T0 + 1200)
    assert (outcome.kind, outcome.error and outcome.error.code) == ("rejected", "forgotten")
    assert cw.info(T0 + 1200)["cluster_known_nodes"] == "5"
    # Past the ban, while a majority still lists it: still refused; once they stop, back.
    cw.beat(T0 + 70_000, "a", "b", forgotten=["rc"])
    assert cw.model.publish(heartbeat("rc", 1, 999), T0 + 70_000).kind == "rejected"
    cw.beat(T0 + 70_100, "a", "b")
    assert cw.model.publish(heartbeat("rc", 1, 1000), T0 + 70_200).kind == "applied"


def test_only_a_majority_of_the_masters_forgets_a_node() -> None:
    cw = Cluster()
    cw.beat(T0 + 1000, "a", "ra", "rb", "rc", forgotten=["c"])
    assert cw.model.node("c") is not None
    cw.beat(T0 + 1100, "b", forgotten=["c"])
    assert cw.model.node("c") is None


def test_a_forgotten_master_takes_its_slots_with_it() -> None:
    cw = Cluster()
    publish_ok(cw.model, slots("c", 3, 200, released=[[10923, NUM_SLOTS - 1]]), T0)
    publish_ok(cw.model, slots("b", 5, 200, (5461, NUM_SLOTS - 1)), T0)
    cw.beat(T0 + 1000, "a", "b", forgotten=["c"])
    assert cw.model.node("c") is None
    fields = cw.info(T0 + 1000)
    assert (fields["cluster_state"], fields["cluster_size"]) == ("ok", "2")
