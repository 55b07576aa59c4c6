"""Watching instead of polling: the model's transitions as pub/sub messages and a journal.

After each change of the model (a bus batch, a failure-detection tick) the server hands
the drained model events here. Each becomes a text message on a channel, stamped with the
model index (``model_version``) at which it was seen; the message goes into a bounded
journal (``BUS JOURNAL``) and to the channel's subscribers.

    channel                  message (every one ends in ``index=<n>``)
    __cluster__:node         +pfail|-pfail|+fail|-fail|+node|-node|+role <role> <id> <ip> <port>
                             [@ <master-id> <master-ip> <master-port>]   (Sentinel's shape;
                             role is master or slave, as Sentinel and CLUSTER NODES write it)
    __cluster__:state        state=<ok|fail> previous=<ok|fail>
    __cluster__:slots        slots=<start>-<end> from=<id|-> to=<id|-> epoch=<new owner's
                             config epoch>
    __cluster__:epoch        epoch=<new> previous=<old>
    __health__:<probe>       status=<UP|DOWN|...> previous=<status>      (startup, ready, live,
                             health; judged at the 10 Hz tick after cluster events, and
                             every second)
    __status__:<node>/<svc>  state=<running|error|...> previous=<state>  (Puppet's service
                             states at level info; judged at the 10 Hz tick)

The four failure events also go, without their first word, to Sentinel's own channels
(``+sdown``, ``-sdown``, ``+odown``, ``-odown``), so a Sentinel event consumer reads them as
it reads Sentinel: ``+sdown`` is clusterwatch's ``pfail`` (one observer's view) and ``+odown``
its ``fail`` (agreed or timed out). Subscribers only; the journal keeps the original.

Role changes are found at the 10 Hz tick by comparing each node's effective role and master
when the model's topology version has moved (joins, leaves, slot moves, hellos), so they cost
nothing otherwise and at most ten scans a second during a burst of changes.

A subscriber that does not read is cut like Redis's ``client-output-buffer-limit pubsub``:
at once past the hard limit, or after staying past the soft limit for the soft seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from clusterwatch.cluster import ClusterEvent, ClusterModel, NodeInfo
from clusterwatch.cluster.changes import ChangeLog
from clusterwatch.cluster.events import (
    ClusterStateChanged,
    EpochChanged,
    NodeJoined,
    NodeLeft,
    NodeStateChanged,
    SlotsMoved,
)
from clusterwatch.cluster.health import PROBES
from clusterwatch.cluster.records import NodeState
from clusterwatch.cluster.servicestates import Pairs, ServiceStates
from clusterwatch.commands import Session
from clusterwatch.commands._patternindex import Scan

log = logging.getLogger("clusterwatch.watch")

_PROBES_EVERY_MS = 1000  # probes are re-judged at least this often (time moves them too)


# Sentinel's event channels for the node events that mean the same thing: a consumer of
# Sentinel's pub/sub reads ``+sdown master <name> <ip> <port>`` on channel ``+sdown``. These
# copies go to subscribers only; the journal keeps the ``__cluster__:node`` original.
SENTINEL_CHANNELS: Final = {"+pfail": "+sdown", "-pfail": "-sdown", "+fail": "+odown",
                            "-fail": "-odown"}


@dataclass(frozen=True, slots=True)
class Transition:
    """One journal entry: a message on a channel, at a model index and a time."""

    index: int
    time_ms: int
    channel: str
    message: str


class JournalGoneError(LookupError):
    """The journal no longer reaches back to the index asked for (Kubernetes' 410 Gone)."""

    def __init__(self, oldest: int) -> None:
        super().__init__(oldest)
        self.oldest = oldest


class Journal:
    """The newest ``size`` transitions, oldest first."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Transition] = deque(maxlen=size)
        self._dropped_through = -1  # highest index among entries pushed out

    def append(self, entry: Transition) -> None:
        entries = self._entries
        if entries.maxlen is not None and len(entries) == entries.maxlen:
            self._dropped_through = entries[0].index
        entries.append(entry)

    def since(self, index: int, count: int) -> list[Transition]:
        """Up to ``count`` transitions after ``index``, oldest first; raises
        ``JournalGoneError`` when some after ``index`` were already dropped."""
        if index < self._dropped_through:
            raise JournalGoneError(self._entries[0].index if self._entries else index)
        found = []
        for entry in self._entries:
            if entry.index > index:
                found.append(entry)
                if len(found) == count:
                    break
        return found

    def tail(self, count: int) -> list[Transition]:
        return list(self._entries)[-count:] if count else []

    def __len__(self) -> int:
        return len(self._entries)


def _describe(node: NodeInfo | None, node_id: str,
              lookup: Callable[[str], NodeInfo | None]) -> str:
    """Sentinel's instance shape: ``<role> <id> <ip> <port> [@ <master> <ip> <port>]``."""
    if node is None:
        return f"master {node_id} ? 0"
    text = (f"{'master' if node.role == 'master' else 'slave'} {node.id} "
            f"{node.host or '?'} {node.port or 0}")
    if node.role == "replica" and node.replicaof:
        master = lookup(node.replicaof)
        host = master.host if master and master.host else "?"
        port = master.port if master and master.port else 0
        text += f" @ {node.replicaof} {host} {port}"
    return text


def _state_events(old: NodeState, new: NodeState) -> list[str]:
    names = []
    if old is NodeState.FAIL:
        names.append("-fail")
    elif old is NodeState.PFAIL and new is NodeState.OK:
        names.append("-pfail")
    if new is NodeState.PFAIL:
        names.append("+pfail")
    elif new is NodeState.FAIL:
        names.append("+fail")
    return names


class Watch:
    """Turns model changes into transitions; keeps the journal; fans out to subscribers."""

    def __init__(self, model: ClusterModel, *, journal_size: int,
                 deliver: Callable[[str, str], None]) -> None:
        self.model = model
        self.journal = Journal(journal_size)
        self._deliver = deliver
        self._probes: dict[str, str] = {}
        self._services: dict[str, str] = {}
        self._service_names: dict[str, tuple[str, ...]] = {}  # per node
        self._services_gone: dict[str, str] = {}
        self._services_log: ChangeLog | None = None
        self._services_cursor = -1
        self._roles: dict[str, tuple[str, str | None]] = {}
        self._topology = -1
        self._services_version = -1
        self._probes_judged_ms = -_PROBES_EVERY_MS
        self._probes_due = False
        self.messages = 0

    def model_changed(self, events: list[ClusterEvent], now_ms: int) -> None:
        """Publish the model's ``events`` at once; roles and probes wait for the tick."""
        lookup = self.model.node
        for event in events:
            for channel, text in self._messages(event, lookup):
                self._emit(channel, text, now_ms)
            if isinstance(event, NodeJoined) and (node := lookup(event.node)) is not None:
                self._roles[node.id] = (node.role, node.replicaof)  # the tick compares to it
        if events:
            self._probes_due = True

    def tick(self, now_ms: int, probes: Callable[[str], str]) -> None:
        """At the 10 Hz tick: compare roles if the topology moved, and judge the probes if
        cluster events happened or a second has passed (time moves them too). So a burst
        of joins or heartbeats costs at most ten scans of the cluster a second."""
        if self.model.topology_version != self._topology:
            self._topology = self.model.topology_version
            self._check_roles(now_ms)
            self._probes_due = True
        if self._probes_due or now_ms - self._probes_judged_ms >= _PROBES_EVERY_MS:
            self._probes_due = False
            self._probes_judged_ms = now_ms
            self._judge_probes(now_ms, probes)

    def _judge_probes(self, now_ms: int, probes: Callable[[str], str]) -> None:
        for probe in PROBES:
            status = probes(probe)
            previous = self._probes.get(probe)
            if previous != status:
                self._probes[probe] = status
                if previous is not None:
                    self._emit(f"__health__:{probe}",
                               f"status={status} previous={previous}", now_ms)

    def services_changed(self, report: Callable[[], ServiceStates], now_ms: int) -> None:
        """Compare each service's state with the last one seen (at most once per model
        version; call at the tick). Only the nodes whose states changed since the last
        report (its change log) are compared, unless the nodes reporting services changed."""
        if self.model.version == self._services_version:
            return
        self._services_version = self.model.version
        current = report()
        if current.changes is not self._services_log:
            self._services_log = current.changes
            self._services_cursor = -1
        changed, self._services_cursor = current.changes.since(self._services_cursor)
        by_node = current.by_node
        if changed is None:
            before = self._services
            self._services = {}
            self._service_names = {}
            for node in by_node:
                self._services_of(node, by_node[node], before, now_ms)
            return
        for node in set(changed):
            for name in self._service_names.pop(node, ()):
                before_state = self._services.pop(name)
                self._services_gone[name] = before_state
            entries = by_node.get(node)
            if entries is not None:
                self._services_of(node, entries, self._services_gone, now_ms)
            self._services_gone.clear()

    def _services_of(self, node: str, entries: Pairs, before: dict[str, str],
                     now_ms: int) -> None:
        for name, state in entries:
            previous = before.get(name)
            if previous is not None and previous != state:
                self._emit(f"__status__:{name}", f"state={state} previous={previous}", now_ms)
            self._services[name] = state
        self._service_names[node] = tuple(name for name, _state in entries)

    def _emit(self, channel: str, text: str, now_ms: int) -> None:
        index = self.model.version
        message = f"{text} index={index}"
        self.journal.append(Transition(index, now_ms, channel, message))
        self.messages += 1
        self._deliver(channel, message)
        if channel == "__cluster__:node":
            event, _, instance = message.partition(" ")
            sentinel = SENTINEL_CHANNELS.get(event)
            if sentinel is not None:
                self._deliver(sentinel, instance)

    def _messages(self, event: ClusterEvent, lookup: Callable[[str], NodeInfo | None]
                  ) -> list[tuple[str, str]]:
        match event:
            case NodeStateChanged(node=node_id, old=old, new=new):
                described = _describe(lookup(node_id), node_id, lookup)
                return [("__cluster__:node", f"{name} {described}")
                        for name in _state_events(old, new)]
            case NodeJoined(node=node_id):
                return [("__cluster__:node",
                         f"+node {_describe(lookup(node_id), node_id, lookup)}")]
            case NodeLeft(node=node_id):
                role = self._roles.pop(node_id, ("master", None))[0]
                return [("__cluster__:node",
                         f"-node {'master' if role == 'master' else 'slave'} {node_id} ? 0")]
            case ClusterStateChanged(old=old_state, new=new_state):
                return [("__cluster__:state", f"state={new_state} previous={old_state}")]
            case SlotsMoved(start=start, end=end, old=old_owner, new=new_owner):
                owner = lookup(new_owner) if new_owner else None
                epoch = owner.config_epoch if owner else self.model.current_epoch
                return [("__cluster__:slots",
                         f"slots={start}-{end} from={old_owner or '-'} to={new_owner or '-'} "
                         f"epoch={epoch}")]
            case EpochChanged(old=old_epoch, new=new_epoch):
                return [("__cluster__:epoch", f"epoch={new_epoch} previous={old_epoch}")]
        return []

    def _check_roles(self, now_ms: int) -> None:
        roles: dict[str, tuple[str, str | None]] = {}
        previous_roles = self._roles
        for node_id, role, replicaof in self.model.roles():
            roles[node_id] = now = (role, replicaof)
            previous = previous_roles.get(node_id)
            if previous is not None and previous != now:
                self._emit("__cluster__:node", "+role " + _describe(
                    self.model.node(node_id), node_id, self.model.node), now_ms)
        self._roles = roles


#: A pub/sub delivery's work per turn of the event loop, in frames (and patterns looked
#: at): a fan-out to many subscribers, or a message matching many patterns, is cut into
#: slices of this size, a turn apart, so no subscriber waits on another's share.
DELIVERIES_PER_TURN = 2048


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


class _Message:
    """One channel message on its way: who gets it, and how far delivery has come."""

    __slots__ = ("channel", "frames", "ids", "pattern", "patterns", "scan", "tail", "taken")

    def __init__(self, channel: bytes, message: bytes, subscribers: tuple[int, ...],
                 scan: Scan) -> None:
        self.channel = channel
        self.tail = _bulk(channel) + _bulk(message)
        self.frames: dict[tuple[int, bytes | None], bytes] = {}
        self.ids = subscribers  # the receivers being served: the channel's, then each
        self.pattern: bytes | None = None  # matching pattern's in turn
        self.taken = 0  # of ``ids``, already served
        self.scan = scan
        self.patterns = 0  # of ``scan.found``, already taken

    def frame(self, protocol: int, pattern: bytes | None) -> bytes:
        """The frame for a client of ``protocol`` matching by ``pattern``, encoded once."""
        key = (protocol, pattern)
        frame = self.frames.get(key)
        if frame is None:
            kind = b">" if protocol == 3 else b"*"
            if pattern is None:
                frame = kind + b"3\r\n$7\r\nmessage\r\n" + self.tail
            else:
                frame = kind + b"4\r\n$8\r\npmessage\r\n" + _bulk(pattern) + self.tail
            if len(self.frames) > 8:  # one per pattern matched: keep the common ones
                self.frames.clear()
            self.frames[key] = frame
        return frame

    def next_receivers(self, budget: int) -> int:
        """Move on to the next matching pattern's clients, scanning for it as the budget
        allows; the budget left (``ids`` is empty when there is no next one yet)."""
        scan = self.scan
        while self.patterns == len(scan.found) and not scan.done and budget > 0:
            budget = scan.advance(budget)
        self.ids, self.taken = (), 0
        if self.patterns < len(scan.found):
            entry = scan.found[self.patterns]
            self.patterns += 1
            self.ids, self.pattern = tuple(entry.ids), entry.pattern
            budget -= 1
        return budget

    @property
    def done(self) -> bool:
        return (self.taken == len(self.ids) and self.patterns == len(self.scan.found)
                and self.scan.done)


class Subscriber(Protocol):
    """What the fan-out reads of a connection (``protocol.RespProtocol``)."""

    @property
    def transport(self) -> asyncio.BaseTransport | None: ...

    @property
    def session(self) -> Session | None: ...

    @property
    def closing(self) -> bool: ...

    def push(self, frame: bytes) -> None: ...

    def output_buffered(self) -> int: ...

    def abort(self) -> None: ...


class Fanout:
    """Delivers channel messages to subscribed connections, each frame encoded once per
    protocol (and per pattern), and cuts subscribers past the pubsub output limits.

    Messages go out in the order they were published. A message whose delivery (or whose
    search for matching patterns) is more than ``DELIVERIES_PER_TURN`` goes out in slices,
    one per turn of the event loop, and the messages after it wait their turn, so every
    subscriber sees every message in order and other clients are served between slices.
    A subscriber's frames of one slice go out in one write, and the pubsub limits are
    checked after it."""

    def __init__(self, *, hard_limit: int, soft_limit: int, soft_seconds: int,
                 clock_ms: Callable[[], int], on_disconnect: Callable[[], None],
                 connections: Mapping[int, Subscriber],
                 per_turn: int = DELIVERIES_PER_TURN) -> None:
        self._on_disconnect = on_disconnect
        self.hard_limit = hard_limit
        self.soft_limit = soft_limit
        self.soft_ms = soft_seconds * 1000
        self._clock_ms = clock_ms
        self._connections = connections
        self._per_turn = per_turn
        self._over_soft_since: dict[int, int] = {}
        self._queue: deque[_Message] = deque()
        self._scheduled = False
        self.disconnects = 0
        self.delivered = 0
        self.slices = 0  # turns of the loop that delivered

    @property
    def backlog(self) -> int:
        """Messages not yet delivered to all their receivers."""
        return len(self._queue)

    def deliver(self, channel: bytes, message: bytes,
                receivers: tuple[tuple[int, ...], Scan]) -> None:
        subscribers, scan = receivers
        if not subscribers and scan.done and not scan.found:
            return
        self._queue.append(_Message(channel, message, subscribers, scan))
        if not self._scheduled:
            self._run()

    def _continue(self) -> None:
        self._scheduled = False
        self._run()

    def _run(self) -> None:
        """Deliver up to a slice's worth, oldest message first; schedule the rest."""
        self.slices += 1
        budget = self._per_turn
        pending: dict[Subscriber, list[bytes]] = {}
        queue = self._queue
        while queue and budget > 0:
            budget = self._advance(queue[0], budget, pending)
            if queue[0].done:
                queue.popleft()
        for conn, frames in pending.items():
            self._write(conn, frames)
        if queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._continue)

    def _advance(self, item: _Message, budget: int,
                 pending: dict[Subscriber, list[bytes]]) -> int:
        """Serve ``item``'s receivers until it is done or ``budget`` is spent; the budget
        left. A subscriber's frames gather in ``pending``, for the caller to write."""
        connections = self._connections
        while budget > 0:
            ids = item.ids
            while item.taken < len(ids) and budget > 0:
                conn = connections.get(ids[item.taken])
                item.taken += 1
                session = conn.session if conn is not None else None
                if conn is None or session is None or conn.closing:
                    continue
                budget -= 1
                frames = pending.get(conn)
                if frames is None:
                    frames = pending[conn] = []
                frames.append(item.frame(session.protocol, item.pattern))
            if item.taken < len(ids) or item.done:
                break
            budget = item.next_receivers(budget)
        return budget

    def _write(self, conn: Subscriber, frames: list[bytes]) -> None:
        if not frames or conn.closing:
            return
        conn.push(b"".join(frames))
        self.delivered += len(frames)
        self._enforce(conn)

    def _enforce(self, conn: Subscriber) -> None:
        transport, session = conn.transport, conn.session
        if transport is None or session is None or conn.closing:
            return
        buffered = conn.output_buffered()
        if buffered <= self.soft_limit or not self.soft_limit:
            self._over_soft_since.pop(session.id, None)
            if not (self.hard_limit and buffered > self.hard_limit):
                return
        now = self._clock_ms()
        since = self._over_soft_since.setdefault(session.id, now)
        if (self.hard_limit and buffered > self.hard_limit) or (
                self.soft_limit and now - since >= self.soft_ms):
            self.disconnects += 1
            self._on_disconnect()
            self._over_soft_since.pop(session.id, None)
            log.warning("pubsub client output buffer limit reached, closing",
                        extra={"client": session.id, "buffered": buffered})
            conn.abort()

    def forget(self, session_id: int) -> None:
        self._over_soft_since.pop(session_id, None)
