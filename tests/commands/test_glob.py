"""Redis's glob patterns (commands/_glob.py) against two oracles: a plain reference matcher
written from the rules (a memoized walk over pattern and name, no segments, no search),
and a real redis-server answering ``KEYS pattern`` over the same names (and ``PUBSUB
CHANNELS pattern`` for the recorded answers: ``KEYS *`` alone skips the matcher)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.commands._glob import MAX_STARS, Glob, compile_glob, glob_matches
from tests.integration.redis_procs import RedisProcess


def reference(pattern: bytes, name: bytes) -> bool:
    """The rules of the module header, walked one pattern byte at a time."""
    if _stars_before_end(pattern) > MAX_STARS:
        return False
    if not name:
        return not pattern

    @cache
    def walk(p: int, n: int) -> bool:
        if p == len(pattern):
            return n == len(name)
        byte = pattern[p]
        if byte == ord("*"):
            return walk(p + 1, n) or (n < len(name) and walk(p, n + 1))
        if n == len(name):
            return False
        if byte == ord("?"):
            return walk(p + 1, n + 1)
        if byte == ord("\\") and p + 1 < len(pattern):
            return pattern[p + 1] == name[n] and walk(p + 2, n + 1)
        if byte == ord("["):
            inside, after = _set_members(pattern, p + 1)
            return name[n] in inside and walk(after, n + 1)
        return byte == name[n] and walk(p + 1, n + 1)

    return walk(0, 0)


def _stars_before_end(pattern: bytes) -> int:
    """Star groups followed by something else (outside sets, not escaped)."""
    groups, p, in_star = 0, 0, False
    while p < len(pattern):
        byte = pattern[p]
        if byte == ord("*"):
            in_star = True
            p += 1
            continue
        if in_star:
            groups += 1
            in_star = False
        if byte == ord("\\") and p + 1 < len(pattern):
            p += 2
        elif byte == ord("["):
            p = _set_members(pattern, p + 1)[1]
        else:
            p += 1
    return groups


def _set_members(pattern: bytes, p: int) -> tuple[set[int], int]:
    def signed(byte: int) -> int:
        return byte - 256 if byte > 127 else byte

    negate = p < len(pattern) and pattern[p] == ord("^")
    p += negate
    members: set[int] = set()
    while p < len(pattern) and pattern[p] != ord("]"):
        if pattern[p] == ord("\\") and p + 1 < len(pattern):
            members.add(pattern[p + 1])
            p += 2
        elif p + 2 < len(pattern) and pattern[p + 1] == ord("-"):
            low, high = sorted((signed(pattern[p]), signed(pattern[p + 2])))
            members.update(b for b in range(256) if low <= signed(b) <= high)
            p += 3
        else:
            members.add(pattern[p])
            p += 1
    if p < len(pattern):
        p += 1  # the closing ]
    return (set(range(256)) - members if negate else members), p


ALPHABET = b"ab-]^\\[*?z\x80\xff"
patterns = st.binary(max_size=12).map(lambda raw: bytes(ALPHABET[b % len(ALPHABET)]
                                                        for b in raw))
names = st.binary(max_size=10).map(lambda raw: bytes(b"ab-]^\\[z\x80\xff"[b % 10]
                                                     for b in raw))


@settings(max_examples=3000)
@given(patterns, names)
def test_matches_like_the_reference(pattern: bytes, name: bytes) -> None:
    assert Glob(pattern).matches(name) == reference(pattern, name)


@settings(max_examples=1000)
@given(st.lists(st.sampled_from([b"a", b"b", b"ab", b"?", b"[ab]", b"[^a]", b"\\*"]),
                max_size=8).map(lambda parts: b"*".join(parts)), st.binary(max_size=14))
def test_star_separated_segments_match_like_the_reference(pattern: bytes,
                                                          name: bytes) -> None:
    name = bytes(b"ab*"[b % 3] for b in name)
    assert Glob(pattern).matches(name) == reference(pattern, name)


@given(patterns, st.lists(names, max_size=6))
def test_answers_do_not_depend_on_the_order_names_come_in(pattern: bytes,
                                                          some: list[bytes]) -> None:
    """A pattern is parsed only as far as the names so far needed."""
    shortest_first, longest_first = Glob(pattern), Glob(pattern)
    ascending = sorted(some, key=len)
    assert ([shortest_first.matches(name) for name in ascending]
            == [longest_first.matches(name) for name in reversed(ascending)][::-1]
            == [reference(pattern, name) for name in ascending])


@given(patterns, names)
def test_every_match_starts_with_the_prefix(pattern: bytes, name: bytes) -> None:
    glob = Glob(pattern)
    if glob.matches(name):
        assert name.startswith(glob.prefix)


# What redis-server 7.0.15 answered for each (KEYS pattern over the one key, name).
REDIS_ANSWERS = [
    (b"[a-]", b"a", True), (b"[a-]", b"]", True), (b"[a-]", b"b", False),
    (b"[a-]", b"-", False), (b"[a-]]", b"a", True), (b"[a-]]", b"a]", False),
    (b"[abc", b"b", True), (b"[abc", b"d", False), (b"a[", b"a", False),
    (b"a[", b"a[", False), (b"[", b"[", False), (b"[^", b"a", True),
    (b"\\", b"\\", True), (b"a\\", b"a\\", True), (b"[\\", b"\\", True),
    (b"[\\]]", b"]", True), (b"[]", b"]", False), (b"[]a]", b"a", False),
    (b"[^]", b"a", True), (b"[z-a]", b"m", True), (b"[a-z-0]", b"-", True),
    (b"[a\\-z]", b"b", False), (b"[a\\-z]", b"-", True), (b"[!a]", b"b", False),
    (b"a*", b"", False), (b"*", b"", False), (b"**", b"", False), (b"", b"", True),
    (b"?", b"", False), (b"*", b"a", True),
    (b"x[a-", b"x-", True), (b"x[a-", b"xb", False), (b"[a-\xff]", b"\x00", True),
    (b"[a-\xff]", b"b", False), (b"[a-\xff]", b"\xff", True),
    (b"a*" * MAX_STARS + b"a", b"a" * (MAX_STARS + 1), True),
    (b"a*" * (MAX_STARS + 1) + b"a", b"a" * (MAX_STARS + 2), False),
    (b"*a" * MAX_STARS, b"a" * MAX_STARS, True),
    (b"*a" * (MAX_STARS + 1), b"a" * (MAX_STARS + 1), False),
    (b"*a" * (MAX_STARS + 1) + b"*", b"a" * (MAX_STARS + 1), False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), REDIS_ANSWERS,
                         ids=[repr(p[:12]) + " " + repr(n[:8]) for p, n, _ in REDIS_ANSWERS])
def test_redis_answers(pattern: bytes, name: bytes, expected: bool) -> None:
    assert glob_matches(pattern, name) is expected


def test_a_pattern_of_many_stars_and_a_long_name_is_decided() -> None:
    """The shape that made fnmatch's regex backtrack: decided in one pass (no timing is
    asserted; a backtracking matcher would not return within the test's life)."""
    almost = b"a*" * MAX_STARS + b"b"
    assert not Glob(almost).matches(b"a" * 100_000)
    assert Glob(almost).matches(b"a" * 100_000 + b"b")
    assert not Glob(b"*a?" * 300 + b"c").matches(b"a" * 50_000)
    assert not Glob(b"a*" * 100_000 + b"b").matches(b"a" * 200_000 + b"b")  # past the limit


def test_compiled_once_and_shared() -> None:
    assert compile_glob(b"__cluster__:*") is compile_glob(b"__cluster__:*")
    assert compile_glob(b"__cluster__:*").prefix == b"__cluster__:"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    proc = RedisProcess(Path(tmp_path_factory.mktemp("glob-redis")))
    try:
        yield proc.client()
    finally:
        proc.stop()


@pytest.mark.integration
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patterns, st.lists(names, min_size=1, max_size=8, unique=True))
def test_matches_like_redis_server(redis_server: redis.Redis, pattern: bytes,
                                   keys: list[bytes]) -> None:
    """redis-server's KEYS over the same keys is the oracle (but for ``KEYS *``, which
    lists every key without matching, the empty one too)."""
    pipe = redis_server.pipeline(transaction=False)
    pipe.flushall()
    pipe.mset({key: b"1" for key in keys})
    pipe.keys(pattern)
    found = set(pipe.execute()[-1])
    if pattern == b"*":
        found.discard(b"")
    glob = Glob(pattern)
    assert {key for key in keys if glob.matches(key)} == found


RECORDED = [answer for answer in REDIS_ANSWERS if len(answer[0]) < 100]


@pytest.mark.integration
@pytest.mark.parametrize(("pattern", "name", "expected"), RECORDED,
                         ids=[repr(p) + " " + repr(n) for p, n, _ in RECORDED])
def test_the_recorded_answers_are_redis_servers(redis_server: redis.Redis, pattern: bytes,
                                                name: bytes, expected: bool) -> None:
    """PUBSUB CHANNELS with one channel subscribed: the matcher pub/sub uses."""
    subscriber = redis_server.pubsub()
    subscriber.subscribe(name)
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    try:
        assert redis_server.pubsub_channels(pattern) == ([name] if expected else [])
    finally:
        subscriber.close()
