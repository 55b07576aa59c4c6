"""Laws of the codec, checked with hypothesis.

* The reader, on any bytes in any chunking, yields only ``list[bytes]`` or raises
  ``RemoteProtocolError``; nothing else ever escapes, and after an error it stays dead.
* Requests encoded canonically (multibulk, or inline where an argument list allows it)
  come back exactly, however the stream is cut, long ones included.
* Two parsers, one meaning: whatever the bytes, their cutting into reads, the batch sizes
  and when the client authenticates, the reader (hiredis where its guard allows, the
  scanner elsewhere) yields what the scanner alone yields over the whole stream; and it
  changes mode only as its table allows.
* A bad length or count anywhere (where a request starts, where an argument belongs,
  before or after AUTH) is refused with redis-server's words, after exactly the requests
  before it, however the stream is cut.
* Any reply value, encoded in RESP2 or RESP3, parses with hiredis and with redis-py's
  pure-Python parsers back to the equivalent value, a whole stream of them with nothing
  left over; a strict framing walk finds only the type bytes each protocol allows (never
  a big number ``(``, attribute ``|`` or blob error ``!``).
"""

from __future__ import annotations

import itertools
import math
import socket
from types import SimpleNamespace
from typing import Any

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.resp3 import _RESP3Parser
from redis.exceptions import ResponseError

from clusterwatch.resp import (
    NEED_DATA,
    NULL_ARRAY,
    ErrorReply,
    Map,
    NullArray,
    Push,
    ReaderLimits,
    RemoteProtocolError,
    RequestReader,
    Set,
    SimpleString,
    Verbatim,
    encode,
    format_double,
)
from clusterwatch.resp._reader import TRANSITIONS
from clusterwatch.resp._scanner import RequestScanner

from .test_reader import drive

# --- chunking ----------------------------------------------------------------------------


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def cuts_for(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = draw(st.lists(st.integers(0, max(len(data), 1)), max_size=12))
    return chunked(data, cuts)


# --- (a) arbitrary bytes -----------------------------------------------------------------

# Fragments that steer random input into the parser's deeper states. Counts stay below
# 2**31 or above 2**32 (hiredis allocates the whole list for counts in between).
FRAGMENTS = st.sampled_from([
    b"*", b"$", b"\r\n", b"\n", b"\r", b"0", b"1", b"2", b"3", b"-1", b"10", b"16385",
    b"9999999999", b"PING", b" ", b'"', b"'", b"\\x41", b"\\", b":", b"+", b"-", b"_",
    b",", b"#", b"%", b"~", b">", b"=", b"(", b"|", b"\x00", b"abc",
    b"*1\r\n$4\r\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n$3\r\n", b"PING\r\n",
])
STREAMS = st.one_of(
    st.binary(max_size=200),
    st.lists(FRAGMENTS, max_size=40).map(b"".join),
    st.lists(st.one_of(FRAGMENTS, st.binary(max_size=5)), max_size=30).map(b"".join),
)
READER_OPTIONS = st.sampled_from([
    {},
    {"authenticated": False},
    {"limits": ReaderLimits(max_inline_size=8, max_bulk_length=4, max_multibulk_length=3,
                            max_query_buffer=24)},
])


@given(data=st.data(), stream=STREAMS, options=READER_OPTIONS)
def test_reader_yields_argv_or_raises_remote_protocol_error(
        data: st.DataObject, stream: bytes, options: dict[str, Any]) -> None:
    reader = RequestReader(**options)
    failed: RemoteProtocolError | None = None
    for chunk in cuts_for(data.draw, stream):
        reader.feed(chunk)
        try:
            while (argv := reader.next_command()) is not NEED_DATA:
                assert type(argv) is list
                assert argv, "empty requests are skipped, never returned"
                assert all(type(arg) is bytes for arg in argv)
        except RemoteProtocolError as exc:
            failed = exc
            break
    if failed is not None:
        line = failed.reply.line
        assert line.startswith("ERR Protocol error: ")
        assert "\r" not in line and "\n" not in line
        with pytest.raises(RemoteProtocolError):
            reader.next_command()


@given(data=st.data(), stream=STREAMS)
def test_reader_outcome_does_not_depend_on_chunking(data: st.DataObject, stream: bytes) -> None:
    """Cut anywhere, the same commands come out, then the same error (or none)."""
    cut = drive(RequestReader(), iter(cuts_for(data.draw, stream)))
    assert cut == drive(RequestReader(), iter([stream]))


def drain_in_batches(reader: RequestReader, chunks: list[bytes],
                     limits: list[int]) -> tuple[list[list[bytes]], str | None]:
    """What the connection does: feed a read, then ``drain(limit)`` until it is empty."""
    commands: list[list[bytes]] = []
    turn = 0
    for chunk in chunks:
        reader.feed(chunk)
        try:
            while batch := reader.drain(limits[turn % len(limits)]):
                assert len(batch) <= limits[turn % len(limits)]
                commands += batch
                turn += 1
        except RemoteProtocolError as exc:
            return commands, exc.reply.line
    return commands, None


@given(data=st.data(), stream=STREAMS, options=READER_OPTIONS,
       limits=st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_batched_drains_match_one_at_a_time(data: st.DataObject, stream: bytes,
                                            options: dict[str, Any], limits: list[int]) -> None:
    """Batches of any size, over any chunking, give the commands and the error that
    ``next_command`` gives one at a time over the whole stream."""
    batched = drain_in_batches(RequestReader(**options), cuts_for(data.draw, stream), limits)
    assert batched == drive(RequestReader(**options), iter([stream]))


# --- (b) canonical requests round-trip ---------------------------------------------------

ARGVS = st.lists(st.lists(st.binary(max_size=30), min_size=1, max_size=6), min_size=1,
                 max_size=8)


def multibulk(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in argv)


@given(data=st.data(), argvs=ARGVS)
def test_multibulk_requests_round_trip_in_any_chunking(data: st.DataObject,
                                                       argvs: list[list[bytes]]) -> None:
    reader = RequestReader()
    got: list[list[bytes]] = []
    for chunk in cuts_for(data.draw, b"".join(map(multibulk, argvs))):
        reader.feed(chunk)
        while (argv := reader.next_command()) is not NEED_DATA:
            got.append(argv)
    assert got == argvs
    assert reader.buffered == 0


INLINE_ARG = st.binary(min_size=1, max_size=12).filter(
    lambda a: not any(c in a for c in b" \t\r\n\v\f\x00\"'"))
# An inline request may start with any byte but '*' (which starts a multibulk request), RESP
# type bytes included: redis-server runs `+PING` or `_` inline, after a multibulk request
# as anywhere else.
INLINE_ARGV = st.lists(INLINE_ARG, min_size=1, max_size=5).filter(lambda v: v[0][0] != 0x2A)


def inline(argv: list[bytes], ending: bytes) -> bytes:
    return b" ".join(argv) + ending


@given(data=st.data(),
       requests=st.lists(st.one_of(
           st.tuples(st.just("multibulk"), ARGVS.map(lambda v: v[0]), st.just(b"")),
           st.tuples(st.just("inline"), INLINE_ARGV, st.sampled_from([b"\r\n", b"\n"])),
       ), min_size=1, max_size=8))
def test_mixed_inline_and_multibulk_round_trip(
        data: st.DataObject, requests: list[tuple[str, list[bytes], bytes]]) -> None:
    wire = b"".join(multibulk(argv) if kind == "multibulk" else inline(argv, ending)
                    for kind, argv, ending in requests)
    reader = RequestReader()
    got: list[list[bytes]] = []
    for chunk in cuts_for(data.draw, wire):
        reader.feed(chunk)
        while (argv := reader.next_command()) is not NEED_DATA:
            got.append(argv)
    assert got == [argv for _, argv, _ in requests]


# --- (b') two parsers, one meaning ------------------------------------------------------
#
# The reader hands hiredis what its guard vouches for and the scanner everything else; the
# scanner alone, given the whole stream in one read with hiredis kept out of it, is the
# reference. Whatever the stream, its cutting into reads, the batch sizes and whether and
# when the client authenticates, the reader yields what the scanner alone yields.

AUTHENTICATES = (b"auth", b"hello")


def scanner_alone(stream: bytes, options: dict[str, Any]) -> tuple[list[list[bytes]],
                                                                   str | None]:
    """The scanner over the whole stream, hiredis kept out (nothing is vouched for); an
    AUTH or HELLO before authentication succeeds."""
    scanner = RequestScanner(options.get("limits") or ReaderLimits(),
                             authenticated=options.get("authenticated", True))
    out: list[list[bytes]] = []
    pos, beyond = 0, len(stream) + 1
    while pos < len(stream):
        try:
            pos = scanner.scan(stream, pos, out, 2**31, beyond, beyond)
        except RemoteProtocolError as exc:
            return out, exc.reply.line
        if scanner.stopped_for_auth:
            scanner.set_authenticated(True)
    return out, None


def as_a_connection(reader: RequestReader, chunks: list[bytes], limits: list[int], *,
                    single: bool) -> tuple[list[list[bytes]], str | None]:
    """What the connection does: each read to ``take_single`` (when ``single``) or
    ``feed``, then ``drain`` while it yields or says it is ``ready``; an AUTH or HELLO
    before authentication succeeds."""
    commands: list[list[bytes]] = []
    turn = 0
    for chunk in chunks:
        if single and (argv := reader.take_single(chunk)) is not None:
            batches = [[argv]]
        else:
            if not single:
                reader.feed(chunk)
            batches = []
        try:
            while True:
                for batch in batches:
                    commands += batch
                    if (batch and not reader.authenticated
                            and batch[-1][0].lower() in AUTHENTICATES):
                        reader.authenticated = True
                limit = limits[turn % len(limits)]
                turn += 1
                batch = reader.drain(limit)
                assert len(batch) <= limit
                if not batch and not reader.ready:
                    break
                batches = [batch]
        except RemoteProtocolError as exc:
            return commands, exc.reply.line
    return commands, None


PASSWORDS = st.sampled_from([b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", b"AUTH pw\r\n",
                             b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n"
                             b"$2\r\npw\r\n"])
LONG_ARGUMENT = b"*2\r\n$4\r\nECHO\r\n$20000\r\n" + b"x" * 20_000 + b"\r\n"
MANY_ARGUMENTS = b"*40\r\n" + b"$1\r\na\r\n" * 40
LONG_FRAGMENTS = st.sampled_from([LONG_ARGUMENT, MANY_ARGUMENTS, b"*1\r\n$4\r\nPING\r\n" * 300,
                                  b"PING\r\n" * 300])
MIXED_STREAMS = st.lists(st.one_of(FRAGMENTS, PASSWORDS, LONG_FRAGMENTS, st.binary(max_size=5)),
                         max_size=30).map(b"".join)
CONNECTION_OPTIONS = st.sampled_from([
    {}, {"authenticated": False},
    {"limits": ReaderLimits(max_inline_size=8, max_bulk_length=4, max_multibulk_length=3)},
    {"limits": ReaderLimits(max_bulk_length=100, max_multibulk_length=50),
     "authenticated": False},
])


@given(data=st.data(), stream=st.one_of(STREAMS, MIXED_STREAMS), options=CONNECTION_OPTIONS,
       limits=st.lists(st.sampled_from([1, 2, 5, 512]), min_size=1, max_size=3),
       single=st.booleans())
def test_the_reader_means_what_the_scanner_alone_means(
        data: st.DataObject, stream: bytes, options: dict[str, Any], limits: list[int],
        single: bool) -> None:
    chunks = cuts_for(data.draw, stream)
    got = as_a_connection(RequestReader(**options), chunks, limits, single=single)
    assert got == scanner_alone(stream, options)


# Where an argument belongs, and what redis-server says of it (checked on the wire).
BAD_ARGUMENTS = [
    (b"$-1\r\n", "invalid bulk length"), (b"$04\r\nabcd\r\n", "invalid bulk length"),
    (b"$x\r\n", "invalid bulk length"), (b"$99999999999\r\n", "invalid bulk length"),
    (b"+PING\r\n", "expected '$', got '+'"), (b":1\r\n", "expected '$', got ':'"),
    (b"_\r\n", "expected '$', got '_'"), (b"(12\r\n", "expected '$', got '('"),
    (b"=8\r\ntxt:PING\r\n", "expected '$', got '='"), (b"%1\r\n", "expected '$', got '%'"),
    (b"~2000000000\r\n", "expected '$', got '~'"), (b">200000000\r\n", "expected '$', got '>'"),
    (b"*3000000000\r\n", "expected '$', got '*'"), (b"|1\r\n", "expected '$', got '|'"),
]
# Where a request starts.
BAD_COUNTS = [
    (b"*3000000000\r\n", "invalid multibulk length"), (b"*01\r\n", "invalid multibulk length"),
    (b"*-0\r\n", "invalid multibulk length"), (b"*4294967295\r\n", "invalid multibulk length"),
    (b"*x\r\n", "invalid multibulk length"),
]
BAD_BEFORE_AUTH = [
    (b"*11\r\n", "unauthenticated multibulk length"),
    (b"*2147483647\r\n", "unauthenticated multibulk length"),
    (b"*1\r\n$16385\r\n", "unauthenticated bulk length"),
]
GOOD_REQUESTS = st.lists(st.sampled_from([
    b"*1\r\n$4\r\nPING\r\n", b"PING\r\n", b"*2\r\n$4\r\nECHO\r\n$3\r\na*b\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\n+\r\n$2\r\n=(\r\n", MANY_ARGUMENTS, LONG_ARGUMENT,
    b"*1\r\n$4\r\nPING\r\n" * 100,
]), max_size=6)


@given(data=st.data(), before=GOOD_REQUESTS, after=st.binary(max_size=40),
       bad=st.one_of(
           st.tuples(st.just("argument"), st.sampled_from(BAD_ARGUMENTS)),
           st.tuples(st.just("request"), st.sampled_from(BAD_COUNTS)),
           st.tuples(st.just("before auth"), st.sampled_from(BAD_BEFORE_AUTH))),
       authenticated=st.booleans(), single=st.booleans())
def test_a_bad_length_or_count_anywhere_is_refused_alike_whatever_the_cut(
        data: st.DataObject, before: list[bytes], after: bytes,
        bad: tuple[str, tuple[bytes, str]], authenticated: bool, single: bool) -> None:
    where, (wire, error) = bad
    if where == "before auth":
        authenticated = False
    elif where == "argument":
        wire = b"*3\r\n$4\r\nECHO\r\n$2\r\nok\r\n" + wire
    if not authenticated:  # within the limits before AUTH, the good requests
        before = [request for request in before
                  if request not in (MANY_ARGUMENTS, LONG_ARGUMENT)]
    stream = b"".join(before) + wire + after
    expected = ([argv for request in before for argv in scanner_alone(request, {})[0]],
                f"ERR Protocol error: {error}")
    reader = RequestReader(authenticated=authenticated)
    got = as_a_connection(reader, cuts_for(data.draw, stream), [512, 3], single=single)
    assert got == expected


@given(data=st.data(), argvs=st.lists(st.lists(
    st.one_of(st.binary(max_size=3), st.binary(min_size=100, max_size=20_000)),
    min_size=1, max_size=200), min_size=1, max_size=6))
def test_long_requests_round_trip_in_any_chunking(data: st.DataObject,
                                                  argvs: list[list[bytes]]) -> None:
    """Requests long enough for the segment sizes, hiredis's chunks and the runs of
    arguments hiredis reads for the scanner to come into play."""
    chunks = cuts_for(data.draw, b"".join(map(multibulk, argvs)))
    assert as_a_connection(RequestReader(), chunks, [512], single=False) == (argvs, None)


class WatchedReader(RequestReader):
    """Records every change of mode."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "_mode" and "_mode" in self.__dict__ and value is not self._mode:
            self.__dict__.setdefault("changes", []).append((self._mode, value))
        super().__setattr__(name, value)


@given(data=st.data(), stream=st.one_of(STREAMS, MIXED_STREAMS), options=CONNECTION_OPTIONS,
       single=st.booleans())
def test_the_reader_changes_mode_only_as_its_table_allows(
        data: st.DataObject, stream: bytes, options: dict[str, Any], single: bool) -> None:
    reader = WatchedReader(**options)
    as_a_connection(reader, cuts_for(data.draw, stream), [512, 2], single=single)
    for old, new in reader.__dict__.get("changes", []):
        assert new in TRANSITIONS[old], (old, new)


# --- (c) replies round-trip through real client parsers ----------------------------------

TEXT = st.text(max_size=12)
PREFIXES = st.sampled_from(["ERR", "WRONGTYPE", "NOPROTO", "EXECABORT", "MYERR"])
KEYS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False), st.binary(max_size=12), TEXT,
    st.builds(SimpleString, TEXT), st.builds(Verbatim, st.binary(max_size=12)),
)
SCALARS = st.one_of(
    KEYS, st.floats(), st.just(NULL_ARRAY), st.builds(ErrorReply, PREFIXES, TEXT),
)
REPLIES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        # Unique keys: Redis never repeats one, and hiredis mis-pairs values when a
        # RESP3 map does (it is a client, not a validator).
        st.builds(Map, st.lists(st.tuples(KEYS, inner), max_size=4,
                                unique_by=lambda kv: expected_hiredis(kv[0], 3))),
        st.builds(Set, st.lists(inner, max_size=4)),
    ),
    max_leaves=10,
)
TOP_LEVEL = st.one_of(REPLIES, st.builds(Push, st.lists(REPLIES, max_size=4)))


def expected_hiredis(reply: Any, protocol: int) -> Any:
    """What hiredis should hand back for ``reply`` encoded in ``protocol``."""
    if reply is None or isinstance(reply, NullArray):
        return None
    if isinstance(reply, bool):
        return reply if protocol == 3 else int(reply)
    if isinstance(reply, int):
        return reply
    if isinstance(reply, float):
        return float(format_double(reply)) if protocol == 3 else format_double(reply).encode()
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode()
    if isinstance(reply, SimpleString):
        return reply.text.encode()
    if isinstance(reply, ErrorReply):
        return hiredis.ReplyError(reply.line)
    if isinstance(reply, Verbatim):
        return reply.text
    if isinstance(reply, (list, tuple)):
        return [expected_hiredis(item, protocol) for item in reply]
    if isinstance(reply, (Set, Push)):
        return [expected_hiredis(item, protocol) for item in reply.members]
    if isinstance(reply, Map):
        if protocol == 2:
            return [expected_hiredis(x, 2) for pair in reply.items for x in pair]
        result = {}
        for key, value in reply.items:
            result[expected_hiredis(key, 3)] = expected_hiredis(value, 3)
        return result
    raise AssertionError(f"no expectation for {reply!r}")


def same(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and (got == want or (math.isnan(got) and math.isnan(want)))
    if isinstance(want, Exception):
        return type(got) is type(want) and got.args == want.args
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(same(g, w) for g, w in zip(got, want, strict=True)))
    if isinstance(want, dict):
        return (isinstance(got, dict) and list(got) == list(want)
                and all(same(got[k], w) for k, w in want.items()))
    return type(got) is type(want) and got == want


_SENTINEL = object()


@given(data=st.data(), replies=st.lists(TOP_LEVEL, min_size=1, max_size=5),
       protocol=st.sampled_from([2, 3]))
def test_replies_round_trip_through_hiredis(data: st.DataObject, replies: list[Any],
                                            protocol: int) -> None:
    wire = b"".join(encode(reply, protocol) for reply in replies)  # type: ignore[arg-type]
    reader = hiredis.Reader(notEnoughData=_SENTINEL)
    got: list[Any] = []
    for chunk in cuts_for(data.draw, wire):
        reader.feed(chunk)
        while (value := reader.gets()) is not _SENTINEL:
            got.append(value)
    assert reader.has_data() is False
    want = [expected_hiredis(reply, protocol) for reply in replies]
    assert same(got, want), (got, want)


# RESP type bytes each protocol may carry. Never '(' (big number), '|' (attribute),
# '!' (blob error) or '?' (streamed): redis-cli 7.0, ioredis and node-redis choke on them.
_ALLOWED = {2: set(b"+-:$*"), 3: set(b"+-:$*_#,=%~>")}


def walk(wire: bytes, pos: int, protocol: int) -> int:
    """Strictly frame one RESP value starting at ``pos``; return where it ends."""
    kind = wire[pos]
    assert kind in _ALLOWED[protocol], (chr(kind), wire[pos : pos + 20])
    end = wire.index(b"\r\n", pos)
    line = wire[pos + 1 : end]
    after = end + 2
    if kind in b"+-":
        assert b"\r" not in line and b"\n" not in line
        return after
    if kind == ord(":"):
        int(line)
        return after
    if kind == ord(","):
        assert line in (b"inf", b"-inf", b"nan") or math.isfinite(float(line))
        return after
    if kind == ord("#"):
        assert line in (b"t", b"f")
        return after
    if kind == ord("_"):
        assert line == b""
        return after
    count = int(line)
    assert str(count).encode() == line
    if kind in b"$=":
        if count == -1:
            assert kind == ord("$") and protocol == 2
            return after
        body = wire[after : after + count]
        assert len(body) == count and wire[after + count : after + count + 2] == b"\r\n"
        if kind == ord("="):
            assert body[3:4] == b":"
        return after + count + 2
    if count == -1:
        assert kind == ord("*") and protocol == 2
        return after
    for _ in range(count * 2 if kind == ord("%") else count):
        after = walk(wire, after, protocol)
    return after


@given(reply=TOP_LEVEL, protocol=st.sampled_from([2, 3]))
def test_encoding_is_strictly_framed_with_allowed_types_only(reply: Any, protocol: int) -> None:
    wire = encode(reply, protocol)  # type: ignore[arg-type]
    assert walk(wire, 0, protocol) == len(wire)


# redis-py's pure-Python parsers read from a socket; give them one end of a socketpair.
def redis_py_parse(wire: bytes, count: int, protocol: int) -> list[Any]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(wire)
        ours.shutdown(socket.SHUT_WR)
        parser = _RESP3Parser(65536) if protocol == 3 else _RESP2Parser(65536)
        parser.on_connect(SimpleNamespace(_sock=theirs, socket_timeout=5.0,
                                          encoder=Encoder("utf-8", "strict", False)))
        try:
            return [parser.read_response(push_request=True) if protocol == 3
                    else parser.read_response() for _ in range(count)]
        finally:
            parser.on_disconnect()


def expected_redis_py(reply: Any, protocol: int) -> Any:
    if isinstance(reply, ErrorReply):
        return reply
    if isinstance(reply, (list, tuple)):
        return [expected_redis_py(item, protocol) for item in reply]
    if isinstance(reply, (Set, Push)):
        return [expected_redis_py(item, protocol) for item in reply.members]
    if isinstance(reply, Map):
        if protocol == 2:
            return [expected_redis_py(x, 2) for pair in reply.items for x in pair]
        result = {}
        for key, value in reply.items:
            result[expected_hiredis(key, 3)] = expected_redis_py(value, 3)
        return result
    return expected_hiredis(reply, protocol)


def same_redis_py(got: Any, want: Any) -> bool:
    if isinstance(want, ErrorReply):
        # redis-py drops a known prefix ("ERR ") and maps others to exception classes.
        return isinstance(got, ResponseError) and str(got) in (want.line, want.message)
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(same_redis_py(g, w) for g, w in zip(got, want, strict=True)))
    if isinstance(want, dict):
        return (isinstance(got, dict) and list(got) == list(want)
                and all(same_redis_py(got[k], w) for k, w in want.items()))
    return same(got, want)


@given(replies=st.lists(REPLIES, min_size=1, max_size=4), protocol=st.sampled_from([2, 3]))
def test_replies_round_trip_through_redis_py_parsers(replies: list[Any], protocol: int) -> None:
    wire = b"".join(encode(reply, protocol) for reply in replies)  # type: ignore[arg-type]
    got = redis_py_parse(wire, len(replies), protocol)
    want = [expected_redis_py(reply, protocol) for reply in replies]
    assert same_redis_py(got, want), (got, want)
