"""Map replies kept as per-node encoded parts, re-encoded only where a node changed.

A view that keeps its answer per node (CLUSTER STATUS's hosts, STATUS SERVICES' entries by
node) logs the nodes whose part changed in a `ChangeLog`, and resets the log when the order
or the membership changes. `MapParts` keeps each node's map members encoded (RESP2 and RESP3,
or JSON), follows the log with its own cursor, re-encodes only the logged nodes, and joins the
parts under the map's header. After a reset it keeps the parts of the nodes whose members are
still the same objects, so a node joining re-encodes that node, not the map. The bytes are
those of encoding the whole map at once: a RESP map is its header followed by each key and
value encoded in turn; a JSON object is `{`, its members joined by `,`, then `}` (the encoder
adds no whitespace and keeps insertion order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Generic, Literal, TypeVar

from cluster.changes import ChangeLog
from resp import Encoded, write

from ._statusreply import json_bulk, to_reply

__all__ = ["MapParts"]

T = TypeVar("T")
Members = Callable[[T], Iterable[tuple[str, Any]]]


class MapParts(Generic[T]):
    """One map reply (RESP, or a JSON document as a bulk string) over per-node parts.

    For JSON, `head` and `tail` wrap the members (`{` and `}` by default; CLUSTER STATUS
    nests its map in `{"clusterStatus":...}`).
    """

    def __init__(self, kind: Literal["resp", "json"], *, head: bytes = b"{",
                 tail: bytes = b"}") -> None:
        self._json = kind == "json"
        self._head = head
        self._tail = tail
        self._log: ChangeLog | None = None
        self._cursor = -1
        self._at: dict[str, int] = {}
        # RESP: index 0 holds the map's header, node i's part is at i + 1.
        self._r2: list[bytes] = []
        self._r3: list[bytes] = []
        self._counts: list[int] = []
        self._total = 0
        self._js: list[bytes] = []
        # What each part was encoded from, to keep parts across a rebuild.
        self._pairs: list[tuple[tuple[str, Any], ...]] = []
        self._reply: Encoded | None = None

    def reply(self, log: ChangeLog, nodes: Mapping[str, T], members: Members[T]) -> Encoded:
        """The reply for `nodes` (node id -> its item, in reply order), whose changes `log`
        records; `members` gives an item's map members as (key, JSON value) pairs."""
        if log is not self._log:
            self._log = log
            self._cursor = -1
        changed, self._cursor = log.since(self._cursor)
        if changed is None:
            self._rebuild(nodes, members)
        elif changed:
            at = self._at
            for node_id in set(changed):
                i = at.get(node_id)
                if i is None:  # the log promises a reset first; never trust a stale order
                    self._rebuild(nodes, members)
                    break
                self._encode(i, members(nodes[node_id]))
            else:
                self._reply = None
        if self._reply is None:
            self._reply = self._assemble()
        return self._reply

    def document(self, log: ChangeLog, nodes: Mapping[str, T], members: Members[T]
                 ) -> memoryview:
        """JSON only: the document itself, the reply's bulk string without its framing."""
        assert self._json
        frame = self.reply(log, nodes, members).resp2
        return memoryview(frame)[frame.index(b"\r\n") + 2:-2]

    def _rebuild(self, nodes: Mapping[str, T], members: Members[T]) -> None:
        """A new order or membership: a node whose members are the same keys and the same
        value objects as before keeps its encoded part."""
        old_at, old_pairs = self._at, self._pairs
        old_r2, old_r3, old_js, old_counts = self._r2, self._r3, self._js, self._counts
        self._at = {node_id: i for i, node_id in enumerate(nodes)}
        size = len(nodes)
        self._pairs = [()] * size
        if self._json:
            self._js = [b""] * size
        else:
            self._r2 = [b""] * (size + 1)
            self._r3 = [b""] * (size + 1)
            self._counts = [0] * size
            self._total = 0
        for i, (node_id, item) in enumerate(nodes.items()):
            pairs = tuple(members(item))
            j = old_at.get(node_id)
            if j is None or not _same(old_pairs[j], pairs):
                self._encode(i, pairs)
                continue
            self._pairs[i] = pairs
            if self._json:
                self._js[i] = old_js[j]
            else:
                self._r2[i + 1] = old_r2[j + 1]
                self._r3[i + 1] = old_r3[j + 1]
                self._counts[i] = old_counts[j]
                self._total += old_counts[j]
        self._reply = None

    def _encode(self, i: int, members: Iterable[tuple[str, Any]]) -> None:
        pairs = self._pairs[i] = tuple(members)
        if self._json:
            self._js[i] = json_bulk(dict(pairs))[1:-1]
            return
        out2: list[bytes] = []
        out3: list[bytes] = []
        count = 0
        for key, value in pairs:
            _both(out2, out3, key)
            _both(out2, out3, value)
            count += 1
        self._r2[i + 1] = b"".join(out2)
        self._r3[i + 1] = b"".join(out3)
        self._total += count - self._counts[i]
        self._counts[i] = count

    def _assemble(self) -> Encoded:
        if self._json:
            parts = self._js if all(self._js) else [p for p in self._js if p]
            # One join of the parts, the framing stuck to the first and the last: a
            # document of megabytes is copied once, not twice.
            size = len(self._head) + sum(map(len, parts)) + max(len(parts) - 1, 0) + len(
                self._tail)
            first = b"$%d\r\n%b" % (size, self._head)
            last = self._tail + b"\r\n"
            if not parts:
                frame = first + last
            elif len(parts) == 1:
                frame = first + parts[0] + last
            else:
                frame = b",".join([first + parts[0], *parts[1:-1], parts[-1] + last])
            return Encoded(frame, frame)
        self._r2[0] = b"*%d\r\n" % (2 * self._total)
        self._r3[0] = b"%%%d\r\n" % self._total
        # Joined on first use, for the protocol asked, from the parts as they are now.
        return Encoded.lazy(partial(_join, self._r2.copy(), self._r3.copy()))


def _same(old: tuple[tuple[str, Any], ...], new: tuple[tuple[str, Any], ...]) -> bool:
    return len(old) == len(new) and all(
        a[0] == b[0] and a[1] is b[1] for a, b in zip(old, new, strict=True))


def _join(resp2: list[bytes], resp3: list[bytes], protocol: int) -> bytes:
    return b"".join(resp3 if protocol == 3 else resp2)


def _both(out2: list[bytes], out3: list[bytes], value: Any) -> None:
    """`write(out, to_reply(value), protocol)` for both protocols in one walk, sharing the
    frames that are the same in both (strings, integers, array headers)."""
    kind = type(value)
    if kind is str:
        data = value.encode()
        frame = b"$%d\r\n%b\r\n" % (len(data), data)
        out2.append(frame)
        out3.append(frame)
    elif kind is dict:
        out2.append(b"*%d\r\n" % (2 * len(value)))
        out3.append(b"%%%d\r\n" % len(value))
        for key, item in value.items():
            _both(out2, out3, key)
            _both(out2, out3, item)
    elif kind is list or kind is tuple:
        head = b"*%d\r\n" % len(value)
        out2.append(head)
        out3.append(head)
        for item in value:
            _both(out2, out3, item)
    elif kind is int:
        frame = b":%d\r\n" % value
        out2.append(frame)
        out3.append(frame)
    elif kind is bool:
        out2.append(b":1\r\n" if value else b":0\r\n")
        out3.append(b"#t\r\n" if value else b"#f\r\n")
    elif value is None:
        out2.append(b"$-1\r\n")
        out3.append(b"_\r\n")
    else:  # floats and anything else: the encoder's own rules
        reply = to_reply(value)
        write(out2, reply, 2)
        write(out3, reply, 3)
