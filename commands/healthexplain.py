"""HEALTH EXPLAIN and HEALTH SAFE-TO-STOP: why a verdict holds, and whether stopping nodes
now would keep the cluster ok.

    HEALTH EXPLAIN [STARTUP|READY|LIVE|HEALTH] [FORMAT JSON]
    HEALTH EXPLAIN NODE <id> [FORMAT JSON]
    HEALTH SAFE-TO-STOP <id> [<id> ...]

EXPLAIN of a probe (default HEALTH): the probe's status and every check with its reason, a
`diagnosis` (Elasticsearch's word) with one entry per check that is not UP, clusterwatch's
own checks (`busFresh`: is the model's data current) with when each was last UP, and the
evidence behind `cluster_state` (cluster/explain.py: coverage, majority, fail rule, what
would change it). EXPLAIN NODE: the model's evidence for the node's state (the rule that
decided, each report with its reporter, source, age and expiry, `#quorum n/m`, grace left,
what would change it), the node's HEALTH checks, and `bus`: whether the model's data is
current (`busFresh`). SAFE-TO-STOP: cluster/whatif.py's answer,
`safe` true only when every rule says so.

Replies are maps (RESP3 map, RESP2 flat array); EXPLAIN's FORMAT JSON gives the document as
one bulk string, as the HTTP mirror sends it (`/health/explain`, `/safe-to-stop`). Both need
AUTH (HEALTH itself does not): they name nodes and reasons. Bad arguments: an unknown node
is `ERR Unknown node <id>` (CLUSTER FORGET's words), a repeated one `ERR Node <id> specified
multiple times`, more than 64 ids an error saying the cap, an unknown probe or option
`ERR syntax error` or the probe error of HEALTH.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from clusterwatch.cluster import ApiError, HealthReport
from clusterwatch.cluster.apierror import unknown_node
from clusterwatch.cluster.health import BUS_FRESH, UP, Probe, parse_probe
from clusterwatch.cluster.whatif import MAX_IDS
from clusterwatch.resp import Reply

from ._args import text
from ._context import ServerView
from ._errors import CommandError, syntax_error
from ._spec import CommandContext
from ._statusreply import api_error, json_bulk, to_reply, wants_json

__all__ = ["explain", "explain_document", "safe_to_stop", "safe_to_stop_document"]

_NODE: Final = b"node"
_FORMAT: Final = b"format"


def explain_document(server: ServerView, probe: Probe = "health",
                     node: str | None = None) -> dict[str, Any]:
    """EXPLAIN's document; `ApiError` for an unknown node."""
    now = server.model_now_ms()
    if node is not None:
        found = server.model.explain_node(node, now)
        if found is None:
            raise unknown_node(node)
        report = server.health.evaluate(now, "health", node=node,
                                        self_checks=server.self_checks)
        return {**found, "health": _report(report), "bus": _bus(server)}
    report = server.health.evaluate(now, probe, self_checks=server.self_checks)
    return {
        "probe": probe,
        **_report(report),
        "self": {name: {"status": check.status, "reason": check.reason,
                        "last_up_ms": check.last_up_ms}
                 for name, check in server.self_checks.items()},
        "cluster": server.model.explain_cluster(now),
    }


def _bus(server: ServerView) -> dict[str, Any]:
    """Whether the model's data is current (the busFresh self check): evidence read from a
    stale bus is old, whatever its ages say."""
    check = server.self_checks.get(BUS_FRESH)
    if check is None:
        return {"status": "UNKNOWN", "reason": "not judged yet", "last_up_ms": None}
    return {"status": check.status, "reason": check.reason, "last_up_ms": check.last_up_ms}


def _report(report: HealthReport) -> dict[str, Any]:
    return {
        "status": report.status,
        "checks": [{"name": c.name, "status": c.status, "reason": c.reason}
                   for c in report.checks],
        "diagnosis": [{"check": c.name, "status": c.status, "cause": c.reason}
                      for c in report.checks if c.status != UP],
    }


def safe_to_stop_document(server: ServerView, ids: Sequence[str]) -> dict[str, Any]:
    """SAFE-TO-STOP's document; `ApiError` for bad ids (cluster/whatif.py)."""
    return server.model.safe_to_stop(ids, server.model_now_ms())


def explain(ctx: CommandContext, args: Sequence[bytes]) -> Reply:
    """`args` follow EXPLAIN."""
    probe: Probe = "health"
    node: str | None = None
    fmt: dict[str, bytes] = {}
    i = 0
    try:
        if args and args[0].lower() not in (_NODE, _FORMAT):
            probe = parse_probe(args[0])
            i = 1
        while i < len(args):
            keyword = args[i].lower()
            if i + 1 >= len(args):
                raise syntax_error()
            if keyword == _NODE and node is None and i == 0:
                node = text(args[i + 1])
            elif keyword == _FORMAT and not fmt:
                fmt["format"] = args[i + 1]
            else:
                raise syntax_error()
            i += 2
        as_json = wants_json(fmt)
        doc = explain_document(ctx.server, probe, node)
    except ApiError as exc:
        raise api_error(exc) from None
    return json_bulk(doc) if as_json else to_reply(doc)


def safe_to_stop(ctx: CommandContext, args: Sequence[bytes]) -> Reply:
    """`args` follow SAFE-TO-STOP: the node ids."""
    if not args:
        raise CommandError("wrong number of arguments for 'health|safe-to-stop' command")
    if len(args) > MAX_IDS:  # before decoding any of them
        raise CommandError(f"too many nodes: at most {MAX_IDS} at a time, got {len(args)}")
    try:
        doc = safe_to_stop_document(ctx.server, [text(a) for a in args])
    except ApiError as exc:
        raise api_error(exc) from None
    return to_reply(doc)
