"""Node message schema v1: typed structs, and a decoder that validates them.

A message is one JSON object. msgspec checks its shape and the constraints written on the types;
`decode_message` then checks the few rules a type cannot say (a port range, `start <= end`, a
node that names itself). Every failure becomes one `MessageError` naming the field, the reason
and a stable `code` for counting rejects.

Unknown fields are ignored, so a publisher may add fields before this schema learns them.

Depth rule: the one free-form part of a message, a service's `status` at each level (and in
each older format of `status_versions`), may nest at most `MAX_STATUS_DEPTH` (32) arrays
and objects inside one another. A deeper one is rejected (code `depth`) naming the level's
field (`services[web].status.debug`), so every accepted status renders in RESP2, RESP3 and
JSON with bounded recursion; a document too deep to decode at all is a `depth` reject too.
Every other field has a fixed shape, and breadth is bounded by the message size limit.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "MAX_STATUS_DEPTH",
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "Address",
    "Alert",
    "FailReport",
    "Heartbeat",
    "Hello",
    "Leave",
    "MessageError",
    "NodeMessage",
    "Partition",
    "QueryStatus",
    "RequestStats",
    "ServiceStatus",
    "Slots",
    "StoreLag",
    "ThreadPoolStats",
    "TopicPartition",
    "decode_message",
    "parse_addr",
]

SCHEMA_VERSION: Final = 1
MAX_STATUS_DEPTH: Final = 32
MAX_EPOCH: Final = 2**63 - 1
NUM_SLOTS: Final = 16384

NodeId = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+\Z", description="node id")
]
Counter = Annotated[int, Meta(ge=0, le=MAX_EPOCH)]
Slot = Annotated[int, Meta(ge=0, le=NUM_SLOTS - 1)]
Hostname = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+\Z")]
NonNegative = Annotated[int, Meta(ge=0)]


class _Message(Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    kind: ClassVar[str]
    v: Literal[1]
    node: NodeId
    epoch: Counter
    seq: Counter
    ts_ms: int | None = None
    # The sender's view of the cluster's current epoch (Redis's currentEpoch, carried in every
    # cluster-bus header, which can be above every config epoch): it raises the model's
    # current epoch, never lowers it.
    current_epoch: Counter | None = None


class Hello(_Message, frozen=True, kw_only=True, tag="hello", gc=False):
    """Where a node listens and what it is."""

    kind: ClassVar[str] = "hello"
    addr: Annotated[str, Meta(max_length=300)]
    hostname: Hostname | None = None
    role: Literal["master", "replica"] = "master"
    replicaof: NodeId | None = None


class Alert(Struct, frozen=True, kw_only=True, gc=False):
    severity: str
    message: str


StatusLevel = Literal["critical", "info", "debug"]


# Stored messages are not tracked by the garbage collector (16 bytes less each, fewer
# objects to walk): decoded JSON holds no reference cycles.
class ServiceStatus(Struct, frozen=True, kw_only=True, gc=False):
    """One service's status, Puppet status-service style.

    `status` holds the status data by detail level, in format `status_version`;
    `status_versions` optionally holds the same data in other (older) formats, by version.
    Untracked by the GC like every stored message part (decoded JSON holds no cycles): a
    node keeps its services until its next heartbeat, so in a large cluster they outlive
    the young generations and each tracked one would be scanned by full collections.
    """

    version: str | None = None
    status_version: int = 1
    state: Literal["running", "error", "starting", "stopping", "unknown"] = "unknown"
    status: dict[StatusLevel, Any] = {}
    # Tuples: an absent one is the one shared `()`, not a new empty list per message.
    alerts: tuple[Alert, ...] = ()
    status_versions: dict[int, dict[StatusLevel, Any]] = {}


class Partition(Struct, frozen=True, kw_only=True, gc=False):
    id: int
    role: Literal["leader", "follower"]
    health: Literal["healthy", "unhealthy", "dead"]


class TopicPartition(Struct, frozen=True, kw_only=True, gc=False):
    topic: str
    partition: int


class QueryStatus(Struct, frozen=True, kw_only=True, gc=False):
    active_partitions: tuple[TopicPartition, ...] = ()
    standby_partitions: tuple[TopicPartition, ...] = ()
    active_stores: tuple[str, ...] = ()
    standby_stores: tuple[str, ...] = ()


class StoreLag(Struct, frozen=True, kw_only=True, gc=False):
    current_offset: int
    end_offset: int
    offset_lag: int


class ThreadPoolStats(Struct, frozen=True, kw_only=True, gc=False):
    active: NonNegative = 0
    max: NonNegative = 0
    queued: NonNegative = 0


class RequestStats(Struct, frozen=True, kw_only=True, gc=False):
    active: NonNegative = 0
    max: NonNegative = 0
    total: NonNegative = 0
    per_second: Annotated[float, Meta(ge=0)] | None = None


class Heartbeat(_Message, frozen=True, kw_only=True, tag="heartbeat", gc=False):
    """Liveness, plus an optional status payload kept as sent."""

    kind: ClassVar[str] = "heartbeat"
    node_state: Literal["BOOTING", "WAITING", "RUNNING", "ERROR", "STOPPING"] | None = None
    config_state: str | None = None
    transaction_id: str | None = None
    serving: bool | None = None
    services: dict[str, ServiceStatus] | None = None
    partitions: list[Partition] | None = None
    queries: dict[str, QueryStatus] | None = None
    store_lags: dict[str, dict[int, StoreLag]] | None = None
    thread_pool: ThreadPoolStats | None = None
    requests: RequestStats | None = None
    cluster_state: str | None = None
    admin_serving: bool | None = None
    plugins_initialized: bool | None = None
    service_role: str | None = None
    # The nodes the sender's node flags `fail?` or `fail`: each a failure report at this
    # heartbeat's receive time. Each heartbeat's list replaces the previous one (an absent
    # list is an empty one), so an id no longer listed is withdrawn at once.
    failing: list[NodeId] | None = None
    # Of those, the nodes it flags `fail` (Redis's FAIL: some node reached a quorum). A
    # sender that carries this list (even empty) says which of its reports are FAILs; see
    # merge rule 5 for what that changes.
    failed: list[NodeId] | None = None
    # The nodes the sender's node no longer knows (CLUSTER FORGET); replaced the same way.
    forgotten: list[NodeId] | None = None


class Slots(_Message, frozen=True, kw_only=True, tag="slots", gc=False):
    """The slots the node serves, claimed at this epoch (a slot it stops listing stays its
    own until another node claims it at a higher epoch); `released` gives slots up for good;
    `migrating` and `importing` map a slot to the node it is moving to or from."""

    kind: ClassVar[str] = "slots"
    ranges: list[tuple[Slot, Slot]]
    released: list[tuple[Slot, Slot]] = []
    migrating: dict[Slot, NodeId] = {}
    importing: dict[Slot, NodeId] = {}


class FailReport(_Message, frozen=True, kw_only=True, tag="fail_report", gc=False):
    """The sender sees `target` as failing."""

    kind: ClassVar[str] = "fail_report"
    target: NodeId
    state: Literal["pfail", "fail"]


class Leave(_Message, frozen=True, kw_only=True, tag="leave", gc=False):
    """The node is stopping on purpose."""

    kind: ClassVar[str] = "leave"


NodeMessage = Hello | Heartbeat | Slots | FailReport | Leave
MESSAGE_TYPES: Final = ("hello", "heartbeat", "slots", "fail_report", "leave")


class MessageError(ValueError):
    """A node message was refused.

    Attributes:
        field: dotted path of the offending field (`"ranges[0]"`, `"epoch"`), `""` for the
            whole document.
        reason: one short line.
        code: stable label for counting rejects (`json`, `too_large`, `type`, `missing_field`,
            `unknown_type`, `version`, `range`, `format`, `value`, `depth`).
    """

    def __init__(self, field: str, reason: str, code: str) -> None:
        self.field = field
        self.reason = _one_line(reason)
        self.code = code
        super().__init__(f"{field}: {self.reason}" if field else self.reason)


class Address(NamedTuple):
    host: str
    port: int
    busport: int | None


_ADDR = re.compile(
    r"(?P<host>\[[0-9A-Za-z:.%]+\]|[A-Za-z0-9._:%-]+):(?P<port>[0-9]{1,5})(?:@(?P<bus>[0-9]{1,5}))?"
)


def parse_addr(text: str) -> Address | None:
    """Parse `host:port` or `host:port@busport`; None unless the port is in 1..65535 and
    the bus port in 0..65535 (0: the node has no cluster bus, as Redis writes it)."""
    match = _ADDR.fullmatch(text)
    if match is None:
        return None
    port = int(match["port"])
    bus = None if match["bus"] is None else int(match["bus"])
    if not 0 < port < 65536 or (bus is not None and not 0 <= bus < 65536):
        return None
    return Address(match["host"].strip("[]"), port, bus)


_DECODER: Final[msgspec.json.Decoder[NodeMessage]] = msgspec.json.Decoder(NodeMessage)


_AT = re.compile(r" - at (?:`(?P<key>key)` in )?`(?P<path>\$[^`]*)`$")
_REASON_MAX = 200


def decode_message(data: bytes, *, max_size: int, max_ids: int | None = None) -> NodeMessage:
    """Decode and validate one node message.

    Args:
        data: the JSON document.
        max_size: inputs longer than this many bytes are refused before decoding.
        max_ids: the most node ids a heartbeat's `failing`, `failed` or `forgotten` may list (the
            model's `max_nodes`); None bounds them by `max_size` only.

    Returns:
        The typed message.

    Raises:
        MessageError: the input is not a valid schema v1 message.
    """
    if len(data) > max_size:
        raise MessageError("", f"message is {len(data)} bytes, limit is {max_size}", "too_large")
    try:
        msg = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise _document_error(data) or _from_validation(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MessageError("", f"invalid JSON: {exc}", "json") from None
    except RecursionError:
        raise MessageError("", _TOO_DEEP_TO_READ, "depth") from None
    if type(msg) is not Heartbeat:
        _check_semantics(msg)
    else:
        if msg.services:
            _check_status_depth(msg.services)
        if msg.failing or msg.forgotten or msg.failed:
            _check_lists(msg, max_ids)
    return msg


def _check_lists(msg: Heartbeat, max_ids: int | None) -> None:
    for name, ids in (("failing", msg.failing), ("failed", msg.failed),
                      ("forgotten", msg.forgotten)):
        if not ids:
            continue
        if max_ids is not None and len(ids) > max_ids:
            raise MessageError(name, f"lists {len(ids)} node ids, max-nodes is {max_ids}",
                               "range")
        if msg.node in ids:
            raise MessageError(f"{name}[{ids.index(msg.node)}]",
                               "a node cannot list itself", "value")


_TOO_DEEP_TO_READ: Final = "nested too deeply to decode"
_CONTAINERS: Final = frozenset((dict, list))


def _check_status_depth(services: dict[str, ServiceStatus]) -> None:
    for name, service in services.items():
        level = _deep_level(service.status)
        if level is not None:
            raise _too_deep(f"services[{_short(name)}].status.{level}")
        if service.status_versions:
            for version, formats in service.status_versions.items():
                level = _deep_level(formats)
                if level is not None:
                    raise _too_deep(
                        f"services[{_short(name)}].status_versions[{version}].{level}")


def _deep_level(by_level: dict[StatusLevel, Any]) -> str | None:
    """The first level whose data nests too deeply, or None. A flat object or array (the
    common status) is settled by one pass over its values' types."""
    containers = _CONTAINERS
    for level, value in by_level.items():
        kind = type(value)
        if kind is dict:
            if containers.isdisjoint(map(type, value.values())):
                continue
        elif kind is not list or containers.isdisjoint(map(type, value)):
            continue
        if _nests_deeper(value, MAX_STATUS_DEPTH):
            return level
    return None


def _short(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."


def _too_deep(field: str) -> MessageError:
    return MessageError(field, f"nests more than {MAX_STATUS_DEPTH} levels of arrays and "
                        "objects", "depth")


def _nests_deeper(value: list[Any] | dict[str, Any], limit: int) -> bool:
    """Whether more than `limit` arrays/objects nest inside one another in `value` (itself
    one of them). Level by level, without recursion; a level of scalars ends it."""
    level: list[Any] = [value]
    for _ in range(limit):
        inner: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            if not _CONTAINERS.isdisjoint(map(type, items)):
                inner.extend(item for item in items if type(item) in _CONTAINERS)
        if not inner:
            return False
        level = inner
    return True


def _check_semantics(msg: NodeMessage) -> None:
    match msg:
        case Hello():
            if parse_addr(msg.addr) is None:
                raise MessageError("addr", "expected host:port[@busport], port 1..65535, "
                                   "bus port 0..65535", "format")
            if msg.replicaof is not None and msg.role != "replica":
                raise MessageError("replicaof", "only a replica has a master", "value")
            if msg.replicaof == msg.node:
                raise MessageError("replicaof", "a node cannot replicate itself", "value")
        case Slots():
            _check_slots(msg)
        case FailReport():
            if msg.target == msg.node:
                raise MessageError("target", "a node cannot report itself", "value")
        case _:
            pass


def _check_slots(msg: Slots) -> None:
    for name, ranges in (("ranges", msg.ranges), ("released", msg.released)):
        for i, (start, end) in enumerate(ranges):
            if start > end:
                raise MessageError(f"{name}[{i}]", f"start {start} > end {end}", "range")
    if msg.released and msg.ranges:
        starts, ends = _joined(msg.ranges)
        for i, (start, end) in enumerate(msg.released):
            j = bisect_right(starts, end) - 1  # the last listed range starting by `end`
            if j >= 0 and ends[j] >= start:
                raise MessageError(f"released[{i}]", f"slot {max(start, starts[j])} is "
                                   "also in ranges", "value")
    for name, peers in (("migrating", msg.migrating), ("importing", msg.importing)):
        for slot, peer in peers.items():
            if peer == msg.node:
                raise MessageError(f"{name}[{slot}]", f"a node cannot be {name} a slot "
                                   f"{'to' if name == 'migrating' else 'from'} itself",
                                   "value")


def _joined(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """The starts and ends of `ranges` sorted, overlapping ones joined."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(ranges):
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _document_error(data: bytes) -> MessageError | None:
    # msgspec validates while it parses, so a shape error can hide a syntax error further on,
    # and a document of another schema version may fail in any field: report those first.
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return MessageError("", f"invalid JSON: {exc}", "json")
    except RecursionError:
        return MessageError("", _TOO_DEEP_TO_READ, "depth")
    if not isinstance(doc, dict) or "v" not in doc:
        return None
    version = doc["v"]
    if version == SCHEMA_VERSION and type(version) is int:
        return None
    return MessageError("v", f"unsupported schema version {version!r:.20}, expected 1", "version")


def _from_validation(text: str) -> MessageError:
    match = _AT.search(text)
    reason = text[: match.start()] if match else text
    path = _field_path(match["path"]) if match else ""
    if match and match["key"]:
        reason = f"invalid key: {reason}"
    if reason.startswith("Object missing required field `"):
        name = reason.split("`")[1]
        return MessageError(f"{path}.{name}" if path else name, reason, "missing_field")
    return MessageError(path, reason, _code_for(path, reason))


def _code_for(path: str, reason: str) -> str:
    if path == "type":
        return "unknown_type" if reason.startswith("Invalid value") else "type"
    if path == "v":
        return "version"
    if ", got `" in reason or reason == "Expected `str`":
        return "type"
    if reason.startswith("Expected `int`"):
        return "range"
    if reason.startswith(("Expected `str`", "Expected `array` of length")):
        return "format"
    return "value"


def _field_path(path: str) -> str:
    return path.removeprefix("$").removeprefix(".")


def _one_line(text: str) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."
