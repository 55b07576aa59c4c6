"""The pattern index (commands/_patternindex.py) answers what trying every live pattern
answers, through any sequence of additions, removals and lookups, however its scans are
sliced; and the registry's receivers follow subscriptions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.commands import Session
from clusterwatch.commands._glob import Glob
from clusterwatch.commands._patternindex import PatternEntry, PatternIndex, Scan
from clusterwatch.commands._subscriptions import Subscriptions

PATTERNS = [b"*", b"a*", b"ab*", b"a?", b"*b", b"a", b"ab", b"[ab]*", b"\\a*", b"?*b",
            b"abc", b"b*c", b"a*c*", b"", b"x*"]
CHANNELS = [b"a", b"ab", b"abc", b"b", b"bc", b"x", b"", b"aXc"]

operations = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(PATTERNS)),
    st.tuples(st.just("remove"), st.sampled_from(PATTERNS)),
    st.tuples(st.just("look"), st.sampled_from(CHANNELS), st.integers(1, 5)),
    st.tuples(st.just("start"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("finish"), st.integers(0, 3)),
), max_size=60)


def finish(scan: Scan, budget: int) -> list[bytes]:
    while not scan.done:
        scan.advance(budget)
    return sorted(entry.pattern for entry in scan.found if entry.live)


@settings(max_examples=1000)
@given(operations, st.integers(1, 40))
def test_answers_match_trying_every_pattern(steps: list[tuple], cached: int) -> None:
    """Lookups finished at once, and scans left open across other changes (a message's
    slices), each answer what trying every pattern answers."""
    index = PatternIndex(cached_channels=cached % 4 + 1, added_kept=cached // 4 + 1)
    live: dict[bytes, PatternEntry] = {}
    open_scans: list[tuple[Scan, list[PatternEntry]]] = []
    for step in steps:
        if step[0] == "add" and step[1] not in live:
            live[step[1]] = index.add(step[1], {1})
        elif step[0] == "remove" and step[1] in live:
            index.remove(live.pop(step[1]))
        elif step[0] == "look":
            channel, budget = step[1], step[2]
            expected = sorted(p for p in live if Glob(p).matches(channel))
            assert finish(index.matching(channel), budget) == expected
        elif step[0] == "start":
            scan = index.matching(step[1])
            scan.advance(1)
            open_scans.append((scan, [e for p, e in live.items()
                                      if Glob(p).matches(step[1])]))
        elif step[0] == "finish" and step[1] < len(open_scans):
            scan, matched_then = open_scans.pop(step[1])
            assert finish(scan, 2) == sorted(e.pattern for e in matched_then if e.live)


def test_a_scan_in_progress_keeps_its_answer_when_patterns_change() -> None:
    """A message's receivers are those when it was published: a pattern added during its
    slices is not in its scan, nor does a later lookup change the list it reads."""
    index = PatternIndex()
    for n in range(10):
        index.add(b"ch%d*" % n, {n})
    first = index.matching(b"ch5x")
    first.advance(3)
    index.add(b"ch5?", {99})
    assert finish(first, 3) == [b"ch5*"]
    second = index.matching(b"ch5x")
    assert finish(second, 100) == [b"ch5*", b"ch5?"]
    again = index.matching(b"ch5x")
    assert again.done and again.found == second.found
    assert [e.pattern for e in first.found] == [b"ch5*"]


def test_the_answer_is_kept_and_followed() -> None:
    index = PatternIndex()
    entry = index.add(b"__cluster__:*", {1})
    first = index.matching(b"__cluster__:node")
    assert not first.done  # one pattern to try
    first.advance(10)
    kept = index.matching(b"__cluster__:node")
    assert kept.done and kept.found == [entry]
    index.remove(entry)
    assert index.matching(b"__cluster__:node").found == []


def test_receivers_follow_subscriptions() -> None:
    registry = Subscriptions()
    one, two = Session(id=1), Session(id=2)
    registry.subscribe(one, b"__cluster__:node")
    registry.psubscribe(one, b"__cluster__:*")
    registry.psubscribe(two, b"__cluster__:*")
    registry.psubscribe(two, b"__health__:*")
    subscribers, scan = registry.receivers(b"__cluster__:node")
    assert subscribers == (1,)
    assert finish(scan, 10) == [b"__cluster__:*"]
    assert sorted(scan.found[0].ids) == [1, 2]
    registry.drop(two)
    assert registry.patterns == {b"__cluster__:*": {1}}
    _, scan = registry.receivers(b"__health__:ready")
    assert finish(scan, 10) == []
    registry.punsubscribe(one, b"__cluster__:*")
    assert registry.patterns == {}
    assert finish(registry.receivers(b"__cluster__:node")[1], 10) == []


def test_a_scan_that_ends_after_the_answers_were_forgotten_keeps_nothing() -> None:
    index = PatternIndex(added_kept=2)
    index.add(b"a*", {1})
    index.add(b"ab*", {1})
    old = index.matching(b"abc")
    old.advance(1)
    for _ in range(3):  # churn: the additions outnumber the patterns, answers go
        index.remove(index.add(b"x", {2}))
    for pattern in (b"abc*", b"y1", b"y2"):
        index.add(pattern, {2})
    finish(old, 10)
    assert finish(index.matching(b"abc"), 10) == [b"a*", b"ab*", b"abc*"]
