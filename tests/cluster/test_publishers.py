"""Who speaks for a node (cluster/publishers.py, ClusterModel's absurd-epoch rule): a
message's node id is its key; the first applied message binds a node to its publisher's
user; CLUSTER FORGET undoes whatever a bad publisher did."""

from __future__ import annotations

from clusterwatch.cluster import KEY_REFUSED, ClusterModel, KeyRefusedError, ModelConfig, Publisher
from clusterwatch.cluster.model import MAX_EPOCH_STEP
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    fail_report,
    heartbeat,
    hello,
    leave,
    slots,
)

ALICE = Publisher("alice")
BOB = Publisher("bob")
ADMIN = Publisher("root", admin=True)


def model() -> ClusterModel:
    return ClusterModel(ModelConfig(node_timeout_ms=TIMEOUT))


def test_a_node_is_bound_to_the_user_that_introduced_it() -> None:
    m = model()
    assert m.publish(hello("n1", 1, 1), T0, ALICE).kind == "applied"
    assert m.publisher_of("n1") == "alice"
    before = m.node("n1")
    # Everything bob could send as n1 is refused, and changes nothing.
    for attempt in (hello("n1", 2, 5, port=7777), heartbeat("n1", 1, 9),
                    slots("n1", 1, 10, (0, 16383)), fail_report("n1", 1, 11, "n2"),
                    leave("n1", 1, 12)):
        outcome = m.publish(attempt, T0 + 1, BOB)
        assert outcome.kind == "rejected" and outcome.error is not None
        assert outcome.error.code == "bound" and "n1" in outcome.error.reason
    assert m.node("n1") == before
    assert m.counters().rejected == {"bound": 5}
    # bob's own nodes work, and alice goes on.
    assert m.publish(hello("n2", 1, 1), T0, BOB).kind == "applied"
    assert m.publish(heartbeat("n1", 1, 2), T0 + 2, ALICE).kind == "applied"


def test_an_admin_publishes_for_any_node_without_taking_it_over() -> None:
    m = model()
    m.publish(hello("n1", 1, 1), T0, ALICE)
    assert m.publish(heartbeat("n1", 1, 2), T0, ADMIN).kind == "applied"
    assert m.publisher_of("n1") == "alice"
    assert m.rebind("n1", "bob") and not m.rebind("nobody", "bob")
    assert m.publish(heartbeat("n1", 1, 3), T0, BOB).kind == "applied"
    assert m.publish(heartbeat("n1", 1, 4), T0, ALICE).error.code == "bound"  # type: ignore[union-attr]


def test_the_binding_ends_when_the_node_leaves_or_is_forgotten() -> None:
    m = model()
    m.publish(hello("n1", 1, 1), T0, ALICE)
    m.publish(leave("n1", 1, 2), T0, ALICE)
    assert m.publisher_of("n1") is None
    assert m.publish(hello("n1", 1, 3), T0, BOB).kind == "applied"
    assert m.publisher_of("n1") == "bob"
    assert m.forget("n1", T0 + 1)
    assert m.publisher_of("n1") is None
    after_ban = T0 + 1 + ModelConfig().forget_ban_ms
    assert m.publish(hello("n1", 1, 1), after_ban, ALICE).kind == "applied"
    assert m.publisher_of("n1") == "alice"


def test_key_patterns_decide_which_node_ids_a_user_may_publish_for() -> None:
    asked: list[str] = []

    def only_east(node_id: str) -> bool:
        asked.append(node_id)
        return node_id.startswith("east-")

    carol = Publisher("carol", may_write=only_east)
    m = model()
    assert m.publish(hello("east-1", 1, 1), T0, carol).kind == "applied"
    refused = m.publish(hello("west-1", 1, 1), T0, carol)
    assert refused.kind == "rejected" and isinstance(refused.error, KeyRefusedError)
    assert refused.error.reason == KEY_REFUSED and refused.error.node_id == "west-1"
    # A fail_report's key is its sender, not its target.
    assert m.publish(fail_report("east-1", 1, 2, "west-9"), T0, carol).kind == "applied"
    assert m.publish(fail_report("west-1", 1, 2, "east-1"), T0, carol).kind == "rejected"
    assert m.node("west-1") is None and m.counters().rejected == {"key": 2}
    # Verdicts are kept: one call of the rule per node id.
    m.publish(heartbeat("east-1", 1, 3), T0, carol)
    assert asked == ["east-1", "west-1"]


def test_messages_without_a_publisher_neither_bind_nor_are_refused() -> None:
    m = model()
    m.publish(hello("n1", 1, 1), T0)
    assert m.publisher_of("n1") is None
    assert m.publish(heartbeat("n1", 1, 2), T0, BOB).kind == "applied"
    assert m.publisher_of("n1") == "bob"
    assert m.publish(heartbeat("n1", 1, 3), T0).kind == "applied"


def test_one_message_moves_an_epoch_at_most_2_to_the_20_and_forget_undoes_it() -> None:
    m = model()
    m.publish(hello("n1", 3, 1), T0, ALICE)
    m.publish(hello("n2", 4, 1), T0, BOB)
    for field, fields in (("epoch", {}), ("current_epoch", {"current_epoch": 2**63 - 1})):
        epoch = 2**62 if field == "epoch" else 4
        refused = m.publish(heartbeat("n1", epoch, 2, **fields), T0, ALICE)
        assert refused.kind == "rejected" and refused.error is not None
        assert (refused.error.field, refused.error.code) == (field, "range")
    assert m.current_epoch == 4
    # A publisher that owns n1 pushes it as far as one message may: the real n1 is stale.
    poisoned = 4 + MAX_EPOCH_STEP
    assert m.publish(heartbeat("n1", poisoned, 2**62, current_epoch=poisoned), T0,
                     ALICE).kind == "applied"
    assert m.current_epoch == poisoned
    assert m.publish(heartbeat("n1", 3, 5), T0 + 1, ALICE).kind == "stale"
    # CLUSTER FORGET: everything goes, the current epoch falls back to what n2 carried, and
    # after the ban the real n1 is taken at its real (epoch, seq).
    assert m.forget("n1", T0 + 2)
    assert m.current_epoch == 4
    after_ban = T0 + 2 + ModelConfig().forget_ban_ms
    assert m.publish(heartbeat("n1", 3, 5), after_ban, ALICE).kind == "applied"
    assert m.node("n1").config_epoch == 3  # type: ignore[union-attr]


def test_the_current_epoch_never_falls_below_what_a_remaining_node_carried() -> None:
    m = model()
    m.publish(hello("n1", 2, 1, current_epoch=9), T0)
    m.publish(hello("n2", 5, 1), T0)
    m.publish(leave("n2", 5, 2), T0)  # left: its epoch still counts, as in Redis
    m.publish(hello("n3", 7, 1), T0)
    assert m.current_epoch == 9
    assert m.forget("n3", T0)
    assert m.current_epoch == 9
    assert m.forget("n1", T0)
    assert m.current_epoch == 5
