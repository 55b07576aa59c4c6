"""ACL categories: Redis's, in the order Redis lists them, then clusterwatch's own.

A command's categories come from its flags and group, as Redis derives them
(``write`` → ``@write``, ``admin`` → ``@admin`` and ``@dangerous``, not ``fast`` →
``@slow``), plus any its spec names. clusterwatch adds two, so that an ACL can tell apart
reading the cluster model (``@status``) from changing it (``@publish``); administering the
server stays Redis's ``@admin``.
"""

from __future__ import annotations

from collections.abc import Iterable

REDIS_CATEGORIES: tuple[str, ...] = (
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
    "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking",
    "dangerous", "connection", "transaction", "scripting",
)
CLUSTERWATCH_CATEGORIES: tuple[str, ...] = ("status", "publish")
CATEGORIES: tuple[str, ...] = REDIS_CATEGORIES + CLUSTERWATCH_CATEGORIES
_ORDER = {name: index for index, name in enumerate(CATEGORIES)}


def ordered(names: Iterable[str]) -> tuple[str, ...]:
    """``@``-prefixed category names, without repeats, in catalog order.

    Raises ``ValueError`` for a name that is not a category."""
    bare = {name.removeprefix("@") for name in names}
    unknown = bare - _ORDER.keys()
    if unknown:
        raise ValueError(f"unknown ACL categories: {sorted(unknown)}")
    return tuple(f"@{name}" for name in sorted(bare, key=_ORDER.__getitem__))
