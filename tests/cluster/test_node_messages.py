from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import (
    Address,
    FailReport,
    Heartbeat,
    Hello,
    Leave,
    MessageError,
    Slots,
    decode_message,
    parse_addr,
)
from tests.cluster.clusterkit import encode

LIMIT = 65536
BASE: dict[str, Any] = {"v": 1, "node": "n1", "epoch": 3, "seq": 7}


def decode(doc: dict[str, Any]) -> Any:
    return decode_message(encode(doc), max_size=LIMIT)


def rejection(data: bytes, max_size: int = LIMIT) -> MessageError:
    with pytest.raises(MessageError) as info:
        decode_message(data, max_size=max_size)
    error = info.value
    assert "\r" not in error.reason and "\n" not in error.reason
    return error


def test_hello_decodes_with_defaults() -> None:
    msg = decode({**BASE, "type": "hello", "addr": "10.1.2.3:6379", "ts_ms": 5})
    assert isinstance(msg, Hello)
    assert (msg.node, msg.epoch, msg.seq, msg.ts_ms) == ("n1", 3, 7, 5)
    assert (msg.role, msg.replicaof, msg.hostname) == ("master", None, None)


def test_replica_hello_with_busport_and_hostname() -> None:
    doc = {
        **BASE,
        "type": "hello",
        "addr": "h.example:7001@17777",
        "hostname": "h.example",
        "role": "replica",
        "replicaof": "n0",
    }
    msg = decode(doc)
    assert isinstance(msg, Hello) and msg.replicaof == "n0" and msg.hostname == "h.example"


def test_heartbeat_carries_the_typed_status_payload() -> None:
    doc = {
        **BASE,
        "type": "heartbeat",
        "node_state": "RUNNING",
        "config_state": "CONFIGURED",
        "transaction_id": "t-1",
        "serving": True,
        "services": {
            "db": {
                "version": "1.2",
                "state": "running",
                "status": {"critical": None, "info": {"conns": 3}},
                "alerts": [{"severity": "warning", "message": "slow"}],
            },
            "cache": {},
        },
        "partitions": [{"id": 1, "role": "leader", "health": "healthy"}],
        "queries": {"q1": {"active_partitions": [{"topic": "t", "partition": 0}]}},
        "store_lags": {"s": {"0": {"current_offset": 5, "end_offset": 9, "offset_lag": 4}}},
        "thread_pool": {"active": 1, "max": 8, "queued": 0},
        "requests": {"active": 2, "max": 100, "total": 5000},
    }
    msg = decode(doc)
    assert isinstance(msg, Heartbeat)
    assert msg.services is not None and msg.services["cache"].state == "unknown"
    assert msg.services["db"].status_version == 1
    assert msg.services["db"].alerts[0].message == "slow"
    assert msg.store_lags is not None and msg.store_lags["s"][0].offset_lag == 4
    assert msg.queries is not None and msg.queries["q1"].active_stores == ()
    assert msg.thread_pool is not None and msg.thread_pool.max == 8


def test_bare_heartbeat_has_no_payload() -> None:
    msg = decode({**BASE, "type": "heartbeat"})
    assert isinstance(msg, Heartbeat) and msg.services is None and msg.serving is None


def test_slots_fail_report_and_leave_decode() -> None:
    msg = decode({**BASE, "type": "slots", "ranges": [[0, 10], [16383, 16383]]})
    assert isinstance(msg, Slots) and msg.ranges == [(0, 10), (16383, 16383)]
    msg = decode({**BASE, "type": "slots", "ranges": []})
    assert isinstance(msg, Slots) and msg.ranges == []
    msg = decode({**BASE, "type": "fail_report", "target": "n2", "state": "fail"})
    assert isinstance(msg, FailReport) and (msg.target, msg.state) == ("n2", "fail")
    assert isinstance(decode({**BASE, "type": "leave"}), Leave)


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode({**BASE, "type": "leave", "future": [1, 2]}), Leave)


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        (b'{"v":1,', "", "json"),
        (b"not json", "", "json"),
        (b'{"v":1} trailing', "", "json"),
        (b'{"v":1,"type":"leave","node":"\xff","epoch":1,"seq":1}', "", "json"),
        (b"[1, 2]", "", "type"),
        (b"{}", "type", "missing_field"),
        (b'{"type":7}', "type", "type"),
        (b'{"v":1,"type":"bogus","node":"n","epoch":1,"seq":1}', "type", "unknown_type"),
        (b'{"v":2,"type":"leave","node":"n","epoch":1,"seq":1}', "v", "version"),
        (b'{"v":2,"type":"newtype","node":"n","epoch":1,"seq":1}', "v", "version"),
        (b'{"v":"1","type":"leave","node":"n","epoch":1,"seq":1}', "v", "version"),
        (b'{"type":"leave","node":"n","epoch":1,"seq":1}', "v", "missing_field"),
        (b'{"v":1,"type":"leave","epoch":1,"seq":1}', "node", "missing_field"),
        (b'{"v":1,"type":"slots","node":"n","epoch":1,"seq":1}', "ranges", "missing_field"),
        (b'{"v":1,"type":"leave","node":"n","epoch":"1","seq":1}', "epoch", "type"),
        (b'{"v":1,"type":"leave","node":"n","epoch":1.5,"seq":1}', "epoch", "type"),
        (b'{"v":1,"type":"leave","node":"n","epoch":-1,"seq":1}', "epoch", "range"),
        (b'{"v":1,"type":"leave","node":"n","epoch":1,"seq":1e400}', "", "json"),
        (b'{"v":1,"type":"leave","node":"n","epoch":1,"seq":99999999999999999999}', "seq", "range"),
        (b'{"v":1,"type":"leave","node":"a b","epoch":1,"seq":1}', "node", "format"),
        (b'{"v":1,"type":"leave","node":"a\\n","epoch":1,"seq":1}', "node", "format"),
        (b'{"v":1,"type":"leave","node":"","epoch":1,"seq":1}', "node", "format"),
        (b'{"v":1,"type":"leave","node":"' + b"x" * 65 + b'","epoch":1,"seq":1}', "node", "format"),
    ],
)
def test_invalid_documents_name_field_and_code(data: bytes, field: str, code: str) -> None:
    error = rejection(data)
    assert (error.field, error.code) == (field, code), error
    assert error.reason


@pytest.mark.parametrize(
    ("extra", "field", "code"),
    [
        ({"type": "slots", "ranges": [[0, 16384]]}, "ranges[0][1]", "range"),
        ({"type": "slots", "ranges": [[0, 1], [-1, 4]]}, "ranges[1][0]", "range"),
        ({"type": "slots", "ranges": [[9, 3]]}, "ranges[0]", "range"),
        ({"type": "slots", "ranges": [[1, 2, 3]]}, "ranges[0]", "format"),
        ({"type": "slots", "ranges": [["0", 2]]}, "ranges[0][0]", "type"),
        ({"type": "slots", "ranges": {"0": 1}}, "ranges", "type"),
        ({"type": "hello", "addr": "10.0.0.1"}, "addr", "format"),
        ({"type": "hello", "addr": "10.0.0.1:0"}, "addr", "format"),
        ({"type": "hello", "addr": "10.0.0.1:65536"}, "addr", "format"),
        ({"type": "hello", "addr": "10.0.0.1:80@70000"}, "addr", "format"),
        ({"type": "hello", "addr": "a b:80"}, "addr", "format"),
        ({"type": "hello", "addr": "h:1", "role": "boss"}, "role", "value"),
        ({"type": "hello", "addr": "h:1", "hostname": "a b"}, "hostname", "format"),
        ({"type": "hello", "addr": "h:1", "replicaof": "n0"}, "replicaof", "value"),
        (
            {"type": "hello", "addr": "h:1", "role": "replica", "replicaof": "n1"},
            "replicaof",
            "value",
        ),
        ({"type": "fail_report", "target": "n1", "state": "fail"}, "target", "value"),
        ({"type": "fail_report", "target": "n2", "state": "down"}, "state", "value"),
        ({"type": "fail_report", "state": "fail"}, "target", "missing_field"),
        ({"type": "heartbeat", "node_state": "DEAD"}, "node_state", "value"),
        ({"type": "heartbeat", "serving": "yes"}, "serving", "type"),
        ({"type": "heartbeat", "services": {"x": {"state": "on"}}}, "services[...].state", "value"),
        (
            {"type": "heartbeat", "services": {"x": {"alerts": [{"severity": "x"}]}}},
            "services[...].alerts[0].message",
            "missing_field",
        ),
        (
            {"type": "heartbeat", "services": {"x": {"status": {"loud": 1}}}},
            "services[...].status",
            "value",
        ),
        ({"type": "heartbeat", "store_lags": {"s": {"zero": {}}}}, "store_lags[...]", "type"),
        ({"type": "heartbeat", "thread_pool": {"active": -1}}, "thread_pool.active", "range"),
        (
            {"type": "heartbeat", "partitions": [{"id": 1, "role": "x", "health": "healthy"}]},
            "partitions[0].role",
            "value",
        ),
    ],
)
def test_invalid_fields_are_named(extra: dict[str, Any], field: str, code: str) -> None:
    error = rejection(encode({**BASE, **extra}))
    assert (error.field, error.code) == (field, code), error


def test_oversized_input_is_refused_before_decoding() -> None:
    data = encode({**BASE, "type": "heartbeat", "config_state": "x" * 100})
    error = rejection(data, max_size=len(data) - 1)
    assert (error.field, error.code) == ("", "too_large")
    assert isinstance(decode_message(data, max_size=len(data)), Heartbeat)
    assert rejection(b"not json at all", max_size=3).code == "too_large"


def test_deep_nesting_is_a_message_error() -> None:
    deep = b'{"info":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    data = b'{"v":1,"type":"heartbeat","node":"n","epoch":1,"seq":1,"services":{"s":{"status":'
    error = rejection(data + deep + b"}}}", max_size=1 << 20)
    assert (error.code, error.reason) == ("depth", "nested too deeply to decode")


def test_reason_is_one_short_line() -> None:
    error = rejection(encode({**BASE, "type": "hello", "addr": "h:1", "role": "x\r\n" * 500}))
    assert len(error.reason) <= 200 and "\n" not in error.reason and "\r" not in error.reason
    assert MessageError("f", "a\r\nb", "c").reason == "a  b"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:6379", Address("127.0.0.1", 6379, None)),
        ("127.0.0.1:6379@16379", Address("127.0.0.1", 6379, 16379)),
        ("::1:6379", Address("::1", 6379, None)),
        ("[fe80::1%eth0]:7000@17000", Address("fe80::1%eth0", 7000, 17000)),
        ("node-1.svc.local:65535", Address("node-1.svc.local", 65535, None)),
        (":6379", None),
        ("h:", None),
        ("h:6379@", None),
        ("h:123456", None),
        ("h:1@0", Address("h", 1, 0)),  # no cluster bus: a standalone Redis
        ("h:0@1", None),
        ("h\n:1", None),
    ],
)
def test_parse_addr(text: str, parsed: Address | None) -> None:
    assert parse_addr(text) == parsed


def test_messages_round_trip_through_json() -> None:
    for doc in (
        {**BASE, "type": "hello", "addr": "h:1@2", "role": "replica", "replicaof": "n0"},
        {**BASE, "type": "slots", "ranges": [[0, 5]]},
        {**BASE, "type": "fail_report", "target": "x", "state": "pfail"},
    ):
        msg = decode(doc)
        assert decode_message(msgspec.json.encode(msg), max_size=LIMIT) == msg


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.sampled_from(
    ["v", "type", "node", "epoch", "seq", "addr", "ranges", "target", "state", "services", "role"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_message_error(data: bytes) -> None:
    try:
        decode_message(data, max_size=100)
    except MessageError as error:
        assert error.code and "\n" not in error.reason


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["hello", "heartbeat", "slots", "fail_report", "leave", "other"]),
    st.dictionaries(field_values, json_values, max_size=6),
)
def test_arbitrary_documents_decode_or_raise_message_error(
    kind: str, extra: dict[str, Any]
) -> None:
    doc = {**BASE, "type": kind, **extra}
    try:
        decode_message(encode(doc), max_size=LIMIT)
    except MessageError as error:
        assert error.code in {
            "json",
            "type",
            "missing_field",
            "unknown_type",
            "version",
            "range",
            "format",
            "value",
        }
        top = error.field.split(".")[0].split("[")[0]
        assert error.field == "" or top in doc or error.code == "missing_field", error
