"""What a source returns (``NodeView``, ``ClusterView``), what it is (``Source``), and its
URL's kind; the sources import this, and the package's ``open_source`` imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


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
