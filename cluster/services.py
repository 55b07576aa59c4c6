"""Puppet's status service over the cluster model: `STATUS SERVICES`, `STATUS SERVICE`, `SIMPLE`.

Source: trapperkeeper-status, "Status Query API, v1" (`GET /status/v1/services[/<name>]`,
`GET /status/v1/simple[/<name>]`) and its `status_core.clj`, which settles what the prose
leaves open. How each rule reads here:

Services. A node's last heartbeat carries `services` (name -> version, status_version, state,
  status by level, alerts). Each service of each node is one Puppet service, named
  `<node>/<service>` (node ids never contain "/"), the way Puppet Enterprise reports one status
  per host and service. Nothing is merged across nodes, so every entry keeps its own version,
  format version, state and alerts: exactly Puppet's entry, in Puppet's key order:
  {"service_version", "service_status_version", "detail_level", "state", "status",
  "active_alerts"}. `STATUS SERVICES` lists the entries sorted by name.
Levels. `critical` < `info` < `debug`, default `info`. The status at level L combines the
  heartbeat's data of every level up to L ("info returns the same structure as critical, and
  may add data"): objects merge key by key, a higher level adding or overriding keys; a
  non-object at a higher level replaces what is below; null or absent levels add nothing;
  nothing at all gives `"status": null`, as Puppet's `critical` example shows.
Format versions. A service reports `status` in format `status_version`, and may add older
  formats in `status_versions` (version -> status by level); state and alerts are shared by
  all formats. The latest is the default;
  `VERSION n` picks one; a missing one is a 400 `service-status-version-not-found`:
  "No status function with version n found for service <name>".
Timeouts. Puppet's timeout bounds how long a status callback may run. Here a status is data
  that arrived with a heartbeat, so the timeout bounds its age: when the node's last
  heartbeat arrived more than `timeout` seconds before `now_ms`, the entry is `state:
  unknown`, `status: "Status check timed out after <t> seconds: ..."` with the age, and no
  alerts (Puppet's timed-out result), never the old data. Defaults by level: critical 30 s,
  info 60 s, debug 60 s (`check-timeout`). `TIMEOUT` is an integer > 0 (Puppet refuses 0 too).
Simple. Critical level, default timeout 30 s. The summary (`summarize-states`): `error` if any
  service is in error; else `unknown` if any is unknown; else `stopping` if any stops; else
  `starting` if any starts; else `running` if any runs; no services at all: `unknown`. (The
  prose lists starting/stopping/unknown without ranking them against each other; the source
  ranks error > unknown > stopping > starting > running, and so do we.) HTTP: 200 if and only
  if every service is running, so an empty service set is 200 "unknown", as in Puppet
  (`every?` of nothing is true); otherwise 503 with the state as body. `SIMPLE <node>/<svc>`
  is that one instance: 200 running, 503 any other state. `SIMPLE <svc>` (our addition, for a
  load balancer asking about one service cluster-wide) applies the summary to that service's
  instances on every node. An unknown name is a 404 `not found: <name>`.
HTTP for the JSON routes (status_core): `/services` is 200 iff all running, else 503;
  `/services/<name>` is 200 if running, else 503, and its body adds "service_name"; a bad
  argument is a 400 `data-invalid` (`Invalid level: x`, `Invalid timeout. ...`,
  `Invalid service_status_version. ...`); an unknown service is a 404 `service-not-found`
  ("No status information found for service <name>"), whose RESP text is `not found: <name>`.
`STATUS SERVICE <name>` takes `<node>/<service>`, or a bare service name that exactly one node
  reports; a bare name several nodes report is a 400 that names them.

Cost. Each answer is cached with the model version and the first time at which some fresh
entry would turn stale, so a repeated probe is a few dict lookups. A new model version costs
one scan of the nodes; a node's parsed services and rendered entries are reused for as long
as its heartbeat is the same object. Returned entries and documents are shared between calls
and share their `status` data with the heartbeat they came from: treat them as read-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, NamedTuple, cast

from cluster.apierror import ApiError, bad_argument, echo, text_arg
from cluster.messages import Heartbeat, ServiceStatus
from cluster.model import ClusterModel

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_TIMEOUT_S",
    "LEVELS",
    "SERVICE_STATES",
    "Level",
    "ServiceEntry",
    "ServiceState",
    "ServiceStatusView",
    "ServicesReport",
    "SimpleStatus",
    "parse_level",
    "parse_status_version",
    "parse_timeout",
    "summarize_states",
]

Level = Literal["critical", "info", "debug"]
ServiceState = Literal["running", "error", "starting", "stopping", "unknown"]

LEVELS: Final[tuple[Level, ...]] = ("critical", "info", "debug")
DEFAULT_LEVEL: Final[Level] = "info"
DEFAULT_TIMEOUT_S: Final[Mapping[Level, int]] = {"critical": 30, "info": 60, "debug": 60}
SIMPLE_LEVEL: Final[Level] = "critical"
_LEVEL_NAMES: Final[Mapping[str, Level]] = {level: level for level in LEVELS}
SERVICE_STATES: Final[tuple[ServiceState, ...]] = (
    "running",
    "error",
    "starting",
    "stopping",
    "unknown",
)
# summarize-states: the most severe state present wins.
_SEVERITY: Final[tuple[ServiceState, ...]] = ("error", "unknown", "stopping", "starting", "running")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")  # Puppet parses an int; 18 digits fit any use
_CACHE_ENTRIES: Final = 64


def parse_level(value: str | bytes) -> Level:
    """A detail level, case-insensitive; 400 `Invalid level: x` otherwise."""
    text = text_arg(value)
    level = _LEVEL_NAMES.get(text.lower())
    if level is None:
        raise bad_argument(f"Invalid level: {echo(text)}")
    return level


def parse_timeout(value: str | bytes | int) -> int:
    """A timeout in whole seconds, > 0, with Puppet's two error messages."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = text_arg(value) if isinstance(value, str | bytes) else repr(value)
        if not _INTEGER.fullmatch(text):
            raise bad_argument(f"Invalid timeout. Should be an integer but was {echo(text)}")
        seconds = int(text)
    if seconds <= 0:
        raise bad_argument(f"Invalid timeout. Timeout must be greater than zero but was {seconds}")
    return seconds


def parse_status_version(value: str | bytes | int) -> int:
    """A status format version (an integer), as Puppet's `service_status_version`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = text_arg(value) if isinstance(value, str | bytes) else repr(value)
    if not _INTEGER.fullmatch(text):
        raise bad_argument(
            f"Invalid service_status_version. Should be an integer but was {echo(text)}"
        )
    return int(text)


def summarize_states(states: Iterable[str]) -> ServiceState:
    """Puppet's `summarize-states`: the first present of error, unknown, stopping, starting,
    running; nothing at all is unknown."""
    present = set(states)
    for state in _SEVERITY:
        if state in present:
            return state
    return "unknown"


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One service of one node, as Puppet reports a service.

    `received_ms` is when the heartbeat carrying it arrived; `stale` is True when it is older
    than the timeout, and then `state` is `unknown` and `status` the reason.
    """

    name: str
    node: str
    service: str
    service_version: str | None
    service_status_version: int
    detail_level: Level
    state: ServiceState
    status: Any
    active_alerts: tuple[tuple[str, str], ...]
    received_ms: int
    stale: bool
    _doc: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def http_status(self) -> int:
        """Puppet's `status->code`: 200 when running, else 503."""
        return 200 if self.state == "running" else 503

    def to_json(self, *, with_name: bool = False) -> dict[str, Any]:
        """The entry in Puppet's key order; `with_name` adds `service_name` (one-service route).

        Without `with_name` the document is built once and shared: do not modify it.
        """
        doc = self._doc
        if doc is None:
            doc = {
                "service_version": self.service_version,
                "service_status_version": self.service_status_version,
                "detail_level": self.detail_level,
                "state": self.state,
                "status": self.status,
                "active_alerts": [
                    {"severity": severity, "message": message}
                    for severity, message in self.active_alerts
                ],
            }
            object.__setattr__(self, "_doc", doc)
        if with_name:
            return {**doc, "service_name": self.name}
        return doc


@dataclass(frozen=True, slots=True)
class ServicesReport:
    """`STATUS SERVICES`: every service of every node at one level and timeout."""

    level: Level
    timeout_s: int
    entries: tuple[ServiceEntry, ...]
    _doc: dict[str, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def http_status(self) -> int:
        """Puppet's `statuses->code`: 200 iff every service is running, else 503."""
        return 200 if all(entry.state == "running" for entry in self.entries) else 503

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Puppet's services object: name -> entry. Built once and shared: do not modify it."""
        if self._doc is None:
            doc = {entry.name: entry.to_json() for entry in self.entries}
            object.__setattr__(self, "_doc", doc)
            return doc
        return self._doc


@dataclass(frozen=True, slots=True)
class SimpleStatus:
    """`STATUS SIMPLE`: one state word and Puppet's HTTP code (200 or 503).

    `services` is how many service instances the answer summarizes.
    """

    state: ServiceState
    http_status: int
    services: int

    @property
    def ok(self) -> bool:
        """True when Puppet would answer 200; otherwise the RESP reply is an error."""
        return self.http_status == 200

    @property
    def body(self) -> str:
        """The text/plain body: the state word."""
        return self.state


class _Instance(NamedTuple):
    key: str
    node: str
    service: str
    status: ServiceStatus
    received_ms: int


class _NodeServices(NamedTuple):
    """One node's services from one heartbeat (reused while that heartbeat is current)."""

    heartbeat: Heartbeat
    received_ms: int
    instances: tuple[_Instance, ...]
    states: frozenset[str]


class _Index:
    """The nodes that report services, in node id order, with lookups built on demand."""

    __slots__ = ("_by_key", "_by_service", "nodes")

    def __init__(self, nodes: tuple[_NodeServices, ...]) -> None:
        self.nodes = nodes
        self._by_key: dict[str, _Instance] | None = None
        self._by_service: dict[str, tuple[_Instance, ...]] | None = None

    def instances(self) -> Iterator[_Instance]:
        for node in self.nodes:
            yield from node.instances

    @property
    def by_key(self) -> dict[str, _Instance]:
        if self._by_key is None:
            self._by_key = {inst.key: inst for inst in self.instances()}
        return self._by_key

    @property
    def by_service(self) -> dict[str, tuple[_Instance, ...]]:
        if self._by_service is None:
            groups: dict[str, list[_Instance]] = {}
            for inst in self.instances():
                groups.setdefault(inst.service, []).append(inst)
            self._by_service = {name: tuple(group) for name, group in groups.items()}
        return self._by_service


_FOREVER: Final = 2**63


class _Cached(NamedTuple):
    computed_ms: int
    flip_ms: int
    value: Any


class ServiceStatusView:
    """Puppet status answers from a `ClusterModel`, cached per model version and deadline.

    Between versions, a node's entries are rebuilt only when its heartbeat changed.
    """

    def __init__(self, model: ClusterModel) -> None:
        self._model = model
        self._index_version = -1
        self._index = _Index(())
        self._by_node: dict[str, _NodeServices] = {}
        self._fresh: dict[tuple[str, Level], tuple[Heartbeat, tuple[ServiceEntry, ...]]] = {}
        self._cache_version = -1
        self._cache: dict[tuple[Any, ...], _Cached] = {}

    def services(
        self, now_ms: int, *, level: str = DEFAULT_LEVEL, timeout_s: int | None = None
    ) -> ServicesReport:
        """Every service of every node; see the module notes for levels and timeouts."""
        lvl = parse_level(level)
        timeout = DEFAULT_TIMEOUT_S[lvl] if timeout_s is None else parse_timeout(timeout_s)
        key = ("services", lvl, timeout)
        cached = self._cached(key, now_ms)
        if cached is not None:
            return cast(ServicesReport, cached)
        timeout_ms = timeout * 1000
        flip = _FOREVER
        entries: list[ServiceEntry] = []
        memo = self._fresh
        for node in self._nodes().nodes:
            if node.received_ms + timeout_ms < now_ms:
                entries.extend(_entry(i, lvl, None, timeout, now_ms) for i in node.instances)
                continue
            flip = min(flip, node.received_ms + timeout_ms + 1)
            memo_key = (node.instances[0].node, lvl)
            hit = memo.get(memo_key)
            if hit is None or hit[0] is not node.heartbeat:
                fresh = tuple(_entry(i, lvl, None, timeout, now_ms) for i in node.instances)
                hit = memo[memo_key] = (node.heartbeat, fresh)
            entries.extend(hit[1])
        report = ServicesReport(lvl, timeout, tuple(entries))
        self._store(key, now_ms, flip, report)
        return report

    def service(
        self,
        name: str,
        now_ms: int,
        *,
        level: str = DEFAULT_LEVEL,
        status_version: int | None = None,
        timeout_s: int | None = None,
    ) -> ServiceEntry:
        """One service: `<node>/<service>`, or a bare name exactly one node reports."""
        lvl = parse_level(level)
        timeout = DEFAULT_TIMEOUT_S[lvl] if timeout_s is None else parse_timeout(timeout_s)
        inst = self._one(name)
        return _entry(inst, lvl, status_version, timeout, now_ms)

    def simple(
        self, now_ms: int, name: str | None = None, *, timeout_s: int | None = None
    ) -> SimpleStatus:
        """Puppet's simple status of everything, one instance, or one service on every node."""
        timeout = DEFAULT_TIMEOUT_S[SIMPLE_LEVEL] if timeout_s is None else parse_timeout(timeout_s)
        key = ("simple", name, timeout)
        cached = self._cached(key, now_ms)
        if cached is not None:
            return cast(SimpleStatus, cached)
        timeout_ms = timeout * 1000
        index = self._nodes()
        states: set[str] = set()
        count = 0
        flip = _FOREVER
        if name is None:
            for node in index.nodes:
                count += len(node.instances)
                if node.received_ms + timeout_ms < now_ms:
                    states.add("unknown")
                else:
                    states |= node.states
                    flip = min(flip, node.received_ms + timeout_ms + 1)
        else:
            one = index.by_key.get(name)
            group = (one,) if one is not None else index.by_service.get(name)
            if group is None:
                raise _not_found(name)
            for inst in group:
                count += 1
                if inst.received_ms + timeout_ms < now_ms:
                    states.add("unknown")
                else:
                    states.add(inst.status.state)
                    flip = min(flip, inst.received_ms + timeout_ms + 1)
        running = states <= {"running"}
        answer = SimpleStatus(summarize_states(states), 200 if running else 503, count)
        self._store(key, now_ms, flip, answer)
        return answer

    def names(self) -> list[str]:
        """Every `<node>/<service>` name, sorted."""
        return [inst.key for inst in self._nodes().instances()]

    def _one(self, name: str) -> _Instance:
        index = self._nodes()
        inst = index.by_key.get(name)
        if inst is not None:
            return inst
        group = index.by_service.get(name, ())
        if len(group) == 1:
            return group[0]
        if not group:
            raise _not_found(name)
        nodes = ", ".join(i.node for i in group)
        raise bad_argument(
            f"ambiguous service name '{echo(name)}': reported by nodes {nodes}; "
            f"use <node>/{echo(name)}"
        )

    def _nodes(self) -> _Index:
        version = self._model.version
        if self._index_version == version:
            return self._index
        old = self._by_node
        current: dict[str, _NodeServices] = {}
        for node_id, _state, _seen, beat, received, _addr in self._model.node_rows():
            if beat is None or not beat.services or received is None:
                continue
            node = old.get(node_id)
            if node is None or node.heartbeat is not beat:
                node = _node_services(node_id, beat, received)
            current[node_id] = node
        if current.keys() == old.keys():
            order = [node.instances[0].node for node in self._index.nodes]
        else:
            order = sorted(current)
            stale = [key for key in self._fresh if key[0] not in current]
            for key in stale:
                del self._fresh[key]
        self._by_node = current
        self._index = _Index(tuple(current[node_id] for node_id in order))
        self._index_version = version
        return self._index

    def _cached(self, key: tuple[Any, ...], now_ms: int) -> Any:
        if self._cache_version != self._model.version:
            return None
        hit = self._cache.get(key)
        if hit is None or not hit.computed_ms <= now_ms < hit.flip_ms:
            return None
        return hit.value

    def _store(self, key: tuple[Any, ...], now_ms: int, flip_ms: int, value: Any) -> None:
        version = self._model.version
        if self._cache_version != version or len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
            self._cache_version = version
        self._cache[key] = _Cached(now_ms, flip_ms, value)


def _node_services(node_id: str, beat: Heartbeat, received_ms: int) -> _NodeServices:
    assert beat.services
    instances = tuple(
        _Instance(f"{node_id}/{service}", node_id, service, status, received_ms)
        for service, status in sorted(beat.services.items())
    )
    return _NodeServices(
        beat, received_ms, instances, frozenset(inst.status.state for inst in instances)
    )


def _not_found(name: str) -> ApiError:
    shown = echo(name)
    return ApiError(
        f"not found: {shown}",
        http_status=404,
        kind="service-not-found",
        detail=f"No status information found for service {shown}",
    )


def _entry(
    inst: _Instance, level: Level, version: int | None, timeout_s: int, now_ms: int
) -> ServiceEntry:
    svc = inst.status
    formats: dict[int, Mapping[Level, Any]] = dict(svc.status_versions)
    formats[svc.status_version] = svc.status
    chosen = max(formats) if version is None else version
    if chosen not in formats:
        raise ApiError(
            f"No status function with version {chosen} found for service {inst.key}",
            http_status=400,
            kind="service-status-version-not-found",
        )
    entry = ServiceEntry(
        name=inst.key,
        node=inst.node,
        service=inst.service,
        service_version=svc.version,
        service_status_version=chosen,
        detail_level=level,
        state=svc.state,
        status=status_at(formats[chosen], level),
        active_alerts=tuple((alert.severity, alert.message) for alert in svc.alerts),
        received_ms=inst.received_ms,
        stale=False,
    )
    age_ms = now_ms - inst.received_ms
    if age_ms <= timeout_s * 1000:
        return entry
    return replace(
        entry,
        state="unknown",
        status=(
            f"Status check timed out after {timeout_s} seconds: the last status from node "
            f"{inst.node} arrived {age_ms / 1000:.1f} seconds ago"
        ),
        active_alerts=(),
        stale=True,
    )


def status_at(by_level: Mapping[Level, Any], level: Level) -> Any:
    """The status data at `level`: the levels up to it combined (see the module notes)."""
    result: Any = None
    owned = False
    for lvl in LEVELS[: LEVELS.index(level) + 1]:
        part = by_level.get(lvl)
        if part is None:
            continue
        if isinstance(part, dict) and isinstance(result, dict):
            if not owned:
                result = dict(result)
                owned = True
            result.update(part)
        else:
            result = part
            owned = False
    return result
