"""Encoded replies rendered per protocol on demand, and frames equal in both shared."""

from __future__ import annotations

from resp import Encoded, Map, encode, encode_both, encode_lazy


def test_lazy_renders_each_protocol_once_when_asked() -> None:
    calls: list[int] = []
    value = Map([("a", 1), ("b", [True, None])])

    def build() -> Map:
        calls.append(1)
        return value

    reply = encode_lazy(build)
    assert calls == []
    assert reply.resp2 == encode(value, 2)
    assert reply.resp2 == encode(value, 2)
    assert len(calls) == 1
    assert reply.resp3 == encode(value, 3)
    assert len(calls) == 2
    assert not hasattr(reply, "_build")  # both rendered: the source is let go


def test_frames_equal_in_both_protocols_are_one_object() -> None:
    data = b"x" * 100_000
    lazy = encode_lazy(lambda: data)
    assert lazy.resp3 is lazy.resp2
    both = encode_both(data)
    assert both.resp3 is both.resp2
    assert Encoded(b"+OK\r\n", b"+OK\r\n").resp3 == b"+OK\r\n"


def test_unknown_attribute_is_an_attribute_error() -> None:
    reply = encode_lazy(lambda: 1)
    try:
        reply.other  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("expected AttributeError")
