"""MAXAGE <ms>: data older than that counts as unknown for one read (cluster/freshness.py),
and bad values answered as Redis answers a bad integer argument."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clusterwatch.cluster.freshness import MAX_AGE_LIMIT, parse_max_age
from tests.commands.test_status_commands import UP_CHECKS, A, B, StatusHarness, running

NOT_INTEGER = "ERR value is not an integer or out of range"
READS = (
    ("STATUS", "SERVICES"),
    ("STATUS", "SERVICE", "db"),
    ("STATUS", "SIMPLE"),
    ("STATUS", "SIMPLE", "db"),
    ("STATUS", "NODE", A),
    ("HEALTH", "NODE", A),
    ("HEALTH", "READY"),
    ("HEALTH", "HEALTH", "NODE", A, "VERBOSE"),
)


@pytest.fixture
def h() -> Iterator[StatusHarness]:
    harness = StatusHarness(node_timeout=15_000)
    harness.server.self_checks = dict(UP_CHECKS)
    harness.cluster()
    harness.heartbeat(A, services={"db": running()}, node_state="RUNNING",
                      partitions=[{"id": 1, "role": "leader", "health": "healthy"}])
    yield harness
    harness.close()


BAD_VALUES = [
    ("-1", "ERR MAXAGE is negative"),
    ("-9223372036854775808", "ERR MAXAGE is negative"),
    ("soon", NOT_INTEGER),
    ("", NOT_INTEGER),
    ("1.5", NOT_INTEGER),
    ("1e3", NOT_INTEGER),
    (" 5", NOT_INTEGER),
    ("5 ", NOT_INTEGER),
    ("0x10", NOT_INTEGER),
    ("9223372036854775808", NOT_INTEGER),  # 2^63: past LLONG_MAX
    ("99999999999999999999999999999999999999", NOT_INTEGER),
    ("1" * 5000, NOT_INTEGER),
    ("\u00bd", NOT_INTEGER),
    ("١٢", NOT_INTEGER),  # Arabic-Indic digits are not ASCII digits
]


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize(("value", "error"), BAD_VALUES)
def test_a_bad_maxage_is_refused_like_a_bad_redis_integer(
        h: StatusHarness, read: tuple[str, ...], value: str, error: str) -> None:
    for proto in (2, 3):
        assert h.error(*read, "MAXAGE", value, proto=proto) == error


@pytest.mark.parametrize("read", READS)
def test_maxage_repeated_or_without_a_value_is_a_syntax_error(
        h: StatusHarness, read: tuple[str, ...]) -> None:
    assert h.error(*read, "MAXAGE", "10", "MAXAGE", "10") == "ERR syntax error"
    if read == ("STATUS", "SIMPLE"):  # one word after SIMPLE is a name, as ever
        assert h.error(*read, "MAXAGE") == "ERR not found: MAXAGE"
    else:
        assert h.error(*read, "MAXAGE") == "ERR syntax error"


def test_maxage_accepts_zero_to_llong_max(h: StatusHarness) -> None:
    assert parse_max_age(b"0") == 0
    assert parse_max_age(str(MAX_AGE_LIMIT)) == MAX_AGE_LIMIT
    huge = str(MAX_AGE_LIMIT)
    assert h.call("STATUS", "SIMPLE", "db", "MAXAGE", huge) == b"running"
    assert h.call("HEALTH", "NODE", A, "MAXAGE", huge) == b"UP"
    assert h.call("STATUS", "SIMPLE", "db", "maxage", "0") == b"running"  # 0 ms old


def test_the_server_is_unchanged_by_bad_maxage(h: StatusHarness) -> None:
    before = (h.server.model.version, h.call("STATUS", "SERVICES", "FORMAT", "JSON"))
    for value, _error in BAD_VALUES:
        h.reply("STATUS", "SERVICES", "MAXAGE", value)
    assert (h.server.model.version, h.call("STATUS", "SERVICES", "FORMAT", "JSON")) == before
    assert h.call("PING") == b"PONG"


def test_older_data_is_unknown_for_that_read_only(h: StatusHarness) -> None:
    h.now += 2_000
    doc = json.loads(h.call("STATUS", "SERVICES", "MAXAGE", "1000", "FORMAT", "JSON"))
    entry = doc[f"{A}/db"]
    assert entry["state"] == "unknown" and entry["active_alerts"] == []
    assert entry["status"] == (f"Status older than MAXAGE 1000 ms: the last status from node "
                               f"{A} arrived 2.0 seconds ago")
    # The same read without MAXAGE, or with a longer one, is as before.
    plain = json.loads(h.call("STATUS", "SERVICES", "FORMAT", "JSON"))
    assert plain[f"{A}/db"]["state"] == "running"
    longer = json.loads(h.call("STATUS", "SERVICES", "MAXAGE", "5000", "FORMAT", "JSON"))
    assert longer[f"{A}/db"]["state"] == "running"
    one = h.reply("STATUS", "SERVICE", "db", "MAXAGE", "1000", proto=3)
    assert one[b"state"] == b"unknown"
    assert h.error("STATUS", "SIMPLE", "MAXAGE", "1000").startswith(
        "unknown (1 service; not all running: ")
    assert h.error("STATUS", "SIMPLE", "db", "MAXAGE", "1000") == (
        f"unknown (1 service named db; not all running: {A}/db unknown (status older than "
        f"1000 ms, received at {h.now - 2_000}))")
    assert h.call("STATUS", "SIMPLE") == b"running"


def test_maxage_on_status_node_and_health(h: StatusHarness) -> None:
    h.heartbeat(B, services={"web": running()})
    h.now += 2_000
    fresh = json.loads(h.call("STATUS", "NODE", A, "FORMAT", "JSON"))
    assert (fresh["isReady"], fresh["nodeState"]) == (True, "RUNNING")
    old = json.loads(h.call("STATUS", "NODE", A, "MAXAGE", "1000", "FORMAT", "JSON"))
    assert (old["isReady"], old["isServing"], old["nodeState"]) == (False, False, "ERROR")
    assert h.call("HEALTH", "NODE", A) == b"UP"
    assert h.error("HEALTH", "NODE", A, "MAXAGE", "1000").startswith(
        f"UNKNOWN health NODE {A}: maxAge UNKNOWN (last heartbeat 2000 ms old, older than "
        "MAXAGE 1000 ms)")
    # The cluster: the nodes heard from too long ago are named.
    report = json.loads(h.call("HEALTH", "VERBOSE", "MAXAGE", "1000", "FORMAT", "JSON"))
    assert report["status"] == "UNKNOWN"
    assert report["components"]["maxAge"]["status"] == "UNKNOWN"
    h.heartbeat(B, services={"web": running()})
    report = json.loads(h.call("HEALTH", "VERBOSE", "MAXAGE", "1000", "FORMAT", "JSON"))
    assert report["components"]["maxAge"] == {"status": "DEGRADED", "details": {
        "reason": f"2 of 3 nodes last heard from more than 1000 ms ago: {A}, "
                  f"{'c' * 40}"}}
    assert report["status"] == "DEGRADED"
