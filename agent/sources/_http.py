"""The HTTP plumbing of the four HTTP sources (Zeebe, Curity, Puppet, ksqlDB).

One aiohttp session per source, opened on the first read; ``ClientTimeout(total=timeout)``
per request; no redirects followed; TLS against the system trust store plus an optional
``?cafile=`` (removed from the request); HTTP basic credentials from the URL's userinfo. A
request that fails in any way raises ``FetchError`` with a one-line reason (an HTML error
page is named by its ``<title>``), which each source turns into what its API means.
"""

from __future__ import annotations

import base64
import re
import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec

from ._base import SourceError, shown_url

__all__ = ["FetchError", "HttpReader", "Reply", "json_document", "reason_status"]

_MAX_BODY: Final = 8 * 1024 * 1024
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchError(Exception):
    """The source did not give its API's answer; ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str


class HttpReader:
    """One source's HTTP side: the URL taken apart, and one lazily opened aiohttp session.

    ``kind+http(s)://[user:pass@]host:port/path?query``: ``path`` and ``query`` (without
    ``cafile``) are the URL's; ``name`` is the URL without credentials.
    """

    def __init__(self, url: str, *, timeout: float, default_port: int) -> None:
        parts = urlsplit(url)
        transport = parts.scheme.partition("+")[2]
        if transport not in ("http", "https"):
            raise SourceError(f"unsupported source {shown_url(url)!r}: expected http or "
                              "https transport")
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise SourceError(f"bad port in source {shown_url(url)!r}: {exc}") from None
        self.host = parts.hostname or "127.0.0.1"
        self.port = port
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        cafile = next((value for key, value in pairs if key == "cafile"), None)
        self.query = [(key, value) for key, value in pairs if key != "cafile"]
        self.path = parts.path
        self.name = shown_url(urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                                          parts.path, parts.query, "")))
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base = f"{transport}://{host}:{port}"
        self._headers: dict[str, str] = {}
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self._ssl: ssl.SSLContext | None = None
        if transport == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise SourceError(f"cafile {cafile!r} of source {self.name!r}: {exc}") from None
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self._headers)
        return self._session

    async def get(self, path: str, query: list[tuple[str, str]] | None = None) -> Reply:
        """GET ``path``: the reply whatever its code; FetchError when there is none."""
        url = self._base + (path or "/")
        if query:
            url += "?" + urlencode(query)
        try:
            async with self._open().get(url, allow_redirects=False) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > _MAX_BODY:
                        raise FetchError(f"HTTP {resp.status}: body longer than "
                                         f"{_MAX_BODY} bytes")
                return Reply(resp.status, bytes(body), resp.content_type)
        except TimeoutError:
            raise FetchError(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise FetchError(f"cannot connect to {self.host}:{self.port}: "
                             f"{exc.os_error.strerror or exc.os_error}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def json_document(reply: Reply, *, codes: tuple[int, ...]) -> Any:
    """The JSON document of a reply whose code is one of ``codes``; FetchError otherwise."""
    html = _html_title(reply)
    if html is not None:
        raise FetchError(f"HTTP {reply.status}: an HTML page instead of the JSON document"
                         + (f" ({html})" if html else ""))
    if reply.status not in codes:
        snippet = reply.body[:120].decode(errors="replace").strip()
        raise FetchError(f"unexpected HTTP {reply.status}" + (f": {snippet}" if snippet else ""))
    if not reply.body.strip():
        raise FetchError(f"HTTP {reply.status} without a document")
    try:
        return msgspec.json.decode(reply.body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FetchError(f"HTTP {reply.status}: invalid JSON: {exc}"[:300]) from None


def _html_title(reply: Reply) -> str | None:
    """None unless the body is an HTML page; then its title ("" without one)."""
    head = reply.body[:512].lstrip().lower()
    if reply.content_type != "text/html" and not head.startswith((b"<!doctype", b"<html")):
        return None
    match = _TITLE.search(reply.body[:4096])
    if match is None:
        return ""
    return " ".join(match[1].decode(errors="replace").split())[:120]


def reason_status(reason: str) -> dict[str, Any]:
    """The status of a service whose source could not be read: the reason (every level
    shows it, the levels being additive)."""
    return {"critical": {"reason": reason}}


