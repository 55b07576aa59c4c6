"""Sources: what the agent reads about the node it sits beside.

A source is opened from a URL (``open_source``) and asked, before every heartbeat, for a
``NodeView``: the node's identity where the source knows it (a Redis node's own id, role,
config epoch, slots), what a cluster node knows of the others (``ClusterView``: the nodes
it flags failing, the nodes it lists, the slots it sees elsewhere, its slots' migrations),
and heartbeat fields
in the schema of ``cluster.messages.Heartbeat`` (``node_state``, ``serving``, ``services``,
``partitions``, ``queries``, ``store_lags``, ``thread_pool``, ``requests``...).

A source never raises for the node's own trouble: a source that is down, slow or answers
garbage returns the view its API would mean (the node ``ERROR``/``BOOTING``, a service
``unknown`` with the reason in its status). ``alive`` is False only where the source *is*
the node's liveness (a Redis node that does not answer): the agent then withholds its
heartbeats, so the server fails the node as Redis Cluster would.

Schemes: ``redis://`` and ``rediss://`` (``redis.py``); ``zeebe+http(s)://``
(``zeebe.py``), ``curity+http(s)://`` (``curity.py``), ``puppet+http(s)://``
(``puppet.py``), ``ksqldb+http(s)://`` (``ksqldb.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

__all__ = ["ClusterView", "NodeView", "Source", "SourceError", "open_source", "shown_url",
           "source_kind"]


class SourceError(ValueError):
    """A source URL that names no supported source, or is malformed."""


def shown_url(url: str) -> str:
    """A source URL as logs, errors and statuses may show it: without the password of
    ``user:password@`` or of a query parameter that carries one (``?password=``)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user = (parts.username or "") if parts.password is not None else netloc.rpartition("@")[0]
        host = netloc.rpartition("@")[2]
        netloc = f"{user}@{host}" if user else host
    kept = [item for item in parts.query.split("&")
            if "pass" not in unquote(item.partition("=")[0]).lower()]
    return parts._replace(netloc=netloc, query="&".join(kept)).geturl()


@dataclass(slots=True, kw_only=True)
class NodeView:
    node_id: str | None = None
    addr: str | None = None  # host:port[@busport]
    hostname: str | None = None
    role: str | None = None  # "master" or "replica"
    replicaof: str | None = None
    epoch: int | None = None  # the node's config epoch
    slots: list[list[int]] | None = None  # [[start, end], ...]; None: the source has none
    fields: dict[str, Any] = field(default_factory=dict)  # heartbeat fields
    alive: bool = True
    cluster: ClusterView | None = None  # what a cluster node knows of the others


@dataclass(slots=True, kw_only=True)
class ClusterView:
    """A cluster node's view of the others and of its own slots' movements."""

    failing: list[str] = field(default_factory=list)  # ids it flags fail? or fail
    failed: list[str] = field(default_factory=list)  # of those, the ids it flags fail
    peers: list[str] = field(default_factory=list)  # ids of the others it lists (no handshakes)
    taken: list[list[int]] = field(default_factory=list)  # slot ranges it sees others own
    migrating: dict[int, str] = field(default_factory=dict)  # its slot -> the node it goes to
    importing: dict[int, str] = field(default_factory=dict)  # slot -> the node it comes from
    # False for a node in no cluster, yet or any more (CLUSTER RESET): it lists no other node
    # and serves no slot. One that serves slots alone is a cluster of one.
    joined: bool = True


class Source(Protocol):
    #: The URL without credentials, for logs.
    name: str

    async def read(self) -> NodeView:
        """The node as the source sees it now; bounded by the source's timeout."""
        ...

    async def aclose(self) -> None: ...


_KINDS = ("redis", "zeebe", "curity", "puppet", "ksqldb")


def source_kind(url: str) -> str:
    """``redis``, ``zeebe``, ``curity``, ``puppet`` or ``ksqldb``; SourceError otherwise."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return "redis"
    kind, plus, transport = scheme.partition("+")
    if plus and transport in ("http", "https") and kind in _KINDS:
        return kind
    raise SourceError(f"unsupported source {shown_url(url)!r}: expected redis://, rediss://, "
                      "zeebe+http://, curity+http://, puppet+https:// or ksqldb+http://")


def open_source(url: str, *, timeout: float) -> Source:
    kind = source_kind(url)
    source: Source
    if kind == "redis":
        from .redis import RedisSource

        source = RedisSource(url, timeout=timeout)
    elif kind == "zeebe":
        from .zeebe import ZeebeSource

        source = ZeebeSource(url, timeout=timeout)
    elif kind == "curity":
        from .curity import CuritySource

        source = CuritySource(url, timeout=timeout)
    elif kind == "puppet":
        from .puppet import PuppetSource

        source = PuppetSource(url, timeout=timeout)
    else:
        from .ksqldb import KsqldbSource

        source = KsqldbSource(url, timeout=timeout)
    return source
