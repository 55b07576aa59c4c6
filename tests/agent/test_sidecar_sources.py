"""The agent's use of its sources: identity from the source, flags over it, a new hello
and slots when the identity changes, heartbeats withheld while a liveness source is down."""

from __future__ import annotations

import msgspec
import pytest

from clusterwatch.agent.respclient import RespClient
from clusterwatch.agent.sidecar import Agent, AgentConfig
from clusterwatch.agent.sources import NodeView, SourceError, open_source, source_kind
from clusterwatch.cluster import decode_message


class FakeSource:
    name = "fake://node"

    def __init__(self, view: NodeView) -> None:
        self.view = view

    async def read(self) -> NodeView:
        return self.view

    async def aclose(self) -> None:
        return None


def kinds(batch: list[bytes]) -> list[str]:
    return [msgspec.json.decode(m)["type"] for m in batch]


def master(epoch: int = 3, slots: list[list[int]] | None = None) -> NodeView:
    return NodeView(node_id="a" * 40, addr="10.0.0.1:7000@17000", role="master", epoch=epoch,
                    slots=[[0, 5460]] if slots is None else slots,
                    fail_reports=[("b" * 40, "pfail")], fields={"node_state": "RUNNING"})


async def test_identity_comes_from_the_source_and_changes_send_a_new_hello() -> None:
    source = FakeSource(master())
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    first = await agent.round()
    assert kinds(first) == ["hello", "slots", "heartbeat", "fail_report"]
    for data in first:
        decode_message(data, max_size=65536)  # valid schema v1
    hello = msgspec.json.decode(first[0])
    assert (hello["node"], hello["epoch"], hello["addr"]) == ("a" * 40, 3, "10.0.0.1:7000@17000")
    agent._sent_identity = agent.current
    assert kinds(await agent.round()) == ["heartbeat", "fail_report"]
    # A failover: the node is now a replica at a higher epoch, without slots.
    source.view = NodeView(node_id="a" * 40, addr="10.0.0.1:7000@17000", role="replica",
                           replicaof="c" * 40, epoch=5, slots=[])
    batch = await agent.round()
    assert kinds(batch) == ["hello", "slots", "heartbeat"]
    hello, slots = (msgspec.json.decode(m) for m in batch[:2])
    assert (hello["role"], hello["replicaof"], hello["epoch"]) == ("replica", "c" * 40, 5)
    assert slots["ranges"] == []
    # A lower epoch from the source never lowers the one sent.
    agent._sent_identity = agent.current
    source.view = master(epoch=4, slots=[])
    assert msgspec.json.decode((await agent.round())[0])["epoch"] == 5


async def test_flags_override_the_source() -> None:
    agent = Agent(AgentConfig(node_id="n1", role="replica", epoch=9),
                  RespClient("127.0.0.1", 1), [FakeSource(master())])
    hello = msgspec.json.decode((await agent.round())[0])
    assert (hello["node"], hello["role"], hello["epoch"]) == ("n1", "replica", 9)
    assert hello["addr"] == "10.0.0.1:7000@17000"


async def test_heartbeats_are_withheld_while_a_liveness_source_is_down() -> None:
    source = FakeSource(master())
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    agent._sent_identity = agent.identity([source.view])
    agent.current = agent._sent_identity
    source.view = NodeView(alive=False, fields={"node_state": "ERROR"})
    assert await agent.round() == []
    source.view = master()
    assert kinds(await agent.round()) == ["heartbeat", "fail_report"]


def test_unknown_source_schemes_are_refused() -> None:
    assert source_kind("rediss://h:1") == "redis"
    assert source_kind("puppet+https://h:8140/status/v1/services") == "puppet"
    for url in ("http://h:1", "zeebe://h:1", "mysql+http://h"):
        with pytest.raises(SourceError, match="unsupported source"):
            open_source(url, timeout=1)
