"""Reaching the bus's Redis: the URL forms, the password kept out of what is shown, and
redis-py's asyncio client (hiredis parser, RESP2) for a plain, TLS or Sentinel-managed
master."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

__all__ = ["display_url", "redis_client", "validate_url"]


def display_url(url: str) -> str:
    """The bus address without its password: neither the one in ``user:password@`` nor a
    query parameter that carries one (``?password=``, ``?ssl_password=``, which redis-py
    reads too)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}@{host}" if user else host
    kept = [item for item in parts.query.split("&")
            if "pass" not in unquote(item.partition("=")[0]).lower()]
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
        "protocol": 2,  # replies shaped as _apply expects them
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
    """Raise ValueError when ``url`` names no supported bus."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "redis+sentinel"):
        raise ValueError("bus must be 'memory' or a redis://, rediss:// or "
                         "redis+sentinel:// URL")
    if not parts.netloc:
        raise ValueError("bus URL needs a host")
    if parts.scheme == "redis+sentinel":
        redis_client(url, socket_timeout=1.0)  # parses the host list and the master name
