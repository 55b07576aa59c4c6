"""Read-only values the model hands out: node records, outcomes, counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from clusterwatch.cluster.messages import Heartbeat, MessageError

__all__ = ["Counters", "NodeInfo", "NodeRow", "NodeState", "Outcome"]


class NodeState(StrEnum):
    OK = "ok"
    PFAIL = "pfail"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """One node as the model sees it.

    `role` is the effective role: a node that owns slots is a master whatever its hello said.
    `addr`, `host`, `port` and `busport` are None until the node's first hello.
    `heartbeat_ms` is when this server received `heartbeat` (None until the first one);
    `last_seen_ms` moves with every applied message, `heartbeat_ms` only with heartbeats.
    """

    id: str
    addr: str | None
    host: str | None
    port: int | None
    busport: int | None
    hostname: str | None
    role: Literal["master", "replica"]
    replicaof: str | None
    config_epoch: int
    seq: int
    last_seen_ms: int
    state: NodeState
    slots_owned: int
    heartbeat: Heartbeat | None
    heartbeat_ms: int | None = None


NodeRow = tuple[str, NodeState, int, Heartbeat | None, int | None, str | None]
"""`(id, state, last_seen_ms, heartbeat, heartbeat_ms, addr)`: what status views scan per node."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one published message.

    `last` is the node's last applied `(epoch, seq)` when `kind` is `stale`; `error` is set when
    `kind` is `rejected`. `pending` is the bus's word, never the model's: the message was
    appended to a shared bus as entry `entry` and this instance has not applied it yet
    (`reason` says why it stopped waiting).
    """

    kind: Literal["applied", "stale", "rejected", "pending"]
    last: tuple[int, int] | None = None
    error: MessageError | None = None
    entry: str | None = None
    reason: str | None = None


APPLIED = Outcome("applied")


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """Message statistics.

    `received` counts valid messages per type, applied or stale; `rejected` counts invalid
    ones per `MessageError.code`; `slot_conflicts` counts slot claims that tied on epoch with
    another node's claim to the same slot.
    """

    received: Mapping[str, int]
    applied: int
    stale: int
    rejected: Mapping[str, int]
    slot_conflicts: int
    events_dropped: int
