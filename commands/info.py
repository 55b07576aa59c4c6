"""INFO: Redis's text conventions exactly (``# Section`` headers, ``field:value`` lines,
CRLF after every line, a blank line between sections), verbatim in RESP3.

Monitoring agents read these fields by name (redis_exporter maps them to metrics,
ioredis waits for ``loading:0``, ``redis-cli --stat`` reads ``connected_clients`` and
friends), so names and value formats follow Redis 7.

redis_exporter sends INFO on every scrape, so its price matters. Most sections have a
fixed shape: the same lines in the same order, some values fixed for the life of the
server's identity and a few read at every call. For each choice of sections the fixed
text is rendered once into a %-template (``Plan``); a call reads the live values and
formats them in one step. Sections whose lines come and go (per command, per error, per
bus) are rendered as text and cached until one of their fields changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from clusterwatch.resp import Reply, Verbatim

from ._context import MemoryStats, ServerView
from ._spec import CommandContext

# Values are ints or already-formatted strings (floats are formatted where they arise).
Fields = list[tuple[str, int | str]]


class Live:
    """A value read at every call, formatted with ``fmt`` (a %-conversion)."""

    __slots__ = ("fmt",)

    def __init__(self, fmt: str = "%d") -> None:
        self.fmt = fmt


LIVE = Live()
LIVE_TEXT = Live("%s")

# A value fixed for the life of the server's identity (it changes once, when it listens).
Fixed = Callable[[ServerView], int | str]
Value = int | str | Live | Fixed


Lines = Callable[[ServerView], Fields]


@dataclass(frozen=True)
class Section:
    """``fields`` are lines that never change in number or order; ``live`` returns the
    values of the ``Live`` ones, in their order. ``tail`` gives the lines that come and
    go (one per command, per error, per bus figure), rendered after them."""

    fields: tuple[tuple[str, Value], ...] = ()
    live: Callable[[ServerView], tuple[Any, ...]] = lambda server: ()
    tail: Lines | None = None


def human_bytes(n: float) -> str:
    """Redis's bytesToHuman: ``1.50M``."""
    for unit in ("B", "K", "M", "G", "T", "P"):
        if n < 1024 or unit == "P":
            return f"{int(n)}B" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _server_clock(server: ServerView) -> tuple[int, int, int]:
    now_us = server.now_us()
    uptime = max(0, (now_us // 1000 - server.identity.started_ms) // 1000)
    return now_us, uptime, uptime // 86400


_SERVER = Section((
    ("redis_version", lambda s: s.identity.redis_compat_version),
    ("redis_git_sha1", "00000000"),
    ("redis_git_dirty", 0),
    ("redis_build_id", "0"),
    ("redis_mode", "standalone"),
    ("clusterwatch_version", lambda s: s.identity.version),
    ("python_version", lambda s: s.identity.python_version),
    ("event_loop", lambda s: s.identity.event_loop),
    ("os", lambda s: s.identity.os),
    ("arch_bits", lambda s: s.identity.arch_bits),
    ("multiplexing_api", "epoll"),
    ("process_id", lambda s: s.pid),
    ("process_supervised", "no"),
    ("run_id", lambda s: s.identity.run_id),
    ("tcp_port", lambda s: s.identity.tcp_port),
    ("server_time_usec", LIVE),
    ("uptime_in_seconds", LIVE),
    ("uptime_in_days", LIVE),
    ("hz", 10),
    ("configured_hz", 10),
    ("executable", lambda s: s.identity.executable),
    ("config_file", lambda s: s.identity.config_file),
    ("io_threads_active", 0),
), _server_clock)


def _clients_live(server: ServerView) -> tuple[int, int, int, int]:
    largest_input, largest_output = server.recent_max_buffers
    return server.connected_clients, largest_input, largest_output, server.blocked_clients


_CLIENTS = Section((
    ("connected_clients", LIVE),
    ("cluster_connections", 0),
    ("maxclients", lambda s: s.max_clients),
    ("client_recent_max_input_buffer", LIVE),
    ("client_recent_max_output_buffer", LIVE),
    ("blocked_clients", LIVE),
    ("tracking_clients", 0),
    ("clients_in_timeout_table", 0),
), _clients_live)


@functools.lru_cache(maxsize=1)
def _memory_values(memory: MemoryStats) -> tuple[int | str, ...]:
    """Formatted once per sample (each housekeeping tick)."""
    rss, peak, total = memory.rss_bytes, memory.peak_rss_bytes, memory.total_system_memory
    return (rss, human_bytes(rss), rss, human_bytes(rss), peak, human_bytes(peak),
            total, human_bytes(total))


_MEMORY = Section((
    ("used_memory", LIVE),
    ("used_memory_human", LIVE_TEXT),
    ("used_memory_rss", LIVE),
    ("used_memory_rss_human", LIVE_TEXT),
    ("used_memory_peak", LIVE),
    ("used_memory_peak_human", LIVE_TEXT),
    ("total_system_memory", LIVE),
    ("total_system_memory_human", LIVE_TEXT),
    ("maxmemory", 0),
    ("maxmemory_human", "0B"),
    ("maxmemory_policy", "noeviction"),
    ("mem_allocator", "pymalloc"),
), lambda server: _memory_values(server.memory_stats()))

_PERSISTENCE = Section((
    ("loading", 0),
    ("async_loading", 0),
    ("rdb_changes_since_last_save", 0),
    ("rdb_bgsave_in_progress", 0),
    ("rdb_last_save_time", lambda s: s.identity.started_ms // 1000),
    ("rdb_last_bgsave_status", "ok"),
    ("aof_enabled", 0),
    ("aof_rewrite_in_progress", 0),
    ("aof_rewrite_scheduled", 0),
    ("aof_last_write_status", "ok"),
))


def _stats_live(server: ServerView) -> tuple[int | float, ...]:
    stats = server.stats
    ops, in_kbps, out_kbps = server.instantaneous()
    return (stats.total_connections_received, stats.total_commands_processed, int(ops),
            stats.total_net_input_bytes, stats.total_net_output_bytes, in_kbps, out_kbps,
            stats.rejected_connections, len(server.subscriptions.channels),
            len(server.subscriptions.patterns), stats.total_error_replies,
            stats.unexpected_error_replies, stats.total_reads_processed,
            stats.total_writes_processed, stats.client_output_buffer_disconnects,
            stats.protocol_errors)


_STATS = Section((
    ("total_connections_received", LIVE),
    ("total_commands_processed", LIVE),
    ("instantaneous_ops_per_sec", LIVE),
    ("total_net_input_bytes", LIVE),
    ("total_net_output_bytes", LIVE),
    ("instantaneous_input_kbps", Live("%.2f")),
    ("instantaneous_output_kbps", Live("%.2f")),
    ("rejected_connections", LIVE),
    ("expired_keys", 0),
    ("evicted_keys", 0),
    ("keyspace_hits", 0),
    ("keyspace_misses", 0),
    ("pubsub_channels", LIVE),
    ("pubsub_patterns", LIVE),
    ("latest_fork_usec", 0),
    ("total_error_replies", LIVE),
    ("unexpected_error_replies", LIVE),
    ("total_reads_processed", LIVE),
    ("total_writes_processed", LIVE),
    ("client_output_buffer_limit_disconnections", LIVE),
    ("client_query_buffer_limit_disconnections", LIVE),
), _stats_live)

_REPLICATION = Section((
    ("role", "master"),
    ("connected_slaves", 0),
    ("master_failover_state", "no-failover"),
    ("master_replid", lambda s: s.identity.run_id),
    ("master_replid2", "0" * 40),
    ("master_repl_offset", 0),
    ("second_repl_offset", -1),
    ("repl_backlog_active", 0),
    ("repl_backlog_size", 0),
    ("repl_backlog_first_byte_offset", 0),
    ("repl_backlog_histlen", 0),
))

# clusterwatch never forks: its children's usage is zero by construction.
_CPU = Section((
    ("used_cpu_sys", Live("%.6f")),
    ("used_cpu_user", Live("%.6f")),
    ("used_cpu_sys_children", "0.000000"),
    ("used_cpu_user_children", "0.000000"),
    ("used_cpu_sys_main_thread", Live("%.6f")),
    ("used_cpu_user_main_thread", Live("%.6f")),
), lambda server: server.cpu_times())


def _commandstats(server: ServerView) -> Fields:
    fields: Fields = []
    for name, stat in sorted(server.stats.commands.items()):
        if not (stat.calls or stat.rejected_calls or stat.failed_calls):
            continue
        per_call = stat.nsec / stat.calls / 1000 if stat.calls else 0.0
        fields.append((
            f"cmdstat_{name}",
            f"calls={stat.calls},usec={stat.usec},usec_per_call={per_call:.2f},"
            f"rejected_calls={stat.rejected_calls},failed_calls={stat.failed_calls}",
        ))
    return fields


def _errorstats(server: ServerView) -> Fields:
    return [(f"errorstat_{prefix}", f"count={count}")
            for prefix, count in sorted(server.stats.errors.items())]


def _cluster_live(server: ServerView) -> tuple[int, ...]:
    model = server.model
    model.refresh(server.model_now_ms())
    return (model.node_count, model.version, server.bus_received, *model.message_totals())


def _bus_fields(server: ServerView) -> Fields:
    return [(f"clusterwatch_{name}", value) for name, value in server.bus_info()]


# ``cluster_enabled:1`` makes redis_exporter send CLUSTER INFO and ``redis-cli --cluster``
# accept the server. The ``cluster_*`` figures live in CLUSTER INFO only (the exporter
# drops a metric it sees twice); clusterwatch's own fields follow.
_CLUSTER = Section((
    ("cluster_enabled", 1),
    ("clusterwatch_myid", lambda s: s.myid),
    ("clusterwatch_bus", lambda s: s.bus_name),
    ("clusterwatch_nodes_known", LIVE),
    ("clusterwatch_model_version", LIVE),
    ("clusterwatch_bus_messages_received", LIVE),
    ("clusterwatch_bus_messages_applied", LIVE),
    ("clusterwatch_bus_messages_stale", LIVE),
    ("clusterwatch_bus_messages_rejected", LIVE),
), _cluster_live, _bus_fields)

# Redis's names and order. "default" is every section but the ones marked False.
SECTIONS: tuple[tuple[str, Section, bool], ...] = (
    ("server", _SERVER, True),
    ("clients", _CLIENTS, True),
    ("memory", _MEMORY, True),
    ("persistence", _PERSISTENCE, True),
    ("stats", _STATS, True),
    ("replication", _REPLICATION, True),
    ("cpu", _CPU, True),
    ("commandstats", Section(tail=_commandstats), False),
    ("errorstats", Section(tail=_errorstats), True),
    ("cluster", _CLUSTER, True),
    ("keyspace", Section(), True),
)
_TITLES = {name: name.capitalize() for name, _, _ in SECTIONS}
_TITLES["cpu"] = "CPU"


def fields(server: ServerView, section: Section) -> Fields:
    """A section's lines one by one: what its template renders, spelled out."""
    values = section.live(server)
    if len(values) != sum(isinstance(value, Live) for _, value in section.fields):
        raise ValueError(f"{len(values)} live values for {section.fields}")
    live: Iterator[Any] = iter(values)
    lines: Fields = [(key, (value.fmt % next(live)) if isinstance(value, Live)
                      else value(server) if callable(value) else value)
                     for key, value in section.fields]
    return lines + section.tail(server) if section.tail else lines


def _lines(fields: Fields) -> str:
    return "".join([f"{k}:{v}\r\n" for k, v in fields])


Source = Callable[[ServerView], tuple[Any, ...]]


@dataclass(frozen=True)
class Plan:
    """INFO for one choice of sections: the text with a %-conversion for each live value
    and for each tail's text, and where those values come from, in order."""

    template: str
    sources: tuple[Source, ...]


def _plan(server: ServerView, names: tuple[str, ...]) -> Plan:
    texts: list[str] = []
    sources: list[Source] = []
    for name, section in _chosen(names):
        text = f"# {_TITLES[name]}\r\n"
        for key, value in section.fields:
            if isinstance(value, Live):
                text += f"{key}:{value.fmt}\r\n"
            else:
                fixed = value(server) if callable(value) else value
                text += f"{key}:{fixed}\r\n".replace("%", "%%")
        if any(isinstance(value, Live) for _, value in section.fields):
            sources.append(section.live)
        if section.tail:
            text += "%s"
            sources.append(functools.partial(_tail_text, key="info|" + name,
                                             tail=section.tail))
        texts.append(text)
    return Plan("\r\n".join(texts), tuple(sources))


@functools.lru_cache(maxsize=64)
def _chosen(wanted: tuple[str, ...]) -> tuple[tuple[str, Section], ...]:
    """The chosen sections' names and specs, in Redis's order."""
    names = set(wanted) if wanted else {"default"}
    everything = bool(names & {"all", "everything"})
    default = "default" in names
    return tuple((name, section) for name, section, in_default in SECTIONS
                 if everything or name in names or (default and in_default))


def _tail_text(server: ServerView, key: str, tail: Lines) -> tuple[str]:
    """A tail's text, formatted again only when one of its lines changed."""
    current = tail(server)
    entry = server.reply_cache.get(key)
    if entry is None or entry[0] != current:
        entry = server.reply_cache[key] = (current, _lines(current))
    return entry[1],


def _render(server: ServerView, key: tuple[Any, ...], names: Callable[[], tuple[str, ...]]
            ) -> str:
    plans: dict[tuple[Any, ...], tuple[object, Plan]] = server.reply_cache.setdefault(
        "info|plans", {})
    cached = plans.get(key)
    if cached is None or cached[0] is not server.identity:
        if len(plans) >= 64:
            plans.clear()
        cached = plans[key] = (server.identity, _plan(server, names()))
    values: list[Any] = []
    for source in cached[1].sources:
        values += source(server)
    return cached[1].template % tuple(values)


def render(ctx: CommandContext, wanted: Sequence[str]) -> str:
    """The INFO text for the requested section names (lower case)."""
    names = tuple(wanted)
    return _render(ctx.server, names, lambda: names)


def info(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    raw = tuple(argv[1:])
    return Verbatim(_render(ctx.server, raw, lambda: tuple(
        arg.decode("utf-8", "replace").lower() for arg in raw)))
