"""The Redis-stream bus's pure parts: the bus clock and the compacted snapshot.

The snapshot's promise (server/bus/compaction.py): replaying the kept messages at their
receive times, then the rest of the stream, builds the same model as reading everything.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import ClusterModel, ModelConfig, NodeState, decode_message
from clusterwatch.server.bus.busclock import BusClock, parse_entry_id
from clusterwatch.server.bus.compaction import (
    Compactor,
    decode_snapshot,
    history_of,
    restore_history,
)
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    fail_report,
    heartbeat,
    hello,
    leave,
    slots,
    views,
)
from tests.cluster.test_merge_properties import Script, interleaving, scripts

CONFIG = ModelConfig(node_timeout_ms=TIMEOUT)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_stream(model: ClusterModel, compactor: Compactor,
                entries: list[tuple[str, int, bytes]]) -> None:
    """What the reader does per entry: apply at the entry's time, note what applied."""
    for entry_id, now, data in entries:
        outcome, msg = model.publish_decoded(data, now)
        if msg is not None and outcome.kind == "applied":
            compactor.note(msg, entry_id.encode(), now, data)


def restored(snapshot: bytes) -> tuple[ClusterModel, Compactor]:
    model = ClusterModel(CONFIG)
    compactor = Compactor(2 * TIMEOUT)
    doc = decode_snapshot(snapshot)
    if doc.reports_seen:
        model.note_reports_seen()
    read_stream(model, compactor, [(i, ms, text.encode()) for i, ms, text in doc.messages])
    restore_history(model, doc)
    return model, compactor


def failed(model: ClusterModel, now: int) -> list[str]:
    model.refresh(now)
    return [row[0] for row in model.node_rows() if row[1] is NodeState.FAIL]


@FAST
@given(st.data(), scripts(), st.lists(st.integers(0, 12_000), min_size=30, max_size=30))
def test_snapshot_then_tail_builds_the_same_model(
    data: st.DataObject, script: Script, gaps: list[int]
) -> None:
    messages = data.draw(interleaving(script))
    now, entries = T0, []
    for index, message in enumerate(messages):
        now += gaps[index % len(gaps)]
        entries.append((f"{now}-{index}", now, message))
    cut = data.draw(st.integers(0, len(entries)))

    full = ClusterModel(CONFIG)
    compactor = Compactor(2 * TIMEOUT)
    read_stream(full, compactor, entries[:cut])
    covers_ms = entries[cut - 1][1] if cut else T0
    snapshot = compactor.snapshot(f"{covers_ms}-{cut}", covers_ms, covers_ms,
                                  history=history_of(full, covers_ms))
    read_stream(full, compactor, entries[cut:])

    model, rebuilt = restored(snapshot)
    read_stream(model, rebuilt, entries[cut:])
    for at in (now, now + TIMEOUT, now + 4 * TIMEOUT):
        assert views(model, at) == views(full, at)
        assert [n.state for n in model.nodes()] == [n.state for n in full.nodes()]
    # A snapshot of the rebuilt model keeps the same messages as the original's.
    assert rebuilt.kept(now) == compactor.kept(now)


def test_a_node_that_only_heartbeats_keeps_its_hello_and_slots() -> None:
    compactor = Compactor(2 * TIMEOUT)
    model = ClusterModel(CONFIG)
    entries = [("1-0", T0, hello("a", 1, 1)), ("2-0", T0, slots("a", 1, 2, (0, 16383)))]
    entries += [(f"{3 + i}-0", T0 + 1000 * i, heartbeat("a", 1, 3 + i)) for i in range(3600)]
    read_stream(model, compactor, entries)
    kept = compactor.kept(T0 + 3600_000)
    assert [k[0] for k in kept] == ["1-0", "2-0", "3602-0"]  # hello, slots, last heartbeat
    rebuilt, _ = restored(compactor.snapshot("3602-0", T0 + 3599_000, T0 + 3599_000))
    assert rebuilt.cluster_nodes_text(T0 + 3599_000) == model.cluster_nodes_text(T0 + 3599_000)


def test_leave_is_a_tombstone_that_drops_what_came_before() -> None:
    compactor = Compactor(2 * TIMEOUT)
    model = ClusterModel(CONFIG)
    read_stream(model, compactor, [("1-0", T0, hello("a", 1, 1)),
                                   ("2-0", T0, slots("a", 1, 2, (0, 10))),
                                   ("3-0", T0, leave("a", 1, 3))])
    assert [k[0] for k in compactor.kept(T0)] == ["3-0"]
    rebuilt, _ = restored(compactor.snapshot("3-0", T0, T0))
    # The tombstone keeps late copies stale, as in the model that read everything.
    assert rebuilt.publish(hello("a", 1, 1), T0).kind == "stale"
    assert model.publish(hello("a", 1, 1), T0).kind == "stale"


def test_expired_failure_reports_are_left_out() -> None:
    compactor = Compactor(validity_ms=1000)
    report, beat = fail_report("a", 1, 1, "b"), heartbeat("a", 1, 2)
    compactor.note(decode_message(report, max_size=1000), b"5-0", T0, report)
    compactor.note(decode_message(beat, max_size=1000), b"6-0", T0 + 10, beat)
    assert [k[0] for k in compactor.kept(T0 + 1000)] == ["5-0", "6-0"]
    assert [k[0] for k in compactor.kept(T0 + 1001)] == ["6-0"]


def test_the_fail_rule_auto_switched_to_survives_a_snapshot_whose_reports_expired() -> None:
    model, compactor = ClusterModel(CONFIG), Compactor(2 * TIMEOUT)
    entries = [("1-0", T0, hello("a", 1, 1)), ("2-0", T0, slots("a", 1, 2, (0, 8191))),
               ("3-0", T0, hello("b", 1, 1)), ("4-0", T0, slots("b", 1, 2, (8192, 16383))),
               ("5-0", T0 + 1, fail_report("a", 1, 3, "b")), ("6-0", T0 + 2, heartbeat("a", 1, 4))]
    read_stream(model, compactor, entries)
    assert model.fail_rule == "redis"
    later = T0 + 10 * TIMEOUT  # one report of two masters: b stays pfail, on Redis's rule
    model.refresh(later)
    assert model.node("b").state is NodeState.PFAIL  # type: ignore[union-attr]
    snapshot = compactor.snapshot("6-0", T0 + 2, later, failed(model, later), True)
    kept = [entry[0] for entry in decode_snapshot(snapshot).messages]
    assert "5-0" not in kept  # the report expired from the compacted history
    copy, _ = restored(snapshot)
    copy.refresh(later)
    assert copy.fail_rule == "redis"
    assert copy.node("b").state is NodeState.PFAIL  # type: ignore[union-attr]


def test_a_foreign_snapshot_value_is_refused() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_snapshot(b'{"covers": 3}')
    with pytest.raises(msgspec.DecodeError):
        decode_snapshot(b"not json")


# --- the bus clock ------------------------------------------------------------------

def test_bus_time_is_the_entry_time_until_a_gap() -> None:
    clock = BusClock(gap_ms=300)
    assert clock.stamp(T0) == T0
    assert clock.stamp(T0 + 100) == T0 + 100
    assert clock.stamp(T0 + 100) == T0 + 100  # same millisecond
    assert clock.stamp(T0 + 50) == T0 + 100  # never backwards
    assert clock.excused_ms == 0


def test_a_gap_longer_than_the_bound_is_excused() -> None:
    clock = BusClock(gap_ms=300)
    clock.stamp(T0)
    assert clock.stamp(T0 + 10_300) == T0 + 300  # Redis was away for 10 s
    assert clock.excused_ms == 10_000
    assert clock.stamp(T0 + 10_400) == T0 + 400


def test_an_outage_fails_no_node_but_real_silence_does() -> None:
    """A node that heartbeats until the bus goes away and right after it comes back is
    never pfail; a node that stays silent on a working bus is."""
    clock = BusClock(gap_ms=300)
    model = ClusterModel(CONFIG)
    model.publish(hello("a", 1, 1), clock.stamp(T0))
    model.publish(hello("b", 1, 1), clock.stamp(T0))
    after_outage = T0 + 60_000  # a minute without any entry: Redis was down
    model.publish(heartbeat("a", 1, 2), clock.stamp(after_outage))
    model.refresh(clock.now_ms)
    assert {n.id: n.state for n in model.nodes()} == {"a": "ok", "b": "ok"}
    for tick in range(1, 200):  # ticks every 100 ms: time passes on a working bus
        model.refresh(clock.stamp(after_outage + 100 * tick))
    assert {n.id: n.state for n in model.nodes()} == {"a": "pfail", "b": "pfail"}


def test_restore_continues_from_a_snapshot_clock() -> None:
    clock = BusClock(gap_ms=300)
    clock.restore(last_entry_ms=T0 + 10_000, now_ms=T0 + 4_000)
    assert clock.excused_ms == 6_000
    assert clock.stamp(T0 + 10_100) == T0 + 4_100


@pytest.mark.parametrize("raw, expected", [
    (b"1733000000000-3", (1733000000000, 3)), ("0-0", (0, 0)), ("5-18", (5, 18))])
def test_parse_entry_id(raw: bytes | str, expected: tuple[int, int]) -> None:
    assert parse_entry_id(raw) == expected


@pytest.mark.parametrize("raw", ["", "12", "a-b", "1-"])
def test_parse_entry_id_refuses(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_entry_id(raw)
