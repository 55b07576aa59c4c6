"""Puppet's status service: its documents (`ServiceEntry`, `SimpleStatus`), its arguments
(level, timeout, status format version) and its rules (`summarize_states`, `status_at`).

Levels are additive (`critical` < `info` < `debug`): the status at a level combines the data
of every level up to it. A state summary is the most severe state present. The rule by rule
reading of Puppet's API (trapperkeeper-status, "Status Query API, v1", and its
`status_core.clj`) is docs/puppet-status.md; the view that builds these documents from the
cluster model is `cluster/services.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from msgspec import Struct

from clusterwatch.cluster.apierror import bad_argument, echo, text_arg

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_TIMEOUT_S",
    "LEVELS",
    "SERVICE_STATES",
    "SIMPLE_LEVEL",
    "Level",
    "ServiceEntry",
    "ServiceState",
    "SimpleStatus",
    "parse_level",
    "parse_status_version",
    "parse_timeout",
    "status_at",
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


class ServiceEntry(Struct, frozen=True, kw_only=True, gc=False, repr_omit_defaults=True):
    """One service of one node, as Puppet reports a service.

    `received_ms` is when the heartbeat carrying it arrived; `stale` is True when it is older
    than the timeout, and then `state` is `unknown` and `status` the reason. `source` is
    what `status` is made from: the heartbeat's status by level in the chosen format (the
    levels up to `detail_level` are combined when `status` is read, so no combined copy is
    kept per entry), or the reason when stale.
    """

    name: str
    node: str
    service: str
    service_version: str | None
    service_status_version: int
    detail_level: Level
    state: ServiceState
    source: Any
    active_alerts: tuple[tuple[str, str], ...]
    received_ms: int
    stale: bool

    @property
    def status(self) -> Any:
        """The status data at `detail_level` (see the module notes), or the stale reason."""
        return self.source if self.stale else status_at(self.source, self.detail_level)

    @property
    def http_status(self) -> int:
        """Puppet's `status->code`: 200 when running, else 503."""
        return 200 if self.state == "running" else 503

    def to_json(self, *, with_name: bool = False) -> dict[str, Any]:
        """The entry in Puppet's key order; `with_name` adds `service_name` (one-service route).

        A new document each call; its `status` may be the heartbeat's own data: do not
        modify it.
        """
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
        if with_name:
            doc["service_name"] = self.name
        return doc


@dataclass(frozen=True, slots=True)
class SimpleStatus:
    """`STATUS SIMPLE`: one state word and Puppet's HTTP code (200 or 503).

    `services` is how many service instances the answer summarizes.
    """

    state: ServiceState
    http_status: int
    services: int
    # The instances that are not running, `(name, state, why)` (`why` the node's verdict
    # when it is not reachable, or the age past the timeout), at most `NAMED`, by name.
    not_running: tuple[tuple[str, str, str], ...] = ()
    not_running_count: int = 0

    @property
    def ok(self) -> bool:
        """True when Puppet would answer 200; otherwise the RESP reply is an error."""
        return self.http_status == 200

    @property
    def body(self) -> str:
        """The text/plain body: the state word."""
        return self.state


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
