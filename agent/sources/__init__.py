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

from ._base import ClusterView, NodeView, Source, SourceError, shown_url, source_kind

__all__ = ["ClusterView", "NodeView", "Source", "SourceError", "open_source", "shown_url",
           "source_kind"]


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
