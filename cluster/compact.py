"""Sharing what stored messages repeat, so a node's record costs less memory.

The model keeps every node's latest hello and heartbeat as decoded. Decoding gives each one
its own copy of the node id, of short strings that most nodes send alike (a version, a
config state, a role) and a fresh empty list or dict for every absent collection field.
Before a message is stored, `compact_hello` and `compact_heartbeat` point those at one shared
object: the record's own id, an interned string, one shared empty list or dict, one shared
flat status dict per distinct content (`{"listening": true}`). Values and
equality are unchanged; messages are never mutated after they are stored, so the shared
empties are never written to.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from msgspec.structs import force_setattr

from cluster.messages import Heartbeat, Hello

__all__ = ["compact_heartbeat", "compact_hello", "share"]

_EMPTY_LIST: Final[list[Any]] = []
_EMPTY_DICT: Final[dict[Any, Any]] = {}
# Longer strings are rarely repeated across nodes and not worth the lookup.
_INTERN_MAX: Final = 64

# Status dicts by content: {"listening": True} is one object for every node that sends it.
_SCALARS: Final = (str, int, float, bool, type(None))
_SHARED_MAX: Final = 4096
_shared_dicts: dict[tuple[Any, ...], dict[str, Any]] = {}

_HEARTBEAT_STRINGS: Final = ("config_state", "transaction_id", "cluster_state", "service_role")
_QUERY_LISTS: Final = ("active_partitions", "standby_partitions", "active_stores",
                       "standby_stores")


def share(text: str | None) -> str | None:
    """The one shared copy of a short string (CPython interned strings are freed when unused)."""
    if text is None or len(text) > _INTERN_MAX:
        return text
    return sys.intern(text)


def _shared_dict(data: dict[str, Any]) -> dict[str, Any]:
    """The shared copy of a flat dict of scalars (the type is part of the key: True == 1)."""
    try:
        key = tuple((k, type(v), v) for k, v in data.items() if type(v) in _SCALARS)
    except TypeError:
        return data
    if len(key) != len(data):
        return data
    shared = _shared_dicts.get(key)
    if shared is None:
        if len(_shared_dicts) >= _SHARED_MAX:
            _shared_dicts.clear()
        shared = _shared_dicts[key] = data
    return shared


def compact_hello(hello: Hello, node_id: str, replicaof: str | None) -> None:
    """Share the node id and the master's id (`replicaof`, the known record's id if any)."""
    if hello.node is not node_id:
        force_setattr(hello, "node", node_id)
    if replicaof is not None and hello.replicaof is not replicaof:
        force_setattr(hello, "replicaof", replicaof)


def compact_heartbeat(beat: Heartbeat, node_id: str) -> None:
    """Share the node id, short strings and empty collections of a heartbeat's payload."""
    if beat.node is not node_id:
        force_setattr(beat, "node", node_id)
    for name in _HEARTBEAT_STRINGS:
        value = getattr(beat, name)
        if value is not None:
            force_setattr(beat, name, share(value))
    services = beat.services
    if services:
        for svc in services.values():
            if svc.version is not None:
                force_setattr(svc, "version", share(svc.version))
            if not svc.alerts and svc.alerts is not _EMPTY_LIST:
                force_setattr(svc, "alerts", _EMPTY_LIST)
            if not svc.status_versions and svc.status_versions is not _EMPTY_DICT:
                force_setattr(svc, "status_versions", _EMPTY_DICT)
            status = svc.status
            for level, data in status.items():
                if type(data) is dict:
                    status[level] = _shared_dict(data)
    queries = beat.queries
    if queries:
        for query in queries.values():
            for name in _QUERY_LISTS:
                value = getattr(query, name)
                if not value:
                    if value is not _EMPTY_LIST:
                        force_setattr(query, name, _EMPTY_LIST)
                elif name.endswith("partitions"):
                    for part in value:
                        force_setattr(part, "topic", share(part.topic))
                else:
                    value[:] = [share(store) for store in value]
