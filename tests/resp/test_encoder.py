"""Exact wire bytes for every reply type, in RESP2 and RESP3 (the downgrade table)."""

from __future__ import annotations

import pytest

from clusterwatch.resp import (
    NULL_ARRAY,
    OK,
    PONG,
    QUEUED,
    Encoded,
    ErrorReply,
    LocalProtocolError,
    Map,
    Push,
    Set,
    SimpleString,
    Verbatim,
    encode,
    encode_both,
    format_double,
    write,
)

# (reply, RESP2 bytes, RESP3 bytes)
VECTORS = [
    pytest.param(0, b":0\r\n", b":0\r\n", id="int-zero"),
    pytest.param(-42, b":-42\r\n", b":-42\r\n", id="int-negative"),
    pytest.param(2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n",
                 id="int-max"),
    pytest.param(b"", b"$0\r\n\r\n", b"$0\r\n\r\n", id="bulk-empty"),
    pytest.param(b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n", id="bulk-binary-crlf"),
    pytest.param(b"\x00\xff", b"$2\r\n\x00\xff\r\n", b"$2\r\n\x00\xff\r\n", id="bulk-bytes"),
    pytest.param("h\u00e9", b"$3\r\nh\xc3\xa9\r\n", b"$3\r\nh\xc3\xa9\r\n", id="str-utf8"),
    pytest.param(None, b"$-1\r\n", b"_\r\n", id="null"),
    pytest.param(NULL_ARRAY, b"*-1\r\n", b"_\r\n", id="null-array"),
    pytest.param(True, b":1\r\n", b"#t\r\n", id="true"),
    pytest.param(False, b":0\r\n", b"#f\r\n", id="false"),
    pytest.param(1.5, b"$3\r\n1.5\r\n", b",1.5\r\n", id="double"),
    pytest.param(1.0, b"$1\r\n1\r\n", b",1\r\n", id="double-integral"),
    pytest.param(-3.0, b"$2\r\n-3\r\n", b",-3\r\n", id="double-integral-negative"),
    pytest.param(float("inf"), b"$3\r\ninf\r\n", b",inf\r\n", id="double-inf"),
    pytest.param(float("-inf"), b"$4\r\n-inf\r\n", b",-inf\r\n", id="double-minus-inf"),
    pytest.param(float("nan"), b"$3\r\nnan\r\n", b",nan\r\n", id="double-nan"),
    pytest.param(1e17, b"$5\r\n1e+17\r\n", b",1e+17\r\n", id="double-large"),
    pytest.param(0.1, b"$3\r\n0.1\r\n", b",0.1\r\n", id="double-shortest"),
    pytest.param(OK, b"+OK\r\n", b"+OK\r\n", id="simple-ok"),
    pytest.param(PONG, b"+PONG\r\n", b"+PONG\r\n", id="simple-pong"),
    pytest.param(QUEUED, b"+QUEUED\r\n", b"+QUEUED\r\n", id="simple-queued"),
    pytest.param(SimpleString(""), b"+\r\n", b"+\r\n", id="simple-empty"),
    pytest.param(ErrorReply("ERR", "bad thing"), b"-ERR bad thing\r\n", b"-ERR bad thing\r\n",
                 id="error"),
    pytest.param(ErrorReply("NOAUTH", ""), b"-NOAUTH\r\n", b"-NOAUTH\r\n", id="error-bare-prefix"),
    pytest.param(Verbatim("a:b\r\n"), b"$5\r\na:b\r\n\r\n", b"=9\r\ntxt:a:b\r\n\r\n",
                 id="verbatim"),
    pytest.param(Verbatim(b"x", "mkd"), b"$1\r\nx\r\n", b"=5\r\nmkd:x\r\n", id="verbatim-mkd"),
    pytest.param(Verbatim(""), b"$0\r\n\r\n", b"=4\r\ntxt:\r\n", id="verbatim-empty"),
    pytest.param([], b"*0\r\n", b"*0\r\n", id="array-empty"),
    pytest.param([1, b"a"], b"*2\r\n:1\r\n$1\r\na\r\n", b"*2\r\n:1\r\n$1\r\na\r\n", id="array"),
    pytest.param((None,), b"*1\r\n$-1\r\n", b"*1\r\n_\r\n", id="tuple-with-null"),
    pytest.param(Map({}), b"*0\r\n", b"%0\r\n", id="map-empty"),
    pytest.param(Map({"a": 1, "b": b"x"}),
                 b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n",
                 b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n", id="map"),
    pytest.param(Map([(2, True), (1, None)]),
                 b"*4\r\n:2\r\n:1\r\n:1\r\n$-1\r\n",
                 b"%2\r\n:2\r\n#t\r\n:1\r\n_\r\n", id="map-pairs-keep-order"),
    pytest.param(Set([]), b"*0\r\n", b"~0\r\n", id="set-empty"),
    pytest.param(Set([SimpleString("fast"), SimpleString("stale")]),
                 b"*2\r\n+fast\r\n+stale\r\n", b"~2\r\n+fast\r\n+stale\r\n", id="set"),
    pytest.param(Push([b"message", b"ch", 1.5]),
                 b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\n1.5\r\n",
                 b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n,1.5\r\n", id="push"),
    pytest.param(
        [Map({"k": Set([1.0, False])}), [Verbatim("v"), NULL_ARRAY], ErrorReply("E", "x")],
        b"*3\r\n*2\r\n$1\r\nk\r\n*2\r\n$1\r\n1\r\n:0\r\n*2\r\n$1\r\nv\r\n*-1\r\n-E x\r\n",
        b"*3\r\n%1\r\n$1\r\nk\r\n~2\r\n,1\r\n#f\r\n*2\r\n=5\r\ntxt:v\r\n_\r\n-E x\r\n",
        id="nested",
    ),
    pytest.param(Map({"m": Map({"n": []})}),
                 b"*2\r\n$1\r\nm\r\n*2\r\n$1\r\nn\r\n*0\r\n",
                 b"%1\r\n$1\r\nm\r\n%1\r\n$1\r\nn\r\n*0\r\n", id="map-in-map"),
]


@pytest.mark.parametrize(("reply", "resp2", "resp3"), VECTORS)
def test_resp2_bytes(reply: object, resp2: bytes, resp3: bytes) -> None:
    assert encode(reply, 2) == resp2  # type: ignore[arg-type]


@pytest.mark.parametrize(("reply", "resp2", "resp3"), VECTORS)
def test_resp3_bytes(reply: object, resp2: bytes, resp3: bytes) -> None:
    assert encode(reply, 3) == resp3  # type: ignore[arg-type]


@pytest.mark.parametrize(("reply", "resp2", "resp3"), VECTORS)
def test_write_appends_the_same_bytes(reply: object, resp2: bytes, resp3: bytes) -> None:
    out = [b"previous"]
    write(out, reply, 3)  # type: ignore[arg-type]
    write(out, reply, 2)  # type: ignore[arg-type]
    assert out[0] == b"previous"
    assert b"".join(out) == b"previous" + resp3 + resp2


@pytest.mark.parametrize(("reply", "resp2", "resp3"), VECTORS)
def test_encode_both_matches_encode(reply: object, resp2: bytes, resp3: bytes) -> None:
    both = encode_both(reply)  # type: ignore[arg-type]
    assert (both.resp2, both.resp3) == (resp2, resp3)


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("a\r\nb", b"+a  b\r\n"),
        ("line1\nline2", b"+line1 line2\r\n"),
        ("cr\ronly", b"+cr only\r\n"),
        ("\r\n", b"+  \r\n"),
    ],
)
def test_simple_string_text_is_one_line(text: str, wire: bytes) -> None:
    assert encode(SimpleString(text), 2) == wire
    assert encode(SimpleString(text), 3) == wire


def test_error_text_is_one_line() -> None:
    reply = ErrorReply("ERR", "unknown command 'EVAL', with args beginning with: 'return\r\n1' ")
    expected = b"-ERR unknown command 'EVAL', with args beginning with: 'return  1' \r\n"
    assert encode(reply, 2) == expected
    assert encode(reply, 3) == expected
    assert encode(ErrorReply("ERR\nX", "a\rb"), 3) == b"-ERR X a b\r\n"


def test_error_inside_array_is_sanitised_too() -> None:
    assert encode([ErrorReply("ERR", "x\ny")], 3) == b"*1\r\n-ERR x y\r\n"


def test_no_big_number_or_attribute_or_blob_error_types() -> None:
    # Values that would tempt an encoder toward `(`, `|` or `!`.
    replies = [2**63 - 1, -(2**63), ErrorReply("ERR", "x" * 5000), Map({1: 2})]
    for reply in replies:
        for protocol in (2, 3):
            wire = encode(reply, protocol)  # type: ignore[arg-type]
            assert wire[:1] not in (b"(", b"|", b"!"), (reply, protocol, wire[:20])


def test_encoded_passthrough_by_protocol() -> None:
    cached = Encoded(b"$5\r\nhello\r\n", b"=9\r\ntxt:hello\r\n")
    assert encode(cached, 2) == b"$5\r\nhello\r\n"
    assert encode(cached, 3) == b"=9\r\ntxt:hello\r\n"
    # Nested, the frame is copied verbatim: no re-encoding, no length prefix.
    assert encode([cached, 1], 3) == b"*2\r\n=9\r\ntxt:hello\r\n:1\r\n"
    assert encode(Map({"k": cached}), 2) == b"*2\r\n$1\r\nk\r\n$5\r\nhello\r\n"


def test_encode_both_then_encoded_is_identity() -> None:
    reply = Map({"proto": 3, "flags": Set([SimpleString("a")]), "d": 2.5})
    both = encode_both(reply)
    assert encode(both, 2) == encode(reply, 2)
    assert encode(both, 3) == encode(reply, 3)
    assert encode(both, 2) != encode(both, 3)


@pytest.mark.parametrize(
    "bad",
    [object(), {"a": 1}, {1, 2}, bytearray(b"x"), memoryview(b"x"), 1j, [1, object()],
     Map({"k": {1: 2}}), Set([frozenset()])],
    ids=["object", "dict", "set", "bytearray", "memoryview", "complex", "nested-object",
         "dict-in-map", "frozenset-in-set"],
)
@pytest.mark.parametrize("protocol", [2, 3])
def test_unknown_types_are_a_local_protocol_error(bad: object, protocol: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode(bad, protocol)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),  # redis-server keeps the sign
        (1.0, "1"),
        (-1.0, "-1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (1e16, "10000000000000000"),
        (1e17, "1e+17"),
        (1e-7, "1e-07"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
    ],
)
def test_format_double(value: float, text: str) -> None:
    assert format_double(value) == text


def test_verbatim_format_must_be_three_characters() -> None:
    with pytest.raises(ValueError, match="three"):
        Verbatim("x", "text")
