"""A Puppet (trapperkeeper) status service as a source:
``puppet+https://host:8140/status/v1/services[?level=debug&timeout=10&cafile=ca.pem]``.

Puppet's levels are additive views of one status ("info should return the same data
structure as critical, but may add"), and the server recombines them by level
(cluster/services.py). So the source reads the services document once per level, from
``critical`` up to the URL's ``level`` (default ``info``, as Puppet's), all at once, each
with ``?level=<that level>`` and the URL's other parameters (``timeout``, and
``service_status_version`` on a ``/services/<name>`` path) passed through unchanged. Each
service of the documents (seed ``puppet-status-api.md``) becomes an entry of ``services``:

    document field (per service)      heartbeat field ``services.<name>``
    service_version                   version
    service_status_version            status_version
    state                             state (a word outside Puppet's five: unknown)
    status, at level L                status.L: every level read kept apart, null included,
                                      so STATUS SERVICES LEVEL L gives Puppet's status at L
    active_alerts [{severity, message}]  alerts
    detail_level                      not sent: the server fills it from the level asked

version, state and alerts come from the most detailed document that has the service. Both
200 and 503 carry the document (503: not every service is running) and are read alike.

When the services cannot be read (refused, no answer within the source timeout, a code other
than 200/503, invalid JSON, an HTML page, not an object of services) at any level: every
service this source has read before is ``unknown`` with its last version, no alerts, and the
reason as its status (``{"critical": {"reason": "<why>"}}``, shown at every level, as Puppet
shows a timed-out check's reason as its status); before the first good read, a single
service ``puppet`` says so the same way. A service entry that is not an object is ``unknown``
with the reason likewise.

The URL's ``timeout`` goes to Puppet (it bounds Puppet's status callbacks); this source's
own timeout still bounds each request, so a Puppet timeout above it cannot be waited for.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

from ._base import NodeView, SourceError
from ._http import FetchError, HttpReader, json_document, reason_status

__all__ = ["PuppetSource", "services_fields"]

LEVELS: Final = ("critical", "info", "debug")
_STATES: Final = ("running", "error", "starting", "stopping", "unknown")
_DEFAULT_PATH: Final = "/status/v1/services"
_SECONDS = re.compile(r"[0-9]{1,9}")


class PuppetSource:
    def __init__(self, url: str, *, timeout: float) -> None:
        self._http = HttpReader(url, timeout=timeout, default_port=8140)
        self.name = self._http.name
        query = self._http.query
        level = next((v for k, v in reversed(query) if k == "level"), "info").lower()
        if level not in LEVELS:
            raise SourceError(f"source {self.name!r}: level must be critical, info or debug")
        for key, value in query:
            if key == "timeout" and not (_SECONDS.fullmatch(value) and int(value) > 0):
                raise SourceError(f"source {self.name!r}: timeout must be an integer > 0")
        self._levels = LEVELS[: LEVELS.index(level) + 1]
        self._query = [(k, v) for k, v in query if k != "level"]
        self._path = self._http.path if self._http.path not in ("", "/") else _DEFAULT_PATH
        self._known: dict[str, tuple[Any, Any]] = {}  # name -> (version, status_version)

    async def read(self) -> NodeView:
        answers = await asyncio.gather(*(self._fetch(level) for level in self._levels))
        docs: dict[str, dict[str, Any]] = {}
        failures: list[tuple[str, str]] = []
        for level, answer in zip(self._levels, answers, strict=True):
            if isinstance(answer, FetchError):
                failures.append((level, answer.reason))
            else:
                docs[level] = answer
        if failures:
            return NodeView(fields={"services": self._unknown(_reason(failures))})
        services = services_fields(docs)
        self._known = {name: (svc.get("version"), svc.get("status_version"))
                       for name, svc in services.items()}
        return NodeView(fields={"services": services})

    async def _fetch(self, level: str) -> dict[str, Any] | FetchError:
        try:
            reply = await self._http.get(self._path, [("level", level), *self._query])
            doc = json_document(reply, codes=(200, 503))
        except FetchError as exc:
            return exc
        if not isinstance(doc, dict):
            return FetchError(f"HTTP {reply.status}: expected an object of services, "
                              f"got {type(doc).__name__}")
        return doc

    def _unknown(self, reason: str) -> dict[str, Any]:
        if not self._known:
            return {"puppet": {"state": "unknown", "status": reason_status(reason)}}
        services: dict[str, Any] = {}
        for name, (version, status_version) in self._known.items():
            entry: dict[str, Any] = {"state": "unknown", "status": reason_status(reason)}
            if version is not None:
                entry["version"] = version
            if status_version is not None:
                entry["status_version"] = status_version
            services[name] = entry
        return services

    async def aclose(self) -> None:
        await self._http.aclose()


def services_fields(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``services`` from the services documents by level (each name -> Puppet's entry)."""
    order = [level for level in reversed(LEVELS) if level in docs]
    names = list(dict.fromkeys(name for level in order for name in docs[level]))
    services: dict[str, dict[str, Any]] = {}
    for name in names:
        entries = {level: docs[level][name] for level in order if name in docs[level]}
        top = next(iter(entries.values()))
        bad = [level for level, entry in entries.items() if not isinstance(entry, dict)]
        if bad:
            reason = f"level {bad[0]}: the entry is {type(entries[bad[0]]).__name__}, " \
                     "not an object"
            services[name] = {"state": "unknown", "status": reason_status(reason)}
            continue
        services[name] = _service(top, {level: entries[level].get("status")
                                         for level in reversed(order) if level in entries})
    return services


def _service(top: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    state = top.get("state")
    service: dict[str, Any] = {"state": state if state in _STATES else "unknown",
                               "status": status}
    version = top.get("service_version")
    if version is not None:
        service["version"] = str(version)
    status_version = top.get("service_status_version")
    if isinstance(status_version, int) and not isinstance(status_version, bool):
        service["status_version"] = status_version
    alerts = top.get("active_alerts")
    service["alerts"] = [
        {"severity": str(alert["severity"]), "message": str(alert["message"])}
        for alert in (alerts if isinstance(alerts, list) else ())
        if isinstance(alert, dict) and "severity" in alert and "message" in alert
    ]
    return service


def _reason(failures: list[tuple[str, str]]) -> str:
    distinct = list(dict.fromkeys(reason for _level, reason in failures))
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join(f"level {level}: {reason}" for level, reason in failures)
