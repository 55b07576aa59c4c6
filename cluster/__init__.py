"""The cluster model: node-message schema, merge rules, failure detection and derived views.

Pure: no I/O, no clock; every time is passed in as `now_ms`.
"""

from __future__ import annotations

from clusterwatch.cluster.apierror import ApiError
from clusterwatch.cluster.clusterstatus import ClusterStatusView, cluster_status
from clusterwatch.cluster.config import FAIL_RULES, ModelConfig
from clusterwatch.cluster.events import (
    ClusterEvent,
    ClusterStateChanged,
    EpochChanged,
    NodeJoined,
    NodeLeft,
    NodeStateChanged,
    SlotsMoved,
)
from clusterwatch.cluster.health import HealthConfig, HealthReport, HealthTracker, SelfCheck
from clusterwatch.cluster.keyslot import crc16, keyslot
from clusterwatch.cluster.messages import (
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
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.nodestatus import NodeStatus, SelfCounters, node_status, self_status
from clusterwatch.cluster.publishers import KEY_REFUSED, KeyRefusedError, Publisher
from clusterwatch.cluster.records import Counters, NodeInfo, NodeRow, NodeState, Outcome
from clusterwatch.cluster.services import (
    ServiceEntry,
    ServicesReport,
    ServiceStatusView,
    SimpleStatus,
)
from clusterwatch.cluster.slots import NUM_SLOTS
from clusterwatch.cluster.views import ClusterSummary, NetInfo, Shard, ShardNode, SlotRange

__all__ = [
    "FAIL_RULES",
    "KEY_REFUSED",
    "MESSAGE_TYPES",
    "NUM_SLOTS",
    "SCHEMA_VERSION",
    "Address",
    "Alert",
    "ApiError",
    "ClusterEvent",
    "ClusterModel",
    "ClusterStateChanged",
    "ClusterStatusView",
    "ClusterSummary",
    "Counters",
    "EpochChanged",
    "FailReport",
    "HealthConfig",
    "HealthReport",
    "HealthTracker",
    "Heartbeat",
    "Hello",
    "KeyRefusedError",
    "Leave",
    "MessageError",
    "ModelConfig",
    "NetInfo",
    "NodeInfo",
    "NodeJoined",
    "NodeLeft",
    "NodeMessage",
    "NodeRow",
    "NodeState",
    "NodeStateChanged",
    "NodeStatus",
    "Outcome",
    "Partition",
    "Publisher",
    "QueryStatus",
    "RequestStats",
    "SelfCheck",
    "SelfCounters",
    "ServiceEntry",
    "ServiceStatus",
    "ServiceStatusView",
    "ServicesReport",
    "Shard",
    "ShardNode",
    "SimpleStatus",
    "SlotRange",
    "Slots",
    "SlotsMoved",
    "StoreLag",
    "ThreadPoolStats",
    "TopicPartition",
    "cluster_status",
    "crc16",
    "decode_message",
    "keyslot",
    "node_status",
    "parse_addr",
    "self_status",
]
