"""The depth rule for status documents (cluster/messages.py): a service's status at one
level, in any format, nests at most 32 arrays and objects; a deeper one is rejected at
ingest naming the field, counted as ``depth``, and the model keeps what it had."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterwatch.cluster import ClusterModel, MessageError, decode_message
from clusterwatch.cluster.services import ServiceStatusView
from tests.cluster.clusterkit import T0, hello

LIMIT = 1 << 20
MAX_STATUS_DEPTH = 32  # the documented limit


def nested(depth: int, *, inner: Any = 0, kinds: str = "[") -> Any:
    """``depth`` containers inside one another, alternating through ``kinds``."""
    value = inner
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] == "[" else {"k": value, "x": 1}
    return value


def beat(status: Any = None, *, versions: Any = None, seq: int = 2) -> bytes:
    service: dict[str, Any] = {"state": "running"}
    if status is not None:
        service["status"] = status
    if versions is not None:
        service["status_versions"] = versions
    return json.dumps({"v": 1, "type": "heartbeat", "node": "n1", "epoch": 1, "seq": seq,
                       "services": {"web": service}}).encode()


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def rejection(data: bytes) -> MessageError:
    with pytest.raises(MessageError) as caught:
        decode_message(data, max_size=LIMIT)
    return caught.value


@pytest.mark.parametrize("kinds", ["[", "{", "[{", "{["])
def test_32_levels_are_accepted_33_are_not(kinds: str) -> None:
    decode_message(beat({"debug": nested(32, kinds=kinds)}), max_size=LIMIT)
    error = rejection(beat({"debug": nested(33, kinds=kinds)}))
    assert (error.field, error.code) == ("services[web].status.debug", "depth")
    assert error.reason == "nests more than 32 levels of arrays and objects"
    assert str(error) == ("services[web].status.debug: nests more than 32 levels of arrays "
                          "and objects")


def test_every_level_and_every_format_is_checked() -> None:
    error = rejection(beat({"critical": {"ok": True}, "info": nested(40, kinds="{")}))
    assert error.field == "services[web].status.info"
    error = rejection(beat({"info": {}}, versions={"1": {"critical": nested(33)}}))
    assert (error.field, error.code) == ("services[web].status_versions[1].critical", "depth")


def test_a_deep_branch_beside_wide_flat_ones_is_found() -> None:
    wide = {f"k{i}": i for i in range(500)}
    doc = {"a": wide, "b": [1, 2, {"c": wide}], "z": nested(31)}  # the deep one last
    decode_message(beat({"debug": doc}), max_size=LIMIT)
    doc["z"] = nested(32)
    assert rejection(beat({"debug": doc})).code == "depth"


def test_far_deeper_documents_are_depth_rejects_too() -> None:
    """Up to what the decoder can read the field is named; beyond, the whole message."""
    for depth in (200, 900, 990, 50_000):
        raw = (b'{"v":1,"type":"heartbeat","node":"n","epoch":1,"seq":1,"services":{"s":'
               b'{"status":{"info":' + b"[" * depth + b"]" * depth + b"}}}}")
        error = rejection(raw)
        assert error.code == "depth"
        assert error.field in ("services[s].status.info", "")


def test_a_rejected_document_leaves_the_model_as_it_was() -> None:
    model = ClusterModel()
    assert model.publish(hello("n1", 1, 1), T0).kind == "applied"
    assert model.publish(beat({"debug": nested(32)}, seq=2), T0).kind == "applied"
    outcome = model.publish(beat({"debug": nested(33)}, seq=3), T0 + 10)
    assert outcome.kind == "rejected"
    assert model.counters().rejected == {"depth": 1}
    entry = ServiceStatusView(model).service("n1/web", level="debug", now_ms=T0 + 10)
    assert depth_of(entry.status) == 32


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.lists(st.sampled_from("[{"), min_size=40, max_size=40),
       st.lists(st.tuples(st.integers(0, 39), st.sampled_from([0, "s", None, True, 1.5, []]))))
def test_accepted_exactly_when_no_path_nests_deeper_than_the_limit(
        length: int, kinds: list[str], siblings: list[tuple[int, Any]]) -> None:
    """A random spine of containers with scalars and shallow branches hung along it."""
    value: Any = "leaf"
    for level, kind in enumerate(kinds[:length]):
        extra = [v for at, v in siblings if at == level]
        value = [value, *extra] if kind == "[" else {"spine": value,
                                                     **{f"s{i}": v for i, v in enumerate(extra)}}
    data = beat({"debug": value})
    if depth_of(value) <= MAX_STATUS_DEPTH:
        decode_message(data, max_size=LIMIT)
    else:
        assert rejection(data).code == "depth"
