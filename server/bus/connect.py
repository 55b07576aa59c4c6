"""Reaching the bus's Redis: the URL forms, the password kept out of what is shown, and
redis-py's asyncio client (hiredis parser, RESP2) for a plain, TLS or Sentinel-managed
master."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

__all__ = ["display_url", "redis_client", "validate_url"]


def display_url(url: str, *, mask: str | None = None) -> str:
    """The bus address without its password: neither the one in ``user:password@`` nor a
    query parameter that carries one (``?password=``, ``?ssl_password=``, which redis-py
    reads too). With ``mask``, a password is replaced by it rather than dropped."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        secret = f":{mask}" if mask is not None else ""
        netloc = f"{user}{secret}@{host}" if user or secret else host
    kept = []
    for item in parts.query.split("&"):
        name, sep, _ = item.partition("=")
        if "pass" not in unquote(name).lower():
            kept.append(item)
        elif mask is not None:
            kept.append(f"{name}{sep}{mask}")
    query = "&".join(kept)
    if netloc == parts.netloc and query == parts.query:
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


def redis_client(url: str, *, socket_timeout: float) -> aioredis.Redis:
    """A redis-py asyncio client (hiredis parser) for ``redis://``, ``rediss://`` or
    ``redis+sentinel://host:port[,host:port]/<master-name>[/db]``."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(socket_timeout, 2.0),
        "decode_responses": False,
        "health_check_interval": 0,
        "retry_on_timeout": False,
        "protocol": 2,  # replies shaped as EntryApplier.apply expects them
    }
    parts = urlsplit(url)
    if parts.scheme != "redis+sentinel":
        return aioredis.Redis.from_url(url, **options)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or "127.0.0.1", int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("redis+sentinel:// needs the master name: .../<master-name>[/db]")
    db = int(path[1]) if len(path) > 1 else 0
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    sentinel = Sentinel(hosts, socket_timeout=options["socket_timeout"],  # type: ignore[no-untyped-call, unused-ignore]
                        socket_connect_timeout=options["socket_connect_timeout"])
    master: aioredis.Redis = sentinel.master_for(path[0], db=db, password=password,
                                                 username=username, **options)
    return master


def validate_url(url: str) -> None:
    """Raise ValueError, saying what is wrong and never the password, when ``url`` names
    no supported bus."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "redis+sentinel"):
        raise ValueError("must be 'memory' or a redis://, rediss:// or redis+sentinel:// URL")
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        raise ValueError("the URL needs a host")
    for item in hosts.split(",") if parts.scheme == "redis+sentinel" else [hosts]:
        host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if colon and (not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"{port!r} in {display_url(url)} is not a port")
        if colon and not host:
            raise ValueError(f"{display_url(url)} needs a host before :{port}")
    path = [part for part in parts.path.split("/") if part]
    if parts.scheme == "redis+sentinel":
        if not path:
            raise ValueError("redis+sentinel:// needs the master name: .../<master-name>[/db]")
        path = path[1:]
    if len(path) > 1 or (path and not (path[0].isascii() and path[0].isdigit())):
        raise ValueError(f"the database in {display_url(url)} must be a number")
