"""A Zeebe broker (or gateway) as a source: ``zeebe+http(s)://host:9600[/prefix]``.

Read each time, the three probes at once (seed ``zeebe-health.md``):

    broker (default)   GET /startup, /ready, /health: 204 (or 200) UP, 503 not
    actuator           GET /actuator/health/startup, /actuator/health/readiness and the
                       /actuator/health document: 200 with status UP is UP, 503 not

A missing startup or ready probe (404: an older broker has no /startup, a gateway may have
no readiness group) takes its value from the others; a missing ready probe takes startup's
(a gateway "starts if it ... is ready to receive requests"). The actuator paths are used when
the URL's path ends in ``/actuator/health``, or when the broker's /health answers 404 (and
then until /actuator/health answers 404 in turn).

The probes become ``node_state`` so that the server's node probes (docs/health-rules.md:
STARTUP = reachable + started, READY = + nodeState, HEALTH = + readiness + partitions) answer
``HEALTH <probe> NODE <id>`` as the broker's own paths did. Zeebe's order is used: a passed
health implies ready, a passed ready implies started.

    /startup  /ready  /health   node_state  server STARTUP / READY / HEALTH
    503       503     503       BOOTING     DOWN / DOWN / DOWN
    204       503     503       STOPPING    UP / OUT_OF_SERVICE / OUT_OF_SERVICE
    204       204     204       RUNNING     UP / UP / UP
    204       204     503       ERROR       UP / UP once latched, else DOWN / DOWN

"Started, not yet ready" has no node_state of its own: WAITING would make the server's
READY answer UP; STOPPING is the one state that keeps STARTUP UP and READY not UP, with
OUT_OF_SERVICE, the status the server itself gives a node that is "not ready yet". "Ready but
unhealthy" is ERROR: the server's READY stays UP only if it saw the broker ready before
(Zeebe: "once it is ready, it never becomes unready again"); a broker first seen ready but
unhealthy answers READY DOWN on the server, the schema having no way to say it without
partitions. ``serving`` is the health probe (Zeebe: healthy = "can process processes").

``partitions``: from the actuator document, where a component's ``details.partitions``
lists them in the shape of Zeebe's topology (``partitionId``, ``role`` LEADER/FOLLOWER,
``health`` HEALTHY/UNHEALTHY/DEAD; INACTIVE and malformed entries are left out). The broker
paths have no body, so no partitions.

Each heartbeat also carries one service, ``zeebe``: state running (healthy), starting (not
ready), error (ready, unhealthy), or unknown when a probe could not be read; status
``critical`` {"startup", "ready", "health": "UP" or "DOWN"}, ``info`` {"endpoint": broker or
actuator, "httpStatus": the codes}, ``debug`` {"health": the actuator document}.

A probe that cannot be read (refused, no answer within the timeout, an unexpected code,
invalid JSON, an HTML page) counts as failed, as a Kubernetes probe counts it, and its reason
goes to the ``zeebe`` service's critical status as ``"reason"``. A broker that does not answer
at all is therefore BOOTING (not started: every probe failed), with the service unknown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._base import NodeView
from ._http import FetchError, HttpReader, Reply, json_document

__all__ = ["ZeebeSource", "partitions_of", "zeebe_fields"]

Mode = Literal["broker", "actuator"]
_PATHS: Final[dict[Mode, tuple[tuple[str, str], ...]]] = {
    "broker": (("startup", "/startup"), ("ready", "/ready"), ("health", "/health")),
    "actuator": (("startup", "/actuator/health/startup"),
                 ("ready", "/actuator/health/readiness"), ("health", "/actuator/health")),
}
_ACTUATOR_SUFFIX: Final = "/actuator/health"
_ROLES: Final = ("leader", "follower")
_HEALTH: Final = ("healthy", "unhealthy", "dead")


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's outcome. ``passed`` None: the endpoint has no such probe (a 404 group)."""

    name: str
    passed: bool | None
    code: int | None = None
    reason: str | None = None
    doc: Any = None


class ZeebeSource:
    def __init__(self, url: str, *, timeout: float) -> None:
        self._http = HttpReader(url, timeout=timeout, default_port=9600)
        self.name = self._http.name
        path = self._http.path.rstrip("/")
        self._fixed = path.endswith(_ACTUATOR_SUFFIX)
        self._prefix = path.removesuffix(_ACTUATOR_SUFFIX) if self._fixed else path
        self._mode: Mode = "actuator" if self._fixed else "broker"

    async def read(self) -> NodeView:
        probes = await self._probe_all(self._mode)
        if not self._fixed and probes[-1].code == 404:
            other: Mode = "actuator" if self._mode == "broker" else "broker"
            retry = await self._probe_all(other)
            if retry[-1].code != 404:
                self._mode, probes = other, retry
        return NodeView(fields=zeebe_fields(probes, self._mode))

    async def _probe_all(self, mode: Mode) -> list[Probe]:
        return list(await asyncio.gather(
            *(self._probe(name, path) for name, path in _PATHS[mode])))

    async def _probe(self, name: str, path: str) -> Probe:
        try:
            reply = await self._http.get(self._prefix + path)
        except FetchError as exc:
            return Probe(name, False, reason=exc.reason)
        return judge(name, reply)

    async def aclose(self) -> None:
        await self._http.aclose()


def judge(name: str, reply: Reply) -> Probe:
    """A probe's outcome from its reply: the code decides, a body must be JSON if present.

    A 404 startup or ready probe is absent (an older broker has no /startup, a gateway may
    have no readiness group); a 404 health probe is a wrong endpoint.
    """
    code = reply.status
    if code == 404 and name != "health":
        return Probe(name, None, code)
    if code in (200, 204, 503) and not reply.body.strip():
        return Probe(name, code != 503, code)
    try:
        doc = json_document(reply, codes=(200, 204, 503))
    except FetchError as exc:
        return Probe(name, False, code, exc.reason)
    if not isinstance(doc, dict):
        return Probe(name, False, code, f"HTTP {code}: not a health document")
    return Probe(name, code != 503 and doc.get("status", "UP") == "UP", code, doc=doc)


def zeebe_fields(probes: list[Probe], mode: Mode) -> dict[str, Any]:
    by_name = {probe.name: probe for probe in probes}
    health = bool(by_name["health"].passed)
    ready_answer = by_name["ready"].passed
    startup = bool(by_name["startup"].passed)
    ready = (startup if ready_answer is None else ready_answer) or health
    started = startup or ready
    if not started:
        node_state, state = "BOOTING", "starting"
    elif not ready:
        node_state, state = "STOPPING", "starting"
    elif health:
        node_state, state = "RUNNING", "running"
    else:
        node_state, state = "ERROR", "error"
    critical: dict[str, Any] = {"startup": _word(started), "ready": _word(ready),
                                "health": _word(health)}
    reasons: dict[str, list[str]] = {}
    for probe in probes:
        if probe.reason is not None:
            reasons.setdefault(probe.reason, []).append(probe.name)
    if reasons:
        state = "unknown"
        critical["reason"] = "; ".join(f"{', '.join(names)}: {why}"
                                       for why, names in reasons.items())
    status: dict[str, Any] = {
        "critical": critical,
        "info": {"endpoint": mode, "httpStatus": {p.name: p.code for p in probes}},
    }
    doc = by_name["health"].doc
    if doc is not None:
        status["debug"] = {"health": doc}
    fields: dict[str, Any] = {"node_state": node_state, "serving": health,
                              "services": {"zeebe": {"state": state, "status": status}}}
    partitions = partitions_of(doc)
    if partitions:
        fields["partitions"] = partitions
    return fields


def partitions_of(doc: Any) -> list[dict[str, Any]]:
    """Partitions from the components' ``details.partitions`` lists, by id."""
    found: dict[int, dict[str, Any]] = {}
    stack = [doc]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        details = node.get("details")
        items = details.get("partitions") if isinstance(details, dict) else None
        for item in items if isinstance(items, list) else ():
            part = _partition(item)
            if part is not None:
                found[part["id"]] = part
        components = node.get("components")
        if isinstance(components, dict):
            stack.extend(components.values())
    return [found[key] for key in sorted(found)]


def _partition(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    ident = item.get("partitionId", item.get("id"))
    role = str(item.get("role", "")).lower()
    health = str(item.get("health", "")).lower()
    if not isinstance(ident, int) or isinstance(ident, bool):
        return None
    if role not in _ROLES or health not in _HEALTH:
        return None
    return {"id": ident, "role": role, "health": health}


def _word(passed: bool) -> str:
    return "UP" if passed else "DOWN"
