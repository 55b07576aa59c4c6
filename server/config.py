"""Server configuration: defaults, then a TOML file, then ``CLUSTERWATCH_*`` environment
variables, then command-line flags; each later source wins. Validated once, frozen.

Each setting is declared once, as a field of ``ServerConfig`` with its help line, unit,
choices and group; ``SETTINGS`` describes them, and from it come the ``serve`` flags and
their help, the README's settings table, the example TOML file (``example_toml``) and
``serve --print-config`` (``effective_toml``), so none of them can drift from the code.
A refused value is reported under the name its source used: ``--node-timeout`` for a flag,
``CLUSTERWATCH_NODE_TIMEOUT`` for the environment, ``node_timeout in <file>`` for TOML.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from clusterwatch.resp import ReaderLimits

from .tls import TlsSettingError, check_settings

ENV_PREFIX: Final = "CLUSTERWATCH_"

LISTENERS: Final = "listeners"
TLS: Final = "TLS"
ACCESS: Final = "users and passwords"
LIMITS: Final = "limits"
DIAGNOSTICS: Final = "diagnostics and logs"
MODEL: Final = "the cluster model"
BUS: Final = "the bus"
GROUPS: Final = (LISTENERS, TLS, ACCESS, LIMITS, DIAGNOSTICS, MODEL, BUS)


class ConfigError(ValueError):
    """A setting is unknown or its value is invalid. ``setting`` is the field's name when
    one setting is to blame; ``load_config`` then names it as its source did."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.reason = message


@dataclass(frozen=True)
class _Meta:
    help: str
    group: str
    unit: str = ""
    choices: tuple[str, ...] = ()
    metavar: str = ""
    shown: str = ""  # how the default reads when its value says it badly ("" -> "none")
    secret: bool = False
    flag: str = ""


def _set(default: Any, help: str, *, group: str, unit: str = "",
         choices: tuple[str, ...] = (), metavar: str = "", shown: str = "",
         secret: bool = False, flag: str = "") -> Any:
    return field(default=default, metadata={"setting": _Meta(
        help, group, unit, choices, metavar, shown, secret, flag)})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Every setting, with the help line that ``serve --help``, the README's table and the
    example TOML file all print (``SETTINGS``)."""

    # --- listeners ---------------------------------------------------------------------
    bind: str = _set("127.0.0.1", "address the RESP, TLS and HTTP listeners bind to",
                     group=LISTENERS, metavar="ADDRESS")
    port: int = _set(7379, "TCP port for RESP clients; 0 picks a free one (the 'listening' "
                     "log line says which)", group=LISTENERS)
    unix_socket: str = _set("", "also listen on this Unix socket", group=LISTENERS,
                            metavar="PATH", shown="off")
    unix_socket_perm: int = _set(0o700, "permissions of the Unix socket, in octal",
                                 group=LISTENERS, shown="700")
    http_port: int = _set(0, "port of the HTTP status, probe and /metrics paths on the same "
                          "bind; 0 is off", group=LISTENERS, shown="0 (off)")
    # --- TLS (server/tls.py), Redis's names -----------------------------------------------
    tls_port: int = _set(0, "TLS RESP listener beside --port; 0 is off", group=TLS,
                         shown="0 (off)")
    tls_cert_file: str = _set("", "PEM server certificate (chain) for the TLS port and HTTPS",
                              group=TLS, metavar="PATH", shown="none")
    tls_key_file: str = _set("", "PEM private key of --tls-cert-file", group=TLS,
                             metavar="PATH", shown="none")
    tls_ca_cert_file: str = _set("", "PEM CA bundle client certificates are verified against",
                                 group=TLS, metavar="PATH", shown="none")
    tls_auth_clients: str = _set("yes", "client certificates on the TLS port: required "
                                 "(yes), verified when presented (optional) or not asked for "
                                 "(no)", group=TLS, choices=("yes", "optional", "no"))
    tls_protocols: str = _set("", "space-separated TLS versions allowed", group=TLS,
                              metavar="'TLSv1.2 TLSv1.3'", shown="TLSv1.2 TLSv1.3")
    tls_http: bool = _set(False, "serve --http-port as HTTPS with the same certificate (client "
                          "certificates verified if presented, never required)", group=TLS)
    # --- who may do what -----------------------------------------------------------------
    requirepass: str = _set("", "password of the 'default' user", group=ACCESS,
                            metavar="PASSWORD", shown="none", secret=True)
    aclfile: str = _set("", "Redis users.acl file: read at start (a bad line stops the start) "
                        "and by ACL LOAD, written by ACL SAVE", group=ACCESS, metavar="PATH",
                        shown="none")
    acllog_max_len: int = _set(128, "entries ACL LOG keeps", group=ACCESS)
    protected_mode: bool = _set(True, "without a password for 'default', refuse clients not "
                                "on 127.0.0.1, ::1 or the Unix socket", group=ACCESS)
    # --- limits ----------------------------------------------------------------------------
    max_clients: int = _set(10_000, "RESP clients at once (TCP, TLS, Unix socket); lowered to "
                            "fit the file-descriptor limit, as redis-server", group=LIMITS)
    http_max_clients: int = _set(1_000, "HTTP connections at once, idle or long-polling; past "
                                 "it a 503", group=LIMITS)
    timeout: int = _set(0, "idle seconds before a client is closed; 0 is never", unit="s",
                        group=LIMITS)
    max_inline_size: int = _set(ReaderLimits().max_inline_size,
                                "bytes in one inline request line", unit="bytes", group=LIMITS)
    max_bulk_length: int = _set(ReaderLimits().max_bulk_length, "bytes in one argument",
                                unit="bytes", group=LIMITS)
    max_multibulk_length: int = _set(ReaderLimits().max_multibulk_length,
                                     "arguments in one request", group=LIMITS)
    max_query_buffer: int = _set(ReaderLimits().max_query_buffer,
                                 "bytes held for one client's incomplete request", unit="bytes",
                                 group=LIMITS)
    output_buffer_limit: int = _set(32 * 1024 * 1024, "bytes queued for a client past which it "
                                    "is disconnected (the largest queued reply does not count)",
                                    unit="bytes", group=LIMITS)
    output_buffer_soft_limit: int = _set(0, "bytes queued that, held for "
                                         "--output-buffer-soft-seconds, disconnect a client; "
                                         "0 is off", unit="bytes", group=LIMITS)
    output_buffer_soft_seconds: int = _set(0, "seconds over --output-buffer-soft-limit before "
                                           "a client is disconnected", unit="s", group=LIMITS)
    pubsub_hard_limit: int = _set(32 * 1024 * 1024, "bytes queued for a subscriber past which "
                                  "it is disconnected; 0 is none", unit="bytes", group=LIMITS)
    pubsub_soft_limit: int = _set(8 * 1024 * 1024, "bytes queued for a subscriber that, held "
                                  "for --pubsub-soft-seconds, disconnect it", unit="bytes",
                                  group=LIMITS)
    pubsub_soft_seconds: int = _set(60, "seconds over --pubsub-soft-limit before a subscriber "
                                    "is disconnected", unit="s", group=LIMITS)
    write_buffer_high: int = _set(256 * 1024, "bytes in a client's socket buffer above which "
                                  "the server stops reading from it", unit="bytes",
                                  group=LIMITS)
    write_buffer_low: int = _set(64 * 1024, "bytes below which reading resumes", unit="bytes",
                                 group=LIMITS)
    # --- diagnostics -------------------------------------------------------------------------
    journal_size: int = _set(10_000, "transitions BUS JOURNAL keeps", group=DIAGNOSTICS)
    slowlog_log_slower_than: int = _set(10_000, "requests slower than this go to SLOWLOG; -1 "
                                        "disables it", unit="us", group=DIAGNOSTICS)
    slowlog_max_len: int = _set(128, "entries SLOWLOG keeps", group=DIAGNOSTICS)
    latency_monitor_threshold: int = _set(10, "events slower than this go to LATENCY; 0 "
                                          "disables it", unit="ms", group=DIAGNOSTICS)
    shutdown_timeout: float = _set(5.0, "seconds queued replies may take to drain after "
                                   "SIGTERM", unit="s", group=DIAGNOSTICS)
    event_loop: str = _set("auto", "event loop: uvloop when installed (auto), uvloop or "
                           "asyncio", group=DIAGNOSTICS, choices=("auto", "uvloop", "asyncio"))
    log_level: str = _set("info", "least severe log level written (to stderr)",
                          group=DIAGNOSTICS, choices=("debug", "info", "warning", "error"))
    log_format: str = _set("text", "one event per line as logfmt (text) or JSON",
                           group=DIAGNOSTICS, choices=("text", "json"))
    config_file: str = _set("", "TOML file of settings (a [server] table, or keys at top "
                            "level)", group=LISTENERS, metavar="PATH", shown="none",
                            flag="--config")
    # --- the cluster model -------------------------------------------------------------------
    node_timeout: int = _set(15_000, "silence before a node is fail? (Redis "
                             "cluster-node-timeout)", unit="ms", group=MODEL)
    fail_after: int = _set(0, "on the timer rule, time a node stays fail? before it is fail "
                           "without a report majority; 0 is 2 x --node-timeout", unit="ms",
                           group=MODEL)
    fail_rule: str = _set("auto", "what makes a fail? node fail: a majority of slot-serving "
                          "masters' reports (redis), that or --fail-after (timer), timer until "
                          "the first report then redis (auto)", group=MODEL,
                          choices=("auto", "redis", "timer"))
    require_full_coverage: bool = _set(True, "cluster_state is fail while a slot is unserved",
                                       group=MODEL)
    max_nodes: int = _set(10_000, "nodes the model holds; a message from a new node beyond "
                          "it is rejected", group=MODEL)
    forget_after: int = _set(3_600_000, "silence after which a node is forgotten, as CLUSTER "
                             "FORGET would; 0 is never", unit="ms", group=MODEL)
    require_hello: bool = _set(True, "a heartbeat, slots or fail_report from a node that "
                               "never said hello is rejected (no_hello) instead of adding "
                               "a node with no address", group=MODEL)
    max_message_size: int = _set(65_536, "bytes in one node message; a larger one is rejected",
                                 unit="bytes", group=MODEL)
    myid: str = _set("", "CLUSTER MYID, 40 lowercase hex digits", group=MODEL,
                     metavar="ID", shown="sha1 of 'clusterwatch:<hostname>:<port>'")
    health_responsive_grace: int = _set(600_000, "time HEALTH LIVE tolerates an unresponsive "
                                        "event loop", unit="ms", group=MODEL)
    health_awareness_grace: int = _set(300_000, "time HEALTH LIVE tolerates lost cluster or "
                                       "partition-leader awareness", unit="ms", group=MODEL)
    demo: bool = _set(False, "feed the embedded bus from a simulated 3-master, 3-replica "
                      "cluster", group=MODEL)
    # --- the bus ------------------------------------------------------------------------------
    bus: str = _set("memory", "where node messages come from: the embedded bus (memory), or a "
                    "Redis Stream shared by several instances: redis://[user:pass@]host:port"
                    "[/db], rediss://..., redis+sentinel://host:26379[,host:26379]/<master>"
                    "[/db]", group=BUS, metavar="memory|URL", secret=True)
    bus_stream: str = _set("clusterwatch:bus", "stream key on the Redis bus (the snapshot is "
                           "<key>:snapshot)", group=BUS, metavar="KEY")
    bus_maxlen: int = _set(0, "trim the stream with XADD MAXLEN ~ N (at least 100); 0 keeps "
                           "everything", group=BUS)
    bus_retention_ms: int = _set(0, "trim the stream with XADD MINID ~ (now - this); 0 keeps "
                                 "everything", unit="ms", group=BUS)
    bus_publish_timeout: int = _set(2_000, "time BUS PUBLISH waits for its messages to be "
                                    "appended and applied here", unit="ms", group=BUS)
    bus_snapshot_interval: int = _set(10_000, "time between compacted snapshots of the bus",
                                      unit="ms", group=BUS)
    bus_wait_replicas: int = _set(0, "replicas that must acknowledge each append (Redis WAIT) "
                                  "before BUS PUBLISH answers", group=BUS)

    def __post_init__(self) -> None:
        for name in ("max_clients", "max_inline_size", "max_bulk_length",
                     "max_multibulk_length", "max_query_buffer", "output_buffer_limit",
                     "write_buffer_high", "slowlog_max_len", "node_timeout",
                     "max_message_size", "acllog_max_len", "journal_size", "max_nodes",
                     "http_max_clients", "bus_publish_timeout"):
            _at_least(self, name, 1)
        for name in ("health_responsive_grace", "health_awareness_grace", "pubsub_hard_limit",
                     "pubsub_soft_limit", "pubsub_soft_seconds", "output_buffer_soft_limit",
                     "output_buffer_soft_seconds", "timeout", "latency_monitor_threshold",
                     "fail_after", "forget_after", "bus_maxlen", "bus_retention_ms",
                     "bus_wait_replicas", "tls_port", "port", "http_port", "unix_socket_perm"):
            _at_least(self, name, 0)
        _at_least(self, "bus_snapshot_interval", 100)
        _at_least(self, "slowlog_log_slower_than", -1)
        for name in ("port", "http_port", "tls_port"):
            if getattr(self, name) > 65535:
                raise ConfigError(f"must be a port, 0 to 65535 (got {getattr(self, name)})",
                                  name)
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise ConfigError("must be between 0 and --write-buffer-high", "write_buffer_low")
        if self.shutdown_timeout < 0:
            raise ConfigError("must not be negative", "shutdown_timeout")
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if setting.choices and value not in setting.choices:
                raise ConfigError(f"{value!r} is not one of {', '.join(setting.choices)}",
                                  setting.name)
        if self.myid and not _MYID.fullmatch(self.myid):
            raise ConfigError("must be 40 lowercase hexadecimal digits", "myid")
        self._check_bus()
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
                raise ConfigError(str(exc), "bus") from None
        if not self.bus_stream:
            raise ConfigError("must not be empty", "bus_stream")
        if self.bus_maxlen and self.bus_retention_ms:
            raise ConfigError("set --bus-maxlen or --bus-retention-ms, not both")
        if self.bus_maxlen and self.bus_maxlen < 100:
            raise ConfigError(f"must be at least 100, or 0 to keep everything (got "
                              f"{self.bus_maxlen})", "bus_maxlen")
        if self.bus_retention_ms and self.bus_retention_ms < 2 * self.bus_snapshot_interval:
            raise ConfigError("must be at least twice --bus-snapshot-interval, so the stream "
                              "always reaches back past the newest snapshot",
                              "bus_retention_ms")

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


def _at_least(config: ServerConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if value < minimum:
        raise ConfigError(f"must be at least {minimum} (got {value})", name)


@dataclass(frozen=True)
class Setting:
    """One setting as users meet it: a flag, an environment variable and a TOML key."""

    name: str
    kind: str  # "int", "float", "bool" or "str"
    default: Any
    help: str
    group: str
    unit: str
    choices: tuple[str, ...]
    metavar: str
    shown: str
    secret: bool
    flag: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def default_text(self) -> str:
        """The default as a user would write it, with its unit."""
        if self.shown:
            return self.shown
        return _text(self.default, self.kind) + (f" {self.unit}" if self.unit else "")

    @property
    def value_name(self) -> str:
        """What the flag takes, for ``--help``: ``yes|no``, the choices, or a word."""
        if self.kind == "bool":
            return "yes|no"
        if self.choices:
            return "|".join(self.choices)
        if self.metavar:
            return self.metavar
        return {"ms": "MS", "s": "SECONDS", "us": "MICROSECONDS",
                "bytes": "BYTES"}.get(self.unit, "N" if self.kind in ("int", "float")
                                      else "TEXT")

    def help_line(self) -> str:
        return f"{self.help} (default: {self.default_text})"


def _settings() -> tuple[Setting, ...]:
    found = []
    for item in fields(ServerConfig):
        meta: _Meta = item.metadata["setting"]
        found.append(Setting(
            name=item.name, kind=str(item.type), default=item.default, help=meta.help,
            group=meta.group, unit=meta.unit, choices=meta.choices, metavar=meta.metavar,
            shown=meta.shown, secret=meta.secret,
            flag=meta.flag or "--" + item.name.replace("_", "-")))
    return tuple(found)


def _text(value: Any, kind: str) -> str:
    if kind == "bool":
        return "yes" if value else "no"
    if value == "":
        return "none"
    return str(value)


SETTINGS: Final = _settings()
BY_NAME: Final = {setting.name: setting for setting in SETTINGS}
_MYID = re.compile(r"[0-9a-f]{40}")
_BOOLS = {"yes": True, "true": True, "on": True, "1": True,
          "no": False, "false": False, "off": False, "0": False}
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def _coerce(setting: Setting, raw: Any) -> Any:
    kind = setting.kind
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        value = _BOOLS.get(str(raw).strip().lower())
        if value is None:
            raise ConfigError(f"{_shown(raw)} is not yes or no", setting.name)
        return value
    if kind == "int":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        text = str(raw).strip().replace("_", "")
        if setting.name == "unix_socket_perm" and re.fullmatch(r"0?[0-7]{1,4}", text):
            return int(text, 8)
        if isinstance(raw, str) and _INTEGER.fullmatch(text):
            return int(text)
        raise ConfigError(f"{_shown(raw)} is not a whole number", setting.name)
    if kind == "float":
        try:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{_shown(raw)} is not a number", setting.name) from None
    if not isinstance(raw, str):
        raise ConfigError(f"{_shown(raw)} is not text", setting.name)
    return raw


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _Origin:
    """Where a value came from, in the words of that source."""

    kind: str  # "flag", "environment" or "file"
    key: str
    path: str = ""

    def describe(self, setting: Setting) -> str:
        if self.kind == "flag":
            return setting.flag
        if self.kind == "environment":
            return f"{setting.flag} (from {self.key} in the environment)"
        return f"{setting.flag} (from {self.key} in {self.path})"


def _normalise(values: Mapping[str, Any], origin: Any, origins: dict[str, _Origin]
               ) -> dict[str, Any]:
    """``origin(key)`` gives the _Origin of ``values[key]``, or raises for an unknown key."""
    result: dict[str, Any] = {}
    for key, raw in values.items():
        name = key.replace("-", "_").lower()
        where: _Origin = origin(key)
        setting = BY_NAME.get(name)
        if setting is None or name == "config_file":
            hint = f" (did you mean {close[0]}?)" if (close := _close(name)) else ""
            raise ConfigError(f"{_where_unknown(where)}: unknown setting{hint}")
        origins[name] = where
        try:
            result[name] = _coerce(setting, raw)
        except ConfigError as exc:
            raise ConfigError(f"{where.describe(setting)}: {exc.reason}") from None
    return result


def _close(name: str) -> list[str]:
    import difflib

    names = [setting.name for setting in SETTINGS if setting.name != "config_file"]
    return [BY_NAME[found].flag for found in difflib.get_close_matches(name, names, n=1)]


def _where_unknown(where: _Origin) -> str:
    if where.kind == "environment":
        return f"{where.key} in the environment"
    if where.kind == "file":
        return f"{where.key} in {where.path}"
    return where.key


def load_config(*, flags: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None,
                config_file: str | None = None) -> ServerConfig:
    """Merge the sources in order; raise ``ConfigError`` naming the bad setting as the
    source that gave it spells it."""
    merged: dict[str, Any] = {}
    origins: dict[str, _Origin] = {}
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_PREFIX + "CONFIG_FILE", "")
    if path:
        try:
            with Path(path).open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config {path}: {exc}") from None
        section = document.get("server", document)
        if not isinstance(section, dict):
            raise ConfigError(f"--config {path}: [server] must be a table")
        merged.update(_normalise(section, lambda key: _Origin("file", key, path), origins))
        merged["config_file"] = str(Path(path).resolve())
    env_values = {key[len(ENV_PREFIX):]: value for key, value in env.items()
                  if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG_FILE"}
    merged.update(_normalise(env_values,
                             lambda key: _Origin("environment", ENV_PREFIX + key), origins))
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    merged.update(_normalise(given, lambda key: _Origin(
        "flag", BY_NAME[key].flag if key in BY_NAME else "--" + key.replace("_", "-")),
        origins))
    try:
        return ServerConfig(**merged)
    except ConfigError as exc:
        if exc.setting is None:
            raise
        setting = BY_NAME[exc.setting]
        where = origins.get(exc.setting)
        named = where.describe(setting) if where is not None else setting.flag
        raise ConfigError(f"{named}: {exc.reason}", exc.setting) from None


def replace(config: ServerConfig, **changes: Any) -> ServerConfig:
    return dataclasses.replace(config, **changes)


# --- the settings as TOML and Markdown ---------------------------------------------------


def _toml_value(setting: Setting, value: Any) -> str:
    if setting.name == "unix_socket_perm":
        return f"0o{value:o}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string is a JSON string for our values


def _masked(setting: Setting, value: Any) -> Any:
    if not setting.secret or not value:
        return value
    if setting.name == "bus":
        from .bus.connect import display_url

        return value if value == "memory" else display_url(value, mask="****")
    return "****"


def _lines(config: ServerConfig, *, comments: bool) -> Iterator[str]:
    yield "[server]"
    for group in GROUPS:
        members = [s for s in SETTINGS if s.group == group and s.name != "config_file"]
        if not members:
            continue
        yield ""
        yield f"# --- {group} " + "-" * max(3, 84 - len(group))
        for setting in members:
            if comments:
                yield from _comment(setting)
            value = _masked(setting, getattr(config, setting.name))
            yield f"{setting.name} = {_toml_value(setting, value)}"


def _comment(setting: Setting) -> Iterator[str]:
    line = "#"
    for word in setting.help.split():
        if len(line) + 1 + len(word) > 88:
            yield line
            line = "#"
        line += " " + word
    yield line
    yield f"# default {setting.default_text}; flag {setting.flag}, environment {setting.env}"


def example_toml() -> str:
    """Every setting at its default, each with its help: ``deploy/clusterwatch.toml``."""
    return ("# clusterwatch settings: every one, at its default. Start with\n"
            "#   clusterwatch serve --config clusterwatch.toml\n"
            "# Environment variables (CLUSTERWATCH_<NAME>) and flags override what is here.\n"
            + "\n".join(_lines(ServerConfig(), comments=True)) + "\n")


def effective_toml(config: ServerConfig) -> str:
    """What ``config`` will run with, as TOML, secrets masked (``serve --print-config``)."""
    return "\n".join(_lines(config, comments=False)) + "\n"


def settings_table() -> str:
    """The README's table of settings, in Markdown."""
    rows = ["| flag | TOML key, environment | default | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        key = "" if setting.name == "config_file" else f"`{setting.name}`, "
        value = setting.value_name.replace("|", "\\|")
        help_text = setting.help.replace("|", "\\|")
        rows.append(f"| `{setting.flag} {value}` | {key}`{setting.env}` | "
                    f"{setting.default_text} | {help_text} |")
    return "\n".join(rows)
