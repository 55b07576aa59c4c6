"""The cluster model: node-message schema, merge rules, failure detection and derived views.

Pure: no I/O, no clock; every time is passed in as `now_ms`.
"""

from __future__ import annotations

from cluster.config import ModelConfig
from cluster.events import (
    ClusterEvent,
    ClusterStateChanged,
    EpochChanged,
    NodeJoined,
    NodeLeft,
    NodeStateChanged,
    SlotsMoved,
)
from cluster.keyslot import crc16, keyslot
from cluster.messages import (
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    Address,
    Alert,
    FailReport,
    Heartbeat,
    Hello,
    Leave,
    MessageError,
    NodeMessage,
    Partition,
    QueryStatus,
    RequestStats,
    ServiceStatus,
    Slots,
    StoreLag,
    ThreadPoolStats,
    TopicPartition,
    decode_message,
    parse_addr,
)
from cluster.model import ClusterModel
from cluster.records import Counters, NodeInfo, NodeState, Outcome
from cluster.slots import NUM_SLOTS
from cluster.views import NetInfo, Shard, ShardNode, SlotRange

__all__ = [
    "MESSAGE_TYPES",
    "NUM_SLOTS",
    "SCHEMA_VERSION",
    "Address",
    "Alert",
    "ClusterEvent",
    "ClusterModel",
    "ClusterStateChanged",
    "Counters",
    "EpochChanged",
    "FailReport",
    "Heartbeat",
    "Hello",
    "Leave",
    "MessageError",
    "ModelConfig",
    "NetInfo",
    "NodeInfo",
    "NodeJoined",
    "NodeLeft",
    "NodeMessage",
    "NodeState",
    "NodeStateChanged",
    "Outcome",
    "Partition",
    "QueryStatus",
    "RequestStats",
    "ServiceStatus",
    "Shard",
    "ShardNode",
    "SlotRange",
    "Slots",
    "SlotsMoved",
    "StoreLag",
    "ThreadPoolStats",
    "TopicPartition",
    "crc16",
    "decode_message",
    "keyslot",
    "parse_addr",
]
