"""The only place that knows RESP2 from RESP3.

Downgrade rules for RESP2 follow Redis: a map becomes a flat key/value array, a set and
a push become arrays, a double becomes a bulk string, a boolean the integer 1 or 0, a
verbatim string a bulk string, and null the null bulk string. RESP3 big numbers and
attributes are never emitted (redis-cli 7.0 exits on both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from ._errors import LocalProtocolError
from ._types import (
    Encoded,
    ErrorReply,
    Map,
    NullArray,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)

Protocol = Literal[2, 3]

_NULL2 = b"$-1\r\n"
_NULL_ARRAY2 = b"*-1\r\n"
_NULL3 = b"_\r\n"


def format_double(value: float) -> str:
    """Shortest text that round-trips, with Redis's spellings of the special values."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    if value.is_integer() and abs(value) < 1e17:
        return "-0" if value == 0 and math.copysign(1.0, value) < 0 else str(int(value))
    return repr(value)


def _bulk(out: list[bytes], data: bytes) -> None:
    out.append(b"$%d\r\n%b\r\n" % (len(data), data))


def _write_seq(out: list[bytes], head: bytes, items: tuple[Reply, ...] | list[Reply],
               protocol: Protocol) -> None:
    out.append(b"%b%d\r\n" % (head, len(items)))
    for item in items:
        write(out, item, protocol)


def _w_none(out: list[bytes], _r: None, protocol: Protocol) -> None:
    out.append(_NULL3 if protocol == 3 else _NULL2)


def _w_bool(out: list[bytes], r: bool, protocol: Protocol) -> None:
    if protocol == 3:
        out.append(b"#t\r\n" if r else b"#f\r\n")
    else:
        out.append(b":1\r\n" if r else b":0\r\n")


def _w_int(out: list[bytes], r: int, _p: Protocol) -> None:
    out.append(b":%d\r\n" % r)


def _w_float(out: list[bytes], r: float, protocol: Protocol) -> None:
    text = format_double(r).encode()
    if protocol == 3:
        out.append(b",%b\r\n" % text)
    else:
        _bulk(out, text)


def _w_bytes(out: list[bytes], r: bytes, _p: Protocol) -> None:
    _bulk(out, r)


def _w_str(out: list[bytes], r: str, _p: Protocol) -> None:
    _bulk(out, r.encode())


def _w_frame(out: list[bytes], r: SimpleString | ErrorReply, _p: Protocol) -> None:
    out.append(r.frame)


def _w_verbatim(out: list[bytes], r: Verbatim, protocol: Protocol) -> None:
    if protocol == 3:
        out.append(b"=%d\r\n%b:%b\r\n" % (len(r.text) + 4, r.fmt.encode(), r.text))
    else:
        _bulk(out, r.text)


def _w_list(out: list[bytes], r: list[Reply] | tuple[Reply, ...], protocol: Protocol) -> None:
    _write_seq(out, b"*", r, protocol)


def _w_map(out: list[bytes], r: Map, protocol: Protocol) -> None:
    out.append(b"%%%d\r\n" % len(r.items) if protocol == 3 else b"*%d\r\n" % (2 * len(r.items)))
    for key, value in r.items:
        write(out, key, protocol)
        write(out, value, protocol)


def _w_set(out: list[bytes], r: Set, protocol: Protocol) -> None:
    _write_seq(out, b"~" if protocol == 3 else b"*", r.members, protocol)


def _w_push(out: list[bytes], r: Push, protocol: Protocol) -> None:
    _write_seq(out, b">" if protocol == 3 else b"*", r.members, protocol)


def _w_null_array(out: list[bytes], _r: NullArray, protocol: Protocol) -> None:
    out.append(_NULL3 if protocol == 3 else _NULL_ARRAY2)


def _w_encoded(out: list[bytes], r: Encoded, protocol: Protocol) -> None:
    out.append(r.resp3 if protocol == 3 else r.resp2)


_WRITERS: dict[type, Callable[[list[bytes], object, Protocol], None]] = {
    type(None): _w_none,  # type: ignore[dict-item]
    bool: _w_bool,  # type: ignore[dict-item]
    int: _w_int,  # type: ignore[dict-item]
    float: _w_float,  # type: ignore[dict-item]
    bytes: _w_bytes,  # type: ignore[dict-item]
    str: _w_str,  # type: ignore[dict-item]
    SimpleString: _w_frame,  # type: ignore[dict-item]
    ErrorReply: _w_frame,  # type: ignore[dict-item]
    Verbatim: _w_verbatim,  # type: ignore[dict-item]
    list: _w_list,  # type: ignore[dict-item]
    tuple: _w_list,  # type: ignore[dict-item]
    Map: _w_map,  # type: ignore[dict-item]
    Set: _w_set,  # type: ignore[dict-item]
    Push: _w_push,  # type: ignore[dict-item]
    NullArray: _w_null_array,  # type: ignore[dict-item]
    Encoded: _w_encoded,  # type: ignore[dict-item]
}


def write(out: list[bytes], reply: Reply, protocol: Protocol) -> None:
    """Append the wire form of ``reply`` to ``out`` (one ``writelines`` per batch)."""
    kind = type(reply)
    if kind is SimpleString:  # the commonest replies, without a second call
        out.append(reply.frame)  # type: ignore[union-attr]
        return
    if kind is bytes:
        out.append(b"$%d\r\n%b\r\n" % (len(reply), reply))  # type: ignore[arg-type, str-format]
        return
    writer = _WRITERS.get(kind)
    if writer is None:
        raise LocalProtocolError(f"cannot encode a {type(reply).__name__} as a RESP reply")
    writer(out, reply, protocol)


def encode(reply: Reply, protocol: Protocol) -> bytes:
    """The wire form of ``reply`` in the given protocol version."""
    out: list[bytes] = []
    write(out, reply, protocol)
    return b"".join(out)


def encode_both(reply: Reply) -> Encoded:
    """Render once for each protocol, to be served many times."""
    return Encoded(encode(reply, 2), encode(reply, 3))
