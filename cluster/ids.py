"""Stable node ids: 40 lowercase hex digits, as Redis Cluster node ids look."""

from __future__ import annotations

import hashlib

__all__ = ["derive_id"]


def derive_id(host: str, port: int, *, scope: str = "clusterwatch") -> str:
    """``sha1("<scope>:<host>:<port>")`` in hex: the same inputs give the same id on every
    start, and different hosts or ports give different ids."""
    return hashlib.sha1(f"{scope}:{host}:{port}".encode(), usedforsecurity=False).hexdigest()
