"""Puppet's status service over the cluster model: `STATUS SERVICES`, `STATUS SERVICE`, `SIMPLE`.

The documents and Puppet's rules are `cluster/puppet.py`; how each rule of Puppet's API
reads here, rule by rule, is docs/puppet-status.md. This module builds the documents from
the cluster model: one Puppet service per service of each node (`<node>/<service>`), from
the node's last heartbeat.

Liveness. The services of a node whose verdict is not `reachable` (cluster/liveness.py:
  fail?, stale, fail, the bus not fresh) are `unknown` at once, whatever their age, with
  the verdict and since when ("Node m1 is not reachable: pfail (...), since <ms>; its last
  status arrived at <ms>") and no alerts; the view keeps those nodes (`_down`), logged as
  changed when their verdict moves, so a node that stays down is not rendered again.
Cost. Each answer is cached with the model version and the first time at which some fresh
entry would turn stale, so a repeated probe is a few dict lookups. A new model version looks
only at the nodes the model logged as changed (`ClusterModel.changes`) and at the stale ones
(the oldest heartbeats, kept in arrival order); a node's parsed services are reused for as
long as its heartbeat is the same object. `STATUS SERVICES` keeps, per node and level and
timeout, what the node's entries are built from (its parsed services, or their age once
stale), not the entries: they are built when read, which a renderer that keeps encoded parts
does once per change. It logs which nodes' entries changed between reports
(`ServicesReport.changes`), so a renderer re-encodes only those; a stale node's source is
new at every version (its age moves), so a report costs at least the stale nodes. `states`
gives only each service's state (what the pub/sub watch compares at every tick), kept with a
deadline heap so that nodes staying stale cost nothing (`cluster.servicestates`). `SIMPLE`
of everything follows a tally of the states the nodes report (`_Tally`), looking only at the
changed and the stale nodes. Entries and documents share their `status` data with the
heartbeat they came from, and a report's `entries` are built once and shared between
calls: treat them as read-only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain, count
from typing import Any, Final, NamedTuple, cast

from msgspec import Struct

from clusterwatch.cluster.apierror import ApiError, bad_argument, echo
from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.liveness import Liveness, reachable
from clusterwatch.cluster.messages import Heartbeat, ServiceStatus
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.puppet import (
    DEFAULT_LEVEL,
    DEFAULT_TIMEOUT_S,
    LEVELS,
    SERVICE_STATES,
    SIMPLE_LEVEL,
    Level,
    ServiceEntry,
    ServiceState,
    SimpleStatus,
    parse_level,
    parse_status_version,
    parse_timeout,
    summarize_states,
)
from clusterwatch.cluster.records import NodeRow, NodeState
from clusterwatch.cluster.servicestates import ServiceStates, StateListing

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_TIMEOUT_S",
    "LEVELS",
    "SERVICE_STATES",
    "Level",
    "NodeSource",
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

_CACHE_ENTRIES: Final = 64


@dataclass(frozen=True, slots=True)
class ServicesReport:
    """`STATUS SERVICES`: every service of every node at one level and timeout.

    `by_node` gives each reporting node's entries, in node id order, built when read (the
    report keeps what they are built from, `sources`, not the entries). `changes` logs the
    nodes whose entries changed from one report to the next of the same level and timeout
    (reset when the nodes reporting services change), for renderers that keep per-node
    parts; a report built alone has a fresh log. A node's source has a new `serial` when its
    entries changed; `entries_of` builds them.
    """

    level: Level
    timeout_s: int
    sources: Mapping[str, NodeSource]
    # Every service is running (the view's tally says so without building the entries).
    running: bool = field(repr=False, compare=False)
    max_age_ms: int | None = None
    changes: ChangeLog = field(default_factory=ChangeLog, repr=False, compare=False)
    _entries: tuple[ServiceEntry, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def by_node(self) -> Mapping[str, tuple[ServiceEntry, ...]]:
        """Each node's entries (built on each read), in node id order."""
        return _EntriesByNode(self)

    def entries_of(self, source: NodeSource) -> tuple[ServiceEntry, ...]:
        """The entries one of `sources` stands for."""
        if isinstance(source, _Down):
            return tuple(_entry(inst, self.level, None, self.timeout_s, inst.received_ms,
                                down=source.liveness) for inst in source.node.instances)
        if isinstance(source, _Stale):
            return tuple(_entry(inst, self.level, None, self.timeout_s, source.now_ms,
                                max_age_ms=self.max_age_ms)
                         for inst in source.node.instances)
        # Fresh: judged at the time the heartbeat arrived, which no timeout makes stale.
        return tuple(_entry(inst, self.level, None, self.timeout_s, inst.received_ms)
                     for inst in source.instances)

    @property
    def entries(self) -> tuple[ServiceEntry, ...]:
        """Every entry, sorted by name (node id, then service)."""
        if self._entries is None:
            entries = tuple(chain.from_iterable(self.by_node.values()))
            object.__setattr__(self, "_entries", entries)
            return entries
        return self._entries

    @property
    def http_status(self) -> int:
        """Puppet's `statuses->code`: 200 iff every service is running, else 503."""
        return 200 if self.running else 503

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Puppet's services object: name -> entry (built whole; the replies and the HTTP
        route are assembled from per-node parts instead)."""
        return {entry.name: entry.to_json() for entry in self.entries}


class _Instance(Struct, frozen=True, gc=False):
    key: str
    node: str
    service: str
    status: ServiceStatus
    received_ms: int


class _NodeServices(Struct, frozen=True, gc=False):
    """One node's services from one heartbeat (reused while that heartbeat is current);
    the source of its fresh entries. Untracked by the GC, as what it holds (see
    `ServiceStatus`); `states`, the distinct states of `instances`, is a sorted tuple for
    the same reason."""

    heartbeat: Heartbeat
    received_ms: int
    instances: tuple[_Instance, ...]
    states: tuple[str, ...]
    serial: int


class _Stale(NamedTuple):
    """The source of a node's entries once its heartbeat is older than the timeout: their
    text gives the heartbeat's age at `now_ms`."""

    node: _NodeServices
    now_ms: int
    serial: int


class _Down(NamedTuple):
    """The source of a node's entries while the model's verdict on it is not `reachable`
    (cluster/liveness.py): `unknown` at once, with the verdict and since when. The same
    object while the verdict is, so a node that stays down is not re-rendered."""

    node: _NodeServices
    liveness: Liveness
    serial: int


NodeSource = _NodeServices | _Stale | _Down
_SERIALS = count()


class _EntriesByNode(Mapping[str, tuple[ServiceEntry, ...]]):
    __slots__ = ("_report",)

    def __init__(self, report: ServicesReport) -> None:
        self._report = report

    def __getitem__(self, node_id: str) -> tuple[ServiceEntry, ...]:
        report = self._report
        return report.entries_of(report.sources[node_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._report.sources)

    def __len__(self) -> int:
        return len(self._report.sources)


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
_OK: Final = NodeState.OK
NAMED: Final = 8


class _Cached(NamedTuple):
    computed_ms: int
    flip_ms: int
    value: Any


class _Tally:
    """How many nodes report each service state, how many instances there are, and which
    nodes report a state other than running: kept as nodes change, so the simple status of
    everything does not visit every node."""

    __slots__ = ("instances", "nodes_in", "troubled")

    def __init__(self, nodes: Iterable[_NodeServices] = ()) -> None:
        self.nodes_in: Counter[str] = Counter()
        self.instances = 0
        self.troubled: dict[str, _NodeServices] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: _NodeServices) -> None:
        self.nodes_in.update(node.states)
        self.instances += len(node.instances)
        if node.states is not _RUNNING and node.instances:
            self.troubled[node.instances[0].node] = node

    def remove(self, node: _NodeServices) -> None:
        self.nodes_in.subtract(node.states)
        self.instances -= len(node.instances)
        if node.states is not _RUNNING and node.instances:
            self.troubled.pop(node.instances[0].node, None)

    def states(self, leaving_out: Iterable[_NodeServices]) -> set[str]:
        """The states some node reports, not counting the nodes left out."""
        nodes_in = self.nodes_in.copy()
        for node in leaving_out:
            nodes_in.subtract(node.states)
        return {state for state, count in nodes_in.items() if count > 0}


class _Listing:
    """`STATUS SERVICES` at one level and timeout, kept per node between model versions."""

    __slots__ = ("computed_ms", "cursor", "flip_ms", "log", "report", "sources", "stale",
                 "version")

    def __init__(self) -> None:
        self.version = -1
        self.computed_ms = 0
        self.flip_ms = 0
        self.cursor = -1  # in the view's node log
        self.sources: dict[str, NodeSource] = {}
        self.stale: list[str] = []
        self.log = ChangeLog()
        self.report: ServicesReport | None = None


class ServiceStatusView:
    """Puppet status answers from a `ClusterModel`, cached per model version and deadline.

    Between versions, only the nodes the model logged as changed are looked at again, and
    a node's entries are rebuilt only when its heartbeat changed or it is (or was) stale.
    """

    def __init__(self, model: ClusterModel) -> None:
        self._model = model
        self._cursor = -1  # in the model's change log
        self._sync_version = -1
        # The nodes that report services, in node id order, and the same ids in the order
        # their heartbeats arrived (`_received_sorted` False when a clock stepped back).
        self._by_node: dict[str, _NodeServices] = {}
        # The nodes that report services and are not reachable, with the model's verdict.
        self._down: dict[str, _Down] = {}
        self._received: dict[str, int] = {}
        self._received_sorted = True
        self._tally = _Tally()
        # The node ids whose `_NodeServices` changed; reset when the members change.
        self._node_log = ChangeLog()
        self._index_version = -1
        self._index = _Index(())
        self._listings: dict[tuple[Level, int, int | None], _Listing] = {}
        self._cache_version = -1
        self._cache: dict[tuple[Any, ...], _Cached] = {}
        self._states = StateListing(DEFAULT_TIMEOUT_S[DEFAULT_LEVEL] * 1000)

    def states(self, now_ms: int) -> ServiceStates:
        """Every service's state at the default level's timeout, as `services` reports it;
        an update costs what changed since the last (see `cluster.servicestates`)."""
        self._sync(now_ms)
        return self._states.update(self._by_node, self._node_log, now_ms, self._down)

    def services(
        self, now_ms: int, *, level: str = DEFAULT_LEVEL, timeout_s: int | None = None,
        max_age_ms: int | None = None,
    ) -> ServicesReport:
        """Every service of every node; see the module notes for levels and timeouts.
        `max_age_ms` (MAXAGE): a status older than that is `unknown` for this read."""
        lvl = parse_level(level)
        timeout = DEFAULT_TIMEOUT_S[lvl] if timeout_s is None else parse_timeout(timeout_s)
        self._sync(now_ms)
        listings = self._listings
        listing = listings.get((lvl, timeout, max_age_ms))
        if listing is None:
            if len(listings) >= _CACHE_ENTRIES:
                listings.clear()
            listing = listings[(lvl, timeout, max_age_ms)] = _Listing()
        elif (listing.report is not None and listing.version == self._model.version
              and listing.computed_ms <= now_ms < listing.flip_ms):
            return listing.report
        timeout_ms = _limit_ms(timeout, max_age_ms)
        stale, flip = self._stale(now_ms, timeout_ms)
        changed, listing.cursor = self._node_log.since(listing.cursor)
        by_node = self._by_node
        sources = listing.sources
        if changed is None:
            sources = listing.sources = {
                node_id: self._source(node_id, node, timeout_ms, now_ms)
                for node_id, node in by_node.items()
            }
            listing.log.fit(len(sources))
            listing.log.reset()
        else:
            todo = set(changed)
            todo.update(stale)
            todo.update(listing.stale)
            log = listing.log
            for node_id in todo:
                node = by_node.get(node_id)
                if node is None:  # not without a reset of the node log
                    continue
                source = self._source(node_id, node, timeout_ms, now_ms)
                if source is not sources.get(node_id):
                    sources[node_id] = source
                    log.add(node_id)
        listing.stale = stale
        listing.version = self._model.version
        listing.computed_ms = now_ms
        listing.flip_ms = flip
        running = not stale and not self._down and self._tally.states(()) <= {"running"}
        listing.report = ServicesReport(lvl, timeout, dict(sources), running, max_age_ms,
                                        listing.log)
        return listing.report

    def _source(self, node_id: str, node: _NodeServices, timeout_ms: int,
                now_ms: int) -> NodeSource:
        down = self._down.get(node_id)
        return down if down is not None else _source(node, timeout_ms, now_ms)

    def service(
        self,
        name: str,
        now_ms: int,
        *,
        level: str = DEFAULT_LEVEL,
        status_version: int | None = None,
        timeout_s: int | None = None,
        max_age_ms: int | None = None,
    ) -> ServiceEntry:
        """One service: `<node>/<service>`, or a bare name exactly one node reports."""
        lvl = parse_level(level)
        timeout = DEFAULT_TIMEOUT_S[lvl] if timeout_s is None else parse_timeout(timeout_s)
        self._sync(now_ms)
        inst = self._one(name)
        down = self._down.get(inst.node)
        if down is not None:
            return _entry(inst, lvl, status_version, timeout, inst.received_ms,
                          down=down.liveness)
        return _entry(inst, lvl, status_version, timeout, now_ms, max_age_ms=max_age_ms)

    def simple(
        self, now_ms: int, name: str | None = None, *, timeout_s: int | None = None,
        max_age_ms: int | None = None,
    ) -> SimpleStatus:
        """Puppet's simple status of everything, one instance, or one service on every node;
        the answer names the instances that are not running (at most `NAMED`)."""
        timeout = DEFAULT_TIMEOUT_S[SIMPLE_LEVEL] if timeout_s is None else parse_timeout(timeout_s)
        key = ("simple", name, timeout, max_age_ms)
        self._model.refresh(now_ms)
        cached = self._cached(key, now_ms)
        if cached is not None:
            return cast(SimpleStatus, cached)
        timeout_ms = _limit_ms(timeout, max_age_ms)
        down = self._down
        if name is None:
            self._sync()
            stale, flip = self._stale(now_ms, timeout_ms)
            out = set(stale)
            out.update(down)
            states = self._tally.states(self._by_node[node_id] for node_id in out)
            if out:
                states.add("unknown")
            count = self._tally.instances
            running = states <= {"running"}
            suspects: Iterable[_Instance] = () if running else chain.from_iterable(
                self._by_node[node_id].instances
                for node_id in sorted(out.union(self._tally.troubled)))
        else:
            index = self._nodes()
            states = set()
            count = 0
            flip = _FOREVER
            one = index.by_key.get(name)
            group = (one,) if one is not None else index.by_service.get(name)
            if group is None:
                raise _not_found(name)
            for inst in group:
                count += 1
                if inst.node in down or inst.received_ms + timeout_ms < now_ms:
                    states.add("unknown")
                else:
                    states.add(inst.status.state)
                    flip = min(flip, inst.received_ms + timeout_ms + 1)
            running = states <= {"running"}
            suspects = () if running else group
        named: list[tuple[str, str, str]] = []
        total = 0
        for inst in suspects:
            why = self._why_not_running(inst, timeout_ms, now_ms)
            if why is not None:
                total += 1
                if len(named) < NAMED:
                    named.append(why)
        answer = SimpleStatus(summarize_states(states), 200 if running else 503, count,
                              tuple(named), total)
        self._store(key, now_ms, flip, answer)
        return answer

    def _why_not_running(self, inst: _Instance, timeout_ms: int,
                         now_ms: int) -> tuple[str, str, str] | None:
        """`(name, state, why)` for an instance that is not running, else None."""
        down = self._down.get(inst.node)
        if down is not None:
            live = down.liveness
            return inst.key, "unknown", f"node {live.verdict} since {live.since_ms}"
        if now_ms - inst.received_ms > timeout_ms:
            return (inst.key, "unknown",
                    f"status older than {timeout_ms} ms, received at {inst.received_ms}")
        state = inst.status.state
        return None if state == "running" else (inst.key, state, "reported")

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

    def _stale(self, now_ms: int, timeout_ms: int) -> tuple[list[str], int]:
        """The nodes whose last heartbeat is older than the timeout, and the first time one
        more will be (the oldest heartbeats come first in `_received`)."""
        if not self._received_sorted:
            self._received = dict(sorted(self._received.items(), key=lambda item: item[1]))
            self._received_sorted = True
        stale = []
        for node_id, received in self._received.items():
            if received + timeout_ms < now_ms:
                stale.append(node_id)
            else:
                return stale, received + timeout_ms + 1
        return stale, _FOREVER

    def _nodes(self) -> _Index:
        self._sync()
        if self._index_version != self._sync_version:
            self._index = _Index(tuple(self._by_node.values()))
            self._index_version = self._sync_version
        return self._index

    def _sync(self, now_ms: int | None = None) -> None:
        """Bring `_by_node` up to the model's version (after failure detection at `now_ms`,
        so the verdicts are those of the instant read), looking only at the logged nodes."""
        model = self._model
        if now_ms is not None:
            model.refresh(now_ms)
        version = model.version
        if self._sync_version == version:
            return
        changed, self._cursor = model.changes.since(self._cursor)
        if changed is None:
            self._rebuild()
        else:
            by_node = self._by_node
            received = self._received
            down = self._down
            bus_fresh = model.bus_fresh
            members = False
            moved: list[tuple[int, str]] = []
            for node_id in set(changed):
                old = by_node.get(node_id)
                row = model.node_row(node_id)
                node = None
                if row is not None:
                    beat, at = row[3], row[4]
                    if beat is not None and beat.services and at is not None:
                        same = old is not None and old.heartbeat is beat
                        node = old if same else _node_services(node_id, beat, at)
                    if row[1] is _OK and bus_fresh and node_id not in down:
                        pass  # reachable and was: the common case, without a call
                    elif (self._judge_down(node_id, node, row) and node is old
                          and node is not None):
                        self._node_log.add(node_id)
                elif node_id in down:
                    del down[node_id]
                if node is old:
                    continue
                if old is not None:
                    self._tally.remove(old)
                if node is None:
                    del by_node[node_id]
                    del received[node_id]
                    members = True
                    continue
                if old is None:
                    members = True
                self._tally.add(node)
                by_node[node_id] = node
                if old is None or old.received_ms != node.received_ms:
                    moved.append((node.received_ms, node_id))
                self._node_log.add(node_id)
            moved.sort()
            for at, node_id in moved:
                received.pop(node_id, None)
                if received and at < next(reversed(received.values())):
                    self._received_sorted = False
                received[node_id] = at
            if members:
                self._by_node = dict(sorted(by_node.items()))
                self._node_log.fit(len(by_node))
                self._node_log.reset()
        self._sync_version = version

    def _judge_down(self, node_id: str, node: _NodeServices | None,
                    row: NodeRow | None) -> bool:
        """Bring the node's `_down` entry up to the model's verdict; True if it moved."""
        down = self._down
        before = down.get(node_id)
        model = self._model
        if node is None or row is None or reachable(row[1], model.bus_fresh):
            if before is None:
                return False
            del down[node_id]
            return True
        live = model.current_liveness(node_id)
        assert live is not None
        if before is not None and before.node is node and before.liveness == live:
            return False
        down[node_id] = _Down(node, live, next(_SERIALS))
        return True

    def _rebuild(self) -> None:
        old = self._by_node
        current: dict[str, _NodeServices] = {}
        self._down = {}
        for row in self._model.node_rows():
            node_id, _state, _seen, beat, received, _addr = row
            if beat is None or not beat.services or received is None:
                continue
            node = old.get(node_id)
            if node is None or node.heartbeat is not beat:
                node = _node_services(node_id, beat, received)
            current[node_id] = node
            self._judge_down(node_id, node, row)
        self._by_node = dict(sorted(current.items()))
        self._tally = _Tally(current.values())
        self._received = {
            node_id: node.received_ms
            for node_id, node in sorted(current.items(), key=lambda item: item[1].received_ms)
        }
        self._received_sorted = True
        self._node_log.fit(len(current))
        self._node_log.reset()

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


# The few distinct sets of states, one object each rather than one per node (so a node whose
# services all run has exactly `_RUNNING`).
_RUNNING: Final = ("running",)
_STATE_SETS: Final[dict[tuple[str, ...], tuple[str, ...]]] = {_RUNNING: _RUNNING}


def _node_services(node_id: str, beat: Heartbeat, received_ms: int) -> _NodeServices:
    assert beat.services
    instances = tuple(
        _Instance(f"{node_id}/{service}", node_id, service, status, received_ms)
        for service, status in sorted(beat.services.items())
    )
    states = tuple(sorted({inst.status.state for inst in instances}))
    return _NodeServices(beat, received_ms, instances, _STATE_SETS.setdefault(states, states),
                         next(_SERIALS))


def _source(node: _NodeServices, timeout_ms: int, now_ms: int) -> NodeSource:
    if node.received_ms + timeout_ms < now_ms:
        return _Stale(node, now_ms, next(_SERIALS))
    return node


def _not_found(name: str) -> ApiError:
    shown = echo(name)
    return ApiError(
        f"not found: {shown}",
        kind="service-not-found",
        detail=f"No status information found for service {shown}",
    )


def _limit_ms(timeout_s: int, max_age_ms: int | None) -> int:
    """How old a status may be: the level's timeout, or MAXAGE when that is shorter."""
    timeout_ms = timeout_s * 1000
    return timeout_ms if max_age_ms is None else min(timeout_ms, max_age_ms)


def _entry(
    inst: _Instance, level: Level, version: int | None, timeout_s: int, now_ms: int, *,
    down: Liveness | None = None, max_age_ms: int | None = None,
) -> ServiceEntry:
    svc = inst.status
    formats: Mapping[int, Mapping[Level, Any]]
    if svc.status_versions:
        formats = {**svc.status_versions, svc.status_version: svc.status}
    else:
        formats = {svc.status_version: svc.status}
    chosen = max(formats) if version is None else version
    if chosen not in formats:
        raise ApiError(
            f"No status function with version {chosen} found for service {inst.key}",
            kind="service-status-version-not-found",
        )
    age_ms = now_ms - inst.received_ms
    fresh = down is None and age_ms <= _limit_ms(timeout_s, max_age_ms)
    source: Any
    if fresh:
        source = formats[chosen]
    elif down is not None:
        source = (f"Node {inst.node} is not reachable: {down.describe()}, since "
                  f"{down.since_ms}; its last status arrived at {inst.received_ms}")
    elif max_age_ms is not None and max_age_ms < timeout_s * 1000:
        source = (f"Status older than MAXAGE {max_age_ms} ms: the last status from node "
                  f"{inst.node} arrived {age_ms / 1000:.1f} seconds ago")
    else:
        source = (f"Status check timed out after {timeout_s} seconds: the last status from "
                  f"node {inst.node} arrived {age_ms / 1000:.1f} seconds ago")
    return ServiceEntry(
        name=inst.key,
        node=inst.node,
        service=inst.service,
        service_version=svc.version,
        service_status_version=chosen,
        detail_level=level,
        state=svc.state if fresh else "unknown",
        source=source,
        active_alerts=_alerts(svc) if fresh else (),
        received_ms=inst.received_ms,
        stale=not fresh,
    )


def _alerts(svc: ServiceStatus) -> tuple[tuple[str, str], ...]:
    alerts = svc.alerts
    return tuple((alert.severity, alert.message) for alert in alerts) if alerts else ()

