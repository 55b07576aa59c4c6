"""A built, never started server for in-process measurements: requests go through the
command table (and the RESP encoder), with no socket, reader or event loop around them.
clusterwatch's modules are imported here only, so a move of theirs is fixed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class InProc:
    server: Any  # clusterwatch.server.app.Server
    ctx: Any  # its CommandContext, one session allowed everything

    def run(self, *argv: str | bytes) -> Any:
        """The command's reply, as the table returns it."""
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        return self.server.table.dispatch(self.ctx, args)

    def encoded(self, *argv: str | bytes) -> bytes:
        """The reply's bytes in the session's protocol (RESP2 unless changed)."""
        return encode(self.run(*argv), self.ctx.session.protocol)

    def publish(self, messages: list[bytes], chunk: int = 500) -> None:
        for i in range(0, len(messages), chunk):
            self.run("BUS", "PUBLISH", *messages[i:i + chunk])


def built_server(**config: Any) -> InProc:
    """``Server(ServerConfig(**config))``, not started, and a context to call it with."""
    from clusterwatch.commands import CommandContext, Session
    from clusterwatch.server.app import Server
    from clusterwatch.server.config import ServerConfig

    server = Server(ServerConfig(**config))
    ctx = CommandContext(session=Session(id=1, allowed=server.table.catalog.everything),
                         server=server, table=server.table)
    return InProc(server, ctx)


def encode(reply: Any, protocol: int = 2) -> bytes:
    from clusterwatch.resp import encode as resp_encode

    data: bytes = resp_encode(reply, protocol)
    return data


def fed_server(count: int, needed: int) -> tuple[Any, Any, list[bytes]]:
    """A built server fed `count` demo-shaped nodes (``nodes.demo_cluster``), its ``run``,
    and at least `needed` further heartbeats, in order."""
    from .nodes import NODE_TIMEOUT_MS, demo_cluster, one_beat_each
    from .resp import CHUNK

    sim = demo_cluster(count)
    built = built_server(port=0, node_timeout=NODE_TIMEOUT_MS, max_nodes=count * 2)
    for batch in (sim.initial(), one_beat_each(sim)):
        built.publish(batch, CHUNK)
    later: list[bytes] = []
    while len(later) < needed:
        later += one_beat_each(sim)
    return built.server, built.run, later
