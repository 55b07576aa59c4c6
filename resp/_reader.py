"""Sans-I/O request reader: ``feed(data)``, then ``next_command()`` until ``NEED_DATA``.

Framing follows redis-server: a request that starts with ``*`` is multibulk and is
parsed by hiredis; anything else is an inline request, parsed here and bounded by
``max_inline_size``. The two may mix in one read.

Theory of operation. hiredis enforces no limits and consumes the header lines of an
incomplete request eagerly, so it cannot tell us whether a read ended at a request
boundary. After each read the reader decides that itself:

* Fast path: hiredis holds no unconsumed bytes and the read ends with the canonical
  encoding of the last complete request. Then the read ended at a boundary and nothing
  is kept. Every real client writes whole requests, so this is the common case; it
  costs one encoding of the last request per read.
* Slow path: the read ended inside a request. The reader subtracts the canonical size
  of each request completed in the read from the bytes fed, keeps a copy of the
  incomplete request's bytes (the tail), bounds it by ``max_query_buffer`` and walks
  its ``*``/``$`` length lines with ``HeaderScanner`` so an oversized length is refused
  as soon as its header arrives, with redis-server's wording.
* When hiredis meets a non-``*`` byte where a request starts, the bytes from there on
  are an inline request: they go to the inline parser and hiredis starts afresh.

Input that is not canonically encoded (``$04``) defeats the size accounting; the reader
then falls back to bounding the bytes held without checking the length lines.
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

import hiredis

from ._errors import RemoteProtocolError
from ._inline import UnbalancedQuotesError, split_inline
from ._limits import ReaderLimits
from ._scanner import UNAUTHENTICATED_MAX_ARGS, UNAUTHENTICATED_MAX_BULK, HeaderScanner


class NeedData(enum.Enum):
    NEED_DATA = 0


NEED_DATA: Final = NeedData.NEED_DATA

_INCOMPLETE: Final = object()
# An argument count of seven digits or more: worth a closer look before hiredis sees it.
_LARGE_COUNT: Final = re.compile(rb"\*(\d{7,})\r")
_CARRY = 24  # bytes kept from the previous read, for a count split across two reads
_UNFINISHED_COUNT: Final = re.compile(rb"\*\d*\Z")
_NEGATIVE_COUNT: Final = re.compile(rb"\*-\d+\r\n")
_EMPTY_ARRAY_SIZE = 4  # "*0\r\n"
_NULL_ARRAY_SIZE = 5  # "*-1\r\n"


def encode_request(argv: list[bytes]) -> bytes:
    """The canonical multibulk encoding of ``argv``."""
    if len(argv) == 1:
        return b"*1\r\n$%d\r\n%b\r\n" % (len(argv[0]), argv[0])
    parts = [b"*%d\r\n" % len(argv)]
    parts.extend(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in argv)
    return b"".join(parts)


def wire_size(argv: list[bytes] | None) -> int:
    """Bytes of the canonical multibulk encoding of ``argv``."""
    if argv is None:
        return _NULL_ARRAY_SIZE
    size = len(str(len(argv))) + 3
    for arg in argv:
        size += len(str(len(arg))) + len(arg) + 5
    return size


class RequestReader:
    """Turns a client's byte stream into argument vectors (``list[bytes]``).

    Raises ``RemoteProtocolError`` from ``next_command`` on malformed input or a
    limit; after that the reader is dead and raises the same error again.
    """

    def __init__(self, limits: ReaderLimits | None = None, *, authenticated: bool = True) -> None:
        self.limits = limits or ReaderLimits()
        self._authenticated = authenticated
        self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._in_hiredis = False
        self._inline = bytearray()
        self._inline_pos = 0
        self._carry = b""
        self._refused: RemoteProtocolError | None = None
        self._error: RemoteProtocolError | None = None
        self._round: list[bytes] = []
        # What hiredis returned since the round began: each list handed out with the
        # index its hiredis requests start at (recorded once per drain, not per
        # request), and the sizes of the ignored ones (*0, *-1).
        self._round_batches: list[tuple[list[list[bytes]], int]] = []
        self._round_ignored = 0
        self._tail: bytes = b""
        self._scanner: HeaderScanner | None = None
        self._max_bulk = 0
        self._max_args = 0
        # hiredis holds nothing, not even the header lines of an incomplete request, and
        # no round is open: the state ``take_single`` starts from.
        self._clean = True
        self.authenticated = authenticated

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @authenticated.setter
    def authenticated(self, value: bool) -> None:
        """Before authentication Redis limits requests to 10 arguments of 16 KiB."""
        self._authenticated = value
        self._max_bulk = self.limits.max_bulk_length if value else UNAUTHENTICATED_MAX_BULK
        self._max_args = (self.limits.max_multibulk_length if value
                          else min(UNAUTHENTICATED_MAX_ARGS, self.limits.max_multibulk_length))
        if self._scanner is not None:
            self._scanner.authenticated = value

    @property
    def buffered(self) -> int:
        """Bytes held for requests not yet complete."""
        return (len(self._tail) + len(self._inline) - self._inline_pos
                + sum(map(len, self._round)))

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._in_hiredis or (self._inline_pos >= len(self._inline) and data[0] == 0x2A):
            if self._inline:
                self._inline.clear()
                self._inline_pos = 0
            carry = self._carry
            self._carry = data[-_CARRY:]
            if (_LARGE_COUNT.search(data) is not None
                    or (carry[-1:] != b"\n" and _UNFINISHED_COUNT.search(carry) is not None
                        and _LARGE_COUNT.search(carry + data[:_CARRY]))):
                found = self._too_many_at(data)
                if found is not None:
                    # hiredis would allocate the whole argument list before any check of
                    # ours, and freeing a list of billions of slots stalls the loop for
                    # seconds: hiredis gets only the requests before it, then the error.
                    cut, problem = found
                    self._refused = RemoteProtocolError(problem)
                    data = data[:cut]
            self._hiredis.feed(data)
            self._in_hiredis = True
            self._clean = False
            self._round.append(data)
        else:
            self._inline += data

    def take_single(self, data: bytes) -> list[bytes] | None:
        """The request, when ``data`` is exactly one whole, canonically encoded multibulk
        request within every limit and nothing came before it that is still pending; the
        reader is then left as ``drain`` leaves it after that request. Otherwise None, and
        ``data`` is fed as ``feed`` does: ``drain`` takes it from there.

        This is the read of a client that waits for each reply (redis-cli, probes, agents,
        redis-py without a pipeline): it skips the round bookkeeping that a read holding
        several requests, or ending inside one, needs.
        """
        if not self._clean or self._inline:
            self.feed(data)
            return None
        if data[0] != 0x2A:  # not '*'
            # An inline request: one line, no quotes to undo (what ``feed`` then
            # ``_drain_plain_lines`` make of it).
            if (data[-1:] == b"\n" and data.count(b"\n") == 1
                    and len(data) <= self.limits.max_inline_size
                    and b'"' not in data and b"'" not in data):
                words = data.split()
                if words and (self._authenticated or len(words) <= UNAUTHENTICATED_MAX_ARGS):
                    return words
            self.feed(data)
            return None
        # A second request, or a count hiredis would allocate for before any check of
        # ours, needs another '*': most reads have just the leading one.
        if data.count(b"*") != 1 and (
                b"\r\n*" in data or _LARGE_COUNT.search(data) is not None):
            self.feed(data)
            return None
        parser = self._hiredis
        parser.feed(data)
        try:
            argv = parser.gets()
        except hiredis.ProtocolError:
            argv = None
        if argv.__class__ is list and 0 < len(argv) <= self._max_args:
            max_bulk = self._max_bulk
            size = len(str(len(argv))) + 3  # wire_size, on the way through the checks
            for arg in argv:
                if arg.__class__ is not bytes:
                    break
                length = len(arg)
                if length > max_bulk:
                    break
                size += length + (6 if length < 10 else 7 if length < 100
                                  else 5 + len(str(length)))
            else:
                # Equal sizes: hiredis took all of ``data`` and nothing else (a request
                # encoded with longer length lines, ``$04``, is never shorter).
                if len(data) == size:
                    self._in_hiredis = True
                    self._carry = data[-_CARRY:]
                    return argv
        # Anything else goes the general way, from a hiredis that has seen none of it
        # (it held nothing before, so nothing is lost).
        self._restart_hiredis()
        self.feed(data)
        return None

    def next_command(self) -> list[bytes] | Literal[NeedData.NEED_DATA]:
        """The next complete request, or ``NEED_DATA``."""
        batch = self.drain(1)
        return batch[0] if batch else NEED_DATA

    @property
    def failed(self) -> bool:
        """A protocol error is waiting to be raised by the next call."""
        return self._error is not None

    def drain(self, limit: int = 2**31) -> list[list[bytes]]:
        """Up to ``limit`` complete requests, in order; empty when more data is needed.

        A protocol error is raised at once when no request precedes it in this call;
        otherwise the requests before it are returned and the next call raises it, so
        the caller answers them first, as redis-server does.
        """
        if self._error is not None:
            raise self._error
        commands: list[list[bytes]] = []
        try:
            self._drain_into(commands, limit)
        except RemoteProtocolError as exc:
            self._error = exc
            if not commands:
                raise
        return commands

    def _drain_into(self, commands: list[list[bytes]], limit: int) -> None:
        while len(commands) < limit:
            if self._in_hiredis:
                # The hot loop: whole multibulk requests from hiredis, checked in place.
                gets = self._hiredis.gets
                start = len(commands)
                max_args, max_bulk = self._max_args, self._max_bulk
                append = commands.append
                # ``_round_batches`` learns of this call's requests only when the round
                # goes on past it or a slow path needs to count bytes.
                while True:
                    for _ in range(limit - len(commands)):
                        try:
                            argv = gets()
                        except hiredis.ProtocolError as exc:
                            self._round_batches.append((commands, start))
                            if self._skip_negative_count():
                                break
                            if not self._switch_to_inline():
                                raise RemoteProtocolError(self._explain(str(exc))) from None
                            break
                        if argv.__class__ is list and 0 < len(argv) <= max_args:
                            for arg in argv:
                                if arg.__class__ is not bytes or len(arg) > max_bulk:
                                    break
                            else:
                                append(argv)
                                continue
                            self._check_request(argv)
                            append(argv)
                            continue
                        if argv is _INCOMPLETE:
                            if self._refused is not None:
                                raise self._refused
                            round_ = self._round
                            if not round_:
                                return
                            # The read ended at a request boundary (see the module notes):
                            # the common case, decided here without a call.
                            last = (commands[-1] if len(commands) > start
                                    else self._last_request())
                            if (last and not self._tail and not self._round_ignored
                                    and not self._hiredis.has_data()
                                    and round_[-1].endswith(encode_request(last))):
                                round_.clear()
                                self._round_batches.clear()
                                self._scanner = None
                                self._clean = True
                                return
                            self._round_batches.append((commands, start))
                            self._end_round()
                            if self._in_hiredis:
                                return
                            break  # what follows is inline: the outer loop parses it
                        if argv.__class__ is not list:
                            self._round_batches.append((commands, start))
                            if self._switch_to_inline():
                                # hiredis read a RESP3 value or a $-line where a request
                                # starts; redis-server reads any request not starting with
                                # '*' as inline.
                                break
                            self._round_batches.pop()
                        checked = self._check_request(argv)
                        if checked is None:
                            self._round_ignored += wire_size(argv)
                        else:
                            append(checked)
                    else:
                        if len(commands) < limit:
                            continue  # ignored requests (*0) took turns: go on
                        self._round_batches.append((commands, start))
                        return
                    break
                continue
            if self._inline_pos >= len(self._inline):
                self._inline.clear()
                self._inline_pos = 0
                return
            if self._inline[self._inline_pos] == 0x2A:
                data = bytes(self._inline[self._inline_pos:])
                self._inline.clear()
                self._inline_pos = 0
                self.feed(data)
                continue
            if self._drain_plain_lines(commands, limit):
                continue
            argv = self._next_inline()
            if argv is NEED_DATA:
                return
            if argv:
                commands.append(argv)

    def _drain_plain_lines(self, commands: list[list[bytes]], limit: int) -> bool:
        """Split every complete inline line at once when none needs quote handling
        (``bytes.split`` also drops the CR). False when the general path must decide."""
        buf, pos = self._inline, self._inline_pos
        end = buf.rfind(b"\n", pos)
        if end < 0:
            return False
        chunk = bytes(buf[pos:end])
        if (chunk[:1] == b"*" or b"\n*" in chunk or b'"' in chunk or b"'" in chunk):
            return False
        lines = chunk.split(b"\n")
        room = limit - len(commands)
        if len(lines) > room:  # only the lines this batch has room for
            lines = lines[:room]
            end = pos + sum(map(len, lines)) + len(lines) - 1
        if len(chunk) > self.limits.max_inline_size and (
                max(map(len, lines)) > self.limits.max_inline_size):
            return False
        requests = [argv for argv in map(bytes.split, lines) if argv]
        if not self._authenticated and any(
                len(argv) > UNAUTHENTICATED_MAX_ARGS for argv in requests):
            return False
        commands += requests
        self._inline_pos = end + 1
        return True

    def _check_request(self, argv: object) -> list[bytes] | None:
        """Validation past the fast path: say exactly what is wrong, as Redis would."""
        if not argv:  # *0 and *-1 are ignored, as Redis does
            return None
        if type(argv) is not list:
            raise RemoteProtocolError(f"expected '*', got '{_type_byte(argv)}'")
        for arg in argv:
            if arg is None:  # $-1: Redis says "invalid bulk length"
                raise RemoteProtocolError("invalid bulk length")
            if type(arg) is not bytes:
                raise RemoteProtocolError(f"expected '$', got '{_type_byte(arg)}'")
            if len(arg) > self._max_bulk:
                raise RemoteProtocolError(
                    "invalid bulk length" if self._authenticated else "unauthenticated bulk length"
                )
        if len(argv) > self.limits.max_multibulk_length:
            raise RemoteProtocolError("invalid multibulk length")
        if len(argv) > self._max_args:
            raise RemoteProtocolError("unauthenticated multibulk length")
        return argv

    def _too_many_at(self, data: bytes) -> tuple[int, str] | None:
        """Where in ``data`` hiredis must stop, and the error to give there: a request
        header (not a payload) that counts more arguments than allowed, or a malformed
        request around such a count (a nested ``*3000000000`` is refused as Redis refuses
        it, before hiredis allocates for it). Walks the length lines from the incomplete
        request's start when the reader knows it; otherwise any such line at a line start
        counts."""
        limit = self.limits.max_multibulk_length
        if self._round:  # hiredis still holds unread requests: the start is unknown
            for match in _LARGE_COUNT.finditer(data):
                at = match.start()
                if int(match.group(1)) > limit and (at == 0 or data[at - 1] == 0x0A):
                    return at, "invalid multibulk length"
            return None
        stream = self._tail + data
        pos = 0
        while pos < len(stream) and stream[pos] == 0x2A:
            scanner = HeaderScanner(self.limits, authenticated=self._authenticated)
            problem = scanner.scan(stream[pos:] if pos else stream)
            if problem is not None:
                return max(0, pos - len(self._tail)), problem
            end = scanner.request_end
            if end is None:
                return None
            pos += end
        return None

    def _reset_round(self) -> None:
        self._round.clear()
        self._round_batches.clear()
        self._round_ignored = 0

    def _consumed(self) -> int:
        """Bytes of the requests completed since the round began (canonical sizes)."""
        return self._round_ignored + sum(
            wire_size(argv) for batch, start in self._round_batches for argv in batch[start:])

    def _last_request(self) -> list[bytes] | None:
        for batch, start in reversed(self._round_batches):
            if len(batch) > start:
                return batch[-1]
        return None

    def _end_round(self) -> None:
        """hiredis needs more data and the read did not end at a request boundary (the
        fast check is in ``_drain_into``): find out whether a request is left incomplete."""
        if self._switch_to_inline():  # the incomplete request does not start with '*'
            return
        held = self._held_bytes()
        self._reset_round()
        if held is None:
            # Not canonically encoded: keep only a bound on what hiredis may hold.
            self._scanner = None
            if not self._hiredis.has_data():
                self._tail = b""
            return
        if held != self._tail[: len(held)] or not held:
            self._scanner = HeaderScanner(self.limits, authenticated=self._authenticated)
        self._tail = held
        if not held:
            self._scanner = None
            return
        if len(held) > self.limits.max_query_buffer:
            raise RemoteProtocolError("query buffer limit exceeded")
        if self._scanner is not None:
            problem = self._scanner.scan(held)
            if problem is not None:
                raise RemoteProtocolError(problem)

    def _held_bytes(self) -> bytes | None:
        """The bytes hiredis holds of the incomplete request, or None if unknown."""
        data = self._tail + b"".join(self._round)
        consumed = self._consumed()
        if consumed > len(data) or data[consumed : consumed + 1] not in (b"*", b""):
            if len(data) - min(consumed, len(data)) > self.limits.max_query_buffer:
                raise RemoteProtocolError("query buffer limit exceeded")
            return None
        return data[consumed:]

    def _skip_negative_count(self) -> bool:
        """hiredis refuses ``*-5\r\n``; Redis skips a count of zero or less as an empty
        request. Drop the line and go on with a fresh hiredis reader."""
        rest = self._unread()
        found = _NEGATIVE_COUNT.match(rest) if rest is not None else None
        if rest is None or found is None:
            return False
        self._restart_hiredis()
        self.feed(rest[found.end():])
        return True

    def _switch_to_inline(self) -> bool:
        """hiredis met a non-'*' byte where a request starts: the rest is inline."""
        rest = self._unread()
        if not rest or rest[0] == 0x2A:
            return False
        self._restart_hiredis()
        self._inline[self._inline_pos:self._inline_pos] = rest
        return True

    def _unread(self) -> bytes | None:
        """The round's bytes past its completed requests, or None when that is unknown."""
        data = self._tail + b"".join(self._round)
        consumed = self._consumed()
        return data[consumed:] if consumed <= len(data) else None

    def _restart_hiredis(self) -> None:
        self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._in_hiredis = False
        self._clean = True
        self._reset_round()
        self._tail = b""
        self._scanner = None

    def _explain(self, hiredis_message: str) -> str:
        """Word hiredis's complaint as redis-server words it for the same bytes."""
        data = self._tail + b"".join(self._round)
        consumed = self._consumed()
        if consumed <= len(data):
            problem = HeaderScanner(self.limits, authenticated=self._authenticated).scan(
                data[consumed:]
            )
            if problem is not None:
                return problem
        return hiredis_message.replace('"', "'")

    def _next_inline(self) -> list[bytes] | Literal[NeedData.NEED_DATA]:
        buf, pos = self._inline, self._inline_pos
        newline = buf.find(b"\n", pos)
        if newline < 0:
            if pos:
                del buf[:pos]
                self._inline_pos = 0
            if len(buf) > self.limits.max_inline_size:
                raise RemoteProtocolError("too big inline request")
            return NEED_DATA
        if newline - pos > self.limits.max_inline_size:
            raise RemoteProtocolError("too big inline request")
        end = newline - 1 if newline > pos and buf[newline - 1] == 0x0D else newline
        line = bytes(buf[pos:end])
        self._inline_pos = newline + 1
        try:
            argv = split_inline(line)
        except UnbalancedQuotesError:
            raise RemoteProtocolError("unbalanced quotes in request") from None
        if not self._authenticated and len(argv) > UNAUTHENTICATED_MAX_ARGS:
            raise RemoteProtocolError("unauthenticated multibulk length")
        return argv


def _type_byte(value: object) -> str:
    if isinstance(value, bool):
        return "#"
    if isinstance(value, float):
        return ","
    if isinstance(value, int):
        return ":"
    if isinstance(value, list):
        return "*"
    if isinstance(value, hiredis.ReplyError):
        return "-"
    if isinstance(value, bytes):
        return "+"
    return "$"
