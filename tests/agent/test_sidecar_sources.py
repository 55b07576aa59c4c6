"""The agent's use of its sources: identity from the source, flags over it, a new hello
and slots when the identity changes, a new slots when only the claim does, heartbeats
withheld while a liveness source is down or the node is in no cluster; what a cluster
node's view of the others becomes (failing, forgotten, migrating, importing, released)."""

from __future__ import annotations

import msgspec
import pytest

from clusterwatch.agent.respclient import RespClient
from clusterwatch.agent.sidecar import Agent, AgentConfig
from clusterwatch.agent.sources import (
    ClusterView,
    NodeView,
    SourceError,
    open_source,
    source_kind,
)
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


def master(epoch: int = 3, slots: list[list[int]] | None = None,
           cluster: ClusterView | None = None) -> NodeView:
    return NodeView(node_id="a" * 40, addr="10.0.0.1:7000@17000", role="master", epoch=epoch,
                    slots=[[0, 5460]] if slots is None else slots,
                    cluster=cluster or ClusterView(failing=["b" * 40], peers=["b" * 40]),
                    fields={"node_state": "RUNNING"})


def sent(agent: Agent) -> None:
    """As the run loop does after a publish."""
    agent._sent_identity, agent._sent_claim = agent.current, agent.claim


async def test_identity_comes_from_the_source_and_changes_send_a_new_hello() -> None:
    source = FakeSource(master())
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    first = await agent.round()
    assert kinds(first) == ["hello", "slots", "heartbeat"]
    for data in first:
        decode_message(data, max_size=65536)  # valid schema v1
    hello = msgspec.json.decode(first[0])
    assert (hello["node"], hello["epoch"], hello["addr"]) == ("a" * 40, 3, "10.0.0.1:7000@17000")
    sent(agent)
    assert kinds(await agent.round()) == ["heartbeat"]
    # A failover: the node is now a replica at a higher epoch, without slots.
    source.view = NodeView(node_id="a" * 40, addr="10.0.0.1:7000@17000", role="replica",
                           replicaof="c" * 40, epoch=5, slots=[],
                           cluster=ClusterView(peers=["c" * 40], taken=[[0, 5460]]))
    batch = await agent.round()
    assert kinds(batch) == ["hello", "slots", "heartbeat"]
    hello, slots = (msgspec.json.decode(m) for m in batch[:2])
    assert (hello["role"], hello["replicaof"], hello["epoch"]) == ("replica", "c" * 40, 5)
    assert slots["ranges"] == [] and "released" not in slots  # moved, not released
    # A lower epoch from the source never lowers the one sent.
    sent(agent)
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
    await agent.round()
    sent(agent)
    source.view = NodeView(alive=False, fields={"node_state": "ERROR"})
    assert await agent.round() == []
    source.view = master()
    assert kinds(await agent.round()) == ["heartbeat"]


def test_unknown_source_schemes_are_refused() -> None:
    assert source_kind("rediss://h:1") == "redis"
    assert source_kind("puppet+https://h:8140/status/v1/services") == "puppet"
    for url in ("http://h:1", "zeebe://h:1", "mysql+http://h"):
        with pytest.raises(SourceError, match="unsupported source"):
            open_source(url, timeout=1)


def beat_of(batch: list[bytes]) -> dict[str, object]:
    beat: dict[str, object] = msgspec.json.decode(batch[-1])
    assert beat["type"] == "heartbeat"
    return beat


async def test_an_empty_masters_epoch_zero_is_published_as_zero() -> None:
    """Issue 22, finding 4: ``int(... or 1)`` turned Redis's config epoch 0 into 1."""
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1),
                  [FakeSource(master(epoch=0, slots=[]))])
    batch = await agent.round()
    assert [msgspec.json.decode(m)["epoch"] for m in batch] == [0, 0, 0]
    for data in batch:
        decode_message(data, max_size=65536)
    # Without any source or flag saying an epoch, 1 as before.
    bare = Agent(AgentConfig(node_id="n1"), RespClient("127.0.0.1", 1))
    assert bare.current.epoch == 1


async def test_failing_replaces_fail_reports_and_goes_with_every_heartbeat() -> None:
    source = FakeSource(master())
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    batch = await agent.round()
    assert "fail_report" not in kinds(batch)
    assert (beat_of(batch)["failing"], beat_of(batch)["failed"], beat_of(batch)["forgotten"]) == (
        ["b" * 40], [], [])
    sent(agent)
    source.view = master(cluster=ClusterView(peers=["b" * 40]))  # b no longer fail?
    beat = beat_of(await agent.round())
    assert beat["failing"] == [] and "failed" not in beat
    sent(agent)
    source.view = master(cluster=ClusterView(failing=["b" * 40, "c" * 40], failed=["c" * 40],
                                             peers=["b" * 40, "c" * 40]))
    beat = beat_of(await agent.round())
    assert (beat["failing"], beat["failed"]) == (["b" * 40, "c" * 40], ["c" * 40])
    # A source with no cluster view (a standalone node, Zeebe...) says nothing of others.
    plain = Agent(AgentConfig(), RespClient("127.0.0.1", 1),
                  [FakeSource(NodeView(node_id="z", addr="10.0.0.9:1"))])
    beat = beat_of(await plain.round())
    assert "failing" not in beat and "forgotten" not in beat


async def test_a_node_its_node_forgot_is_reported_forgotten() -> None:
    b, c = "b" * 40, "c" * 40
    source = FakeSource(master(cluster=ClusterView(peers=[b, c])))
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    await agent.round()
    sent(agent)
    source.view = master(cluster=ClusterView(peers=[b]))  # CLUSTER FORGET c
    assert beat_of(await agent.round())["forgotten"] == [c]
    assert beat_of(await agent.round())["forgotten"] == [c]  # said again, for 60 s
    source.view = master(cluster=ClusterView(peers=[b, c]))  # met again
    assert beat_of(await agent.round())["forgotten"] == []


async def test_a_node_in_no_cluster_is_not_published() -> None:
    """Before add-node MEETs it, and after del-node's CLUSTER RESET, the node lists no
    other node and serves no slot: the agent sends nothing, and a hello when it joins."""
    alone = NodeView(node_id="a" * 40, addr="10.0.0.1:7000@17000", role="master", epoch=0,
                     slots=[], cluster=ClusterView(joined=False))
    source = FakeSource(alone)
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    assert await agent.round() == []
    source.view = master(epoch=0, slots=[])
    assert kinds(await agent.round()) == ["hello", "slots", "heartbeat"]
    sent(agent)
    source.view = alone  # reset: it forgot everybody, and says nothing of it
    assert await agent.round() == []
    source.view = master(epoch=0, slots=[], cluster=ClusterView(peers=["c" * 40]))
    batch = await agent.round()
    assert kinds(batch) == ["hello", "slots", "heartbeat"]  # a new membership
    assert beat_of(batch)["forgotten"] == []  # b is not forgotten: the reset was


async def test_migrations_and_releases_go_in_a_new_slots_message() -> None:
    b = "b" * 40
    source = FakeSource(master(slots=[[0, 99]], cluster=ClusterView(peers=[b])))
    agent = Agent(AgentConfig(), RespClient("127.0.0.1", 1), [source])
    first = await agent.round()
    slots = msgspec.json.decode(first[1])
    assert (slots["migrating"], slots["importing"], "released" in slots) == ({}, {}, False)
    sent(agent)
    source.view = master(slots=[[0, 99]], cluster=ClusterView(peers=[b], migrating={7: b}))
    batch = await agent.round()
    assert kinds(batch) == ["slots", "heartbeat"]  # the identity did not change
    assert msgspec.json.decode(batch[0])["migrating"] == {"7": b}
    decode_message(batch[0], max_size=65536)
    sent(agent)
    # Slot 7 moved to b (its view says so): no release. 50-99 deleted: released.
    source.view = master(slots=[[0, 6], [8, 49]],
                         cluster=ClusterView(peers=[b], taken=[[7, 7]]))
    slots = msgspec.json.decode((await agent.round())[0])
    assert slots["ranges"] == [[0, 6], [8, 49]]
    assert (slots["released"], slots["migrating"]) == ([[50, 99]], {})
