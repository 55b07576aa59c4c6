"""`MapParts` over any order of nodes, sorted or not, gives the map encoded whole."""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.commands._fragments import MapParts
from clusterwatch.commands._statusreply import json_bulk, to_reply
from clusterwatch.resp import encode


class _Item(NamedTuple):
    value: Any
    serial: int


def _members(item: _Item) -> list[tuple[str, Any]]:
    return [] if item.value is None else [(f"k{item.serial}", item.value)]


_values = st.one_of(st.none(), st.integers(-5, 5), st.booleans(), st.text(max_size=3),
                    st.lists(st.integers(0, 3), max_size=2))


@given(order=st.permutations([f"n{i}" for i in range(6)]),
       rounds=st.lists(st.dictionaries(st.integers(0, 5), _values), min_size=1, max_size=6))
def test_map_parts_equal_the_map_encoded_whole(order: list[str],
                                               rounds: list[dict[int, Any]]) -> None:
    serials = iter(range(10**6))
    nodes = {node_id: _Item(1, next(serials)) for node_id in order}
    log = ChangeLog()
    resp, js = MapParts[_Item]("resp"), MapParts[_Item]("json")
    for changes in rounds:
        for i, value in changes.items():
            node_id = order[i]
            nodes[node_id] = _Item(value, next(serials))
            log.add(node_id)
        doc = dict(pair for item in nodes.values() for pair in _members(item))
        for proto in (2, 3):
            reply = resp.reply(log, nodes, _members)
            assert encode(reply, proto) == encode(to_reply(doc), proto)  # type: ignore[arg-type]
            assert encode(js.reply(log, nodes, _members), proto) == encode(  # type: ignore[arg-type]
                json_bulk(doc), proto)  # type: ignore[arg-type]
