"""Freshness as a state: how old a datum may be before a read counts it as unknown.

Every datum a view shows came with a message: a node's status data (services, Curity's
document, partitions) with its last heartbeat, its liveness with its last message. Its age is
`now - received`. Past its time to live it is stale, then unknown, never served as current:

    datum                       time to live                     past it
    a node's liveness           node_timeout                     `fail?` (cluster/liveness.py)
    a service's status          the level's timeout (Puppet:     `unknown`, with its age
                                30 s critical, 60 s info/debug)
    any datum, for one read     MAXAGE ms (`?maxage=` on HTTP)   `unknown` for that read

`MAXAGE ms` is a read option of STATUS SERVICES/SERVICE/SIMPLE/NODE and HEALTH: data older
than `ms` counts as unknown for that read only (a status entry `unknown` with its age, STATUS
NODE as for a node not reachable, a HEALTH probe UNKNOWN). It is an integer of milliseconds,
0 to 2^63-1; anything else is refused with Redis's words for a bad integer.
"""

from __future__ import annotations

import re
from typing import Final

from clusterwatch.cluster.apierror import bad_argument, text_arg

__all__ = ["MAX_AGE_LIMIT", "NOT_AN_INTEGER", "age_ms", "parse_max_age", "too_old"]

MAX_AGE_LIMIT: Final = 2**63 - 1
_DIGITS: Final = re.compile(r"-?[0-9]{1,19}")
# Redis's reply to an integer argument it cannot parse (getLongLongFromObjectOrReply).
NOT_AN_INTEGER: Final = "value is not an integer or out of range"


def parse_max_age(value: str | bytes) -> int:
    """MAXAGE's value: milliseconds, 0 to 2^63-1."""
    text = text_arg(value)
    if not _DIGITS.fullmatch(text) or int(text) > MAX_AGE_LIMIT:
        raise bad_argument(NOT_AN_INTEGER)
    ms = int(text)
    if ms < 0:
        raise bad_argument("MAXAGE is negative")
    return ms


def age_ms(received_ms: int | None, now_ms: int) -> int | None:
    """How old a datum received at `received_ms` is at `now_ms` (never negative)."""
    return None if received_ms is None else max(0, now_ms - received_ms)


def too_old(received_ms: int | None, now_ms: int, max_age_ms: int | None) -> bool:
    """The datum counts as unknown for a read with MAXAGE `max_age_ms`."""
    if max_age_ms is None:
        return False
    return received_ms is None or now_ms - received_ms > max_age_ms

