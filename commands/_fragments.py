"""Map replies kept as per-node encoded parts, re-encoded only where a node changed.

A view that keeps its answer per node (CLUSTER STATUS's hosts, STATUS SERVICES' entries by
node) logs the nodes whose part changed in a `ChangeLog`, and resets the log when the order
or the membership changes. `MapParts` keeps each node's map members encoded (RESP2 and RESP3,
or JSON), follows the log with its own cursor, re-encodes only the logged nodes, and splices
them into the previous reply. After a reset it keeps the parts of the nodes whose items have
the same `serial` as before (a view gives a new item a new serial), so a node joining
re-encodes that node, not the map. The bytes are those of encoding the whole map at once: a
RESP map is its header followed by each key and value encoded in turn; a JSON object is `{`,
its members joined by `,`, then `}` (the encoder adds no whitespace and keeps insertion
order).

Memory: the parts are not kept apart from the reply. Each protocol keeps one frame, the
reply itself, and where each node's part sits in it (`cluster.frame.Frame`); a change copies
the unchanged stretches of the previous frame around the new parts when a reply in that
protocol is written (or after enough changes), so a RESP2-only deployment copies its RESP2
frame per change and its RESP3 frame only every so often. Nor are the members or the items
kept (an old item would keep an old heartbeat alive): only the items' serials.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import islice
from operator import lt
from typing import Any, Generic, Literal, Protocol, TypeVar

from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.frame import Frame, Snapshot
from clusterwatch.resp import Encoded, write

from ._statusreply import json_bulk, to_reply

__all__ = ["MapParts"]

# Staged parts a frame may hold (plus one per 8 nodes) before it is brought up to date.
_STAGED_MIN = 16


class Item(Protocol):
    """A node's item: a new item for new members gets a new serial."""

    @property
    def serial(self) -> int: ...


T = TypeVar("T", bound=Item)
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
        self._order = _Order(())
        # The serial of the item each part was encoded from, to keep parts across a rebuild.
        self._serials = array("Q")
        # RESP: the members in each node's part, and in all.
        self._counts = array("I")
        self._total = 0
        # RESP2 and RESP3; or the JSON members, each followed by "," unless empty.
        self._frames: tuple[Frame, ...] = (Frame(),) if self._json else (Frame(), Frame())
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
            at = self._order
            todo = []
            for node_id in set(changed):
                i = at.get(node_id)
                if i is None:  # the log promises a reset first; never trust a stale order
                    self._rebuild(nodes, members)
                    break
                todo.append((i, nodes[node_id]))
            else:
                todo.sort(key=_first)
                self._update(todo, members)
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
        """A new order or membership: a node whose item has the same serial as before keeps
        its encoded part."""
        old_at, old_serials, old_counts = self._order, self._serials, self._counts
        old_parts = [frame.parts() for frame in self._frames]
        self._order = _Order(list(nodes))
        self._serials = array("Q", [item.serial for item in nodes.values()])
        new_parts: list[list[bytes]] = [[] for _ in self._frames]
        counts = array("I")
        for node_id, item in nodes.items():
            j = old_at.get(node_id)
            if j is not None and old_serials[j] == item.serial:
                encoded = [parts[j] for parts in old_parts]
                count = old_counts[j] if old_counts else 0
            else:
                encoded, count = self._encode(members(item))
            for parts, part in zip(new_parts, encoded, strict=True):
                parts.append(part)
            counts.append(count)
        if not self._json:
            self._counts = counts
            self._total = sum(counts)
        for frame, parts, (head, tail) in zip(self._frames, new_parts, self._wrapping(),
                                              strict=True):
            frame.fill(head, parts, tail)
        self._reply = None

    def _update(self, todo: list[tuple[int, T]], members: Members[T]) -> None:
        """Re-encode the nodes at the (ascending) indexes of `todo`, from their new items."""
        changes: list[list[tuple[int, bytes]]] = [[] for _ in self._frames]
        for i, item in todo:
            self._serials[i] = item.serial
            encoded, count = self._encode(members(item))
            for frame_changes, part in zip(changes, encoded, strict=True):
                frame_changes.append((i, part))
            if not self._json:
                self._total += count - self._counts[i]
                self._counts[i] = count
        for frame, frame_changes, (head, tail) in zip(self._frames, changes, self._wrapping(),
                                                      strict=True):
            frame.stage(head, frame_changes, tail)
            # A frame nobody reads is brought up to date every so often, not at each change.
            if self._json or frame.pending > _STAGED_MIN + len(frame) // 8:
                frame.flush()
        self._reply = None

    def _encode(self, members: Iterable[tuple[str, Any]]) -> tuple[list[bytes], int]:
        """A node's part per frame, and its number of members."""
        if self._json:
            pairs = dict(members)
            return [json_bulk(pairs)[1:-1] + b"," if pairs else b""], len(pairs)
        out2: list[bytes] = []
        out3: list[bytes] = []
        count = 0
        for key, value in members:
            _both(out2, out3, key)
            _both(out2, out3, value)
            count += 1
        return [b"".join(out2), b"".join(out3)], count

    def _wrapping(self) -> list[tuple[bytes, bytes]]:
        """Each frame's header and trailer around the parts."""
        if self._json:
            return [(b"", b"")]
        return [(b"*%d\r\n" % (2 * self._total), b""), (b"%%%d\r\n" % self._total, b"")]

    def _assemble(self) -> Encoded:
        frames = self._frames
        if self._json:
            # The members each end with ","; the last one's goes.
            with memoryview(frames[0].data) as data, data[:-1] as body:
                size = len(self._head) + len(body) + len(self._tail)
                frame = b"".join((b"$%d\r\n" % size, self._head, body, self._tail, b"\r\n"))
            return Encoded(frame, frame)
        resp2, resp3 = frames
        if not resp2.dirty and not resp3.dirty:
            return Encoded(resp2.data, resp3.data)
        # Each protocol's frame is brought up to date when a reply in it is written; a reply
        # read after the parts moved on (queued in MULTI) renders what they were.
        return Encoded.lazy(partial(_read, frames, (resp2.version, resp3.version),
                                    (resp2.snapshot(), resp3.snapshot())))


class _Order:
    """Node ids to their positions: by bisection when the ids are sorted (as the views give
    them; 8 bytes a node), else by a dict."""

    __slots__ = ("_at", "_ids")

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids = ids
        self._at = None if all(map(lt, ids, islice(ids, 1, None))) else {
            node_id: i for i, node_id in enumerate(ids)}

    def get(self, node_id: str) -> int | None:
        if self._at is not None:
            return self._at.get(node_id)
        ids = self._ids
        i = bisect_left(ids, node_id)
        return i if i < len(ids) and ids[i] == node_id else None


def _read(frames: tuple[Frame, ...], versions: tuple[int, ...],
          snapshots: tuple[Snapshot, ...], protocol: int) -> bytes:
    i = 1 if protocol == 3 else 0
    frame = frames[i]
    if frame.version == versions[i]:
        return frame.flush()
    return snapshots[i].render()


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


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
