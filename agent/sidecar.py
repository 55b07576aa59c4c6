"""``clusterwatch agent``: the sidecar beside a real node.

It sends the node's ``hello`` and ``slots``, then a ``heartbeat`` every ``interval``
seconds, to a clusterwatch server with ``BUS PUBLISH``.

Each round (``Agent.round``) reads every source again (``agent/sources/``: a Redis node's
own ``CLUSTER NODES`` line and ``INFO``, say) and builds what to send from the flags where
given, else from the sources: the identity (id, address, role, master, config epoch), the
slot claim, and the cluster view (``ClusterView``: whom the node flags failing or forgot,
its open and released slots), which becomes the heartbeat's ``failing``, ``failed`` and
``forgotten`` and the ``slots`` message's ``migrating``, ``importing`` and ``released``, so
clusterwatch judges the cluster by the cluster's own evidence. A changed identity is a new
``hello`` and ``slots`` before the heartbeat (at the node's new epoch, which never goes
down), a changed claim a new ``slots``. The heartbeat's other fields come from the sources,
then a status file, then a status command, then fixed fields, each overriding the last; the
envelope and the cluster-view fields are the agent's own.

Nothing is published while a liveness source does not answer, while the node is in no
cluster (a cluster's own nodes then say they forgot it), or while no address is known.
A hello counts as sent once the server applied it (``registered``) or a shared bus holds
it (``pending``); a refused one, a server that lost the node (``no_hello``) or a new
connection sends it again. The agent
reconnects with backoff, and sequence numbers follow the wall clock, so a restarted agent
is never taken for a replay.

Each field, where it comes from and what it replaces, in full: docs/agent.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import msgspec

from clusterwatch.cluster.ids import derive_id

from .respclient import RespClient, RespError
from .sources import ClusterView, NodeView, Source, open_source
from .withdrawals import ForgottenNodes, ReleasedSlots

__all__ = ["AgentConfig", "run_agent"]

log = logging.getLogger("clusterwatch.agent")

_ENVELOPE = frozenset({"v", "type", "node", "epoch", "seq"})


@dataclass(slots=True, kw_only=True)
class AgentConfig:
    """The flags; None where the sources (or the defaults) decide."""

    node_id: str | None = None
    addr: str | None = None
    hostname: str | None = None
    role: str | None = None
    replicaof: str | None = None
    epoch: int | None = None
    slots: list[list[int]] | None = None
    interval: float = 1.0
    status_file: str | None = None
    status_command: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    count: int | None = None
    leave_on_exit: bool = False
    sources: list[str] = field(default_factory=list)
    source_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    addr: str | None  # None: neither a flag nor a source says where the node is
    hostname: str | None
    role: str
    replicaof: str | None
    epoch: int


@dataclass(frozen=True, slots=True)
class Claim:
    """What a ``slots`` message says; ``ranges`` None: nothing says which slots."""

    ranges: tuple[tuple[int, int], ...] | None
    released: tuple[tuple[int, int], ...] = ()
    migrating: tuple[tuple[int, str], ...] | None = None  # None: no cluster view
    importing: tuple[tuple[int, str], ...] | None = None


class Agent:
    def __init__(self, config: AgentConfig, client: RespClient,
                 sources: Sequence[Source] = ()) -> None:
        self.config = config
        self.client = client
        self.sources = list(sources)
        self.seq = 0
        self.sent = 0
        self._last_error = ""
        self._forgotten = ForgottenNodes()
        self._released = ReleasedSlots()
        self._cluster_fields: dict[str, Any] = {}
        self.current = self.identity([])
        self.claim = self.slot_claim([])
        self._sent_identity: Identity | None = None
        self._sent_claim: Claim | None = None

    def identity(self, views: Sequence[NodeView]) -> Identity:
        """Flags first, then the first source that knows, then the defaults."""
        c = self.config

        def pick(flag: Any, attr: str) -> Any:
            if flag is not None:
                return flag
            return next((getattr(v, attr) for v in views if getattr(v, attr) is not None),
                        None)

        addr = pick(c.addr, "addr")
        node_id = pick(c.node_id, "node_id")
        if node_id is None and addr is not None:
            host, _, port = addr.split("@", 1)[0].rpartition(":")
            node_id = derive_id(host, int(port or 0))
        node_id = node_id or ""  # no id and no address: nothing is published (`round`)
        picked = pick(c.epoch, "epoch")
        epoch = 1 if picked is None else int(picked)
        previous = getattr(self, "current", None)
        if previous is not None and previous.node_id == node_id:
            epoch = max(epoch, previous.epoch)
        return Identity(node_id=node_id, addr=addr, hostname=pick(c.hostname, "hostname"),
                        role=pick(c.role, "role") or "master",
                        replicaof=pick(c.replicaof, "replicaof"), epoch=epoch)

    def slot_claim(self, views: Sequence[NodeView]) -> Claim:
        """The flag's slots, else the first source's that knows; with the first cluster
        view's migrations and the slots released since earlier reads (withdrawals.py)."""
        slots = self.config.slots
        if slots is None:
            slots = next((v.slots for v in views if v.slots is not None), None)
        ranges = None if slots is None else tuple((a, b) for a, b in slots)
        cluster = _cluster_view(views)
        if cluster is None:
            return Claim(ranges)
        released = self._released.update(ranges or (), cluster.taken)
        return Claim(ranges, released=tuple((a, b) for a, b in released),
                     migrating=tuple(sorted(cluster.migrating.items())),
                     importing=tuple(sorted(cluster.importing.items())))

    def _message(self, kind: str, **fields: Any) -> bytes:
        self.seq = max(self.seq + 1, time.time_ns() // 1_000_000)
        return msgspec.json.encode({"v": 1, "type": kind, "node": self.current.node_id,
                                    "epoch": self.current.epoch, "seq": self.seq, **fields})

    def hello_batch(self) -> list[bytes]:
        ident = self.current
        assert ident.addr is not None  # `round` publishes nothing without one
        hello: dict[str, Any] = {"addr": ident.addr, "role": ident.role}
        if ident.hostname:
            hello["hostname"] = ident.hostname
        if ident.replicaof:
            hello["replicaof"] = ident.replicaof
        return [self._message("hello", **hello), *self.slots_batch()]

    def slots_batch(self) -> list[bytes]:
        claim = self.claim
        if claim.ranges is None:
            return []
        fields: dict[str, Any] = {"ranges": [list(r) for r in claim.ranges]}
        if claim.released:
            fields["released"] = [list(r) for r in claim.released]
        if claim.migrating is not None:
            fields["migrating"] = {str(slot): node for slot, node in claim.migrating}
        if claim.importing is not None:
            fields["importing"] = {str(slot): node for slot, node in claim.importing}
        return [self._message("slots", **fields)]

    async def read_sources(self) -> list[NodeView]:
        return list(await asyncio.gather(*(source.read() for source in self.sources)))

    async def round(self) -> list[bytes]:
        """One heartbeat's messages: hello and slots when the identity changed, slots when
        only the claim did, then the heartbeat; nothing while a liveness source does not
        answer or the node is in no cluster."""
        views = await self.read_sources()
        silent = [s.name for s, v in zip(self.sources, views, strict=True) if not v.alive]
        if silent:  # nothing to say, not even who the node is now
            self._warn_once(f"{', '.join(silent)} does not answer: heartbeats withheld "
                            "until it does")
            return []
        alone = [s.name for s, v in zip(self.sources, views, strict=True)
                 if v.cluster is not None and not v.cluster.joined]
        if alone:
            self._warn_once(f"{', '.join(alone)} is in no cluster (it lists no other node "
                            "and serves no slot): nothing published until it joins one")
            # Joining again is a new membership: a hello, and no memory of the old peers
            # and slots (a reset node relearns them, which is no forgetting or release).
            self._sent_identity = self._sent_claim = None
            self._forgotten, self._released = ForgottenNodes(), ReleasedSlots()
            return []
        identity = self.identity(views)
        if identity.addr is None:
            self._warn_once("no address for the node (no --addr, and no source gives one): "
                            "nothing published until one does")
            return []
        if identity.node_id != self.current.node_id:  # another node: start afresh
            self._forgotten, self._released = ForgottenNodes(), ReleasedSlots()
        self.current = identity
        self.claim = self.slot_claim(views)
        self._cluster_fields = self.cluster_fields(views)
        if self.current != self._sent_identity:
            batch = self.hello_batch()
        elif self.claim != self._sent_claim:
            batch = self.slots_batch()
        else:
            batch = []
        batch.append(await self.heartbeat(views))
        return batch

    def cluster_fields(self, views: Sequence[NodeView]) -> dict[str, Any]:
        """``failing`` and ``forgotten`` from the first cluster view; none without one."""
        cluster = _cluster_view(views)
        if cluster is None:
            return {}
        me = self.current.node_id
        fields: dict[str, Any] = {"failing": [n for n in cluster.failing if n != me]}
        if fields["failing"]:
            fields["failed"] = [n for n in cluster.failed if n != me]
        fields["forgotten"] = self._forgotten.update([n for n in cluster.peers if n != me],
                                                     time.monotonic())
        return fields

    async def status_fields(self, views: Sequence[NodeView] = ()) -> dict[str, Any]:
        c = self.config
        merged: dict[str, Any] = {}
        for view in views:
            services = {**merged.get("services", {}), **view.fields.get("services", {})}
            merged.update(view.fields)
            if services:
                merged["services"] = services
        if c.status_file:
            merged.update(_object(await asyncio.to_thread(_read_file, c.status_file),
                                  f"status file {c.status_file}"))
        if c.status_command:
            # Named by its program only: the rest of the line may hold credentials.
            program = c.status_command.split(maxsplit=1)[0] if c.status_command.strip() else ""
            merged.update(_object(await self._run_command(c.status_command),
                                  f"status command {program!r}"))
        merged.update(c.fields)
        dropped = sorted(_ENVELOPE & merged.keys())
        if dropped:
            self._warn_once(f"ignoring envelope fields {dropped}")
        return {k: v for k, v in merged.items() if k not in _ENVELOPE}

    async def _run_command(self, command: str) -> str:
        proc = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(),
                                              max(self.config.interval, 5.0))
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ValueError("timed out") from None
        if proc.returncode != 0:
            raise ValueError(f"exit status {proc.returncode}: "
                             f"{err.decode(errors='replace').strip()[:200]}")
        return out.decode(errors="replace")

    async def heartbeat(self, views: Sequence[NodeView] = ()) -> bytes:
        try:
            fields = await self.status_fields(views)
        except (OSError, ValueError) as exc:
            # Liveness still counts: send the fixed fields alone.
            self._warn_once(f"status unavailable: {exc}")
            fields = {k: v for k, v in self.config.fields.items() if k not in _ENVELOPE}
        return self._message("heartbeat", **{**fields, **self._cluster_fields})

    async def publish(self, batch: list[bytes]) -> list[str]:
        """Send the batch; each message's outcome: `applied`, `stale ...` or the error."""
        replies = await self.client.call(b"BUS", b"PUBLISH", *batch)
        outcomes: list[str] = []
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                self._warn_once(f"message rejected: {reply}")
                outcomes.append(str(reply))
                if "no_hello" in str(reply) or "say hello first" in str(reply):
                    self._sent_identity = None  # the server lost us: hello again
                continue
            text = bytes(reply).decode(errors="replace")
            if text.startswith("stale"):
                self._warn_once(f"message stale: {text}")
            outcomes.append(text)
        self.sent += len(batch)
        return outcomes

    def _warn_once(self, text: str) -> None:
        if text != self._last_error:
            self._last_error = text
            node = self.current.node_id
            log.warning(text, extra={"node": node} if node else {})

    async def run(self) -> None:
        c = self.config
        beats = 0
        backoff = 0.1
        while c.count is None or beats < c.count:
            try:
                if not self.client.connected:
                    await self.client.connect()
                    self._sent_identity = None  # a restarted server needs the hello again
                    backoff = 0.1
                batch = await self.round()
                with_hello = self._sent_identity != self.current
                outcomes = await self.publish(batch) if batch else []
                if outcomes:
                    self._sent_claim = self.claim
                if outcomes and with_hello:
                    self._registered(outcomes[0])
                beats += 1
                if c.count is not None and beats >= c.count:
                    break
                await asyncio.sleep(c.interval)
            except (TimeoutError, OSError) as exc:
                await self.client.close()
                log.warning("server unreachable, retrying", extra={
                    "error": str(exc) or type(exc).__name__, "retry_in": round(backoff, 2)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _registered(self, hello_outcome: str) -> None:
        """Log `registered` once the server applied the hello. A hello appended to a shared
        bus and not applied yet (`pending`) is not sent again, and says so; a refused or
        stale one is sent again with the next heartbeat (its reason was logged)."""
        if hello_outcome.startswith("pending"):
            self._sent_identity = self.current
            log.info("hello pending", extra={"node": self.current.node_id,
                                             "outcome": hello_outcome})
            return
        if hello_outcome != "applied":
            self._sent_identity = None
            return
        self._sent_identity = self.current
        log.info("registered", extra={
            "node": self.current.node_id, "addr": self.current.addr,
            "role": self.current.role, "epoch": self.current.epoch,
            "server": f"{self.client.host}:{self.client.port}"})

    async def leave(self) -> None:
        if self.current.addr is None:
            return  # it never said hello: nothing to leave
        try:
            if not self.client.connected:
                await self.client.connect()
            await self.publish([self._message("leave")])
            log.info("left", extra={"node": self.current.node_id})
        except (TimeoutError, OSError, RespError) as exc:
            log.warning("could not send leave", extra={"error": str(exc)})


def _cluster_view(views: Sequence[NodeView]) -> ClusterView | None:
    return next((v.cluster for v in views if v.cluster is not None), None)


def _read_file(path: str) -> str:
    return Path(path).read_text()


def _object(raw: str, source: str) -> Mapping[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source}: expected a JSON object")
    return value


async def run_agent(config: AgentConfig, client: RespClient) -> int:
    sources = [open_source(url, timeout=config.source_timeout) for url in config.sources]
    agent = Agent(config, client, sources)
    try:
        await agent.run()
    except RespError as exc:
        log.error("the server refused", extra={"error": str(exc)})
        return 1
    finally:
        if config.leave_on_exit:
            await asyncio.shield(agent.leave())
        await client.close()
        for source in sources:
            await source.aclose()
    return 0
