"""The authoritative request parser: redis-server's framing, limits and error words,
fed one read at a time.

Rules:
* Incremental and linear. It keeps where it is between reads (``Scan``, the arguments so
  far, a partial line or payload) and is only ever given new bytes: a line is searched
  once, a payload is skipped by arithmetic and copied once. A long request's run of
  arguments is read by hiredis (``_bulks.py``) where the caller's guard allows it, once
  per read.
* Every count and length is checked when its line is complete, before anything is
  allocated for it, with the limits in force at that moment (``authenticated`` changes
  between requests). A line longer than ``max_inline_size`` is refused whether or not its
  end has arrived, and an argument's first byte is checked as soon as it arrives, so the
  error does not depend on how the stream was cut into reads.
* Framing is redis-server's: a request starting with ``*`` is multibulk, any other inline;
  each argument must start with ``$``; a line ends at its CR and the byte after the CR is
  skipped unread, as are the two bytes after a payload; a count of zero or less is an
  empty request, skipped; so is a blank inline line.
* Before authentication it stops after a request that may authenticate (AUTH, HELLO):
  the requests behind it are read under the limits it leaves in force, as redis-server
  reads requests one at a time.
"""

from __future__ import annotations

import enum
from typing import Final

from ._bulks import whole_bulks
from ._errors import RemoteProtocolError
from ._inline import UnbalancedQuotesError, split_inline
from ._limits import ReaderLimits

# Redis: an unauthenticated client may send at most 10 arguments of at most 16 KiB.
# Inline requests have only the inline size limit in Redis; here the count applies too.
UNAUTHENTICATED_MAX_ARGS: Final = 10
UNAUTHENTICATED_MAX_BULK: Final = 16 * 1024
# Redis refuses a count over INT_MAX, and a length over proto-max-bulk-len (512 MiB by
# default), as invalid before it says the client is unauthenticated.
_MAX_COUNT: Final = 2**31 - 1
_REDIS_MAX_BULK: Final = 512 * 1024 * 1024
AUTHENTICATING: Final = frozenset((b"auth", b"hello"))
# How far ahead a run of inline lines is looked for at once.
_WINDOW: Final = 16 * 1024
# Worth handing to hiredis: this many arguments still to come, this much of the read left.
_BULK_ARGS: Final = 32
_BULK_BYTES: Final = 1024


class Scan(enum.Enum):
    """Where the parser is. Transitions:

    REQUEST -'*'-> COUNT -count >= 1-> HEADER -length-> PAYLOAD -more arguments-> HEADER
    PAYLOAD -last argument-> REQUEST (the request is out); COUNT -count <= 0-> REQUEST
    REQUEST -other byte-> INLINE -newline-> REQUEST (out unless the line is blank)
    A whole argument in one read goes HEADER -> HEADER without stopping in PAYLOAD.
    """

    REQUEST = "request"  # between requests: the next byte picks multibulk or inline
    COUNT = "count"  # in a multibulk request's '*<count>' line
    HEADER = "header"  # at or in an argument's '$<length>' line
    PAYLOAD = "payload"  # in an argument's bytes, or the two after them
    INLINE = "inline"  # in an inline request's line


def parse_length(text: bytes) -> int | None:
    """Redis string2ll: optional '-', digits, no '+', no leading zeros, fits in 64 bits."""
    digits = text[1:] if text[:1] == b"-" else text
    if (not digits.isdigit() or len(digits) > 19
            or (digits[0] == 0x30 and (len(digits) > 1 or digits is not text))):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


class RequestScanner:
    """``scan(buf, pos, out, limit, fast_from, clean_from)`` parses one read from ``pos``;
    ``lines`` is the inline part of it alone."""

    __slots__ = ("_args_left", "_argv", "_bulk_read", "_held", "_left", "_limits", "_line",
                 "_parts", "_redis_max_bulk", "authenticated", "max_args", "max_bulk",
                 "state", "stopped_for_auth")

    def __init__(self, limits: ReaderLimits, *, authenticated: bool = True) -> None:
        self._limits = limits
        self._redis_max_bulk = max(_REDIS_MAX_BULK, limits.max_bulk_length)
        self.state = Scan.REQUEST
        self._args_left = 0
        self._argv: list[bytes] = []
        self._line = b""  # a line whose end has not arrived
        self._parts: list[bytes] = []  # an argument's payload so far (PAYLOAD)
        self._left = 0  # payload bytes still to come, plus the two after them
        self._held = 0  # bytes of the incomplete multibulk request in earlier reads
        # The read hiredis last went through (``_arguments``), until the caller is done
        # with it (``done_with``).
        self._bulk_read: bytes | None = None
        self.stopped_for_auth = False  # the last ``scan`` stopped after AUTH or HELLO
        self.authenticated = authenticated
        self.max_args = self.max_bulk = 0
        self.set_authenticated(authenticated)

    def set_authenticated(self, value: bool) -> None:
        limits = self._limits
        self.authenticated = value
        self.max_bulk = (limits.max_bulk_length if value
                         else min(UNAUTHENTICATED_MAX_BULK, limits.max_bulk_length))
        self.max_args = (limits.max_multibulk_length if value
                         else min(UNAUTHENTICATED_MAX_ARGS, limits.max_multibulk_length))

    def done_with(self, buf: bytes) -> None:
        """The caller will not give ``buf`` again: nothing of it is to be kept."""
        if buf is self._bulk_read:
            self._bulk_read = None

    @property
    def held(self) -> int:
        """Bytes of the incomplete request held."""
        state = self.state
        return (0 if state is Scan.REQUEST else len(self._line) if state is Scan.INLINE
                else self._held)

    def scan(self, buf: bytes, pos: int, out: list[list[bytes]], limit: int,
             fast_from: int, clean_from: int) -> int:
        """Parse ``buf`` from ``pos``; append each complete request to ``out``. Returns
        where it stopped: the end of ``buf``; a request boundary once ``out`` holds
        ``limit`` requests, or after a request that may authenticate (before
        authentication; ``stopped_for_auth`` says so); a boundary at or past
        ``fast_from`` where a multibulk request starts, for the caller to hand to hiredis.
        From ``clean_from`` on the caller's guard vouches for ``buf`` (``_guard.py``).

        Raises:
            RemoteProtocolError: the request at ``pos`` or after breaks the protocol or a
            limit; the requests before it are in ``out``.
        """
        n = len(buf)
        self.stopped_for_auth = False
        start = pos  # where the current request's bytes begin in this read
        while pos < n:
            state = self.state
            emitted = len(out)
            if state is Scan.REQUEST:
                if emitted >= limit:
                    return pos
                if buf[pos] != 0x2A:  # not '*': inline
                    pos = self.lines(buf, pos, out, limit)
                elif pos >= fast_from:
                    return pos
                else:
                    start = pos
                    self._held = 0
                    self.state = Scan.COUNT
                    continue
            elif state is Scan.HEADER or state is Scan.PAYLOAD:
                pos = self._arguments(buf, pos, out, clean_from)
            elif state is Scan.COUNT:
                line, pos = self._take_line(buf, pos, "too big mbulk count string")
                if line is not None:
                    self._count(line)
                continue
            else:
                pos = self._inline(buf, pos, out)
            if len(out) > emitted and not self.authenticated and (
                    out[-1][0].lower() in AUTHENTICATING):
                self.stopped_for_auth = True
                return pos
        state = self.state
        if state is not Scan.REQUEST and state is not Scan.INLINE:
            self._held += n - start
            if self._held > self._limits.max_query_buffer:
                raise RemoteProtocolError("query buffer limit exceeded")
        return n

    # --- multibulk ----------------------------------------------------------------------

    def _take_line(self, buf: bytes, pos: int, too_big: str) -> tuple[bytes | None, int]:
        """The count or length line at ``pos`` (with what an earlier read left of it,
        without its CR) and where the next line starts; None, keeping the line so far,
        until its CR and the byte after it have both arrived."""
        line = self._line
        if line[-1:] == b"\r":  # the CR came last in an earlier read: skip one byte
            self._line = b""
            return line[:-1], pos + 1
        cr = buf.find(b"\r", pos)
        if cr < 0 or cr + 1 >= len(buf):
            line = self._line = line + buf[pos:]
            if len(line) - (line[-1] == 0x0D) > self._limits.max_inline_size:
                raise RemoteProtocolError(too_big)
            return None, len(buf)
        if len(line) + cr - pos > self._limits.max_inline_size:
            raise RemoteProtocolError(too_big)
        self._line = b""
        return line + buf[pos:cr] if line else buf[pos:cr], cr + 2

    def _count(self, line: bytes) -> None:
        """A whole '*<count>' line."""
        count = parse_length(line[1:])
        if count is None or count > _MAX_COUNT:
            raise RemoteProtocolError("invalid multibulk length")
        if count > self.max_args:  # Redis's words before AUTH, else our limit's
            raise RemoteProtocolError(
                "unauthenticated multibulk length"
                if count > UNAUTHENTICATED_MAX_ARGS and not self.authenticated
                else "invalid multibulk length")
        if count <= 0:
            self.state = Scan.REQUEST  # an empty request: skipped
            return
        self._args_left = count
        self._argv = []
        self.state = Scan.HEADER

    def _bulk_length(self, line: bytes) -> int:
        """A whole '$<length>' line (its '$' already checked)."""
        digits = line[1:]
        if not digits.isdigit() or len(digits) > 19 or (digits[0] == 0x30 and len(digits) > 1):
            raise RemoteProtocolError("invalid bulk length")
        length = int(digits)
        if length > self.max_bulk:  # Redis's words before AUTH, else our limit's
            raise RemoteProtocolError(
                "unauthenticated bulk length" if length > UNAUTHENTICATED_MAX_BULK
                and not self.authenticated and length <= self._redis_max_bulk
                else "invalid bulk length")
        return length

    def _arguments(self, buf: bytes, pos: int, out: list[list[bytes]], clean_from: int) -> int:
        """HEADER or PAYLOAD: arguments until the request is whole (it goes to ``out``)
        or ``buf`` ends."""
        n = len(buf)
        argv = self._argv
        if self.state is Scan.PAYLOAD:
            left = self._left
            if left > n - pos:  # not all here yet
                if left > 2:
                    self._parts.append(buf[pos:pos + left - 2])
                self._left = left - (n - pos)
                return n
            if left > 2:
                self._parts.append(buf[pos:pos + left - 2])
            argv.append(b"".join(self._parts))
            self._parts = []
            pos += left
            self.state = Scan.HEADER
            self._args_left -= 1
            if not self._args_left:
                return self._emit(out, pos)
        if self._line:  # a length line begun in an earlier read
            line, pos = self._take_line(buf, pos, "too big bulk count string")
            if line is None:
                return n
            length = self._bulk_length(line)
            if not self._payload(buf, pos, length):
                return n
            argv.append(buf[pos:pos + length])
            pos += length + 2
            self._args_left -= 1
            if not self._args_left:
                return self._emit(out, pos)
        if (self._args_left >= _BULK_ARGS and n - pos >= _BULK_BYTES and pos >= clean_from
                and buf is not self._bulk_read):
            # Once per read: where hiredis stops early (a CR then another byte, which Redis
            # accepts), the loop below goes on, and another run could cost a chunk each time.
            self._bulk_read = buf
            values, pos = whole_bulks(buf, pos, self._args_left, self.max_bulk)
            argv += values
            self._args_left -= len(values)
            if not self._args_left:
                return self._emit(out, pos)
        # One argument at a time: the loop the rules above describe.
        find = buf.find
        max_line = self._limits.max_inline_size
        max_bulk = self.max_bulk
        args_left = self._args_left
        append = argv.append
        while pos < n:
            if buf[pos] != 0x24:  # '$'
                raise RemoteProtocolError(f"expected '$', got '{chr(buf[pos])}'")
            cr = find(b"\r", pos)
            if cr < 0 or cr + 1 >= n or cr - pos > max_line:
                self._args_left = args_left
                line, pos = self._take_line(buf, pos, "too big bulk count string")
                return pos  # the line is not whole (one too long has raised)
            digits = buf[pos + 1:cr]
            if not (digits.isdigit() and (digits[0] != 0x30 or len(digits) == 1)
                    and len(digits) < 20 and (length := int(digits)) <= max_bulk):
                length = self._bulk_length(buf[pos:cr])  # raises, in Redis's words
            pos = cr + 2
            end = pos + length
            if end + 2 > n:
                self._args_left = args_left
                self._payload(buf, pos, length)
                return n
            append(buf[pos:end])
            pos = end + 2
            args_left -= 1
            if not args_left:
                self._args_left = 0
                return self._emit(out, pos)
        self._args_left = args_left
        return pos

    def _payload(self, buf: bytes, pos: int, length: int) -> bool:
        """True when the payload at ``pos`` and the two bytes after it are all in
        ``buf``; otherwise keep what has arrived and wait in PAYLOAD."""
        have = len(buf) - pos
        if have >= length + 2:
            return True
        self._parts = [buf[pos:pos + length]] if have else []
        self._left = length + 2 - have
        self.state = Scan.PAYLOAD
        return False

    def _emit(self, out: list[list[bytes]], pos: int) -> int:
        out.append(self._argv)
        self._argv = []
        self.state = Scan.REQUEST
        return pos

    # --- inline -------------------------------------------------------------------------

    def lines(self, buf: bytes, pos: int, out: list[list[bytes]], limit: int) -> int:
        """REQUEST at an inline request: the whole lines from ``pos`` up to one that
        starts with '*', looking at most ``_WINDOW`` bytes ahead (a read of many lines is
        searched once, not once per batch), as many as ``limit`` leaves room for. Lines
        that need no quote handling are split at once (``bytes.split`` drops the CR too).
        Returns where it stopped: at a boundary, or at the end of ``buf`` in INLINE when a
        line has begun. Before authentication it stops after AUTH or HELLO."""
        stop = buf.find(b"\n*", pos, pos + _WINDOW)
        end = buf.rfind(b"\n", pos, stop + 1 if stop >= 0 else pos + _WINDOW)
        if end < 0:  # one line, however far its newline is
            self.state = Scan.INLINE
            return self._inline(buf, pos, out)
        if pos or end + 1 < len(buf):
            chunk = buf[pos:end]
            lines = chunk.split(b"\n")
        else:  # the whole read: no copy
            chunk = buf
            lines = buf.split(b"\n")
            lines.pop()
        room = limit - len(out)
        if len(lines) > room:
            lines = lines[:room]
            end = pos + sum(map(len, lines)) + len(lines) - 1
        max_line = self._limits.max_inline_size
        if (b'"' not in chunk and b"'" not in chunk and self.authenticated
                and (len(chunk) <= max_line or max(map(len, lines)) <= max_line)):
            out += [argv for argv in map(bytes.split, lines) if argv]
            return end + 1
        for line in lines:
            pos += len(line) + 1
            emitted = len(out)
            self._run_line(line, out)
            if (len(out) > emitted and not self.authenticated
                    and out[-1][0].lower() in AUTHENTICATING):
                return pos
        return pos

    def _inline(self, buf: bytes, pos: int, out: list[list[bytes]]) -> int:
        """INLINE: the line at ``pos`` (with what an earlier read left of it)."""
        newline = buf.find(b"\n", pos)
        if newline < 0:
            line = self._line = self._line + buf[pos:]
            # Over the limit whatever follows (a CR last may yet end the line).
            if len(line) - (line[-1] == 0x0D) > self._limits.max_inline_size:
                raise RemoteProtocolError("too big inline request")
            return len(buf)
        line = self._line + buf[pos:newline]
        self._line = b""
        self.state = Scan.REQUEST
        self._run_line(line, out)
        return newline + 1

    def _run_line(self, line: bytes, out: list[list[bytes]]) -> None:
        """One whole inline line, without its LF."""
        if line[-1:] == b"\r":
            line = line[:-1]
        if len(line) > self._limits.max_inline_size:
            raise RemoteProtocolError("too big inline request")
        if b'"' in line or b"'" in line:
            try:
                argv = split_inline(line)
            except UnbalancedQuotesError:
                raise RemoteProtocolError("unbalanced quotes in request") from None
        else:
            argv = line.split()
        if not argv:
            return
        if not self.authenticated and len(argv) > UNAUTHENTICATED_MAX_ARGS:
            raise RemoteProtocolError("unauthenticated multibulk length")
        out.append(argv)
