"""The agent says `registered` only once the server applied its hello, sends the hello again
when the server does not know it (a heartbeat refused `no_hello`), publishes nothing without
an address, and a standalone Redis gets no invented bus port (issue 24)."""

from __future__ import annotations

import logging
from typing import Any

import hiredis
import pytest

from clusterwatch.agent.sidecar import Agent, AgentConfig
from clusterwatch.agent.sources import NodeView
from clusterwatch.cluster import ClusterModel, ModelConfig
from clusterwatch.commands.bus import outcome_reply
from tests.agent.test_sidecar_sources import FakeSource

T0 = 1_700_000_000_000


class ModelClient:
    """BUS PUBLISH into a model that requires a hello, answered as the server answers."""

    host, port = "127.0.0.1", 7379

    def __init__(self) -> None:
        self.model = ClusterModel(ModelConfig(require_hello=True))
        self.connected = True
        self.refuse_hello = False

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def call(self, *argv: bytes) -> list[Any]:
        assert argv[:2] == (b"BUS", b"PUBLISH")
        replies: list[Any] = []
        for data in argv[2:]:
            if self.refuse_hello and b'"type":"hello"' in data:
                replies.append(hiredis.ReplyError("ERR invalid message: addr: refused"))
                continue
            reply = outcome_reply(self.model.publish(data, T0))
            if hasattr(reply, "prefix"):
                replies.append(hiredis.ReplyError(f"{reply.prefix} {reply.message}"))
            else:
                replies.append(b"applied" if reply is not None else b"")
        return replies


def agent_for(client: ModelClient, view: NodeView) -> Agent:
    return Agent(AgentConfig(interval=0.0, count=1), client, [FakeSource(view)])  # type: ignore[arg-type]


def registered(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "registered"]


async def test_registered_is_logged_once_the_hello_is_applied(
        caplog: pytest.LogCaptureFixture) -> None:
    client = ModelClient()
    agent = agent_for(client, NodeView(addr="10.0.0.1:7000"))
    with caplog.at_level(logging.INFO, logger="clusterwatch.agent"):
        await agent.run()
    (record,) = registered(caplog)
    assert record.__dict__["addr"] == "10.0.0.1:7000"
    assert client.model.node(agent.current.node_id) is not None


async def test_a_refused_hello_is_not_registered_and_is_sent_again(
        caplog: pytest.LogCaptureFixture) -> None:
    client = ModelClient()
    client.refuse_hello = True
    agent = agent_for(client, NodeView(addr="10.0.0.1:7000"))
    with caplog.at_level(logging.INFO, logger="clusterwatch.agent"):
        await agent.run()
        assert registered(caplog) == []
        # Its heartbeat was refused too: the server holds no node for a mistyped id.
        assert client.model.node_count == 0
        assert client.model.counters().rejected == {"no_hello": 1}
        client.refuse_hello = False
        batch = await agent.round()
        assert b'"type":"hello"' in batch[0]


async def test_a_heartbeat_the_server_refuses_for_want_of_a_hello_brings_the_hello_again(
) -> None:
    client = ModelClient()
    agent = agent_for(client, NodeView(addr="10.0.0.1:7000"))
    await agent.run()
    client.model.forget(agent.current.node_id, T0)
    client.model = ClusterModel(ModelConfig(require_hello=True))  # a restarted server
    await agent.publish([await agent.heartbeat()])
    batch = await agent.round()
    assert b'"type":"hello"' in batch[0]


async def test_nothing_is_published_without_an_address(caplog: pytest.LogCaptureFixture) -> None:
    client = ModelClient()
    agent = agent_for(client, NodeView(fields={"node_state": "RUNNING"}))
    with caplog.at_level(logging.INFO, logger="clusterwatch.agent"):
        assert await agent.round() == []
        await agent.run()
    assert registered(caplog) == []
    assert client.model.node_count == 0
    assert any("no address for the node" in r.getMessage() for r in caplog.records)


async def test_a_hello_pending_on_a_shared_bus_is_not_sent_again(
        caplog: pytest.LogCaptureFixture) -> None:
    client = ModelClient()
    agent = agent_for(client, NodeView(addr="10.0.0.1:7000"))

    async def pending(*argv: bytes) -> list[Any]:
        return [b"pending: appended as 1-0, not applied within 2000 ms"] * (len(argv) - 2)

    client.call = pending  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="clusterwatch.agent"):
        await agent.run()
    assert registered(caplog) == []
    assert any(r.getMessage() == "hello pending" for r in caplog.records)
    batch = await agent.round()
    assert [b'"type":"heartbeat"' in m for m in batch] == [True]
