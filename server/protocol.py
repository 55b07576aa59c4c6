"""One client connection: bytes in, replies out. Thin glue between the transport, the
sans-I/O reader and encoder, and the command table.

Rules:

* Replies go out in request order, one write per batch; a reply over ``_PIECE_BYTES``,
  and everything behind it, goes out a piece per loop turn.
* Fair turns (``turns.py``): a connection runs requests until its turn's work is spent
  (a request a unit, a published message by its size) or its time is up, then yields the
  loop and resumes on a later turn. A publish its turn cannot afford is sliced by the bus.
* Bounded output: every byte queued for the client counts, whether in the transport's
  buffer or waiting here as pieces, except the largest single reply among those queued
  (one reply larger than the limit still reaches a client that reads it). When the
  transport's buffer passes ``write_buffer_high`` the connection stops reading and
  executing until it drains; past ``output_buffer_limit`` (or over the soft limit for the
  soft seconds) the client is disconnected. Cached reply frames are queued by reference,
  never copied into one buffer, so a pipeline of them costs at most what it is counted for.
* A client blocked on a reply (``Session.blocked``) keeps being read: what it sends waits
  (bounded by ``max_query_buffer``) and runs after the reply, and its disconnect is seen
  at once: the Deferred is abandoned, its wait and its slot freed. Bytes read while the
  connection does not execute are stashed as read and given to the reader a read at a
  time when it resumes: hiredis moves its unparsed bytes on every request it returns, so
  a reader handed megabytes at once would cost the square of them.
* A protocol error is answered once, then the connection closes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Final, Literal, Protocol, cast

from clusterwatch.commands import CommandContext, CommandTable, Deferred, ServerView, Session
from clusterwatch.resp import (
    Encoded,
    RemoteProtocolError,
    Reply,
    RequestReader,
    SimpleString,
    write,
)

from .config import ServerConfig
from .tls import TlsContexts
from .turns import TURN_UNITS, Turn

log = logging.getLogger("clusterwatch.connection")

# Requests drained from the reader and executed before their replies are written.
_BATCH = 512
# A reply larger than this goes out this much per loop turn, so that writing one large
# reply to many clients does not hold the loop for the others (the kernel's copy of a
# megabyte into a socket takes a fraction of a millisecond).
_PIECE_BYTES = 256 * 1024
# Bytes a connection may read before it yields the loop, whether or not they complete a
# request: libuv hands one connection up to 32 reads per wake-up, and a long request's
# bytes are parsed as they come (about 1.5 ms per 64 KB), so counting requests alone would
# let a 16 MB request hold everyone for its whole parse.
_READ_BYTES_PER_TURN = 64 * 1024

MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"
# Redis's own words, so that its users recognise what to change.
PROTECTED_MODE_REPLY = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted "
    b"from the loopback interface. If you want to connect from external computers to "
    b"Redis you may adopt one of the following solutions: 1) Just disable protected mode "
    b"sending the command 'CONFIG SET protected-mode no' from the loopback interface by "
    b"connecting to Redis from the same host the server is running, however MAKE SURE "
    b"Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to "
    b"make this change permanent. 2) Alternatively you can just disable the protected "
    b"mode by editing the Redis configuration file, and setting the protected mode option "
    b"to 'no', and then restarting the server. 3) If you started the server manually just "
    b"for testing, restart it with the '--protected-mode no' option. 4) Setup a an "
    b"authentication password for the default user. NOTE: You only need to do one of the "
    b"above things in order for the server to start accepting connections from the "
    b"outside.\r\n"
)
_LOCAL_ADDRESSES = ("127.0.0.1", "::1")
# The explanation alone, for the HTTP port's 403 (server/http.py).
PROTECTED_MODE_TEXT = PROTECTED_MODE_REPLY[1:-2].decode()


def _peer(transport: asyncio.BaseTransport, key: str) -> str:
    value = transport.get_extra_info(key)
    if isinstance(value, tuple) and len(value) >= 2:
        host = value[0]
        return f"[{host}]:{value[1]}" if ":" in host else f"{host}:{value[1]}"
    return f"{value}:0" if value else "/unix:0"


def _encode(out: list[bytes], replies: list[Reply] | list[Reply | Deferred[Reply]],
            protocol: Literal[2, 3]) -> int:
    """Append the replies' frames to ``out``; return the bytes of cached frames among
    them (``Encoded``: shared, possibly huge, never worth copying)."""
    append = out.append
    cached = 0
    for reply in replies:
        if reply.__class__ is SimpleString:
            append(reply.frame)
        elif reply.__class__ is Encoded:  # a cached frame (CLUSTER INFO ...)
            frame = reply.resp3 if protocol == 3 else reply.resp2
            append(frame)
            cached += len(frame)
        else:
            write(out, reply, protocol)  # type: ignore[arg-type]  # never a Deferred here
    return cached


class Mode(enum.Enum):
    """What a connection does with the requests it reads. Its flow control (``paused``:
    the transport's buffer is past its high watermark) is apart, as it holds in any mode,
    and so is its output queue's state."""

    SERVING = "serving"  # runs requests as they are read
    YIELDED = "yielded"  # its turn is over: reading paused until ``_take_turn``
    BLOCKED = "blocked"  # waits for a reply (``Session.blocked``); reads are stashed
    CLOSING = "closing"  # closed or closing: nothing more runs


_SERVING: Final = Mode.SERVING
_YIELDED: Final = Mode.YIELDED
_BLOCKED: Final = Mode.BLOCKED
_CLOSING: Final = Mode.CLOSING
MODES: Final = {
    _SERVING: frozenset({_YIELDED, _BLOCKED, _CLOSING}),
    _YIELDED: frozenset({_SERVING, _CLOSING}),
    # Answered, it waits for its next turn before it runs what it read meanwhile.
    _BLOCKED: frozenset({_YIELDED, _CLOSING}),
    # Closing again (connection_lost after close) changes nothing.
    _CLOSING: frozenset({_CLOSING}),
}


class ConnectionHost(ServerView, Protocol):
    """What a connection reads and updates of its server, beyond what its handlers see
    (``app.Server`` implements it)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def table(self) -> CommandTable: ...

    @property
    def connections(self) -> dict[int, RespProtocol]: ...

    @property
    def handshaking(self) -> set[asyncio.Transport]:
        """Connections to the TLS port still in their handshake."""
        ...

    @property
    def tls(self) -> TlsContexts: ...

    @property
    def turn(self) -> Turn: ...

    @property
    def clock_ms(self) -> int:
        """The wall clock, read once per housekeeping tick."""
        ...

    @property
    def protected(self) -> bool: ...

    def next_client_id(self) -> int: ...

    def forget_subscriber(self, session: Session) -> None: ...


class RespProtocol(asyncio.Protocol):
    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.ctx: CommandContext | None = None
        self.reader: RequestReader | None = None
        # The transport's write buffer is past its high watermark (asyncio's flow control).
        self.paused = False
        self.mode = _SERVING
        self.closing = False  # ``mode is CLOSING``, as a flag for the checks on every read
        # Requests read behind a blocked request, or past the end of a turn.
        self.held: list[list[bytes]] = []
        # Reads that arrived while requests were not executed, not yet fed to the reader.
        self.stash: deque[bytes] = deque()
        self.stashed = 0
        # Bytes read since this connection's turn began (``_READ_BYTES_PER_TURN``).
        self.read_in_turn = 0
        # TLS: bytes the TLS layer decrypted before the handshake's waiter ran
        # connection_made (TlsAcceptor); fed once the session exists.
        self.unmade: list[bytes] = []
        # Output not yet handed to the transport: a large reply and what followed it.
        self.pieces: deque[bytes | memoryview] = deque()
        self.queued = 0
        # The largest reply among those queued: it does not count against the limits.
        self.exempt = 0
        self.piece_scheduled = False
        self.close_when_written = False
        # Since when (loop time) the output has been over the soft limit, and its check.
        self.soft_since: float | None = None
        self.soft_timer: asyncio.TimerHandle | None = None

    # --- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server.stats.total_connections_received += 1
        if len(server.connections) >= server.config.max_clients:
            server.stats.rejected_connections += 1
            transport.write(MAX_CLIENTS_REPLY)
            transport.close()
            self._set_mode(_CLOSING)
            log.warning("max clients reached, connection refused",
                        extra={"peer": _peer(transport, "peername")})
            return
        if server.protected and not is_local_peer(transport.get_extra_info("peername")):
            server.stats.rejected_connections += 1
            transport.write(PROTECTED_MODE_REPLY)
            transport.close()
            self._set_mode(_CLOSING)
            log.warning("protected mode: connection from a non-loopback address refused",
                        extra={"peer": _peer(transport, "peername")})
            return
        sock = transport.get_extra_info("socket")
        now = server.clock_ms
        user = server.acl.default_login()
        session = Session(
            id=server.next_client_id(),
            addr=_peer(transport, "peername"),
            laddr=_peer(transport, "sockname"),
            fd=sock.fileno() if sock is not None else -1,
            created_ms=now,
            last_interaction_ms=now,
            authenticated=user is not None,
            allowed=user.allowed if user is not None else frozenset(),
        )
        self.session = session
        self.ctx = CommandContext(session=session, server=server, table=server.table)
        self.reader = RequestReader(server.config.reader_limits,
                                    authenticated=session.authenticated)
        transport.set_write_buffer_limits(server.config.write_buffer_high,
                                          server.config.write_buffer_low)
        server.connections[session.id] = self
        if self.unmade:
            unmade, self.unmade = self.unmade, []
            for data in unmade:
                self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_mode(_CLOSING)
        self.pieces.clear()
        self.queued = 0
        self.held = []
        self.stash.clear()
        self.stashed = 0
        if self.soft_timer is not None:
            self.soft_timer.cancel()
            self.soft_timer = None
        session = self.session
        if session is not None:
            self.server.connections.pop(session.id, None)
            blocked = session.blocked
            if blocked is not None:
                # Nobody is left to answer: the wait (or whatever produces the reply)
                # frees what it holds for this client now, not at its time-out.
                session.blocked = None
                self.server.blocked_clients -= 1
                blocked.abandon()
            if session.channels or session.patterns:
                self.server.forget_subscriber(session)

    def data_received(self, data: bytes) -> None:
        if self.closing or self.reader is None:
            if self.transport is None and not self.closing:
                self.unmade.append(data)
            return
        stats = self.server.stats
        stats.total_net_input_bytes += len(data)
        stats.total_reads_processed += 1
        if self.paused or self.mode is not _SERVING:
            self.stash.append(data)
            self.stashed += len(data)
            if self.stashed + self.reader.buffered > self.server.config.max_query_buffer:
                self._query_buffer_full()
            return
        # A read with several '*' (several inline lines) is a pipeline, or an argument
        # holding one: it goes the general way without the single path's checks, as
        # does anything read behind requests still held.
        self.read_in_turn += len(data)
        if self.held or data.count(b"*" if data[0] == 0x2A else b"\n") != 1:
            self.reader.feed(data)
            self.process()
            if (self.read_in_turn >= _READ_BYTES_PER_TURN and self.mode is _SERVING
                    and not self.paused):
                self._yield_turn()
            return
        argv = self.reader.take_single(data)
        if argv is None:
            self.process()
        else:
            self.answer_single(argv)

    def pause_writing(self) -> None:
        self.paused = True
        if (self.transport is not None and not self.closing and self.session is not None
                and self.session.blocked is None):
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.pieces:
            self._schedule_piece()
        if self.transport is not None and self.mode is _SERVING:
            self.transport.resume_reading()
            self.process()

    def _yield_turn(self) -> None:
        """Let the other connections have the loop; continue on a later turn."""
        self._set_mode(_YIELDED)
        self.read_in_turn = 0
        assert self.transport is not None
        self.transport.pause_reading()
        asyncio.get_running_loop().call_soon(self._take_turn)

    def _take_turn(self) -> None:
        """Continue after yielding the loop to other connections (or after a reply this
        client was blocked on went out)."""
        if self.transport is None or self.closing:
            return
        self._set_mode(_SERVING)
        if not self.paused:
            self.transport.resume_reading()
            self.process()

    def _set_mode(self, new: Mode) -> None:
        if new not in MODES[self.mode]:
            raise RuntimeError(f"connection mode {self.mode.value} -> {new.value}")
        self.mode = new
        self.closing = new is _CLOSING

    def eof_received(self) -> bool | None:
        return None

    def _query_buffer_full(self) -> None:
        """A client that is not being served (blocked, or waiting for its turn or for its
        output to drain) sent more than the query buffer holds: closed, as redis-server
        closes a client past ``client-query-buffer-limit``. Nothing is answered: the reply
        it waits for would come first."""
        session = self.session
        # The counter INFO shows as client_query_buffer_limit_disconnections, as the
        # reader's own query-buffer refusal counts.
        self.server.stats.protocol_errors += 1
        log.warning("client query buffer limit reached, closing", extra={
            "client": session.id if session else -1,
            "buffered": self.input_buffered()})
        self.abort()

    def input_buffered(self) -> int:
        """Bytes read and not yet run: in the reader, and stashed (CLIENT LIST's qbuf)."""
        return self.stashed + (self.reader.buffered if self.reader is not None else 0)

    # --- request processing ----------------------------------------------------------

    def process(self) -> None:
        """Execute the buffered requests, writing a batch at a time, until the reader
        needs more data, the turn is over, writing pauses, or the connection is to
        close."""
        reader, ctx = self.reader, self.ctx
        assert reader is not None and ctx is not None
        session = ctx.session
        server = self.server
        table = server.table
        execute = table.execute
        session.last_interaction_ms = server.clock_ms
        authenticated = session.authenticated
        turn = server.turn
        turn.spent = 0
        deadline = table.perf_ns() + turn.time_ns
        while not self.paused and not self.closing:
            # What was held goes first; the reader may hold more behind it.
            drained = not self.held
            if not drained:
                batch, self.held = self.held, []
            else:
                try:
                    batch = reader.drain(_BATCH)
                    while not batch and self.stash:
                        data = self.stash.popleft()
                        self.stashed -= len(data)
                        reader.feed(data)
                        batch = reader.drain(_BATCH)
                except RemoteProtocolError as exc:
                    self._protocol_error([], exc)
                    return
            if not batch:
                return
            out: list[bytes] = []
            cached = 0
            pending = batch
            while True:
                protocol = session.protocol
                replies = execute(ctx, pending, deadline)
                blocked = session.blocked
                if blocked is not None:
                    cached += _encode(out, replies[:-1], protocol)
                    self.held = pending[len(replies):]
                    self._send(out, cached)
                    self._block(blocked)
                    return
                if session.protocol == protocol:
                    cached += _encode(out, replies, protocol)
                else:  # HELLO answers in the protocol it switched to
                    cached += _encode(out, replies[:-1], protocol)
                    cached += _encode(out, replies[-1:], session.protocol)
                if len(replies) == len(pending) or session.close_after_reply:
                    break
                if session.protocol == protocol:  # the turn's time ran out
                    self.held = pending[len(replies):]
                    break
                pending = pending[len(replies):]
            if session.authenticated is not authenticated:
                reader.authenticated = authenticated = session.authenticated
            self._send(out, cached)
            if session.close_after_reply:
                self.close()
                return
            if (drained and len(batch) < _BATCH and not self.held and not reader.ready
                    and not self.stash):
                return
            turn.spent += len(batch)
            if self.held or turn.spent >= TURN_UNITS or table.perf_ns() >= deadline:
                if not self.paused and not self.closing:
                    self._yield_turn()
                return

    def answer_single(self, argv: list[bytes]) -> None:
        """``process`` for a read that held exactly one request (see
        ``RequestReader.take_single``): the same reply, statistics and limits, without
        the batch loop. Most clients send one request and wait for its reply."""
        ctx, reader = self.ctx, self.reader
        assert ctx is not None and reader is not None
        session = ctx.session
        server = self.server
        session.last_interaction_ms = server.clock_ms
        authenticated = session.authenticated
        server.turn.spent = 0
        reply = server.table.execute_single(ctx, argv)
        if session.blocked is not None:
            self._block(session.blocked)
            return
        # In the protocol after the call: HELLO answers in the one it switched to. One
        # frame needs no count of cached bytes: ``_send`` queues it by its size alone.
        out: list[bytes] = []
        write(out, reply, session.protocol)  # type: ignore[arg-type]  # not a Deferred here
        if session.authenticated is not authenticated:
            reader.authenticated = session.authenticated
        self._send(out)
        if session.close_after_reply:
            self.close()

    def _block(self, deferred: Deferred[Reply]) -> None:
        """Wait for a blocked request's reply. Reading goes on, so that a disconnect is
        seen at once; what the client sends meanwhile waits in the reader. (Sending the
        replies before it may have closed the connection: its loss frees the wait.)"""
        if not self.closing:
            self._set_mode(_BLOCKED)
        self.server.blocked_clients += 1
        deferred.add_callback(self._unblock)

    def _unblock(self, reply: Reply) -> None:
        assert self.session is not None
        self.session.blocked = None
        self.server.blocked_clients -= 1
        if self.transport is None or self.closing:
            return
        # Its next turn runs what it read meanwhile; not at once: the reply may come from
        # inside the loop that blocked us.
        self._set_mode(_YIELDED)
        out: list[bytes] = []
        cached = _encode(out, [reply], self.session.protocol)
        self._send(out, cached)
        if self.paused:
            self.transport.pause_reading()  # no longer blocked: flow control again
        asyncio.get_running_loop().call_soon(self._take_turn)

    # --- output ----------------------------------------------------------------------

    def _send(self, out: list[bytes], cached: int = 0) -> None:
        if not out or self.transport is None:
            return
        stats = self.server.stats
        stats.total_writes_processed += 1
        if cached > _PIECE_BYTES:
            # Large cached frames (CLUSTER STATUS, CLUSTER NODES ...) queue by reference:
            # a pipeline of them must not become one copy of them all.
            size = sum(map(len, out))
            stats.total_net_output_bytes += size
            self._queue(out, size, max(map(len, out)))
        else:
            # One joined write: uvloop's writelines costs more per frame than the join.
            data = b"".join(out)
            stats.total_net_output_bytes += len(data)
            if self.pieces or len(data) > _PIECE_BYTES:
                # A bulk reply is one frame: the largest frame is the largest reply.
                largest = max(map(len, out)) if len(out) > 1 else len(data)
                self._queue([data], len(data), largest)
            else:
                self.transport.write(data)
                # Only a paused transport (past its high watermark) can be over a limit.
                if not self.paused:
                    return
        self._check_limits()

    def _queue(self, frames: list[bytes], size: int, largest: int) -> None:
        """Queue output behind what is queued, to go out a piece per loop turn."""
        self.pieces.extend(frames)
        self.queued += size
        if largest > self.exempt:
            self.exempt = largest
        self._schedule_piece()

    def output_buffered(self) -> int:
        """Bytes written but not yet taken by the kernel, queued pieces included."""
        if self.transport is None:
            return 0
        return self.transport.get_write_buffer_size() + self.queued

    def _check_limits(self) -> None:
        """Disconnect a client whose output, the largest queued reply aside, is past the
        hard limit, or has stayed past the soft limit for the soft seconds (Redis's
        ``client-output-buffer-limit normal <hard> <soft> <seconds>``)."""
        if self.transport is None or self.closing:
            return
        config = self.server.config
        buffered = self.output_buffered() - self.exempt
        if buffered > config.output_buffer_limit:
            self._cut(buffered, "client output buffer limit reached, closing")
            return
        soft = config.output_buffer_soft_limit
        session = self.session
        if not soft or (session is not None and (session.channels or session.patterns)):
            return  # a subscriber's soft limit is the pubsub class's (``Fanout``)
        if buffered <= soft:
            self.soft_since = None
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.soft_since is None:
            self.soft_since = now
        elif now - self.soft_since >= config.output_buffer_soft_seconds:
            self._cut(buffered, "client output buffer soft limit reached for "
                      f"{config.output_buffer_soft_seconds} s, closing")
            return
        if self.soft_timer is None:
            # Checked again when its time is up, even if nothing more is sent to it.
            self.soft_timer = loop.call_at(
                self.soft_since + config.output_buffer_soft_seconds, self._soft_check)

    def _soft_check(self) -> None:
        self.soft_timer = None
        self._check_limits()

    def _cut(self, buffered: int, message: str) -> None:
        self.server.stats.client_output_buffer_disconnects += 1
        log.warning(message, extra={"client": self.session.id if self.session else -1,
                                    "buffered": buffered})
        self.abort()

    def _schedule_piece(self) -> None:
        if not self.piece_scheduled and not self.paused:
            self.piece_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_piece)

    def _write_piece(self) -> None:
        self.piece_scheduled = False
        transport = self.transport
        pieces = self.pieces
        if transport is None or transport.is_closing() or not pieces:
            return
        chunk: list[bytes | memoryview] = []
        room = _PIECE_BYTES
        while pieces and room:
            head = pieces[0]
            if len(head) <= room:
                chunk.append(pieces.popleft())
                room -= len(head)
            else:
                view = memoryview(head)
                chunk.append(view[:room])
                pieces[0] = view[room:]
                room = 0
        self.queued -= _PIECE_BYTES - room
        transport.write(chunk[0] if len(chunk) == 1 else b"".join(chunk))
        if pieces:
            self._schedule_piece()  # not while paused: resume_writing goes on
        else:
            self.exempt = 0
            if self.close_when_written:
                transport.close()
                return
        if self.soft_since is not None:
            self._check_limits()
    def _protocol_error(self, out: list[bytes], exc: RemoteProtocolError) -> None:
        stats = self.server.stats
        stats.protocol_errors += 1
        stats.count_error("ERR")
        session = self.session
        log.info("protocol error, closing", extra={
            "client": session.id if session else -1,
            "addr": session.addr if session else "", "error": exc.reply.message})
        write(out, exc.reply, session.protocol if session else 2)
        self._send(out)
        self.close()

    def push(self, frame: bytes) -> None:
        """Send an out-of-band frame (pub/sub) without any request."""
        if self.transport is None or self.closing:
            return
        self._send([frame])

    def close(self) -> None:
        """Flush what is queued, then close."""
        if self.transport is not None and not self.closing:
            self._set_mode(_CLOSING)
            if self.pieces:
                self.close_when_written = True
            else:
                self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued output."""
        if self.transport is not None:
            self._set_mode(_CLOSING)
            self.pieces.clear()
            self.queued = 0
            self.transport.abort()


def is_local_peer(peer: object) -> bool:
    """A Unix-socket client, or one from exactly 127.0.0.1 or ::1 (Redis's test)."""
    if not isinstance(peer, tuple):
        return True
    return bool(peer) and peer[0] in _LOCAL_ADDRESSES


class TlsAcceptor(asyncio.Protocol):
    """A connection to the TLS port before its handshake: runs the handshake with the
    server's current context, then hands the TLS transport to a new ``RespProtocol``. A
    failed handshake is logged and closed; it never becomes a client."""

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        # Bytes read before start_tls took the transport over (uvloop reads once after
        # connection_made even when it paused reading); handed to the TLS layer.
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.pause_reading()  # start_tls takes the bytes from here on
        self.server.handshaking.add(transport)
        asyncio.get_running_loop().create_task(self._handshake(transport))

    def data_received(self, data: bytes) -> None:
        self.early.append(data)
        if sum(map(len, self.early)) > _EARLY_LIMIT and self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.handshaking.discard(self.transport)

    def _hand_over_early(self) -> None:
        """Runs after start_tls installed its protocol and called its connection_made:
        feed it what this acceptor read first."""
        transport, early, self.early = self.transport, self.early, []
        if transport is None or transport.is_closing() or not early:
            return
        tls = transport.get_protocol()
        for chunk in early:
            view = memoryview(chunk)
            while view:
                if hasattr(tls, "get_buffer"):  # uvloop's SSLProtocol is not a subclass
                    buffered = cast(asyncio.BufferedProtocol, tls)
                    buffer = memoryview(buffered.get_buffer(len(view)))
                    size = min(len(buffer), len(view))
                    buffer[:size] = view[:size]
                    buffered.buffer_updated(size)
                else:
                    size = len(view)
                    cast(asyncio.Protocol, tls).data_received(bytes(view))
                view = view[size:]

    async def _handshake(self, transport: asyncio.Transport) -> None:
        server = self.server
        context = server.tls.resp
        assert context is not None
        peer = _peer(transport, "peername")
        connection = RespProtocol(server)
        loop = asyncio.get_running_loop()
        # start_tls swaps the protocol now and schedules its connection_made; two hops of
        # call_soon land after that and before the next read.
        loop.call_soon(loop.call_soon, self._hand_over_early)
        try:
            tls_transport = await loop.start_tls(
                transport, connection, context, server_side=True,
                ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        except asyncio.CancelledError:
            server.handshaking.discard(transport)
            transport.abort()
            raise
        except Exception as exc:  # any failure refuses this one connection, nothing more
            server.handshaking.discard(transport)
            server.tls.handshake_failures += 1
            transport.abort()
            log.warning("TLS handshake failed", extra={
                "peer": peer, "error": _handshake_error(exc)})
            return
        server.handshaking.discard(transport)
        if tls_transport is None:  # the peer went away as the handshake ended
            transport.abort()
            return
        connection.connection_made(tls_transport)


_HANDSHAKE_TIMEOUT = 10.0
_EARLY_LIMIT = 64 * 1024


def _handshake_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no handshake within {_HANDSHAKE_TIMEOUT:.0f} s"
    text = str(exc) or exc.__class__.__name__
    reason = getattr(exc, "reason", None)
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"{reason or text}: {verify}"
    return text
