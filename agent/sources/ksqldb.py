"""A ksqlDB server as a source: ``ksqldb+http(s)://host:8088/clusterStatus[?host=name:port]``.

Read each time: ``GET /clusterStatus`` (or the URL's path), whose document lists every
server of the cluster by ``host:port`` (seed ``ksqldb-cluster-status.md``). This source
reports this host's entry: the one keyed by the URL's ``?host=`` (the server's advertised
``host:port``, when the agent reaches it under another name), else by the URL's own
``host:port``, else the only entry (ksqlDB without persistent queries lists only the server
queried). The entry becomes:

    document field (this host)                     heartbeat field
    activeStandbyPerQuery.<query id>               queries.<query id>
      activeStores, standByStores                    active_stores, standby_stores
      activePartitions, standByPartitions            active_partitions, standby_partitions
        [{topic, partition}]                           [{topic, partition}]
    hostStoreLags.stateStoreLags.<store>           store_lags.<store>
      lagByPartition.<n>                             <n> (an integer)
        currentOffsetPosition, endOffsetPosition,      current_offset, end_offset,
        offsetLag                                      offset_lag
    hostStoreLags.updateTimeMs                     ts_ms: the server shows a heartbeat's ts_ms
                                                   as updateTimeMs (ksqlDB stamps a lag report
                                                   with the reporter's clock)
    hostAlive, lastStatusUpdateMs                  not sent: the server judges them from the
                                                   heartbeats it receives

With no lags (lag reporting off: ``{"stateStoreLags": {}, "updateTimeMs": 0}``) neither
``store_lags`` nor ``ts_ms`` is sent, and the server shows that same empty value. Malformed
queries, partitions or lags are left out one by one.

Each heartbeat also carries one service, ``ksqldb``: running when this host's entry was
found, status ``critical`` {"host": the key, "hostAlive"}, ``info`` {"lastStatusUpdateMs",
"hosts": every key of the document}.

When the document cannot be read (refused, no answer within the timeout, a code other than
200, invalid JSON, an HTML page, no ``clusterStatus`` object) or does not list this host,
the view has no queries (``queries`` {}, no ``store_lags``) and the ``ksqldb`` service is
unknown with the reason as its status (``{"critical": {"reason": "<why>"}}``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from ._base import NodeView
from ._http import FetchError, HttpReader, json_document, reason_status

__all__ = ["KsqldbSource", "host_fields"]

_DEFAULT_PATH: Final = "/clusterStatus"
_PARTITION = re.compile(r"-?[0-9]{1,18}")
_LAG_NAMES: Final = ("currentOffsetPosition", "endOffsetPosition", "offsetLag")
_LAG_FIELDS: Final = ("current_offset", "end_offset", "offset_lag")


class KsqldbSource:
    def __init__(self, url: str, *, timeout: float) -> None:
        self._http = HttpReader(url, timeout=timeout, default_port=8088)
        self.name = self._http.name
        named = [value for key, value in self._http.query if key == "host"]
        host = f"[{self._http.host}]" if ":" in self._http.host else self._http.host
        self.host_key = named[-1] if named else f"{host}:{self._http.port}"
        self._named = bool(named)
        self._query = [(k, v) for k, v in self._http.query if k != "host"]
        self._path = self._http.path if self._http.path not in ("", "/") else _DEFAULT_PATH

    async def read(self) -> NodeView:
        try:
            reply = await self._http.get(self._path, self._query)
            doc = json_document(reply, codes=(200,))
            hosts = doc.get("clusterStatus") if isinstance(doc, dict) else None
            if not isinstance(hosts, dict):
                raise FetchError("HTTP 200: not a cluster status document (no clusterStatus "
                                 "object)")
            key = self._pick(hosts)
            entry = hosts[key]
            if not isinstance(entry, dict):
                raise FetchError(f"the entry of {key} is not an object")
        except FetchError as exc:
            return NodeView(fields=unknown_fields(exc.reason))
        return NodeView(fields=host_fields(key, entry, list(hosts)))

    def _pick(self, hosts: dict[str, Any]) -> str:
        if self.host_key in hosts:
            return self.host_key
        if len(hosts) == 1 and not self._named:
            return next(iter(hosts))
        listed = ", ".join(list(hosts)[:10]) or "none"
        raise FetchError(f"{self.host_key} is not in the cluster status (hosts: {listed})")

    async def aclose(self) -> None:
        await self._http.aclose()


def host_fields(key: str, entry: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    """Heartbeat fields from this host's entry of the cluster status document."""
    fields: dict[str, Any] = {"queries": _queries(entry.get("activeStandbyPerQuery"))}
    lags = entry.get("hostStoreLags")
    if isinstance(lags, dict):
        stores = _store_lags(lags.get("stateStoreLags"))
        update = lags.get("updateTimeMs")
        if stores:
            fields["store_lags"] = stores
            if isinstance(update, int) and not isinstance(update, bool) and update > 0:
                fields["ts_ms"] = update
    fields["services"] = {"ksqldb": {"state": "running", "status": {
        "critical": {"host": key, "hostAlive": entry.get("hostAlive")},
        "info": {"lastStatusUpdateMs": entry.get("lastStatusUpdateMs"), "hosts": hosts},
    }}}
    return fields


def unknown_fields(reason: str) -> dict[str, Any]:
    return {"queries": {},
            "services": {"ksqldb": {"state": "unknown", "status": reason_status(reason)}}}


def _queries(per_query: Any) -> dict[str, Any]:
    queries: dict[str, Any] = {}
    for query_id, query in (per_query.items() if isinstance(per_query, dict) else ()):
        if not isinstance(query, dict):
            continue
        queries[query_id] = {
            "active_partitions": _partitions(query.get("activePartitions")),
            "standby_partitions": _partitions(query.get("standByPartitions")),
            "active_stores": _strings(query.get("activeStores")),
            "standby_stores": _strings(query.get("standByStores")),
        }
    return queries


def _partitions(items: Any) -> list[dict[str, Any]]:
    return [{"topic": item["topic"], "partition": item["partition"]}
            for item in (items if isinstance(items, list) else ())
            if isinstance(item, dict) and isinstance(item.get("topic"), str)
            and _integer(item.get("partition"))]


def _strings(items: Any) -> list[str]:
    return [item for item in (items if isinstance(items, list) else ()) if isinstance(item, str)]


def _store_lags(stores: Any) -> dict[str, dict[int, dict[str, int]]]:
    result: dict[str, dict[int, dict[str, int]]] = {}
    for store, lags in (stores.items() if isinstance(stores, dict) else ()):
        by_partition = lags.get("lagByPartition") if isinstance(lags, dict) else None
        parts: dict[int, dict[str, int]] = {}
        for partition, lag in (by_partition.items() if isinstance(by_partition, dict) else ()):
            if not (isinstance(partition, str) and _PARTITION.fullmatch(partition)
                    and isinstance(lag, dict)):
                continue
            values: list[Any] = [lag.get(name) for name in _LAG_NAMES]
            if all(_integer(value) for value in values):
                parts[int(partition)] = dict(zip(_LAG_FIELDS, values, strict=True))
        result[store] = parts
    return result


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
