"""The HTTP mirror's connections: how many may be open, what one past the limit is told,
what a request aiohttp's parser refuses is told, and what a burst of connections costs.

Rules:

- At most ``limit`` (``http-max-clients``) HTTP connections are open at once, idle
  keep-alive ones and long polls alike. RESP clients count against ``max-clients``
  instead; the two limits share the process's file descriptors (server/fdlimit.py), so
  HTTP sockets can never take the descriptors RESP clients are promised.
- A connection past the limit is answered at once: ``503``, ``Retry-After: 1``,
  ``Connection: close`` and ``{"kind": "unavailable", "msg": ...}``. It is counted
  (``refused``, and the server's INFO ``rejected_connections``) and logged at warning,
  at most once a second. What it sends is then read and dropped until its request's head
  has been read, it closes, or ``REFUSAL_LINGER_S`` passes, so that closing with its
  request unread does not reset the answer away; past ``MAX_LINGERING`` such connections
  a new one is closed right after its answer.
- Bounded work per loop turn: a connection is counted (or refused) as it arrives, but
  handed to aiohttp's handler ``ADMIT_CHUNK`` per turn of the event loop, and a closed
  one's handler is torn down (its request cancelled) ``RETIRE_CHUNK`` per turn; so
  thousands of connections opened or dropped at once are served in slices, with other
  clients answered between them.
- A client that goes away cancels the handler of its request (aiohttp's
  ``handler_cancellation``), so a long poll's wait is freed (server/http.py); its place
  under the limit is freed at once.
- A request the parser refuses (a malformed request line, a raw non-ASCII, control or
  NUL byte in the target, a line over 8190 bytes) is answered with its 400 as
  ``{"kind": "bad-request", "msg": ...}`` and the connection closes; it is logged at
  debug level, never as an error with a traceback.
- A connection idle for ``KEEPALIVE_S`` is closed.

Connections are counted once their transport is made: on the HTTPS port, one still in
its TLS handshake is not a connection yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["KEEPALIVE_S", "MAX_LINGERING", "HttpConnections"]

log = logging.getLogger("clusterwatch.http")

KEEPALIVE_S: Final = 75.0  # nginx's keepalive_timeout
REFUSAL_LINGER_S: Final = 1.0
MAX_LINGERING: Final = 16
ADMIT_CHUNK: Final = 32
RETIRE_CHUNK: Final = 64
_LOG_EVERY_S: Final = 1.0
_ERROR_TEXT: Final = 120  # characters of a parser's message kept in the 400's body
_HEAD_END: Final = b"\r\n\r\n"

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def refusal(limit: int) -> bytes:
    """The whole answer to a connection past the limit."""
    body = msgspec.json.encode({"kind": "unavailable",
                                "msg": f"too many HTTP connections (http-max-clients is "
                                       f"{limit}); retry later"})
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class HttpConnections:
    """The HTTP listener's protocol factory, the count of its connections, and the queues
    that let them in and tear them down a slice per loop turn."""

    def __init__(self, handler: Handler, *, limit: int,
                 on_refused: Callable[[], None]) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.lingering = 0
        self.manager = web.Server(handler, handler_cancellation=True)
        self.loop = asyncio.get_running_loop()
        self._on_refused = on_refused
        self._answer = refusal(limit)
        self._unlogged = 0
        self._logged_at = float("-inf")
        self._arriving: deque[_Door] = deque()
        self._leaving: deque[tuple[_Connection, BaseException | None]] = deque()
        self._admit_scheduled = self._retire_scheduled = False

    def __call__(self) -> _Door:
        return _Door(self)

    def arrived(self, door: _Door, transport: asyncio.Transport) -> _Refusal | None:
        """Count a new connection and queue it for its handler, or refuse it."""
        if self.open >= self.limit:
            return self._refuse(transport)
        self.open += 1
        self._arriving.append(door)
        if not self._admit_scheduled:
            self._admit_scheduled = True
            self.loop.call_soon(self._admit)
        return None

    def _admit(self) -> None:
        self._admit_scheduled = False
        arriving = self._arriving
        for _ in range(min(ADMIT_CHUNK, len(arriving))):
            arriving.popleft().let_in()
        if arriving:
            self._admit_scheduled = True
            self.loop.call_soon(self._admit)

    def left(self, connection: _Connection | None, exc: BaseException | None) -> None:
        """A counted connection closed: its place is free now, its handler goes later."""
        self.open -= 1
        if connection is None:
            return
        self._leaving.append((connection, exc))
        if not self._retire_scheduled:
            self._retire_scheduled = True
            self.loop.call_soon(self._retire)

    def _retire(self) -> None:
        self._retire_scheduled = False
        leaving = self._leaving
        for _ in range(min(RETIRE_CHUNK, len(leaving))):
            connection, exc = leaving.popleft()
            connection.retire(exc)
        if leaving:
            self._retire_scheduled = True
            self.loop.call_soon(self._retire)

    def _refuse(self, transport: asyncio.Transport) -> _Refusal:
        self.refused += 1
        self._on_refused()
        self._unlogged += 1
        now = self.loop.time()
        if now - self._logged_at >= _LOG_EVERY_S:
            log.warning("http max clients reached, connections refused",
                        extra={"http_max_clients": self.limit, "refused": self._unlogged,
                               "peer": _peer(transport)})
            self._logged_at, self._unlogged = now, 0
        transport.write(self._answer)
        return _Refusal(self, transport)

    async def close(self, timeout: float) -> None:
        """Close every connection, letting answers in progress finish within ``timeout``."""
        while self._arriving:
            self._arriving.popleft().close()
        self.manager.pre_shutdown()
        await self.manager.shutdown(timeout)


class _Door(asyncio.Protocol):
    """A connection until aiohttp's handler takes it over (``let_in``): counted or
    refused as it arrives; what it sends meanwhile is kept, and reading paused."""

    __slots__ = ("_early", "_gate", "_gone", "_refusal", "_transport")

    def __init__(self, gate: HttpConnections) -> None:
        self._gate = gate
        self._transport: asyncio.Transport | None = None
        self._refusal: _Refusal | None = None
        self._early: list[bytes] = []
        self._gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._refusal = self._gate.arrived(self, self._transport)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            self._refusal.data_received(data)
        elif self._transport is not None:
            self._early.append(data)
            self._transport.pause_reading()  # uvloop reads once after connection_made

    def eof_received(self) -> None:
        return None  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refusal is not None:
            self._refusal.close()
        elif not self._gone:
            self._gone = True
            self._gate.left(None, exc)

    def let_in(self) -> None:
        """Hand the connection to aiohttp's handler, with what it sent so far."""
        transport = self._transport
        if self._gone or transport is None or transport.is_closing():
            return
        connection = _Connection(self._gate)
        transport.set_protocol(connection)
        connection.connection_made(transport)
        for data in self._early:
            connection.data_received(data)
        self._early = []
        if not transport.is_closing():
            transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Refusal:
    """A refused connection after its answer: read and dropped until its request's head
    has been read (nothing unread is then left to reset the answer away), its end, or
    ``REFUSAL_LINGER_S``; closed at once when ``MAX_LINGERING`` others already linger."""

    __slots__ = ("_gate", "_tail", "_timer", "_transport")

    def __init__(self, gate: HttpConnections, transport: asyncio.Transport) -> None:
        self._gate = gate
        self._transport = transport
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        if gate.lingering >= MAX_LINGERING:
            transport.close()
        else:
            gate.lingering += 1
            self._timer = gate.loop.call_later(REFUSAL_LINGER_S, self.close)

    def data_received(self, data: bytes) -> None:
        seen = self._tail + data
        if _HEAD_END in seen:
            self.close()
        self._tail = seen[-3:]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._gate.lingering -= 1
        self._transport.close()


class _Connection(RequestHandler):
    """aiohttp's handler of one admitted connection."""

    __slots__ = ("_gate", "_open")

    def __init__(self, gate: HttpConnections) -> None:
        super().__init__(gate.manager, loop=gate.loop, keepalive_timeout=KEEPALIVE_S,
                         access_log=None)  # type: ignore[arg-type]  # None is aiohttp's "off"
        self._gate = gate
        self._open = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._open:
            self._open = False
            self._gate.left(self, exc)

    def retire(self, exc: BaseException | None) -> None:
        """aiohttp's own teardown: its request's handler is cancelled."""
        super().connection_lost(exc)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # aiohttp's own rule: too late for an answer
            raise ConnectionError("the response was already started")
        if status >= 500:
            log.error("http request failed", exc_info=exc)
            document = {"kind": "internal-error", "msg": "internal error"}
        else:
            log.debug("http request refused by the parser",
                      extra={"status": status, "error": str(message or exc)})
            document = {"kind": "bad-request", "msg": f"bad request: {_first_line(message, exc)}"}
        response = web.Response(status=status, content_type="application/json",
                                body=msgspec.json.encode(document))
        response.force_close()
        return response


def _first_line(message: str | None, exc: BaseException | None) -> str:
    """The parser's reason without the request bytes it quotes after a colon."""
    text = (message or str(exc or "") or "malformed request").strip()
    reason = text.splitlines()[0].split(":", 1)[0].strip() if text else ""
    reason = "".join(ch if ch.isprintable() else "?" for ch in reason[:_ERROR_TEXT])
    return reason or "malformed request"


def _peer(transport: asyncio.BaseTransport) -> str:
    peer: Any = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")
