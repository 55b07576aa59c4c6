"""Sans-I/O request reader: ``feed(data)``, then ``drain()`` (or ``next_command()``);
``take_single(data)`` for a read that is likely one whole request.

Two parsers, one meaning. ``RequestScanner`` (``_scanner.py``) is the authoritative one:
redis-server's framing, limits and words, incremental and linear. hiredis parses the same
requests several times faster, but it checks nothing, allocates from headers, and cannot
say how a request was framed or where an incomplete one began. So hiredis only ever gets a
*segment*: bytes that start at a request boundary and that the guard (``_guard.py``)
vouches for. Everything else goes to the scanner: a read the guard objects to, and the
bytes of any request hiredis could not finish or returned in a shape the fast checks
refuse (a limit, a nested value, a type byte where a request starts, ``*-5``). The scanner
then parses it, or says exactly what is wrong.

Where a segment ends is decided when hiredis runs dry:

* Small segments (a request-reply client's read, a short pipeline): a boundary when every
  '*' in the segment headed a value hiredis returned, the segment ends in LF (hiredis takes
  a type byte before the rest of its value: a read ending in one leaves a value pending and
  no byte unread) and hiredis holds no byte. One ``count`` per read, nothing per request.
  Otherwise a fresh hiredis reads the segment again to find, by canonical sizes, where the
  values it returned end.
* Large segments (a big pipeline, whose reads end inside requests), and any before
  authentication: the canonical size of each request is added up as it is returned.

Modes (``Mode``), and the only transitions between them (``TRANSITIONS``):

* IDLE -> FAST: a read that starts with '*' and that the guard vouches for; hiredis gets it.
* IDLE -> CAREFUL: any other read; it is queued for the scanner.
* FAST -> IDLE: hiredis ran dry at a request boundary.
* FAST -> CAREFUL: hiredis ran dry inside a request, or returned a value the fast checks
  refuse: the segment's bytes from that request on go to the front of the queue, and that
  read stays with the scanner to its end.
* CAREFUL -> FAST: the scanner is at a boundary where a multibulk request starts, past the
  last byte of its read the guard objects to.
* CAREFUL -> IDLE: the scanner is at a boundary and nothing is queued.
* IDLE, FAST, CAREFUL -> FAILED: a protocol error; raised by the next ``drain`` and every
  later one.

Linear: a read is translated by the guard at most twice, read by hiredis at most four
times (by ``take_single``, as a segment, again to find where a small segment's values end,
through a long request's arguments) and by the scanner's loop at most once; no read is
copied because another arrived. hiredis is fed ``CHUNK`` bytes at a time (``_bulks.py``).

Before authentication ``drain`` stops after a request that may authenticate (AUTH, HELLO):
the requests behind it are read under the limits it leaves in force, as redis-server reads
one request at a time. ``ready`` then tells the caller to run what it got and drain again
without waiting for data.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from typing import Final, Literal

import hiredis

from ._bulks import CHUNK
from ._errors import RemoteProtocolError
from ._guard import STAR_AND_MARKERS, clean_from, long_count
from ._limits import ReaderLimits
from ._scanner import (
    AUTHENTICATING,
    UNAUTHENTICATED_MAX_ARGS,
    UNAUTHENTICATED_MAX_BULK,
    RequestScanner,
    Scan,
)


class NeedData(enum.Enum):
    NEED_DATA = 0


NEED_DATA: Final = NeedData.NEED_DATA


class Mode(enum.Enum):
    IDLE = "idle"  # at a request boundary; nothing held
    FAST = "fast"  # hiredis holds a segment
    CAREFUL = "careful"  # the scanner parses the queue
    FAILED = "failed"  # a protocol error waits to be raised, again and again


TRANSITIONS: Final = {
    Mode.IDLE: frozenset({Mode.FAST, Mode.CAREFUL, Mode.FAILED}),
    Mode.FAST: frozenset({Mode.IDLE, Mode.CAREFUL, Mode.FAILED}),
    Mode.CAREFUL: frozenset({Mode.IDLE, Mode.FAST, Mode.FAILED}),
    Mode.FAILED: frozenset(),
}

_IDLE: Final = Mode.IDLE
_FAST: Final = Mode.FAST
_CAREFUL: Final = Mode.CAREFUL
_FAILED: Final = Mode.FAILED
_REQUEST: Final = Scan.REQUEST

_INCOMPLETE: Final = object()
# Segments longer than this count canonical sizes as they go.
_SIZING: Final = 4 * 1024


def encode_request(argv: list[bytes]) -> bytes:
    """The canonical multibulk encoding of ``argv``."""
    if len(argv) == 1:
        return b"*1\r\n$%d\r\n%b\r\n" % (len(argv[0]), argv[0])
    parts = [b"*%d\r\n" % len(argv)]
    parts.extend(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in argv)
    return b"".join(parts)


def wire_size(argv: list[bytes]) -> int:
    """Bytes of the canonical multibulk encoding of ``argv``."""
    size = len(str(len(argv))) + 3
    for arg in argv:
        size += len(str(len(arg))) + len(arg) + 5
    return size


class RequestReader:
    """Turns a client's byte stream into argument vectors (``list[bytes]``).

    Raises ``RemoteProtocolError`` from ``drain`` or ``next_command`` on malformed input or
    a limit; after that the reader is dead and raises the same error again.
    """

    def __init__(self, limits: ReaderLimits | None = None, *, authenticated: bool = True) -> None:
        self.limits = limits or ReaderLimits()
        self._mode = _IDLE
        self._error: RemoteProtocolError | None = None
        self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._scanner = RequestScanner(self.limits, authenticated=authenticated)
        # The segment hiredis holds (FAST): its reads, where it starts in the first, its
        # length, the '*' in it, the values hiredis returned from it in earlier drains,
        # the canonical bytes of those values (large segments only), and what is not yet
        # fed to hiredis: bytes, next read, position in it.
        self._seg: list[bytes] = []
        self._seg_start = 0
        self._seg_len = 0
        self._seg_stars = 0
        self._seg_values = 0
        self._sizing = False
        self._consumed = 0
        self._unfed = 0
        self._fed_piece = 0
        self._fed_pos = 0
        # Reads for the scanner (CAREFUL), the position in the first, where in the first
        # the guard stops objecting (-1: not yet worked out), and whether the first has
        # gone back from hiredis to the scanner (then it stays with the scanner).
        self._queue: deque[bytes] = deque()
        self._front_pos = 0
        self._front_clean_from = -1
        self._front_demoted = False
        self._auth_stop = False
        self._authenticated = authenticated
        self._max_args = self._max_bulk = 0
        self._long = b""
        self._count_end = 0
        self.authenticated = authenticated

    # --- state --------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @authenticated.setter
    def authenticated(self, value: bool) -> None:
        """Before authentication Redis limits requests to 10 arguments of 16 KiB."""
        self._authenticated = value
        limits = self.limits
        self._max_bulk = (limits.max_bulk_length if value
                          else min(UNAUTHENTICATED_MAX_BULK, limits.max_bulk_length))
        self._max_args = (limits.max_multibulk_length if value
                          else min(UNAUTHENTICATED_MAX_ARGS, limits.max_multibulk_length))
        self._long = long_count(self._max_args)
        self._count_end = len(self._long)  # a short count line's CR comes before this
        self._scanner.set_authenticated(value)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def buffered(self) -> int:
        """Bytes held for requests not yet complete (or not yet drained)."""
        held = self._scanner.held + sum(map(len, self._queue)) - self._front_pos
        if self._mode is _FAST:
            held += self._seg_len
        return held

    @property
    def failed(self) -> bool:
        """A protocol error is waiting to be raised by the next call."""
        return self._error is not None

    @property
    def ready(self) -> bool:
        """``drain`` stopped before the requests it holds ran out, or an error waits: run
        what it returned and call it again without waiting for data."""
        return self._auth_stop or self._error is not None

    # --- input --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            return
        mode = self._mode
        if mode is _IDLE:
            if data[0] == 0x2A:
                clean_from = self._clean_from(data)
                if not clean_from:
                    self._open(data, 0)
                    return
            else:
                clean_from = -1
            self._queue.append(data)
            self._front_pos = 0
            self._front_clean_from = clean_from
            self._front_demoted = False
            self._mode = _CAREFUL
        elif mode is _FAST and not self._queue and not self._clean_from(data):
            self._extend(data)
        elif mode is not _FAILED:
            if not self._queue:
                self._front_pos = 0
                self._front_clean_from = -1
                self._front_demoted = False
            self._queue.append(data)

    def take_single(self, data: bytes) -> list[bytes] | None:
        """The request, when ``data`` is exactly one whole, canonically encoded multibulk
        request within every limit (or one plain inline line) and nothing is pending; the
        reader is then left as it was. Otherwise None, and ``data`` is fed as ``feed``
        does: ``drain`` takes it from there.

        This is the read of a client that waits for each reply (redis-cli, probes, agents,
        redis-py without a pipeline): it skips the segment bookkeeping.
        """
        if self._mode is not _IDLE:
            self.feed(data)
            return None
        if data[0] != 0x2A:  # not '*'
            # An inline request: one line, no quotes to undo.
            if (data[-1:] == b"\n" and data.count(b"\n") == 1
                    and len(data) <= self.limits.max_inline_size
                    and b'"' not in data and b"'" not in data):
                words = data.split()
                if words and (self._authenticated or len(words) <= UNAUTHENTICATED_MAX_ARGS):
                    return words
            self.feed(data)
            return None
        # Most reads have one '*', no marker byte (see the module notes) and a short count
        # line: one ``translate`` and one ``find`` say so. Otherwise a second request needs
        # a '*' after a line end, and the guard has its say.
        if (len(data.translate(None, STAR_AND_MARKERS)) != len(data) - 1
                or data.find(b"\r", 1, self._count_end) < 0) and (
                    b"\r\n*" in data or self._clean_from(data)):
            self.feed(data)
            return None
        parser = self._hiredis
        parser.feed(data)
        try:
            argv = parser.gets()
        except hiredis.ProtocolError:
            argv = None
        if argv.__class__ is list and 0 < (count := len(argv)) <= self._max_args:
            max_bulk = self._max_bulk
            # wire_size, on the way through the checks
            size = 4 if count < 10 else 5 if count < 100 else 3 + len(str(count))
            for arg in argv:
                if arg.__class__ is not bytes:
                    break
                length = len(arg)
                if length > max_bulk:
                    break
                size += length + (6 if length < 10 else 7 if length < 100
                                  else 5 + len(str(length)))
            else:
                # The guard leaves only '$' bulks with canonical lengths: equal sizes mean
                # hiredis took all of ``data`` as this one request and holds nothing.
                if len(data) == size:
                    return argv
        if argv is _INCOMPLETE:
            self._open(data, 0, fed=True)
        else:  # hiredis used part of it, or refused it: the scanner reads it all
            self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
            self._queue.append(data)
            self._front_pos = 0
            self._front_clean_from = -1
            self._front_demoted = True
            self._mode = _CAREFUL
        return None

    # --- output -------------------------------------------------------------------------

    def next_command(self) -> list[bytes] | Literal[NeedData.NEED_DATA]:
        """The next complete request, or ``NEED_DATA``."""
        batch = self.drain(1)
        return batch[0] if batch else NEED_DATA

    def drain(self, limit: int = 2**31) -> list[list[bytes]]:
        """Up to ``limit`` complete requests, in order; empty when more data is needed.

        A protocol error is raised at once when no request precedes it in this call;
        otherwise the requests before it are returned and the next call raises it, so
        the caller answers them first, as redis-server does. Before authentication the
        batch ends after a request that may authenticate (``ready`` is then true).
        """
        if self._error is not None:
            raise self._error
        commands: list[list[bytes]] = []
        self._auth_stop = False
        try:
            while True:
                mode = self._mode
                if mode is _FAST:
                    if self._sizing:
                        going = self._drain_sizing(commands, limit)
                    else:
                        going = self._drain_plain(commands, limit)
                elif mode is _CAREFUL:
                    going = self._drain_careful(commands, limit)
                else:
                    break
                if not going or len(commands) >= limit:
                    break
        except RemoteProtocolError as exc:
            self._fail(exc)
            if not commands:
                raise
        return commands

    # --- the fast path ------------------------------------------------------------------

    def _clean_from(self, data: bytes) -> int:
        return clean_from(data, self._long)

    def _open(self, data: bytes, start: int, *, fed: bool = False) -> None:
        """Start a segment at ``data[start:]``, a request boundary the guard vouches for."""
        length = len(data) - start
        self._seg = [data]
        self._seg_start = start
        self._seg_len = length
        self._seg_stars = data.count(b"*", start)
        self._seg_values = 0
        self._sizing = length > _SIZING or not self._authenticated
        self._consumed = 0
        if fed or length <= CHUNK:
            if not fed:
                self._hiredis.feed(data, start)
            self._unfed = 0
            self._fed_piece = 1
        else:
            self._unfed = length
            self._fed_piece = 0
            self._fed_pos = start
            self._feed_chunk()
        self._mode = _FAST

    def _extend(self, data: bytes) -> None:
        """Add a read the guard vouches for to the open segment."""
        self._seg.append(data)
        self._seg_len += len(data)
        self._seg_stars += data.count(b"*")
        if not self._unfed and len(data) <= CHUNK:
            self._hiredis.feed(data)
            self._fed_piece += 1
        else:
            if not self._unfed:
                self._fed_pos = 0
            self._unfed += len(data)

    def _feed_chunk(self) -> None:
        piece = self._seg[self._fed_piece]
        pos = self._fed_pos
        take = min(len(piece) - pos, CHUNK)
        self._hiredis.feed(piece, pos, take)
        self._unfed -= take
        if pos + take == len(piece):
            self._fed_piece += 1
            self._fed_pos = 0
        else:
            self._fed_pos = pos + take

    def _drain_plain(self, commands: list[list[bytes]], limit: int) -> bool:
        """Requests from a small segment, checked in place: the hot loop. True when the
        mode changed and draining goes on."""
        gets = self._hiredis.gets
        max_args, max_bulk = self._max_args, self._max_bulk
        append = commands.append
        start = len(commands)
        ignored = 0
        while True:
            for _ in range(limit - len(commands)):
                try:
                    argv = gets()
                except hiredis.ProtocolError:
                    return self._refused(self._seg_values + len(commands) - start + ignored)
                if argv.__class__ is list and 0 < len(argv) <= max_args:
                    for arg in argv:
                        if arg.__class__ is not bytes or len(arg) > max_bulk:
                            break
                    else:
                        append(argv)
                        continue
                    return self._refused(self._seg_values + len(commands) - start + ignored)
                if argv is _INCOMPLETE:
                    if self._unfed:
                        self._feed_chunk()
                        continue
                    values = self._seg_values + len(commands) - start + ignored
                    # hiredis takes a value's type byte before the rest arrives: a read
                    # ending in one leaves no data, only a pending value. A segment ending
                    # in LF cannot (LF is no type byte; hiredis refuses it).
                    if (values == self._seg_stars and self._seg[-1][-1] == 0x0A
                            and not self._hiredis.has_data()):
                        return self._close()
                    return self._split(self._reparsed(values) if values else 0)
                if argv.__class__ is list and not argv:
                    ignored += 1  # *0 ('~' is a guarded byte): skipped as Redis does
                    continue
                # Anything else, None included ('*-1', '$-1' and '_' all give it).
                return self._refused(self._seg_values + len(commands) - start + ignored)
            if len(commands) < limit:
                continue  # turns went to chunks and empty requests
            self._seg_values += len(commands) - start + ignored
            return False

    def _drain_sizing(self, commands: list[list[bytes]], limit: int) -> bool:
        """``_drain_plain`` for a large segment, or before authentication: adds up each
        request's canonical size, and stops after one that may authenticate."""
        gets = self._hiredis.gets
        max_args, max_bulk = self._max_args, self._max_bulk
        watch = not self._authenticated
        append = commands.append
        consumed = self._consumed
        while True:
            for _ in range(limit - len(commands)):
                try:
                    argv = gets()
                except hiredis.ProtocolError:
                    return self._split(consumed)
                if argv.__class__ is list and 0 < (count := len(argv)) <= max_args:
                    size = 4 if count < 10 else 5 if count < 100 else 3 + len(str(count))
                    for arg in argv:
                        if arg.__class__ is not bytes:
                            break
                        length = len(arg)
                        if length > max_bulk:
                            break
                        size += length + (6 if length < 10 else 7 if length < 100
                                          else 5 + len(str(length)))
                    else:
                        append(argv)
                        consumed += size
                        if watch and argv[0].lower() in AUTHENTICATING:
                            self._consumed = consumed
                            self._auth_stop = True
                            return False
                        continue
                    return self._split(consumed)
                if argv is _INCOMPLETE:
                    if self._unfed:
                        self._feed_chunk()
                        continue
                    if consumed == self._seg_len:
                        return self._close()
                    return self._split(consumed)
                if argv.__class__ is list and not argv:
                    consumed += 4
                    continue
                return self._split(consumed)
            if len(commands) < limit:
                continue
            self._consumed = consumed
            return False

    def _reparsed(self, values: int) -> int:
        """The canonical bytes of the first ``values`` values of the segment, read again
        by a fresh hiredis (a small segment's, whose sizes were not counted)."""
        parser = hiredis.Reader(notEnoughData=_INCOMPLETE)
        chunks = self._chunks()
        size = 0
        for _ in range(values):
            value = parser.gets()
            while value is _INCOMPLETE:
                piece, pos, take = next(chunks)
                parser.feed(piece, pos, take)
                value = parser.gets()
            size += wire_size(value)
        return size

    def _chunks(self) -> Iterator[tuple[bytes, int, int]]:
        """The segment as (read, position, length) pieces of at most ``CHUNK`` bytes."""
        start = self._seg_start
        for piece in self._seg:
            for pos in range(start, len(piece), CHUNK):
                yield piece, pos, min(CHUNK, len(piece) - pos)
            start = 0

    def _refused(self, values: int) -> bool:
        """The value after ``values`` good ones is not for the fast path."""
        return self._split(self._reparsed(values) if values else 0)

    def _close(self) -> bool:
        """The segment ended at a request boundary."""
        self._seg = []
        self._seg_len = 0
        if self._queue:
            self._mode = _CAREFUL
            return True
        self._mode = _IDLE
        return False

    def _split(self, offset: int) -> bool:
        """Hand the segment's bytes from ``offset`` on to the scanner, ahead of what is
        queued. The read they start in stays with the scanner to its end: what follows
        there is either the rest of an incomplete request, or behind a request the fast
        path refused, where going back to it could cost the rest of the read each time."""
        pieces = self._seg
        pos = self._seg_start + offset
        index = 0
        while index < len(pieces) - 1 and pos >= len(pieces[index]):
            pos -= len(pieces[index])
            index += 1
        rest = pieces[index:]
        if rest and pos >= len(rest[0]):
            rest.pop(0)
            pos = 0
        self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._seg = []
        self._seg_len = 0
        self._unfed = 0
        if rest:
            self._queue.extendleft(reversed(rest))
            self._front_pos = pos
            self._front_clean_from = -1
            self._front_demoted = True
        self._mode = _CAREFUL if self._queue else _IDLE
        return True

    # --- the careful path ---------------------------------------------------------------

    def _drain_careful(self, commands: list[list[bytes]], limit: int) -> bool:
        """Requests from the queue, by the scanner. True when the mode changed to FAST."""
        scanner = self._scanner
        queue = self._queue
        while queue and len(commands) < limit:
            piece = queue[0]
            pos = self._front_pos
            if scanner.state is _REQUEST and piece[pos] != 0x2A and self._authenticated:
                pos = scanner.lines(piece, pos, commands, limit)  # a run of inline requests
            else:
                clean_from = self._front_clean_from
                if clean_from < 0:
                    clean_from = self._front_clean_from = self._clean_from(piece)
                fast_from = len(piece) if self._front_demoted else clean_from
                if scanner.state is _REQUEST and piece[pos] == 0x2A and pos >= fast_from:
                    queue.popleft()
                    self._front_pos = 0
                    self._front_clean_from = -1
                    self._open(piece, pos)
                    return True
                pos = scanner.scan(piece, pos, commands, limit, fast_from, clean_from)
            if pos >= len(piece):
                queue.popleft()
                scanner.done_with(piece)
                self._front_pos = 0
                self._front_clean_from = -1
                self._front_demoted = False
            else:
                self._front_pos = pos
            if scanner.stopped_for_auth:
                scanner.stopped_for_auth = False
                self._auth_stop = True
                break
        if not queue and scanner.state is _REQUEST:
            self._mode = _IDLE
        return False

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._error = exc
        self._mode = _FAILED
        self._queue.clear()
        self._seg = []
        self._hiredis = hiredis.Reader(notEnoughData=_INCOMPLETE)
