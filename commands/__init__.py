"""The command layer: a data-driven table of specs and handlers that return reply values.

Handlers never see bytes on the wire or the protocol version, and do no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from . import acl, admin, bus, cluster, connection, health, pubsub, status, transactions
from ._access import AccessControl, AclFileError
from ._acl_log import AclLogEntry
from ._acl_user import User
from ._context import BusError, CpuTimes, MemoryStats, ServerIdentity, ServerView
from ._deferred import Deferred
from ._errors import CommandError
from ._session import Session
from ._spec import Arg, ArgType, CommandContext, CommandLookup, CommandSpec, Flag, Group
from ._stats import LATENCY_BOUNDS_NS, CommandStat, LatencyMonitor, SlowLog, Stats
from ._subscriptions import Subscriptions
from ._table import CommandTable

FAMILIES = (connection, admin, acl, pubsub, transactions, cluster, bus, status, health)


def build_table(*, perf_ns: Callable[[], int]) -> CommandTable:
    """The full command table, from an explicit list of command families.

    ``perf_ns`` is the monotonic nanosecond clock that times each command.
    """
    return CommandTable((spec for family in FAMILIES for spec in family.COMMANDS),
                        perf_ns=perf_ns)


__all__ = [
    "FAMILIES",
    "LATENCY_BOUNDS_NS",
    "AccessControl",
    "AclFileError",
    "AclLogEntry",
    "Arg",
    "ArgType",
    "BusError",
    "CommandContext",
    "CommandError",
    "CommandLookup",
    "CommandSpec",
    "CommandStat",
    "CommandTable",
    "CpuTimes",
    "Deferred",
    "Flag",
    "Group",
    "LatencyMonitor",
    "MemoryStats",
    "ServerIdentity",
    "ServerView",
    "Session",
    "SlowLog",
    "Stats",
    "Subscriptions",
    "User",
    "build_table",
]
