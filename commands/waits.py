"""Blocking waits on the model: ``CLUSTER WAIT`` (Consul's blocking query on the model index)
and ``HEALTH WAIT`` (Elasticsearch's ``wait_for_status``).

The model index is ``model_version`` (BUS INFO, INFO cluster's ``clusterwatch_model_version``):
it rises with every applied message and every failure-state transition.

    CLUSTER WAIT <index> <timeout-ms>
        Answers the model index as soon as it is above ``index``, or the current index when
        ``timeout-ms`` passes: the same index back means nothing changed (Consul).
    HEALTH WAIT <probe> <status> <timeout-ms>
        Answers once the probe (STARTUP, READY, LIVE, HEALTH) is at ``status`` or better
        (UP > DEGRADED > UNKNOWN > OUT_OF_SERVICE > DOWN, as Elasticsearch's green > yellow
        > red): a map ``status`` (the status reached), ``timed_out`` (false when reached),
        ``index``. A time-out is an answer, never an error.

A timeout of 0 answers at once; at most 600000 ms (Consul's 10 minutes) is waited, a longer
one is cut to that. Inside MULTI nothing waits: the answer is the current one. The client
waits without any polling (``ServerView.wait_until``). Every wait on the model index (CLUSTER
WAIT's, the HTTP mirror's ``?index=``) asks one question, keyed ``AboveIndex(n)``, which the
server keeps in order of ``n`` (server/waits.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Final

from clusterwatch.cluster.health import DEGRADED, DOWN, OUT_OF_SERVICE, UNKNOWN, UP, parse_probe
from clusterwatch.resp import Map, Reply

from ._args import parse_int
from ._context import ServerView
from ._deferred import Deferred
from ._errors import CommandError
from ._spec import CommandContext

MAX_WAIT_MS: Final = 600_000
_RANK: Final = {DOWN: 0, OUT_OF_SERVICE: 1, UNKNOWN: 2, DEGRADED: 3, UP: 4}


@dataclass(frozen=True, slots=True)
class AboveIndex:
    """The key of a wait for the model index to pass ``index``: its check answers the
    model index once that is above ``index``, None before. The index only rises."""

    index: int


def index_wait(server: ServerView, index: int, timeout_ms: int) -> Deferred[int]:
    """The model index once it is above ``index``, or the current one after ``timeout_ms``."""
    check, key = _above(server, index)
    return server.wait_until(check, timeout_ms, lambda: server.model.version, key)


def _above(server: ServerView, index: int) -> tuple[Callable[[], int | None], AboveIndex]:
    model = server.model

    def check() -> int | None:
        version = model.version
        return version if version > index else None

    return check, AboveIndex(index)


def _timeout(raw: bytes) -> int:
    value = parse_int(raw, error=CommandError("timeout is not an integer or out of range"))
    if value < 0:
        raise CommandError("timeout is negative")
    return min(value, MAX_WAIT_MS)


def _block(ctx: CommandContext, check: Callable[[], Reply | None], timeout_ms: int,
           final: Callable[[], Reply], key: Hashable) -> Reply | Deferred[Reply]:
    """The answer now if ``check`` has one (or nothing may wait), else a blocked client."""
    answer = check()
    if answer is not None:
        return answer
    if timeout_ms == 0 or ctx.session.deny_blocking:
        return final()
    deferred: Deferred[Reply] = ctx.server.wait_until(check, timeout_ms, final, key)
    return ctx.block(deferred)


def cluster_wait(ctx: CommandContext, argv: Sequence[bytes]) -> Reply | Deferred[Reply]:
    index = parse_int(argv[2], error=CommandError("index is not an integer or out of range"))
    timeout_ms = _timeout(argv[3])
    model = ctx.server.model
    check, key = _above(ctx.server, index)
    return _block(ctx, check, timeout_ms, lambda: model.version, key)


def health_wait(ctx: CommandContext, args: Sequence[bytes]) -> Reply | Deferred[Reply]:
    """``args`` are what follows ``HEALTH WAIT``."""
    if len(args) != 3:
        raise CommandError("syntax error: HEALTH WAIT <probe> <status> <timeout-ms>")
    probe = parse_probe(args[0])
    wanted = args[1].decode(errors="replace").upper()
    if wanted not in _RANK:
        raise CommandError(f"unknown status '{wanted}'; statuses: {', '.join(_RANK)}")
    timeout_ms = _timeout(args[2])
    server = ctx.server

    def answer(timed_out: bool | None) -> Reply | None:
        """The map once reached; before that None, unless the time is up (``timed_out``)."""
        report = server.health.evaluate(server.model_now_ms(), probe,
                                        self_checks=server.self_checks)
        reached = _RANK[report.status] >= _RANK[wanted]
        if not reached and timed_out is None:
            return None
        return Map([("status", report.status), ("timed_out", not reached),
                    ("index", server.model.version)])

    def final() -> Reply:
        reply = answer(True)
        assert reply is not None
        return reply

    return _block(ctx, lambda: answer(None), timeout_ms, final, ("health wait", probe, wanted))
