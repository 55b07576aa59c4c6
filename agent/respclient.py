"""A tiny asyncio RESP2 client for clusterwatch's own tools (simulator, agent).

Requests are encoded with ``resp.encode`` and replies parsed with hiredis, so the tools need
nothing the server does not already depend on. One request at a time per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import hiredis

from clusterwatch.resp import Reply, encode

__all__ = ["RespClient", "RespError", "ServerBusyError", "parse_hostport", "tls_context"]


class RespError(Exception):
    """The server answered a request with an error reply."""


class ServerBusyError(ConnectionError):
    """A ``-TRYAGAIN`` or ``-LOADING`` reply: the server cannot take the request now (its
    Redis-stream bus is down, say). A ConnectionError, so callers reconnect and retry."""


_TRANSIENT = ("TRYAGAIN ", "LOADING ")


def parse_hostport(text: str, default_port: int = 7379) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``host`` or ``:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        return text.strip("[]") or "127.0.0.1", default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port in {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_context(*, cacert: str | None = None, cert: str | None = None,
                key: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A client context as redis-cli's ``--tls --cacert --cert --key [--insecure]``: the
    server's certificate is verified against ``cacert`` (the system store without it) and
    its name against the host connected to, unless ``insecure``."""
    context = ssl.create_default_context(cafile=cacert)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    elif key:
        raise ValueError("--key needs --cert")
    return context


class RespClient:
    def __init__(self, host: str, port: int, *, password: str | None = None,
                 username: str | None = None, timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls
        self.port = port
        self.password = password
        self.username = username
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser: Any = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.tls), self.timeout)
        self._parser = hiredis.Reader()
        if self.password:
            credentials = [self.username, self.password] if self.username else [self.password]
            await self.call("AUTH", *credentials)

    async def call(self, *args: bytes | str | int) -> Any:
        """Send one command and return its reply; an error reply raises ``RespError``.

        Error replies nested in an array come back as ``hiredis.ReplyError`` values.
        """
        if self._writer is None:
            raise ConnectionError("not connected")
        argv: list[Reply] = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self._writer.write(encode(argv, 2))
        await asyncio.wait_for(self._writer.drain(), self.timeout)
        reply = await self._read_reply()
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            if text.startswith(_TRANSIENT):
                raise ServerBusyError(text)
            raise RespError(text)
        return reply

    async def _read_reply(self) -> Any:
        assert self._reader is not None
        while True:
            reply = self._parser.gets()
            if reply is not False:
                return reply
            data = await asyncio.wait_for(self._reader.read(1 << 16), self.timeout)
            if not data:
                await self.close()
                raise ConnectionError("the server closed the connection")
            self._parser.feed(data)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
