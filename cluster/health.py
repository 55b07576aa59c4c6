"""Zeebe / Spring Boot / Kubernetes health probes over the cluster model: `HEALTH`.

Two scopes: the cluster (`HEALTH [probe]`), the gateway view of clusterwatch itself and
what it knows, and one node (`HEALTH [probe] NODE <id>`), a broker view from its heartbeats.
Each probe (STARTUP, READY, LIVE, HEALTH) is a set of named checks (Spring components):
clusterwatch's own (`SelfCheck`, which the server passes in), facts of the cluster
(`cluster.healthfacts`: reachable nodes, partition leaders, `cluster_state`), and a node's
liveness verdict (cluster/liveness.py), start and partitions. A probe's status aggregates
its checks Spring's way, the first present of DOWN, OUT_OF_SERVICE, DEGRADED, UP, UNKNOWN,
so UNKNOWN counts only when nothing else is known; no checks at all is UNKNOWN. EXCLUDE
leaves checks out (an unknown name is a 400); `http_status` maps a status to Zeebe's or
Spring's HTTP code.

`HealthTracker` (one per server) holds what outlives an evaluation:
* READY's latch: once every precondition is UP together, the scope is ready for good and
  READY answers UP whatever happens next (Zeebe: it never becomes unready again), except
  that a node the model does not find `reachable` is judged from its checks meanwhile. A
  node's latch ends when it leaves or reports BOOTING again; the cluster's lasts as long as
  the tracker. Evaluations and `observe` (called on the server's refresh tick) set it.
* LIVE's grace windows (Zeebe's delayed indicators): a `liveness*` check stays UP while its
  underlying check was UP less than its window ago, timed from the model where it is exact,
  else from observations, and from the tracker's start for a cluster check never UP.

Cost: a latched READY is O(1); otherwise the cluster facts follow the model's change log,
and each report is cached with the model version, the self checks and the first time a
grace window ends.

Each check, probe, window and HTTP code in full: docs/health-rules.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from clusterwatch.cluster.apierror import ApiError, bad_argument, echo, text_arg, unknown_node
from clusterwatch.cluster.freshness import too_old
from clusterwatch.cluster.healthfacts import Facts, FactsKeeper
from clusterwatch.cluster.liveness import (
    CURITY_KEPT_STATES,
    CURITY_NODE_STATE,
    Liveness,
    Verdict,
)
from clusterwatch.cluster.model import ClusterModel
from clusterwatch.cluster.records import NodeInfo

__all__ = [
    "BUS_FRESH",
    "DEGRADED",
    "DOWN",
    "EVENT_LOOP",
    "HTTP_PATHS",
    "LISTENING",
    "OUT_OF_SERVICE",
    "PROBES",
    "SELF_CHECKS",
    "STATUSES",
    "UNKNOWN",
    "UP",
    "Check",
    "HealthConfig",
    "HealthReport",
    "HealthStatus",
    "HealthTracker",
    "HttpStyle",
    "Probe",
    "SelfCheck",
    "aggregate",
    "http_status",
    "parse_probe",
]

HealthStatus = Literal["UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN", "DEGRADED"]
Probe = Literal["startup", "ready", "live", "health"]
HttpStyle = Literal["zeebe", "actuator"]

UP: Final[Literal["UP"]] = "UP"
DOWN: Final[Literal["DOWN"]] = "DOWN"
OUT_OF_SERVICE: Final[Literal["OUT_OF_SERVICE"]] = "OUT_OF_SERVICE"
UNKNOWN: Final[Literal["UNKNOWN"]] = "UNKNOWN"
DEGRADED: Final[Literal["DEGRADED"]] = "DEGRADED"
STATUSES: Final[tuple[HealthStatus, ...]] = (UP, DOWN, OUT_OF_SERVICE, UNKNOWN, DEGRADED)
_ORDER: Final[tuple[HealthStatus, ...]] = (DOWN, OUT_OF_SERVICE, DEGRADED, UP, UNKNOWN)
PROBES: Final[tuple[Probe, ...]] = ("startup", "ready", "live", "health")
_PROBE_ALIASES: Final[Mapping[str, Probe]] = {
    "startup": "startup",
    "ready": "ready",
    "readiness": "ready",
    "live": "live",
    "liveness": "live",
    "health": "health",
}

LISTENING: Final = "listening"
BUS_FRESH: Final = "busFresh"
EVENT_LOOP: Final = "eventLoop"
SELF_CHECKS: Final = (LISTENING, BUS_FRESH, EVENT_LOOP)

HTTP_PATHS: Final[Mapping[str, tuple[Probe, HttpStyle]]] = {
    "/startup": ("startup", "zeebe"),
    "/ready": ("ready", "zeebe"),
    "/health": ("health", "zeebe"),
    "/live": ("live", "zeebe"),
    "/actuator/health": ("health", "actuator"),
    "/actuator/health/status": ("health", "actuator"),
    "/actuator/health/startup": ("startup", "actuator"),
    "/actuator/health/readiness": ("ready", "actuator"),
    "/actuator/health/liveness": ("live", "actuator"),
}

_FOREVER: Final = 2**63
_NO_SELF_CHECKS: Final[Mapping[str, SelfCheck]] = MappingProxyType({})
_CACHE_ENTRIES: Final = 256


def parse_probe(value: str | bytes) -> Probe:
    """STARTUP, READY, LIVE or HEALTH (case-insensitive; READINESS and LIVENESS too)."""
    text = text_arg(value)
    probe = _PROBE_ALIASES.get(text.lower())
    if probe is None:
        raise bad_argument(f"unknown probe '{echo(text)}', expected STARTUP, READY, LIVE or HEALTH")
    return probe


def aggregate(statuses: Iterable[str]) -> HealthStatus:
    """Spring's status aggregation with DEGRADED between OUT_OF_SERVICE and UP."""
    present = set(statuses)
    for status in _ORDER:
        if status in present:
            return status
    return UNKNOWN


def http_status(status: str, style: HttpStyle = "zeebe") -> int:
    """Zeebe probe paths: 204 for UP, else 503. Actuator paths: Spring's default mapping."""
    if style == "zeebe":
        return 204 if status == UP else 503
    return 503 if status in (DOWN, OUT_OF_SERVICE) else 200


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """One of clusterwatch's own checks, as the server sees it right now.

    `last_up_ms`, when the server knows it, is the last time the check was UP; liveness
    windows then start there instead of at the last evaluation that saw it UP.
    """

    status: HealthStatus
    reason: str = ""
    last_up_ms: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown health status {self.status!r}")


@dataclass(frozen=True, slots=True)
class Check:
    """One evaluated check: a Spring component."""

    name: str
    status: HealthStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One probe's answer.

    `checks` are the checks that count (after EXCLUDE), in a fixed order; `excluded` the names
    left out; `ready_since_ms` when the scope became ready (None if not yet).
    """

    probe: Probe
    node: str | None
    status: HealthStatus
    checks: tuple[Check, ...]
    excluded: tuple[str, ...] = ()
    ready_since_ms: int | None = None

    def http_status(self, style: HttpStyle = "zeebe") -> int:
        """The HTTP code for this report on a Zeebe probe path or an actuator path."""
        return http_status(self.status, style)

    def to_json(self, *, verbose: bool = False) -> dict[str, Any]:
        """Spring's document: `{"status": ...}`, with `components` when verbose."""
        if not verbose:
            return {"status": self.status}
        components: dict[str, Any] = {}
        for check in self.checks:
            component: dict[str, Any] = {"status": check.status}
            if check.reason:
                component["details"] = {"reason": check.reason}
            components[check.name] = component
        return {"status": self.status, "components": components}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    """Liveness grace windows in milliseconds (Zeebe's defaults)."""

    responsive_grace_ms: int = 600_000
    awareness_grace_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.responsive_grace_ms < 0 or self.awareness_grace_ms < 0:
            raise ValueError("grace windows must not be negative")


class _Cached(NamedTuple):
    version: int
    serial: int
    computed_ms: int
    flip_ms: int
    report: HealthReport


_CLUSTER_CHECKS: Final = (
    "clusterAwareness",
    "partitionLeaderAwareness",
    "partitions",
    "clusterState",
    "nodes",
)
_NODE_GROUPS: Final[Mapping[Probe, tuple[str, ...]]] = {
    "startup": ("reachable", "started"),
    "ready": ("reachable", "started", "nodeState"),
    "live": ("livenessReachable",),
    "health": ("readiness", "reachable", "started", "nodeState", "partitions"),
}


class HealthTracker:
    """Health answers for one model, and the state they need across calls.

    The server owns one, evaluates probes with `evaluate`, and calls `observe` on its refresh
    tick so readiness latches and liveness windows follow the model between probes.
    """

    def __init__(
        self, model: ClusterModel, *, started_ms: int, config: HealthConfig | None = None
    ) -> None:
        self._model = model
        self.config = config or HealthConfig()
        self.started_ms = started_ms
        self._cluster_ready_ms: int | None = None
        self._node_ready_ms: dict[str, int] = {}
        self._last_up: dict[tuple[str | None, str], int] = {}
        self._serial = 0
        self._facts = FactsKeeper(model)
        self._observed_cursor = -1  # in the model's change log
        self._cache: dict[tuple[Any, ...], _Cached] = {}
        # The plain cluster probes (no node, no exclusions), by probe: the self-check
        # mapping they were computed with and their cache entry. Probes call at PING rates.
        self._plain: dict[Probe, tuple[Mapping[str, SelfCheck], _Cached]] = {}
        self._observed_version = -1
        self._observed_self: tuple[Any, ...] | None = None

    def ready_since(self, node: str | None = None) -> int | None:
        """When the cluster (or `node`) became ready; None if it has not."""
        if node is None:
            return self._cluster_ready_ms
        return self._node_ready_ms.get(node)

    def check_names(
        self, probe: str, *, node: bool = False, self_checks: Mapping[str, SelfCheck] | None = None
    ) -> tuple[str, ...]:
        """The checks `probe` evaluates for a node or the cluster: what EXCLUDE accepts."""
        chosen = parse_probe(probe)
        if node:
            return _NODE_GROUPS[chosen]
        return _cluster_names(chosen, self_checks or {})

    def observe(self, now_ms: int, self_checks: Mapping[str, SelfCheck] | None = None) -> None:
        """Latch readiness and note UP checks for every scope; cheap when nothing changed."""
        checks = self_checks or {}
        self._model.refresh(now_ms)
        self_key = _self_key(checks)
        if self._observed_version == self._model.version and self._observed_self == self_key:
            return
        self._cluster_latch(now_ms, checks)
        self._cluster_live_checks(now_ms, checks)
        # A node's latch follows its own record: look again only at the nodes that changed.
        changed, self._observed_cursor = self._model.changes.since(self._observed_cursor)
        if changed is None:
            present = set()
            for info in self._model.nodes():
                present.add(info.id)
                self._node_latch(info, now_ms)
            gone = set(self._node_ready_ms) - present
        else:
            gone = set()
            for node_id in set(changed):
                known = self._model.node(node_id)
                if known is None:
                    gone.add(node_id)
                else:
                    self._node_latch(known, now_ms)
        for node_id in gone & self._node_ready_ms.keys():
            del self._node_ready_ms[node_id]
            self._serial += 1
        self._observed_version = self._model.version
        self._observed_self = self_key

    def evaluate(
        self,
        now_ms: int,
        probe: str = "health",
        *,
        node: str | None = None,
        exclude: Sequence[str | bytes] = (),
        self_checks: Mapping[str, SelfCheck] | None = None,
        max_age_ms: int | None = None,
    ) -> HealthReport:
        """Evaluate one probe for the cluster or one node at `now_ms`; `max_age_ms` (MAXAGE):
        data older than that counts as unknown for this read (`_too_old`).

        `self_checks` is read as an immutable snapshot: pass a new mapping when a check
        changes (the server builds one per tick). A plain cluster probe asked again with
        the same mapping, model version and latch state, before its answer's next flip,
        is answered without rebuilding its key.

        Raises:
            ApiError: unknown probe (400), unknown node (404), unknown check in `exclude` (400).
        """
        chosen = parse_probe(probe)
        checks = _NO_SELF_CHECKS if self_checks is None else self_checks
        self._model.refresh(now_ms)
        plain = node is None and not exclude
        if plain:
            last = self._plain.get(chosen)
            if last is not None and last[0] is checks and self._fresh(last[1], now_ms):
                return last[1].report
        info: NodeInfo | None = None
        if node is not None:
            info = self._model.node(node)
            if info is None:
                raise unknown_node(node)
        names = _NODE_GROUPS[chosen] if info is not None else _cluster_names(chosen, checks)
        excluded = _validate_exclude(exclude, names, chosen, node)
        self_key = _self_key(checks)
        key = (chosen, node, excluded, self_key)
        version = self._model.version
        hit = self._cache.get(key)
        if hit is None or hit.version != version or not self._fresh(hit, now_ms):
            if info is None:
                report, flip = self._cluster_report(chosen, now_ms, checks, excluded)
            else:
                report, flip = self._node_report(chosen, info, now_ms, excluded)
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            hit = self._cache[key] = _Cached(self._model.version, self._serial, now_ms, flip,
                                             report)
        if plain:
            self._plain[chosen] = (checks, hit)
        if max_age_ms is not None:
            return self._too_old(hit.report, info, now_ms, max_age_ms)
        return hit.report

    def _too_old(self, report: HealthReport, info: NodeInfo | None, now_ms: int,
                 max_age_ms: int) -> HealthReport:
        """MAXAGE: a node whose last heartbeat (or message, without one) is older makes
        its report UNKNOWN whatever its checks (and READY's latch) say; for the cluster, the
        nodes last heard from before it are named in a `maxAge` check, DEGRADED while some
        node is fresher, else the report is UNKNOWN. Costs a scan of the nodes."""
        if info is not None:
            received = info.last_seen_ms if info.heartbeat_ms is None else info.heartbeat_ms
            if not too_old(received, now_ms, max_age_ms):
                return report
            check = Check("maxAge", UNKNOWN, f"last heartbeat {now_ms - received} ms old, "
                          f"older than MAXAGE {max_age_ms} ms")
            return HealthReport(report.probe, report.node, UNKNOWN, (check, *report.checks),
                                report.excluded, report.ready_since_ms)
        rows = list(self._model.node_rows())
        old = sorted(row[0] for row in rows if too_old(row[2], now_ms, max_age_ms))
        if not old:
            return report
        reason = (f"{len(old)} of {len(rows)} nodes last heard from more than {max_age_ms} "
                  f"ms ago: {_list(old)}")
        if len(old) == len(rows):
            check = Check("maxAge", UNKNOWN, reason)
            status: HealthStatus = UNKNOWN
        else:
            check = Check("maxAge", DEGRADED, reason)
            status = aggregate((report.status, DEGRADED))
        return HealthReport(report.probe, report.node, status, (*report.checks, check),
                            report.excluded, report.ready_since_ms)

    def _fresh(self, cached: _Cached, now_ms: int) -> bool:
        """Computed for the current model and latch state, and not yet due to flip."""
        return (cached.version == self._model.version and cached.serial == self._serial
                and cached.computed_ms <= now_ms < cached.flip_ms)

    # -- the cluster ---------------------------------------------------------------------

    def _cluster_report(
        self,
        probe: Probe,
        now_ms: int,
        self_checks: Mapping[str, SelfCheck],
        excluded: tuple[str, ...],
    ) -> tuple[HealthReport, int]:
        ready_ms = self._cluster_latch(now_ms, self_checks)
        if probe == "ready" and ready_ms is not None:
            return _latched("ready", None, ready_ms), _FOREVER
        flip = _FOREVER
        built: list[Check] = []
        if probe == "startup":
            built = _self(self_checks, (LISTENING,))
        elif probe == "ready":
            built = [*_self(self_checks, (LISTENING, BUS_FRESH)), self._awareness(now_ms)]
        elif probe == "live":
            built, flip = self._cluster_live_checks(now_ms, self_checks)
        else:
            built = [_readiness(ready_ms), *_self(self_checks, _self_names(self_checks))]
            built.extend(self._cluster_checks(now_ms))
        return _report(probe, None, built, excluded, ready_ms), flip

    def _cluster_latch(self, now_ms: int, self_checks: Mapping[str, SelfCheck]) -> int | None:
        if self._cluster_ready_ms is None:
            pre = [*_self(self_checks, (LISTENING, BUS_FRESH)), self._awareness(now_ms)]
            if aggregate(c.status for c in pre) == UP:
                self._cluster_ready_ms = now_ms
                self._serial += 1
        return self._cluster_ready_ms

    def _cluster_live_checks(
        self, now_ms: int, self_checks: Mapping[str, SelfCheck]
    ) -> tuple[list[Check], int]:
        facts = self._cluster_facts(now_ms)
        grace = self.config
        flip = _FOREVER
        built = _self(self_checks, (LISTENING,))
        loop = self_checks.get(EVENT_LOOP)
        delayed: list[tuple[str, Check, int | None, int]] = []
        if loop is not None:
            base = Check(EVENT_LOOP, loop.status, loop.reason)
            delayed.append(("livenessResponsive", base, loop.last_up_ms, grace.responsive_grace_ms))
        delayed.append(
            (
                "livenessClusterAwareness",
                self._awareness(now_ms),
                facts.last_reachable_ms,
                grace.awareness_grace_ms,
            )
        )
        delayed.append(
            (
                "livenessPartitionLeaderAwareness",
                self._leader_awareness(now_ms),
                facts.leader_lost_ms,
                grace.awareness_grace_ms,
            )
        )
        for name, base, derived_up, window in delayed:
            last_up = self._note(None, base, now_ms, derived_up)
            check, deadline = _delayed(name, base, last_up, window, now_ms)
            built.append(check)
            flip = min(flip, deadline)
        return built, flip

    def _note(self, scope: str | None, base: Check, now_ms: int, derived_up: int | None) -> int:
        """The last time `base` was UP: now if it is, else the best of what is known."""
        key = (scope, base.name)
        if base.status == UP:
            self._last_up[key] = max(now_ms, self._last_up.get(key, now_ms))
            return now_ms
        candidates = [self.started_ms, self._last_up.get(key, self.started_ms)]
        if derived_up is not None:
            candidates.append(derived_up)
        return max(candidates)

    def _awareness(self, now_ms: int) -> Check:
        facts = self._cluster_facts(now_ms)
        reachable = facts.nodes - len(facts.unreachable)
        if reachable:
            return Check("clusterAwareness", UP, f"{reachable} of {facts.nodes} nodes reachable")
        if not facts.nodes:
            return Check("clusterAwareness", DOWN, "no node known yet")
        return Check("clusterAwareness", DOWN, f"none of {facts.nodes} known nodes is reachable")

    def _leader_awareness(self, now_ms: int) -> Check:
        facts = self._cluster_facts(now_ms)
        name = "partitionLeaderAwareness"
        if not facts.partitions:
            return Check(name, UNKNOWN, "no node reports partitions")
        total = len(facts.partitions)
        if facts.led:
            return Check(name, UP, f"leaders known for {facts.led} of {total} partitions")
        return Check(name, DOWN, f"no leader on a reachable node for any of {total} partitions")

    def _cluster_checks(self, now_ms: int) -> list[Check]:
        facts = self._cluster_facts(now_ms)
        checks = [self._awareness(now_ms), self._leader_awareness(now_ms)]
        total = len(facts.partitions)
        if not total:
            checks.append(Check("partitions", UNKNOWN, "no node reports partitions"))
        else:
            sick = facts.sick
            if not sick:
                checks.append(Check("partitions", UP, f"all {total} partitions healthy"))
            else:
                status = DOWN if len(sick) == total else DEGRADED
                checks.append(
                    Check(
                        "partitions",
                        status,
                        f"{len(sick)} of {total} partitions without a healthy leader: "
                        + _list(sick),
                    )
                )
        if not facts.slots_assigned:
            checks.append(Check("clusterState", UNKNOWN, "no slot is assigned"))
        elif facts.cluster_ok:
            checks.append(Check("clusterState", UP, "cluster_state:ok"))
        else:
            checks.append(Check("clusterState", DOWN, "cluster_state:fail"))
        if not facts.nodes:
            checks.append(Check("nodes", UNKNOWN, "no node known yet"))
        elif not facts.unreachable:
            checks.append(Check("nodes", UP, f"all {facts.nodes} nodes reachable"))
        else:
            status = DOWN if len(facts.unreachable) == facts.nodes else DEGRADED
            checks.append(
                Check(
                    "nodes",
                    status,
                    f"{len(facts.unreachable)} of {facts.nodes} nodes unreachable: "
                    + self._verdicts(facts.unreachable),
                )
            )
        return checks

    def _verdicts(self, nodes: Sequence[str], limit: int = 10) -> str:
        """The first `limit` nodes, each with its verdict and since when (cluster/liveness.py)."""
        shown = []
        for node in nodes[:limit]:
            live = self._model.current_liveness(node)
            shown.append(node if live is None else f"{node} ({live.verdict} since {live.since_ms})")
        more = f", ... ({len(nodes)} in all)" if len(nodes) > limit else ""
        return ", ".join(shown) + more

    def _cluster_facts(self, now_ms: int) -> Facts:
        return self._facts.facts(now_ms)

    # -- one node ------------------------------------------------------------------------

    def _node_report(
        self, probe: Probe, info: NodeInfo, now_ms: int, excluded: tuple[str, ...]
    ) -> tuple[HealthReport, int]:
        ready_ms = self._node_latch(info, now_ms)
        live = self._liveness(info)
        if probe == "ready" and ready_ms is not None and live.reachable:
            return _latched("ready", info.id, ready_ms), _FOREVER
        flip = _FOREVER
        if probe == "live":
            base = _reachable(live)
            derived = info.last_seen_ms + self._model.config.node_timeout_ms
            last_up = now_ms if base.status == UP else derived
            check, flip = _delayed(
                "livenessReachable", base, last_up, self.config.responsive_grace_ms, now_ms
            )
            built = [check]
        else:
            by_name = self._node_checks(info)
            built = [
                _readiness(ready_ms) if name == "readiness" else by_name[name]
                for name in _NODE_GROUPS[probe]
            ]
        report = _report(probe, info.id, built, excluded, ready_ms)
        if live.verdict is Verdict.BUS:  # nothing about the node is known: not even its UP
            report = replace(report, status=UNKNOWN)
        return report, flip

    def _liveness(self, info: NodeInfo) -> Liveness:
        live = self._model.current_liveness(info.id)
        assert live is not None
        return live

    def _node_checks(self, info: NodeInfo) -> dict[str, Check]:
        heartbeat = info.heartbeat
        node_state = None if heartbeat is None else heartbeat.node_state
        live = self._liveness(info)
        if not live.reachable and node_state not in CURITY_KEPT_STATES:
            node_state = CURITY_NODE_STATE
        checks = {"reachable": _reachable(live)}
        if heartbeat is None:
            checks["started"] = Check("started", DOWN, "no heartbeat yet")
        elif node_state == "BOOTING":
            checks["started"] = Check("started", DOWN, "nodeState BOOTING")
        else:
            checks["started"] = Check("started", UP, "heartbeat received")
        checks["nodeState"] = _node_state_check(node_state)
        checks["partitions"] = _node_partitions(info)
        return checks

    def _node_latch(self, info: NodeInfo, now_ms: int) -> int | None:
        since = self._node_ready_ms.get(info.id)
        booting = info.heartbeat is not None and info.heartbeat.node_state == "BOOTING"
        if since is not None and booting:
            del self._node_ready_ms[info.id]
            self._serial += 1
            since = None
        if since is None and not booting:
            checks = self._node_checks(info)
            if aggregate(checks[name].status for name in _NODE_GROUPS["ready"]) == UP:
                since = now_ms
                self._node_ready_ms[info.id] = now_ms
                self._serial += 1
        return since


def _cluster_names(probe: Probe, self_checks: Mapping[str, SelfCheck]) -> tuple[str, ...]:
    if probe == "startup":
        return tuple(n for n in (LISTENING,) if n in self_checks)
    if probe == "ready":
        return (*(n for n in (LISTENING, BUS_FRESH) if n in self_checks), "clusterAwareness")
    if probe == "live":
        names = [n for n in (LISTENING,) if n in self_checks]
        if EVENT_LOOP in self_checks:
            names.append("livenessResponsive")
        names.extend(("livenessClusterAwareness", "livenessPartitionLeaderAwareness"))
        return tuple(names)
    return ("readiness", *_self_names(self_checks), *_CLUSTER_CHECKS)


def _self_names(self_checks: Mapping[str, SelfCheck]) -> tuple[str, ...]:
    known = tuple(n for n in SELF_CHECKS if n in self_checks)
    return known + tuple(sorted(n for n in self_checks if n not in SELF_CHECKS))


def _self(self_checks: Mapping[str, SelfCheck], names: Iterable[str]) -> list[Check]:
    return [
        Check(name, self_checks[name].status, self_checks[name].reason)
        for name in names
        if name in self_checks
    ]


def _self_key(self_checks: Mapping[str, SelfCheck]) -> tuple[Any, ...]:
    return tuple(sorted(self_checks.items()))


def _validate_exclude(
    exclude: Sequence[str | bytes], names: tuple[str, ...], probe: Probe, node: str | None
) -> tuple[str, ...]:
    if not exclude:
        return ()
    wanted = tuple(dict.fromkeys(text_arg(name) for name in exclude))
    # A latched READY answers with its `readiness` check alone, so READY accepts that name.
    allowed = (*names, "readiness") if probe == "ready" else names
    unknown = [name for name in wanted if name not in allowed]
    if unknown:
        scope = f" NODE {echo(node)}" if node is not None else ""
        raise ApiError(
            f"unknown check '{echo(unknown[0])}' for HEALTH {probe.upper()}{scope}; "
            f"checks: {', '.join(names)}",
            kind="data-invalid",
        )
    return tuple(sorted(wanted))


def _report(
    probe: Probe,
    node: str | None,
    built: list[Check],
    excluded: tuple[str, ...],
    ready_ms: int | None,
) -> HealthReport:
    kept = tuple(check for check in built if check.name not in excluded)
    status = aggregate(check.status for check in kept)
    return HealthReport(probe, node, status, kept, excluded, ready_ms)


def _latched(probe: Probe, node: str | None, since_ms: int) -> HealthReport:
    check = Check("readiness", UP, f"ready since {since_ms}; once ready, never unready")
    return HealthReport(probe, node, UP, (check,), (), since_ms)


def _readiness(ready_ms: int | None) -> Check:
    if ready_ms is None:
        return Check("readiness", OUT_OF_SERVICE, "not ready yet")
    return Check("readiness", UP, f"ready since {ready_ms}")


def _delayed(
    name: str, base: Check, last_up_ms: int, window_ms: int, now_ms: int
) -> tuple[Check, int]:
    """Zeebe's DelayedHealthIndicator: UP while the underlying check was UP < window ago.

    UNKNOWN (nothing to judge, e.g. no partitions at all) passes through: it is no outage.
    """
    if base.status in (UP, UNKNOWN):
        return Check(name, base.status, base.reason), _FOREVER
    deadline = last_up_ms + window_ms
    down_s = max(0, now_ms - last_up_ms) // 1000
    if now_ms < deadline:
        reason = (
            f"{base.name} {base.status} for {down_s} s, within the {window_ms // 1000} s "
            f"grace window: {base.reason}"
        )
        return Check(name, UP, reason), deadline
    reason = (
        f"{base.name} {base.status} for {down_s} s, more than the {window_ms // 1000} s "
        f"grace window: {base.reason}"
    )
    return Check(name, base.status, reason), _FOREVER


def _reachable(live: Liveness) -> Check:
    if live.reachable:
        return Check("reachable", UP, live.reason)
    status = UNKNOWN if live.verdict is Verdict.BUS else DOWN
    return Check("reachable", status, f"{live.describe()} since {live.since_ms}")


_NODE_STATE: Final[Mapping[str, tuple[HealthStatus, str]]] = {
    "RUNNING": (UP, "RUNNING"),
    "WAITING": (UP, "WAITING: serving with its last configuration"),
    "BOOTING": (OUT_OF_SERVICE, "BOOTING"),
    "STOPPING": (OUT_OF_SERVICE, "STOPPING"),
    "ERROR": (DOWN, "ERROR"),
}


def _node_state_check(node_state: str | None) -> Check:
    if node_state is None:
        return Check("nodeState", UNKNOWN, "not reported")
    status, reason = _NODE_STATE[node_state]
    return Check("nodeState", status, reason)


def _node_partitions(info: NodeInfo) -> Check:
    parts = [] if info.heartbeat is None else info.heartbeat.partitions or []
    if not parts:
        return Check("partitions", UNKNOWN, "no partitions reported")
    dead = [p.id for p in parts if p.health == "dead"]
    sick = [p.id for p in parts if p.health != "healthy"]
    total = len(parts)
    if dead:
        return Check("partitions", DOWN, f"dead (needs intervention): {_list(dead)}")
    if len(sick) == total:
        return Check("partitions", DOWN, f"all {total} partitions unhealthy")
    if sick:
        return Check("partitions", DEGRADED, f"{len(sick)} of {total} unhealthy: {_list(sick)}")
    return Check("partitions", UP, f"all {total} partitions healthy")


def _list(items: Sequence[object], limit: int = 10) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"
