"""One client connection: bytes in, replies out. Thin glue between the transport, the
sans-I/O reader and encoder, and the command table.

Pipelined requests are answered in order with one write per batch. Flow control
runs both ways: when the transport's write buffer passes its high watermark, the
connection stops reading and stops executing what it has already read, and resumes
both when the buffer drains; a client whose queued output passes the hard limit is
disconnected. A protocol error is answered once, then the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Literal, cast

from commands import CommandContext, Deferred, Session
from resp import Encoded, RemoteProtocolError, Reply, RequestReader, SimpleString, write

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger("clusterwatch.connection")

# Requests executed before their replies are written and the write buffer checked again.
_BATCH = 512
# A reply larger than this goes out this much per loop turn, so that writing one large
# reply to many clients does not hold the loop for the others (the kernel's copy of a
# megabyte into a socket takes a fraction of a millisecond).
_PIECE_BYTES = 256 * 1024
# Batches one connection may run before it yields the loop to the others (its reading is
# paused meanwhile). libuv hands over many reads per wake-up; without this, one client
# pipelining millions of requests would hold every other client for seconds.
_BATCHES_PER_TURN = 8

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


def _peer(transport: asyncio.BaseTransport, key: str) -> str:
    value = transport.get_extra_info(key)
    if isinstance(value, tuple) and len(value) >= 2:
        host = value[0]
        return f"[{host}]:{value[1]}" if ":" in host else f"{host}:{value[1]}"
    return f"{value}:0" if value else "/unix:0"


def _encode(out: list[bytes], replies: list[Reply] | list[Reply | Deferred[Reply]],
            protocol: Literal[2, 3]) -> None:
    append = out.append
    for reply in replies:
        if reply.__class__ is SimpleString:
            append(reply.frame)
        elif reply.__class__ is Encoded:  # a cached frame (CLUSTER INFO ...)
            append(reply.resp3 if protocol == 3 else reply.resp2)
        else:
            write(out, reply, protocol)  # type: ignore[arg-type]  # never a Deferred here


class RespProtocol(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.ctx: CommandContext | None = None
        self.reader: RequestReader | None = None
        self.paused = False
        # Reading is paused and requests wait: for this client's turn after yielding the
        # loop to others, or for the reply it is blocked on (``Session.blocked``).
        self.yielded = False
        self.closing = False
        # Requests read behind a blocked request, run once its reply is sent.
        self.held: list[list[bytes]] = []
        # TLS: bytes the TLS layer decrypted before the handshake's waiter ran
        # connection_made (TlsAcceptor); fed once the session exists.
        self.unmade: list[bytes] = []
        # Output not yet handed to the transport: a large reply and what followed it.
        self.pieces: deque[memoryview] = deque()
        self.queued = 0
        self.piece_scheduled = False
        self.close_when_written = False

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
            self.closing = True
            log.warning("max clients reached, connection refused",
                        extra={"peer": _peer(transport, "peername")})
            return
        if server.protected and not _is_local(transport.get_extra_info("peername")):
            server.stats.rejected_connections += 1
            transport.write(PROTECTED_MODE_REPLY)
            transport.close()
            self.closing = True
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
        self.closing = True
        self.pieces.clear()
        self.queued = 0
        session = self.session
        if session is not None:
            self.server.connections.pop(session.id, None)
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
        if self.paused or self.yielded:
            self.reader.feed(data)
            return
        # A read with several '*' (several inline lines) is a pipeline, or an argument
        # holding one: it goes the general way without the single path's checks, as
        # does anything read behind requests still held.
        if self.held or data.count(b"*" if data[0] == 0x2A else b"\n") != 1:
            self.reader.feed(data)
            self.process()
            return
        argv = self.reader.take_single(data)
        if argv is None:
            self.process()
        else:
            self.answer_single(argv)

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.pieces:
            self._schedule_piece()
        if self.transport is not None and not self.closing and not self.yielded:
            self.transport.resume_reading()
            self.process()

    def _take_turn(self) -> None:
        """Continue after yielding the loop to other connections."""
        self.yielded = False
        if self.transport is None or self.closing:
            return
        if not self.paused:
            self.transport.resume_reading()
            self.process()

    def eof_received(self) -> bool | None:
        return None

    # --- request processing ----------------------------------------------------------

    def process(self) -> None:
        """Execute the buffered requests, writing a batch at a time, until the reader
        needs more data, writing pauses, or the connection is to close."""
        reader, ctx = self.reader, self.ctx
        assert reader is not None and ctx is not None
        session = ctx.session
        execute = self.server.table.execute
        session.last_interaction_ms = self.server.clock_ms
        authenticated = session.authenticated
        turns = 0
        while not self.paused and not self.closing:
            if turns == _BATCHES_PER_TURN:
                self.yielded = True
                assert self.transport is not None
                self.transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._take_turn)
                return
            turns += 1
            if self.held:
                batch, self.held = self.held, []
            else:
                try:
                    batch = reader.drain(_BATCH)
                except RemoteProtocolError as exc:
                    self._protocol_error([], exc)
                    return
            if not batch:
                return
            out: list[bytes] = []
            pending = batch
            while True:
                protocol = session.protocol
                replies = execute(ctx, pending)
                blocked = session.blocked
                if blocked is not None:
                    _encode(out, replies[:-1], protocol)
                    self.held = pending[len(replies):]
                    self._send(out)
                    self._block(blocked)
                    return
                if session.protocol == protocol:
                    _encode(out, replies, protocol)
                else:  # HELLO answers in the protocol it switched to
                    _encode(out, replies[:-1], protocol)
                    _encode(out, replies[-1:], session.protocol)
                if len(replies) == len(pending) or session.close_after_reply:
                    break
                pending = pending[len(replies):]
            if session.authenticated is not authenticated:
                reader.authenticated = authenticated = session.authenticated
            self._send(out)
            if session.close_after_reply:
                self.close()
                return
            if len(batch) < _BATCH and not reader.failed:
                return

    def answer_single(self, argv: list[bytes]) -> None:
        """``process`` for a read that held exactly one request (see
        ``RequestReader.take_single``): the same reply, statistics and limits, without
        the batch loop. Most clients send one request and wait for its reply."""
        ctx, reader = self.ctx, self.reader
        assert ctx is not None and reader is not None
        session = ctx.session
        session.last_interaction_ms = self.server.clock_ms
        authenticated = session.authenticated
        reply = self.server.table.execute_single(ctx, argv)
        if session.blocked is not None:
            self._block(session.blocked)
            return
        # In the protocol after the call: HELLO answers in the one it switched to. What
        # _encode does for a list, for one reply without the list (0.2 us a read).
        protocol = session.protocol
        out: list[bytes]
        if reply.__class__ is SimpleString:
            out = [reply.frame]
        elif reply.__class__ is Encoded:
            out = [reply.resp3 if protocol == 3 else reply.resp2]
        else:
            out = []
            write(out, reply, protocol)  # type: ignore[arg-type]  # not a Deferred here
        if session.authenticated is not authenticated:
            reader.authenticated = session.authenticated
        self._send(out)
        if session.close_after_reply:
            self.close()

    def _block(self, deferred: Deferred[Reply]) -> None:
        """Wait for a blocked request's reply with reading paused, as after yielding."""
        self.yielded = True
        self.server.blocked_clients += 1
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()
        deferred.add_callback(self._unblock)

    def _unblock(self, reply: Reply) -> None:
        assert self.session is not None
        self.session.blocked = None
        self.server.blocked_clients -= 1
        if self.transport is None or self.closing:
            return
        out: list[bytes] = []
        _encode(out, [reply], self.session.protocol)
        self._send(out)
        # Not at once: the reply may come from inside the loop that blocked us.
        asyncio.get_running_loop().call_soon(self._take_turn)

    def _send(self, out: list[bytes]) -> None:
        if not out or self.transport is None:
            return
        # One joined write: uvloop's writelines costs more per frame than the join.
        data = b"".join(out)
        stats = self.server.stats
        stats.total_writes_processed += 1
        stats.total_net_output_bytes += len(data)
        if self.pieces or len(data) > _PIECE_BYTES:
            # In order behind what is queued, a piece per loop turn.
            self.pieces.append(memoryview(data))
            self.queued += len(data)
            self._schedule_piece()
        else:
            self.transport.write(data)
            # Only a paused transport (past its high watermark) can be over the limit.
            if not self.paused:
                return
        # The reply being written does not count: one reply larger than the limit (CLUSTER
        # STATUS at 100k nodes) goes to a client that reads it; what piles up behind does.
        buffered = self.output_buffered() - (len(self.pieces[0]) if self.pieces else 0)
        if buffered > self.server.config.output_buffer_limit:
            stats.client_output_buffer_disconnects += 1
            log.warning("client output buffer limit reached, closing",
                        extra={"client": self.session.id if self.session else -1,
                               "buffered": buffered})
            self.abort()

    def output_buffered(self) -> int:
        """Bytes written but not yet taken by the kernel, queued pieces included."""
        if self.transport is None:
            return 0
        return self.transport.get_write_buffer_size() + self.queued

    def _schedule_piece(self) -> None:
        if not self.piece_scheduled and not self.paused:
            self.piece_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_piece)

    def _write_piece(self) -> None:
        self.piece_scheduled = False
        transport = self.transport
        if transport is None or transport.is_closing() or not self.pieces:
            return
        view = self.pieces[0]
        piece = view[:_PIECE_BYTES]
        if len(view) > _PIECE_BYTES:
            self.pieces[0] = view[_PIECE_BYTES:]
        else:
            self.pieces.popleft()
        self.queued -= len(piece)
        transport.write(piece)
        if self.pieces:
            self._schedule_piece()  # not while paused: resume_writing goes on
        elif self.close_when_written:
            transport.close()

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
            self.closing = True
            if self.pieces:
                self.close_when_written = True
            else:
                self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued output."""
        if self.transport is not None:
            self.closing = True
            self.pieces.clear()
            self.queued = 0
            self.transport.abort()


def _is_local(peer: object) -> bool:
    """A Unix-socket client, or one from exactly 127.0.0.1 or ::1 (Redis's test)."""
    if not isinstance(peer, tuple):
        return True
    return bool(peer) and peer[0] in _LOCAL_ADDRESSES


class TlsAcceptor(asyncio.Protocol):
    """A connection to the TLS port before its handshake: runs the handshake with the
    server's current context, then hands the TLS transport to a new ``RespProtocol``. A
    failed handshake is logged and closed; it never becomes a client."""

    def __init__(self, server: Server) -> None:
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
