"""Server configuration: defaults, then a TOML file, then ``CLUSTERWATCH_*`` environment
variables, then command-line flags; each later source wins. Validated once, frozen."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from resp import ReaderLimits

ENV_PREFIX = "CLUSTERWATCH_"


class ConfigError(ValueError):
    """A setting is unknown or its value is invalid; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    bind: str = "127.0.0.1"
    port: int = 7379
    # The HTTP mirror of the status APIs (server/http.py) on the same bind; 0 is off.
    http_port: int = 0
    unix_socket: str = ""
    # TLS (server/tls.py), Redis's names: a TLS port beside the plain one (0 is off).
    tls_port: int = 0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_cert_file: str = ""
    # Client certificates: yes (required), optional (verified if presented), no.
    tls_auth_clients: str = "yes"
    # Space-separated, e.g. "TLSv1.2 TLSv1.3"; empty is Redis's default, TLSv1.2 and 1.3.
    tls_protocols: str = ""
    # Serve http_port as HTTPS with the same certificate and key.
    tls_http: bool = False
    unix_socket_perm: int = 0o700
    # The default user's password; more users come from aclfile or ACL SETUSER.
    requirepass: str = ""
    # Redis's users.acl file: read at start (a bad line stops the start) and by ACL LOAD,
    # written by ACL SAVE.
    aclfile: str = ""
    acllog_max_len: int = 128
    # With no password for the default user, refuse clients not on 127.0.0.1, ::1 or the
    # Unix socket (Redis's protected-mode).
    protected_mode: bool = True
    max_clients: int = 10_000
    # HTTP connections (idle or long-polling) open at once on http_port; past it a new one
    # gets a 503. With max_clients it is lowered to fit RLIMIT_NOFILE (server/fdlimit.py).
    http_max_clients: int = 1_000
    # Seconds a client may stay idle before it is closed; 0 disables (Redis `timeout`).
    timeout: int = 0
    max_inline_size: int = ReaderLimits().max_inline_size
    max_bulk_length: int = ReaderLimits().max_bulk_length
    max_multibulk_length: int = ReaderLimits().max_multibulk_length
    max_query_buffer: int = ReaderLimits().max_query_buffer
    # Bytes queued for a client past which it is disconnected (Redis
    # client-output-buffer-limit; replies to a client that stops reading pile up here).
    output_buffer_limit: int = 32 * 1024 * 1024
    # Redis's soft limit for normal clients: more than soft_limit bytes queued for
    # soft_seconds disconnects the client (0 is off, Redis's default for normal clients).
    output_buffer_soft_limit: int = 0
    output_buffer_soft_seconds: int = 0
    # Redis's client-output-buffer-limit pubsub: a subscriber with more than the hard
    # limit queued, or more than the soft limit for soft_seconds, is disconnected.
    pubsub_hard_limit: int = 32 * 1024 * 1024
    pubsub_soft_limit: int = 8 * 1024 * 1024
    pubsub_soft_seconds: int = 60
    # Transitions BUS JOURNAL keeps (the pub/sub messages, with their model index).
    journal_size: int = 10_000
    # Transport write-buffer watermarks: above high, stop reading from that client.
    write_buffer_high: int = 256 * 1024
    write_buffer_low: int = 64 * 1024
    slowlog_log_slower_than: int = 10_000
    slowlog_max_len: int = 128
    latency_monitor_threshold: int = 10
    shutdown_timeout: float = 5.0
    event_loop: str = "auto"
    log_level: str = "info"
    log_format: str = "text"
    config_file: str = ""
    # The cluster model. Times in milliseconds: a node silent for node_timeout is pfail
    # (Redis cluster-node-timeout); a pfail node is fail after fail_after without a quorum
    # of failure reports (0: twice node_timeout).
    node_timeout: int = 15_000
    # HEALTH LIVE grace windows (ms), Zeebe's defaults: how long the event loop, and the
    # cluster and partition-leader awareness, may be down before liveness fails.
    health_responsive_grace: int = 600_000
    health_awareness_grace: int = 300_000
    fail_after: int = 0
    # Which rule turns a pfail node fail (cluster/merge.py rule 5): "redis" (only a majority
    # of slot-serving masters reporting it), "timer" (that, or fail_after), or "auto": timer
    # until the bus carries the first fail_report, redis from then on.
    fail_rule: str = "auto"
    require_full_coverage: bool = True
    # The node table's bound: a message from one node more is rejected (max_nodes). Nodes
    # silent for forget_after ms are forgotten as CLUSTER FORGET would (0: never).
    max_nodes: int = 10_000
    forget_after: int = 3_600_000
    # Bytes; a larger node message is rejected (too_large) before decoding.
    max_message_size: int = 65_536
    # CLUSTER MYID: 40 lowercase hex digits. Empty derives a stable id from the hostname
    # and the listening port: sha1("clusterwatch:<hostname>:<port>").
    myid: str = ""
    # Feed the embedded bus from an in-process simulated cluster (3 masters, 3 replicas).
    demo: bool = False
    # The bus: "memory" (embedded), or a Redis Stream shared by several instances:
    # redis://[user:pass@]host:port[/db], rediss://..., or
    # redis+sentinel://host:26379[,host2:26379]/<master-name>[/db].
    bus: str = "memory"
    bus_stream: str = "clusterwatch:bus"
    # Retention: XADD ... MAXLEN ~ bus_maxlen, or MINID ~ (now - bus_retention_ms); 0 is off.
    bus_maxlen: int = 0
    bus_retention_ms: int = 0
    # ms BUS PUBLISH waits for its messages to be appended and applied here.
    bus_publish_timeout: int = 2_000
    # ms between compacted snapshots (<stream>:snapshot) written by each instance.
    bus_snapshot_interval: int = 10_000
    # Replicas that must acknowledge an append (Redis WAIT) before BUS PUBLISH answers.
    bus_wait_replicas: int = 0

    def __post_init__(self) -> None:
        positive = ("max_clients", "max_inline_size", "max_bulk_length", "max_multibulk_length",
                    "max_query_buffer", "output_buffer_limit", "write_buffer_high",
                    "slowlog_max_len", "node_timeout", "max_message_size", "acllog_max_len",
                    "journal_size", "max_nodes", "http_max_clients")
        if self.health_responsive_grace < 0 or self.health_awareness_grace < 0:
            raise ConfigError("health grace windows must not be negative")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError("http_port must be between 0 and 65535")
        if min(self.pubsub_hard_limit, self.pubsub_soft_limit, self.pubsub_soft_seconds) < 0:
            raise ConfigError("pubsub limits must not be negative (0 is no limit)")
        if min(self.output_buffer_soft_limit, self.output_buffer_soft_seconds) < 0:
            raise ConfigError("output buffer soft limits must not be negative (0 is off)")
        if self.timeout < 0 or self.latency_monitor_threshold < 0:
            raise ConfigError("timeout and latency_monitor_threshold must not be negative")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise ConfigError("write_buffer_low must be between 0 and write_buffer_high")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError("event_loop must be auto, uvloop or asyncio")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format must be text or json")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level must be debug, info, warning or error")
        if self.fail_after < 0:
            raise ConfigError("fail_after must not be negative")
        if self.forget_after < 0:
            raise ConfigError("forget_after must not be negative (0 is never)")
        if self.fail_rule not in ("auto", "redis", "timer"):
            raise ConfigError("fail_rule must be auto, redis or timer")
        if self.myid and not _MYID.fullmatch(self.myid):
            raise ConfigError("myid must be 40 lowercase hexadecimal digits")
        self._check_bus()
        from .tls import TlsSettingError, check_settings

        try:
            check_settings(self)
        except TlsSettingError as exc:
            raise ConfigError(str(exc)) from None

    def _check_bus(self) -> None:
        if self.bus != "memory":
            from .bus.connect import validate_url

            try:
                validate_url(self.bus)
            except ValueError as exc:
                raise ConfigError(f"bus: {exc}") from None
        if not self.bus_stream:
            raise ConfigError("bus_stream must not be empty")
        for name in ("bus_maxlen", "bus_retention_ms", "bus_wait_replicas"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.bus_maxlen and self.bus_retention_ms:
            raise ConfigError("set bus_maxlen or bus_retention_ms, not both")
        if self.bus_maxlen and self.bus_maxlen < 100:
            raise ConfigError("bus_maxlen must be at least 100")
        if self.bus_publish_timeout < 1 or self.bus_snapshot_interval < 100:
            raise ConfigError("bus_publish_timeout must be at least 1 and "
                              "bus_snapshot_interval at least 100")
        if self.bus_retention_ms and self.bus_retention_ms < 2 * self.bus_snapshot_interval:
            raise ConfigError("bus_retention_ms must be at least twice bus_snapshot_interval, "
                              "so the stream always reaches back past the newest snapshot")

    @property
    def reader_limits(self) -> ReaderLimits:
        return ReaderLimits(
            max_inline_size=self.max_inline_size,
            max_bulk_length=self.max_bulk_length,
            max_multibulk_length=self.max_multibulk_length,
            max_query_buffer=self.max_query_buffer,
        )

    def redis_style(self) -> dict[str, str]:
        """The settings under the names CONFIG GET answers to (Redis's where one exists)."""
        return {
            "bind": self.bind,
            "port": str(self.port),
            "unixsocket": self.unix_socket,
            "tls-port": str(self.tls_port),
            "tls-cert-file": self.tls_cert_file,
            "tls-key-file": self.tls_key_file,
            "tls-ca-cert-file": self.tls_ca_cert_file,
            "tls-auth-clients": self.tls_auth_clients,
            "tls-protocols": self.tls_protocols,
            "tls-http": "yes" if self.tls_http else "no",
            "unixsocketperm": f"{self.unix_socket_perm:o}",
            "requirepass": self.requirepass,
            "aclfile": self.aclfile,
            "acllog-max-len": str(self.acllog_max_len),
            "protected-mode": "yes" if self.protected_mode else "no",
            "maxclients": str(self.max_clients),
            "http-max-clients": str(self.http_max_clients),
            "timeout": str(self.timeout),
            "proto-max-bulk-len": str(self.max_bulk_length),
            "client-query-buffer-limit": str(self.max_query_buffer),
            "client-output-buffer-limit": (
                f"normal {self.output_buffer_limit} {self.output_buffer_soft_limit} "
                f"{self.output_buffer_soft_seconds} pubsub {self.pubsub_hard_limit} "
                f"{self.pubsub_soft_limit} {self.pubsub_soft_seconds}"),
            "slowlog-log-slower-than": str(self.slowlog_log_slower_than),
            "slowlog-max-len": str(self.slowlog_max_len),
            "latency-monitor-threshold": str(self.latency_monitor_threshold),
            "databases": "1",
            "save": "",
            "appendonly": "no",
            "maxmemory": "0",
            "maxmemory-policy": "noeviction",
            "io-threads": "1",
            "cluster-enabled": "yes",
            "cluster-node-timeout": str(self.node_timeout),
            "cluster-require-full-coverage": "yes" if self.require_full_coverage else "no",
        }


_FIELDS = {f.name: f for f in fields(ServerConfig)}
_MYID = re.compile(r"[0-9a-f]{40}")
_BOOLS = {"yes": True, "true": True, "on": True, "1": True,
          "no": False, "false": False, "off": False, "0": False}


def _coerce(name: str, raw: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            if name == "unix_socket_perm" and isinstance(raw, str):
                return int(raw, 8)
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return _BOOLS[str(raw).strip().lower()]
        return str(raw)
    except (TypeError, ValueError, KeyError):
        raise ConfigError(f"{name}: {raw!r} is not a valid {kind}") from None


def _normalise(source: str, values: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, raw in values.items():
        name = key.replace("-", "_").lower()
        if name not in _FIELDS:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        result[name] = _coerce(name, raw)
    return result


def load_config(*, flags: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None,
                config_file: str | None = None) -> ServerConfig:
    """Merge the sources in order; raise ``ConfigError`` naming the bad setting."""
    merged: dict[str, Any] = {}
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_PREFIX + "CONFIG_FILE", "")
    if path:
        try:
            with Path(path).open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        section = document.get("server", document)
        merged.update(_normalise(f"config file {path}", section))
        merged["config_file"] = str(Path(path).resolve())
    env_values = {key[len(ENV_PREFIX):]: value for key, value in env.items()
                  if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG_FILE"}
    merged.update(_normalise("environment", env_values))
    merged.update(_normalise("flags", {k: v for k, v in (flags or {}).items() if v is not None}))
    try:
        return ServerConfig(**merged)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def replace(config: ServerConfig, **changes: Any) -> ServerConfig:
    return dataclasses.replace(config, **changes)
