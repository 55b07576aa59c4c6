"""INFO: Redis's text conventions exactly (``# Section`` headers, ``field:value`` lines,
CRLF after every line, a blank line between sections), verbatim in RESP3.

Monitoring agents read these fields by name (redis_exporter maps them to metrics,
ioredis waits for ``loading:0``, ``redis-cli --stat`` reads ``connected_clients`` and
friends), so names and value formats follow Redis 7.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from resp import Reply, Verbatim

from ._context import CommandContext, MemoryStats

# Values are ints or already-formatted strings (floats are formatted where they arise).
Fields = list[tuple[str, int | str]]


def human_bytes(n: float) -> str:
    """Redis's bytesToHuman: ``1.50M``."""
    for unit in ("B", "K", "M", "G", "T", "P"):
        if n < 1024 or unit == "P":
            return f"{int(n)}B" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _server(ctx: CommandContext) -> Fields:
    ident = ctx.server.identity
    now_us = ctx.server.now_us()
    uptime = max(0, (now_us // 1000 - ident.started_ms) // 1000)
    return [
        ("redis_version", ident.redis_compat_version),
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0),
        ("redis_build_id", "0"),
        ("redis_mode", "standalone"),
        ("clusterwatch_version", ident.version),
        ("python_version", ident.python_version),
        ("event_loop", ident.event_loop),
        ("os", ident.os),
        ("arch_bits", ident.arch_bits),
        ("multiplexing_api", "epoll"),
        ("process_id", ctx.server.pid),
        ("process_supervised", "no"),
        ("run_id", ident.run_id),
        ("tcp_port", ident.tcp_port),
        ("server_time_usec", now_us),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("hz", 10),
        ("configured_hz", 10),
        ("executable", ident.executable),
        ("config_file", ident.config_file),
        ("io_threads_active", 0),
    ]


def _clients(ctx: CommandContext) -> Fields:
    largest_input, largest_output = ctx.server.recent_max_buffers
    return [
        ("connected_clients", ctx.server.connected_clients),
        ("cluster_connections", 0),
        ("maxclients", ctx.server.max_clients),
        ("client_recent_max_input_buffer", largest_input),
        ("client_recent_max_output_buffer", largest_output),
        ("blocked_clients", ctx.server.blocked_clients),
        ("tracking_clients", 0),
        ("clients_in_timeout_table", 0),
    ]


def _memory(ctx: CommandContext) -> Fields:
    return _memory_fields(ctx.server.memory_stats())


@functools.lru_cache(maxsize=1)
def _memory_fields(memory: MemoryStats) -> Fields:
    """Formatted once per sample (each housekeeping tick)."""
    rss, peak, total = memory.rss_bytes, memory.peak_rss_bytes, memory.total_system_memory
    return [
        ("used_memory", rss),
        ("used_memory_human", human_bytes(rss)),
        ("used_memory_rss", rss),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", peak),
        ("used_memory_peak_human", human_bytes(peak)),
        ("total_system_memory", total),
        ("total_system_memory_human", human_bytes(total)),
        ("maxmemory", 0),
        ("maxmemory_human", "0B"),
        ("maxmemory_policy", "noeviction"),
        ("mem_allocator", "pymalloc"),
    ]


def _persistence(ctx: CommandContext) -> Fields:
    return [
        ("loading", 0),
        ("async_loading", 0),
        ("rdb_changes_since_last_save", 0),
        ("rdb_bgsave_in_progress", 0),
        ("rdb_last_save_time", ctx.server.identity.started_ms // 1000),
        ("rdb_last_bgsave_status", "ok"),
        ("aof_enabled", 0),
        ("aof_rewrite_in_progress", 0),
        ("aof_rewrite_scheduled", 0),
        ("aof_last_write_status", "ok"),
    ]


def _stats(ctx: CommandContext) -> Fields:
    stats = ctx.server.stats
    ops, in_kbps, out_kbps = ctx.server.instantaneous()
    return [
        ("total_connections_received", stats.total_connections_received),
        ("total_commands_processed", stats.total_commands_processed),
        ("instantaneous_ops_per_sec", int(ops)),
        ("total_net_input_bytes", stats.total_net_input_bytes),
        ("total_net_output_bytes", stats.total_net_output_bytes),
        ("instantaneous_input_kbps", f"{in_kbps:.2f}"),
        ("instantaneous_output_kbps", f"{out_kbps:.2f}"),
        ("rejected_connections", stats.rejected_connections),
        ("expired_keys", 0),
        ("evicted_keys", 0),
        ("keyspace_hits", 0),
        ("keyspace_misses", 0),
        ("pubsub_channels", len(ctx.server.subscriptions.channels)),
        ("pubsub_patterns", len(ctx.server.subscriptions.patterns)),
        ("latest_fork_usec", 0),
        ("total_error_replies", stats.total_error_replies),
        ("unexpected_error_replies", stats.unexpected_error_replies),
        ("total_reads_processed", stats.total_reads_processed),
        ("total_writes_processed", stats.total_writes_processed),
        ("client_output_buffer_limit_disconnections", stats.client_output_buffer_disconnects),
        ("client_query_buffer_limit_disconnections", stats.protocol_errors),
    ]


def _replication(ctx: CommandContext) -> Fields:
    return [
        ("role", "master"),
        ("connected_slaves", 0),
        ("master_failover_state", "no-failover"),
        ("master_replid", ctx.server.identity.run_id),
        ("master_replid2", "0" * 40),
        ("master_repl_offset", 0),
        ("second_repl_offset", -1),
        ("repl_backlog_active", 0),
        ("repl_backlog_size", 0),
        ("repl_backlog_first_byte_offset", 0),
        ("repl_backlog_histlen", 0),
    ]


def _cpu(ctx: CommandContext) -> Fields:
    cpu = ctx.server.cpu_times()
    # clusterwatch never forks: its children's usage is zero by construction.
    return [
        ("used_cpu_sys", f"{cpu.sys:.6f}"),
        ("used_cpu_user", f"{cpu.user:.6f}"),
        ("used_cpu_sys_children", "0.000000"),
        ("used_cpu_user_children", "0.000000"),
        ("used_cpu_sys_main_thread", f"{cpu.sys_main_thread:.6f}"),
        ("used_cpu_user_main_thread", f"{cpu.user_main_thread:.6f}"),
    ]


def _commandstats(ctx: CommandContext) -> Fields:
    fields: Fields = []
    for name, stat in sorted(ctx.server.stats.commands.items()):
        if not (stat.calls or stat.rejected_calls or stat.failed_calls):
            continue
        per_call = stat.nsec / stat.calls / 1000 if stat.calls else 0.0
        fields.append((
            f"cmdstat_{name}",
            f"calls={stat.calls},usec={stat.usec},usec_per_call={per_call:.2f},"
            f"rejected_calls={stat.rejected_calls},failed_calls={stat.failed_calls}",
        ))
    return fields


def _errorstats(ctx: CommandContext) -> Fields:
    return [(f"errorstat_{prefix}", f"count={count}")
            for prefix, count in sorted(ctx.server.stats.errors.items())]


def _cluster(ctx: CommandContext) -> Fields:
    """``cluster_enabled:1`` makes redis_exporter send CLUSTER INFO and ``redis-cli
    --cluster`` accept the server. The ``cluster_*`` figures live in CLUSTER INFO only
    (the exporter drops a metric it sees twice); clusterwatch's own fields follow."""
    server = ctx.server
    model = server.model
    model.refresh(server.model_now_ms())
    applied, stale, rejected = model.message_totals()
    return [
        ("cluster_enabled", 1),
        ("clusterwatch_myid", server.myid),
        ("clusterwatch_bus", server.bus_name),
        ("clusterwatch_nodes_known", model.node_count),
        ("clusterwatch_model_version", model.version),
        ("clusterwatch_bus_messages_received", server.bus_received),
        ("clusterwatch_bus_messages_applied", applied),
        ("clusterwatch_bus_messages_stale", stale),
        ("clusterwatch_bus_messages_rejected", rejected),
        *((f"clusterwatch_{name}", value) for name, value in server.bus_info()),
    ]


def _keyspace(ctx: CommandContext) -> Fields:
    return []


Section = Callable[[CommandContext], Fields]

# Redis's names and order. "default" is every section but the ones marked False.
SECTIONS: tuple[tuple[str, Section, bool], ...] = (
    ("server", _server, True),
    ("clients", _clients, True),
    ("memory", _memory, True),
    ("persistence", _persistence, True),
    ("stats", _stats, True),
    ("replication", _replication, True),
    ("cpu", _cpu, True),
    ("commandstats", _commandstats, False),
    ("errorstats", _errorstats, True),
    ("cluster", _cluster, True),
    ("keyspace", _keyspace, True),
)
_TITLES = {name: name.capitalize() for name, _, _ in SECTIONS}
_TITLES["cpu"] = "CPU"
_KEYS = {name: f"info|{name}" for name, _, _ in SECTIONS}
# Sections whose text depends only on the server's identity (fixed once it listens).
_STATIC = frozenset({"persistence", "replication", "keyspace"})
# The server section's only fields that change while the process runs.
_SERVER_CLOCK = ("server_time_usec", "uptime_in_seconds", "uptime_in_days")


def _lines(fields: Fields) -> str:
    return "".join([f"{k}:{v}\r\n" for k, v in fields])


def _section_text(ctx: CommandContext, name: str, section: Section) -> str:
    """A section's text, formatted again only when one of its fields changed. Static
    sections are rendered once per identity; the server section keeps its fixed lines
    and renders only its clock lines, at their place."""
    cache = ctx.server.reply_cache
    key = _KEYS[name]
    if name in _STATIC or name == "server":
        return _identity_part(ctx, name, section, key)
    fields = section(ctx)
    entry = cache.get(key)
    if entry is None or entry[0] != fields:
        entry = (fields, _lines(fields))
        cache[key] = entry
    return str(entry[1])


def _identity_part(ctx: CommandContext, name: str, section: Section, key: str) -> str:
    cache = ctx.server.reply_cache
    entry = cache.get(key)
    identity = ctx.server.identity
    if entry is None or entry[0] is not identity:
        fields = section(ctx)
        if name == "server":
            at = [k for k, _ in fields].index(_SERVER_CLOCK[0])
            assert tuple(k for k, _ in fields[at:at + 3]) == _SERVER_CLOCK
            entry = (identity, _lines(fields[:at]), _lines(fields[at + 3:]))
        else:
            entry = (identity, _lines(fields), "")
        cache[key] = entry
    if name != "server":
        return str(entry[1])
    now_us = ctx.server.now_us()
    uptime = max(0, (now_us // 1000 - identity.started_ms) // 1000)
    return (f"{entry[1]}server_time_usec:{now_us}\r\nuptime_in_seconds:{uptime}\r\n"
            f"uptime_in_days:{uptime // 86400}\r\n{entry[2]}")


@functools.lru_cache(maxsize=64)
def _chosen(wanted: tuple[str, ...]) -> tuple[tuple[str, str, Section], ...]:
    """Each chosen section's name, heading and function, in Redis's order."""
    names = set(wanted) if wanted else {"default"}
    everything = bool(names & {"all", "everything"})
    default = "default" in names
    return tuple((name, f"# {_TITLES[name]}\r\n", section)
                 for name, section, in_default in SECTIONS
                 if everything or name in names or (default and in_default))


def render(ctx: CommandContext, wanted: Sequence[str]) -> str:
    """The INFO text for the requested section names (lower case)."""
    return "\r\n".join([heading + _section_text(ctx, name, section)
                          for name, heading, section in _chosen(tuple(wanted))])


def info(ctx: CommandContext, argv: Sequence[bytes]) -> Reply:
    wanted = [raw.decode("utf-8", "replace").lower() for raw in argv[1:]]
    return Verbatim(render(ctx, wanted))
