"""Prometheus metrics for ``GET /metrics`` on the HTTP port (README "Metrics" lists them).

One collector reads the server's live objects at each scrape, at the model clock and after
``model.refresh`` as the RESP commands do, so a scrape shows what CLUSTER INFO, BUS INFO,
HEALTH, STATUS SERVICES and INFO commandstats show at the same moment; nothing is copied
or sampled in between. prometheus-client renders the text format.

Cardinality is bounded by what the server already holds: per-node series (five per
node) by the model's node table, per-command series by the command table, everything
else by fixed label sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Final, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from clusterwatch.cluster import (
    MESSAGE_TYPES,
    ClusterModel,
    ClusterSummary,
    Counters,
    HealthTracker,
    NodeState,
    SelfCheck,
    ServiceStatusView,
)
from clusterwatch.cluster.health import PROBES, STATUSES
from clusterwatch.cluster.services import SERVICE_STATES
from clusterwatch.commands import LATENCY_BOUNDS_NS, Stats
from clusterwatch.commands.bus import REJECT_REASONS

from .httpconn import HttpConnections

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_PREFIX: Final = "clusterwatch_"
_ROLES: Final = ("master", "replica")
_NODE_LABELS: Final = ("node", "addr", "role")
_LE: Final = (*(str(bound / 1e9) for bound in LATENCY_BOUNDS_NS), "+Inf")


class HttpPort(Protocol):
    @property
    def connections(self) -> HttpConnections | None:
        """None without --http-port."""
        ...


class MetricsSource(Protocol):
    """What a scrape reads of the server (``app.Server`` implements it)."""

    @property
    def model(self) -> ClusterModel: ...

    @property
    def health(self) -> HealthTracker: ...

    @property
    def services(self) -> ServiceStatusView: ...

    @property
    def self_checks(self) -> Mapping[str, SelfCheck]: ...

    @property
    def stats(self) -> Stats: ...

    @property
    def bus_received(self) -> int: ...

    @property
    def connected_clients(self) -> int: ...

    @property
    def blocked_clients(self) -> int: ...

    @property
    def loop_lag_ms(self) -> float: ...

    @property
    def http(self) -> HttpPort: ...

    def model_now_ms(self) -> int: ...


class Metrics:
    """The `/metrics` registry of one server: its own collector and the process metrics."""

    def __init__(self, server: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ServerCollector(server))
        ProcessCollector(registry=self.registry)

    def scrape(self) -> bytes:
        """The text exposition of every metric, collected now."""
        return generate_latest(self.registry)


class ServerCollector(Collector):
    """clusterwatch's metrics, read from the server at each `collect`."""

    def __init__(self, server: MetricsSource) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        server = self._server
        model = server.model
        now_ms = server.model_now_ms()
        yield from _cluster(model.summary(now_ms), model.version)
        yield from _nodes(model, now_ms)
        yield from _probes(server, now_ms)
        yield from _services(server, now_ms)
        yield from _bus(model.counters(), server.bus_received)
        yield from _clients(server)
        yield from _commands(server.stats)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(_PREFIX + name, documentation, value=value)


def _cluster(summary: ClusterSummary, index: int) -> Iterator[Metric]:
    yield _gauge("cluster_state", "1 when CLUSTER INFO's cluster_state is ok, 0 when fail.",
                 1 if summary.state == "ok" else 0)
    slots = GaugeMetricFamily(
        _PREFIX + "cluster_slots",
        "Slots by state, as CLUSTER INFO's cluster_slots_*: assigned is ok + pfail + fail "
        "(do not sum over state).", labels=["state"])
    for state, value in (("assigned", summary.slots_assigned), ("ok", summary.slots_ok),
                         ("pfail", summary.slots_pfail), ("fail", summary.slots_fail)):
        slots.add_metric([state], value)
    yield slots
    yield _gauge("cluster_known_nodes", "Nodes the model knows (cluster_known_nodes).",
                 summary.known_nodes)
    yield _gauge("cluster_size", "Masters serving at least one slot (cluster_size).",
                 summary.size)
    yield _gauge("cluster_current_epoch", "The highest epoch seen (cluster_current_epoch).",
                 summary.current_epoch)
    yield _gauge("model_index", "The model index (BUS INFO model_version, the "
                 "X-Clusterwatch-Index header): rises with every change.", index)


def _nodes(model: ClusterModel, now_ms: int) -> Iterator[Metric]:
    model.refresh(now_ms)
    by_state_role = GaugeMetricFamily(_PREFIX + "cluster_nodes",
                                      "Known nodes by failure state and effective role.",
                                      labels=["state", "role"])
    up = GaugeMetricFamily(_PREFIX + "node_up", "1 when the model's verdict on the node is "
                           "reachable, else 0 (fail?, stale, fail, bus not fresh).",
                           labels=_NODE_LABELS)
    verdict = GaugeMetricFamily(_PREFIX + "node_verdict",
                                "1, labelled with the model's one liveness verdict on the node "
                                "(reachable, pfail, stale, fail, bus).",
                                labels=[*_NODE_LABELS, "verdict"])
    pfail = GaugeMetricFamily(_PREFIX + "node_pfail",
                              "1 when the node is pfail (silent past the node timeout).",
                              labels=_NODE_LABELS)
    fail = GaugeMetricFamily(_PREFIX + "node_fail", "1 when the node is fail.",
                             labels=_NODE_LABELS)
    age = GaugeMetricFamily(_PREFIX + "node_last_seen_age_seconds",
                            "Seconds since the node's last applied message.",
                            labels=_NODE_LABELS)
    epoch = GaugeMetricFamily(_PREFIX + "node_config_epoch", "The node's config epoch.",
                              labels=_NODE_LABELS)
    counts: Counter[tuple[str, str]] = Counter()
    for node in model.nodes():
        labels = [node.id, node.addr or "", node.role]
        counts[node.state, node.role] += 1
        live = model.current_liveness(node.id)
        word = "left" if live is None else live.verdict.value
        up.add_metric(labels, 1 if word == "reachable" else 0)
        verdict.add_metric([*labels, word], 1)
        pfail.add_metric(labels, 1 if node.state is NodeState.PFAIL else 0)
        fail.add_metric(labels, 1 if node.state is NodeState.FAIL else 0)
        age.add_metric(labels, max(0, now_ms - node.last_seen_ms) / 1000)
        epoch.add_metric(labels, node.config_epoch)
    for state in NodeState:
        for role in _ROLES:
            by_state_role.add_metric([state.value, role], counts[state, role])
    yield from (by_state_role, up, verdict, pfail, fail, age, epoch)


def _probes(server: MetricsSource, now_ms: int) -> Iterator[Metric]:
    family = GaugeMetricFamily(_PREFIX + "probe_status",
                               "1 for the probe's current status (HEALTH <probe>), 0 for the "
                               "others.", labels=["probe", "status"])
    for probe in PROBES:
        current = server.health.evaluate(now_ms, probe, self_checks=server.self_checks).status
        for status in STATUSES:
            family.add_metric([probe, status], 1 if status == current else 0)
    yield family


def _services(server: MetricsSource, now_ms: int) -> Iterator[Metric]:
    report = server.services.services(now_ms)
    states = Counter(entry.state for entry in report.entries)
    family = GaugeMetricFamily(_PREFIX + "services",
                               "Service instances (node/service) by state, as STATUS SERVICES "
                               "reports them at its default level.", labels=["state"])
    for state in SERVICE_STATES:
        family.add_metric([state], states[state])
    yield family


def _bus(counters: Counters, messages: int) -> Iterator[Metric]:
    yield CounterMetricFamily(_PREFIX + "bus_messages",
                              "Node messages this instance took from its bus, whatever their "
                              "outcome (BUS INFO messages).", value=messages)
    received = CounterMetricFamily(_PREFIX + "bus_messages_received",
                                   "Valid node messages by type, applied or stale (BUS INFO "
                                   "received).", labels=["type"])
    for kind in MESSAGE_TYPES:
        received.add_metric([kind], counters.received.get(kind, 0))
    yield received
    yield CounterMetricFamily(_PREFIX + "bus_messages_applied",
                              "Node messages applied to the model.", value=counters.applied)
    yield CounterMetricFamily(_PREFIX + "bus_messages_stale",
                              "Node messages at or below their node's last (epoch, seq).",
                              value=counters.stale)
    rejected = CounterMetricFamily(_PREFIX + "bus_messages_rejected",
                                   "Invalid node messages by reason (BUS INFO "
                                   "rejected_by_reason).", labels=["reason"])
    for reason, count in _with_zeros(REJECT_REASONS, counters.rejected).items():
        rejected.add_metric([reason], count)
    yield rejected


def _with_zeros(names: Iterable[str], counts: Mapping[str, int]) -> dict[str, int]:
    found = dict.fromkeys(names, 0)
    found.update(counts)
    return found


def _clients(server: MetricsSource) -> Iterator[Metric]:
    yield _gauge("connected_clients", "Client connections (INFO connected_clients).",
                 server.connected_clients)
    yield _gauge("blocked_clients", "Clients waiting for a blocked reply (INFO "
                 "blocked_clients).", server.blocked_clients)
    yield _gauge("event_loop_lag_seconds", "How late the last 10 Hz housekeeping tick ran.",
                 server.loop_lag_ms / 1000)
    http = server.http.connections  # None without --http-port: no HTTP connections
    yield _gauge("http_connections", "Open HTTP connections, idle or long-polling "
                 "(at most http-max-clients).", http.open if http else 0)
    yield CounterMetricFamily(_PREFIX + "http_rejected_connections", "HTTP connections "
                              "refused past http-max-clients (also in INFO "
                              "rejected_connections).", value=http.refused if http else 0)


def _commands(stats: Stats) -> Iterator[Metric]:
    calls = CounterMetricFamily(_PREFIX + "commands", "Calls by command (INFO commandstats "
                                "calls).", labels=["command"])
    failed = CounterMetricFamily(_PREFIX + "commands_failed", "Calls that returned an error, "
                                 "by command (failed_calls).", labels=["command"])
    rejected = CounterMetricFamily(_PREFIX + "commands_rejected", "Calls refused before they "
                                   "ran, by command (rejected_calls).", labels=["command"])
    duration = HistogramMetricFamily(
        _PREFIX + "command_duration_seconds",
        "Command latency; pipelined calls of one FAST command count at their average.",
        labels=["command"])
    for name, stat in sorted(stats.commands.items()):
        if not (stat.calls or stat.rejected_calls or stat.failed_calls):
            continue
        calls.add_metric([name], stat.calls)
        failed.add_metric([name], stat.failed_calls)
        rejected.add_metric([name], stat.rejected_calls)
        cumulative = accumulate(stat.latency_counts())
        duration.add_metric([name], list(zip(_LE, cumulative, strict=True)),
                            sum_value=stat.nsec / 1e9)
    yield from (calls, failed, rejected, duration)
