"""``clusterwatch agent``: the sidecar beside a real node.

It sends the node's ``hello`` (and its ``slots`` when given), then a ``heartbeat`` every
``interval`` seconds, to a clusterwatch server with ``BUS PUBLISH``. Heartbeat fields come
from, in increasing precedence: a JSON file read before every heartbeat (``status_file``),
a command's JSON output run before every heartbeat (``status_command``), and fixed fields
(``fields``, from ``--set key=value`` and the convenience flags). The envelope fields
``v``, ``type``, ``node``, ``epoch`` and ``seq`` are the agent's own.

When the connection drops (the server restarted, say) the agent reconnects with backoff
and sends its ``hello`` again. Sequence numbers follow the wall clock, so a restarted agent
is never taken for a replay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import msgspec

from .respclient import RespClient, RespError

__all__ = ["AgentConfig", "run_agent"]

log = logging.getLogger("clusterwatch.agent")

_ENVELOPE = frozenset({"v", "type", "node", "epoch", "seq"})


@dataclass(slots=True, kw_only=True)
class AgentConfig:
    node_id: str
    addr: str
    hostname: str | None = None
    role: str = "master"
    replicaof: str | None = None
    epoch: int = 1
    slots: list[list[int]] | None = None
    interval: float = 1.0
    status_file: str | None = None
    status_command: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    count: int | None = None
    leave_on_exit: bool = False


class Agent:
    def __init__(self, config: AgentConfig, client: RespClient) -> None:
        self.config = config
        self.client = client
        self.seq = 0
        self.sent = 0
        self._last_error = ""

    def _message(self, kind: str, **fields: Any) -> bytes:
        self.seq = max(self.seq + 1, time.time_ns() // 1_000_000)
        return msgspec.json.encode({"v": 1, "type": kind, "node": self.config.node_id,
                                    "epoch": self.config.epoch, "seq": self.seq, **fields})

    def hello_batch(self) -> list[bytes]:
        c = self.config
        hello: dict[str, Any] = {"addr": c.addr, "role": c.role}
        if c.hostname:
            hello["hostname"] = c.hostname
        if c.replicaof:
            hello["replicaof"] = c.replicaof
        batch = [self._message("hello", **hello)]
        if c.slots is not None:
            batch.append(self._message("slots", ranges=c.slots))
        return batch

    async def status_fields(self) -> dict[str, Any]:
        c = self.config
        merged: dict[str, Any] = {}
        if c.status_file:
            merged.update(_object(await asyncio.to_thread(_read_file, c.status_file),
                                  f"status file {c.status_file}"))
        if c.status_command:
            merged.update(_object(await self._run_command(c.status_command),
                                  f"status command {c.status_command!r}"))
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

    async def heartbeat(self) -> bytes:
        try:
            fields = await self.status_fields()
        except (OSError, ValueError) as exc:
            # Liveness still counts: send the fixed fields alone.
            self._warn_once(f"status unavailable: {exc}")
            fields = {k: v for k, v in self.config.fields.items() if k not in _ENVELOPE}
        return self._message("heartbeat", **fields)

    async def publish(self, batch: list[bytes]) -> None:
        replies = await self.client.call(b"BUS", b"PUBLISH", *batch)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                self._warn_once(f"message rejected: {reply}")
            elif bytes(reply).startswith(b"stale"):
                self._warn_once(f"message stale: {bytes(reply).decode()}")
        self.sent += len(batch)

    def _warn_once(self, text: str) -> None:
        if text != self._last_error:
            self._last_error = text
            log.warning(text, extra={"node": self.config.node_id})

    async def run(self) -> None:
        c = self.config
        beats = 0
        backoff = 0.1
        while c.count is None or beats < c.count:
            try:
                if not self.client.connected:
                    await self.client.connect()
                    await self.publish(self.hello_batch())
                    log.info("registered", extra={"node": c.node_id, "addr": c.addr,
                                                  "server": f"{self.client.host}:"
                                                            f"{self.client.port}"})
                    backoff = 0.1
                await self.publish([await self.heartbeat()])
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

    async def leave(self) -> None:
        try:
            if not self.client.connected:
                await self.client.connect()
            await self.publish([self._message("leave")])
            log.info("left", extra={"node": self.config.node_id})
        except (TimeoutError, OSError, RespError) as exc:
            log.warning("could not send leave", extra={"error": str(exc)})


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
    agent = Agent(config, client)
    try:
        await agent.run()
    except RespError as exc:
        log.error("the server refused", extra={"error": str(exc)})
        return 1
    finally:
        if config.leave_on_exit:
            await asyncio.shield(agent.leave())
        await client.close()
    return 0
