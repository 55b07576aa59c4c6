"""Change events the model records for the server to drain and publish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clusterwatch.cluster.records import NodeState

__all__ = [
    "ClusterEvent",
    "ClusterStateChanged",
    "EpochChanged",
    "NodeJoined",
    "NodeLeft",
    "NodeStateChanged",
    "SlotsMoved",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeJoined:
    kind: ClassVar[str] = "node_joined"
    node: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLeft:
    kind: ClassVar[str] = "node_left"
    node: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStateChanged:
    kind: ClassVar[str] = "node_state"
    node: str
    old: NodeState
    new: NodeState


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStateChanged:
    kind: ClassVar[str] = "cluster_state"
    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotsMoved:
    """Slots `start..end` (inclusive) passed from `old` to `new` owner; None is unassigned."""

    kind: ClassVar[str] = "slots_moved"
    start: int
    end: int
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochChanged:
    """The cluster's current epoch rose."""

    kind: ClassVar[str] = "epoch"
    old: int
    new: int


ClusterEvent = (
    NodeJoined | NodeLeft | NodeStateChanged | ClusterStateChanged | SlotsMoved | EpochChanged
)
