"""Sharing what stored messages repeat, so a node's record costs less memory.

The model keeps every node's latest hello and heartbeat as decoded. Decoding gives each one
its own copy of the node id, of short strings that most nodes send alike (a version, a
config state, a role, a topic) and of status dicts that many nodes send with the same
content (`{"listening": true}`), and a fresh empty dict for an absent `status_versions`.
Before a message is stored, `compact_hello` and `compact_heartbeat` point those at one
shared object: the record's own id, an interned string, one shared empty dict, one shared
status dict per distinct content. A heartbeat takes the parts equal to the node's previous
heartbeat (already compacted) from it whole, so the steady state costs a few comparisons.
Values and equality are unchanged; stored messages are never mutated, so shared objects are
never written to.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from msgspec.structs import force_setattr

from clusterwatch.cluster.messages import Heartbeat, Hello, QueryStatus, ServiceStatus

__all__ = ["compact_heartbeat", "compact_hello", "share"]

_EMPTY_DICT: Final[dict[Any, Any]] = {}
# Longer strings are rarely repeated across nodes and not worth the lookup.
_INTERN_MAX: Final = 64

# Status dicts by content: {"listening": True} is one object for every node that sends it.
_SCALARS: Final = frozenset((str, int, float, bool, type(None)))
_SHARED_MAX: Final = 4096
_shared_dicts: dict[tuple[tuple[Any, ...], ...], dict[str, Any]] = {}

_HEARTBEAT_STRINGS: Final = ("config_state", "transaction_id", "cluster_state", "service_role")
# Lists a node usually sends unchanged from one heartbeat to the next.
_ID_LISTS: Final = ("failing", "failed", "forgotten")


def share(text: str | None) -> str | None:
    """The one shared copy of a short string (CPython interned strings are freed when unused)."""
    if text is None or len(text) > _INTERN_MAX:
        return text
    return sys.intern(text)


def _shared_dict(data: dict[str, Any]) -> dict[str, Any]:
    """The shared copy of a flat dict of scalars (the type is part of the key: True == 1)."""
    values = tuple(data.values())
    types = tuple(map(type, values))
    if not _SCALARS.issuperset(types):
        return data
    key = (tuple(data), types, values)
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


def compact_heartbeat(beat: Heartbeat, node_id: str, previous: Heartbeat | None) -> None:
    """Share the node id, short strings and empty collections of a heartbeat's payload.

    Parts equal to the node's `previous` heartbeat (already compacted) are taken from it
    whole, so a node whose status barely changes costs a few comparisons per heartbeat.
    """
    if beat.node is not node_id:
        force_setattr(beat, "node", node_id)
    if previous is None:
        for name in _HEARTBEAT_STRINGS:
            value = getattr(beat, name)
            if value is not None:
                force_setattr(beat, name, share(value))
    else:
        for name in _HEARTBEAT_STRINGS:
            value = getattr(beat, name)
            if value is not None:
                old = getattr(previous, name)
                force_setattr(beat, name, old if old == value else share(value))
    services = beat.services
    if services:
        before = previous.services if previous is not None else None
        for name, svc in services.items():
            old_svc = before.get(name) if before else None
            if old_svc is not None and old_svc == svc:
                services[name] = old_svc
            else:
                _compact_service(svc, old_svc)
    queries = beat.queries
    if queries:
        if previous is not None and previous.queries == queries:
            force_setattr(beat, "queries", previous.queries)
        else:
            for query in queries.values():
                _compact_query(query)
    if previous is not None:
        partitions = beat.partitions
        if partitions and previous.partitions == partitions:
            force_setattr(beat, "partitions", previous.partitions)
        if beat.failing or beat.forgotten:  # most heartbeats carry neither list
            for name in _ID_LISTS:
                value = getattr(beat, name)
                if value and getattr(previous, name) == value:
                    force_setattr(beat, name, getattr(previous, name))


def _compact_service(svc: ServiceStatus, old: ServiceStatus | None) -> None:
    version = svc.version
    if version is not None:
        force_setattr(svc, "version", old.version if old is not None and old.version == version
                      else share(version))
    if not svc.status_versions and svc.status_versions is not _EMPTY_DICT:
        force_setattr(svc, "status_versions", _EMPTY_DICT)
    status = svc.status
    if old is None:
        for level, data in status.items():
            if type(data) is dict:
                status[level] = _shared_dict(data)
        return
    # A level that changed since the node's last heartbeat is likely its own (a counter):
    # not looked up in the shared table, which would cost more than it saves.
    old_status = old.status
    for level, data in status.items():
        old_data = old_status.get(level)
        if old_data is not None and old_data == data:
            status[level] = old_data


def _compact_query(query: QueryStatus) -> None:
    for part in query.active_partitions + query.standby_partitions:
        force_setattr(part, "topic", sys.intern(part.topic))
    if query.active_stores:
        force_setattr(query, "active_stores", tuple(map(sys.intern, query.active_stores)))
    if query.standby_stores:
        force_setattr(query, "standby_stores", tuple(map(sys.intern, query.standby_stores)))
