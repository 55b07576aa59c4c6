"""CLUSTER, BUS and INFO cluster through the command table, with the server's clock in hand.

The server object is built but never started: handlers see it through ``ServerView`` exactly
as they do over a socket, and each reply is encoded for the wire and parsed back with hiredis.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import hiredis
import msgspec
import pytest

from clusterwatch.cluster.ids import derive_id
from clusterwatch.commands import CommandContext, Session
from clusterwatch.resp import Encoded, encode
from clusterwatch.server.app import Server
from clusterwatch.server.config import ConfigError, ServerConfig, load_config

T0 = 1_700_000_000_000
THIRDS = ((0, 5460), (5461, 10922), (10923, 16383))
A, B, C = ("a" * 40, "b" * 40, "c" * 40)
RA, RB, RC = ("1" * 40, "2" * 40, "3" * 40)


def msg(kind: str, node: str, epoch: int, seq: int, **fields: Any) -> bytes:
    return msgspec.json.encode({"v": 1, "type": kind, "node": node, "epoch": epoch, "seq": seq,
                                **fields})


class Harness:
    def __init__(self, **settings: Any) -> None:
        self.now = T0
        self.server = Server(ServerConfig(port=0, **settings))
        self.server.now_ms = lambda: self.now  # type: ignore[method-assign]
        everything = self.server.table.catalog.everything
        self.ctx = CommandContext(session=Session(id=1, allowed=everything),
                                  server=self.server, table=self.server.table)

    def close(self) -> None:
        self.server.process.close()

    def raw(self, *argv: str | bytes, proto: int = 2) -> bytes:
        self.ctx.session.protocol = proto  # type: ignore[assignment]
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        return encode(self.server.table.dispatch(self.ctx, args), proto)  # type: ignore[arg-type]

    def reply(self, *argv: str | bytes, proto: int = 2) -> Any:
        reader = hiredis.Reader()  # parses RESP3 types as well
        reader.feed(self.raw(*argv, proto=proto))
        value = reader.gets()
        assert value is not False, "incomplete reply"
        assert reader.gets() is False, "more than one reply"
        return value

    def call(self, *argv: str | bytes) -> Any:
        value = self.reply(*argv)
        if isinstance(value, hiredis.ReplyError):
            raise AssertionError(f"error reply: {value}")
        return value

    def publish(self, *messages: bytes) -> list[Any]:
        return list(self.reply("BUS", "PUBLISH", *messages))

    def info(self) -> dict[str, str]:
        text = self.call("CLUSTER", "INFO").decode()
        return dict(line.split(":", 1) for line in text.split("\r\n") if line)

    def three_masters(self, replicas: bool = True) -> None:
        batch = []
        for i, (node, replica, span) in enumerate(zip((A, B, C), (RA, RB, RC), THIRDS,
                                                      strict=True)):
            batch += [msg("hello", node, i + 1, 1, addr=f"10.0.0.{i + 1}:7000"),
                      msg("slots", node, i + 1, 2, ranges=[list(span)])]
            if replicas:
                batch.append(msg("hello", replica, i + 1, 1, addr=f"10.0.1.{i + 1}:7000",
                                 role="replica", replicaof=node))
        assert self.publish(*batch) == [b"applied"] * len(batch)

    def beat(self, *nodes: str, seq: int, epoch: int | None = None) -> None:
        epochs = {A: 1, B: 2, C: 3, RA: 1, RB: 2, RC: 3}
        batch = [msg("heartbeat", n, epoch or epochs[n], seq) for n in nodes]
        assert self.publish(*batch) == [b"applied"] * len(batch)


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(node_timeout=1000, fail_after=60_000)
    yield harness
    harness.close()


# --- CLUSTER INFO ---------------------------------------------------------------------------


def test_cluster_info_empty_model_is_fail_with_every_field(h: Harness) -> None:
    info = h.info()
    assert info["cluster_state"] == "fail"
    assert info["cluster_known_nodes"] == "0"
    assert list(info)[:9] == [
        "cluster_state", "cluster_slots_assigned", "cluster_slots_ok", "cluster_slots_pfail",
        "cluster_slots_fail", "cluster_known_nodes", "cluster_size", "cluster_current_epoch",
        "cluster_my_epoch"]


def test_cluster_info_is_crlf_bulk_in_resp2_and_verbatim_in_resp3(h: Harness) -> None:
    h.three_masters()
    resp2 = h.raw("CLUSTER", "INFO", proto=2)
    resp3 = h.raw("CLUSTER", "INFO", proto=3)
    assert resp2.startswith(b"$") and b"cluster_state:ok\r\n" in resp2
    assert resp3.startswith(b"=") and b"txt:cluster_state:ok\r\n" in resp3
    text = h.call("CLUSTER", "INFO").decode()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(line.count(":") == 1 for line in text.split("\r\n") if line)
    info = h.info()
    assert info["cluster_known_nodes"] == "6" and info["cluster_size"] == "3"
    assert info["cluster_slots_ok"] == "16384" and info["cluster_current_epoch"] == "3"


def test_cluster_info_reply_is_cached_until_the_model_changes(h: Harness) -> None:
    h.three_masters()
    first = h.server.table.dispatch(h.ctx, [b"CLUSTER", b"INFO"])
    second = h.server.table.dispatch(h.ctx, [b"cluster", b"info"])
    assert isinstance(first, Encoded) and first is second
    h.beat(A, seq=3)
    third = h.server.table.dispatch(h.ctx, [b"CLUSTER", b"INFO"])
    assert third is not first
    assert b"cluster_stats_messages_heartbeat_received:1\r\n" in third.resp2


def test_a_stale_message_shows_in_cluster_info_although_the_version_stays(h: Harness) -> None:
    h.three_masters()
    h.beat(A, seq=5)
    version = h.server.model.version
    assert h.info()["cluster_stats_messages_heartbeat_received"] == "1"
    assert h.publish(msg("heartbeat", A, 1, 5)) == [b"stale: have epoch 1 seq 5"]
    assert h.server.model.version == version
    assert h.info()["cluster_stats_messages_heartbeat_received"] == "2"


def test_reading_cluster_info_runs_failure_detection(h: Harness) -> None:
    h.three_masters(replicas=False)
    h.now += 500
    h.beat(B, C, seq=3)
    h.now += 600  # A silent for 1100 ms > node_timeout; B and C for 600 ms
    info = h.info()
    assert info["cluster_slots_pfail"] == "5461"
    assert info["cluster_slots_ok"] == str(16384 - 5461)
    assert info["cluster_state"] == "ok"  # pfail alone does not fail the cluster


# --- failure detection and failover, as CLUSTER NODES / SLOTS show them -------------------


def _flags(h: Harness) -> dict[str, str]:
    text = h.call("CLUSTER", "NODES").decode()
    return {line.split(" ")[0]: line.split(" ")[2] for line in text.splitlines()}


def test_silent_master_goes_pfail_then_fail_by_reports_then_recovers(h: Harness) -> None:
    h.three_masters(replicas=False)
    h.now += 1500
    h.beat(B, C, seq=3)
    assert _flags(h)[A] == "master,fail?"
    assert h.call("CLUSTER", "COUNT-FAILURE-REPORTS", A) == 0
    assert h.publish(msg("fail_report", B, 2, 4, target=A, state="pfail"),
                     msg("fail_report", C, 3, 4, target=A, state="pfail")) == [b"applied"] * 2
    assert h.call("CLUSTER", "COUNT-FAILURE-REPORTS", A) == 2
    assert _flags(h)[A] == "master,fail"
    info = h.info()
    assert (info["cluster_state"], info["cluster_slots_fail"]) == ("fail", "5461")
    h.beat(A, seq=3)  # speaking while the majority reports it clears nothing (Redis's rule)
    assert _flags(h)[A] == "master,fail"
    h.now += 2001  # past the reports' validity and the FAIL undo time (2 x node timeout)
    h.beat(B, C, seq=5)
    assert _flags(h)[A] == "master,fail"  # fail outlives its quorum until the node speaks
    h.beat(A, seq=4)
    assert _flags(h)[A] == "master"
    assert h.info()["cluster_state"] == "ok"


def test_fail_after_without_reports() -> None:
    h = Harness(node_timeout=1000, fail_after=500)
    try:
        h.three_masters(replicas=False)
        h.now += 1200
        h.beat(B, C, seq=3)
        assert _flags(h)[A] == "master,fail?"
        h.now += 400
        h.beat(B, C, seq=4)
        assert h.info()["cluster_slots_fail"] == "5461"
        assert h.info()["cluster_state"] == "fail"
    finally:
        h.close()


def test_failover_with_a_higher_epoch_moves_the_slots(h: Harness) -> None:
    h.three_masters()
    assert h.publish(msg("hello", RA, 4, 2, addr="10.0.1.1:7000", role="master"),
                     msg("slots", RA, 4, 3, ranges=[[0, 5460]])) == [b"applied"] * 2
    rows = h.call("CLUSTER", "SLOTS")
    owner = {row[0]: row[2][2].decode() for row in rows}
    assert owner[0] == RA
    assert h.info()["cluster_current_epoch"] == "4"
    flags = _flags(h)
    assert flags[RA] == "master" and flags[A] == "master"
    lines = {line.split(" ")[0]: line for line in
             h.call("CLUSTER", "NODES").decode().splitlines()}
    assert lines[RA].endswith(" 0-5460") and not lines[A].endswith("5460")


# --- CLUSTER NODES / SLOTS / SHARDS ---------------------------------------------------------


def test_cluster_nodes_lines(h: Harness) -> None:
    h.three_masters()
    text = h.call("CLUSTER", "NODES").decode()
    assert text.endswith("\n") and "\r" not in text
    myself, *lines = text.splitlines()
    assert len(lines) == 6 and "myself" not in "".join(lines)
    myid = h.call("CLUSTER", "MYID").decode()
    assert myself == f"{myid} {myself.split()[1]} myself,master - 0 0 0 connected"
    pattern = re.compile(r"[0-9a-f]{40} \S+:\d+@\d+ (master|slave)\S* (-|[0-9a-f]{40}) 0 \d+ "
                         r"\d+ (connected|disconnected)( \d+(-\d+)?)*")
    assert all(pattern.fullmatch(line) for line in lines), lines
    by_id = {line.split(" ")[0]: line.split(" ") for line in lines}
    assert by_id[RA][2:4] == ["slave", A]
    assert by_id[A][1] == "10.0.0.1:7000@17000" and by_id[A][-1] == "0-5460"


def test_cluster_nodes_verbatim_in_resp3_and_refreshed_by_a_heartbeat(h: Harness) -> None:
    h.three_masters()
    assert h.raw("CLUSTER", "NODES", proto=3).startswith(b"=")
    before = h.call("CLUSTER", "NODES")
    h.now += 10
    h.beat(A, seq=3)
    after = h.call("CLUSTER", "NODES")
    pong = {line.split(b" ")[0]: line.split(b" ")[5] for line in after.splitlines()}
    assert before != after and pong[A.encode()] == str(T0 + 10).encode()


def test_cluster_slots_shape_in_both_protocols(h: Harness) -> None:
    h.three_masters()
    for proto in (2, 3):
        rows = h.reply("CLUSTER", "SLOTS", proto=proto)
        assert [(row[0], row[1]) for row in rows] == list(THIRDS)
        _start, _end, master, replica = rows[0]
        assert master[:3] == [b"10.0.0.1", 7000, A.encode()]
        assert replica[:3] == [b"10.0.1.1", 7000, RA.encode()]
        assert master[3] == ([] if proto == 2 else {})
    assert b"%0\r\n" in h.raw("CLUSTER", "SLOTS", proto=3)
    assert b"%0" not in h.raw("CLUSTER", "SLOTS", proto=2)


def test_cluster_shards_shape(h: Harness) -> None:
    h.three_masters()
    shards = h.reply("CLUSTER", "SHARDS", proto=3)
    assert [shard[b"slots"] for shard in shards] == [list(span) for span in THIRDS]
    master, replica = shards[0][b"nodes"]
    assert list(master) == [b"id", b"port", b"ip", b"endpoint", b"role", b"replication-offset",
                            b"health"]
    assert (master[b"id"], master[b"role"], master[b"health"]) == (A.encode(), b"master",
                                                                    b"online")
    assert (replica[b"id"], replica[b"role"]) == (RA.encode(), b"replica")
    flat = h.reply("CLUSTER", "SHARDS", proto=2)
    assert flat[0][0] == b"slots" and flat[0][2] == b"nodes"


# --- MYID, COUNT-FAILURE-REPORTS, KEYSLOT, arities and docs ---------------------------------


def test_myid_is_derived_from_hostname_and_port_or_configured() -> None:
    h = Harness()
    try:
        myid = h.call("CLUSTER", "MYID").decode()
        assert re.fullmatch(r"[0-9a-f]{40}", myid)
        assert myid == derive_id(socket.gethostname(), 0)
    finally:
        h.close()
    configured = Harness(myid="0123456789abcdef0123456789abcdef01234567")
    try:
        assert configured.call("CLUSTER", "MYID") == b"0123456789abcdef0123456789abcdef01234567"
    finally:
        configured.close()


@pytest.mark.parametrize("bad", ["xyz", "0123456789ABCDEF0123456789ABCDEF01234567", "0" * 41])
def test_a_malformed_myid_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--myid: must be 40 lowercase"):
        load_config(flags={"myid": bad}, environ={})


def test_model_settings_from_flags() -> None:
    config = load_config(flags={"node_timeout": "300", "fail_after": "0",
                                "require_full_coverage": "no", "max_message_size": "100"},
                         environ={})
    assert (config.node_timeout, config.fail_after, config.require_full_coverage,
            config.max_message_size) == (300, 0, False, 100)
    with pytest.raises(ConfigError, match="--require-full-coverage: 'maybe' is not yes or no"):
        load_config(flags={"require_full_coverage": "maybe"}, environ={})


def test_count_failure_reports_unknown_node(h: Harness) -> None:
    error = h.reply("CLUSTER", "COUNT-FAILURE-REPORTS", "nosuchnode")
    assert isinstance(error, hiredis.ReplyError)
    assert str(error) == "ERR Unknown node nosuchnode"


def test_keyslot(h: Harness) -> None:
    assert h.call("CLUSTER", "KEYSLOT", "foo") == 12182
    assert h.call("CLUSTER", "KEYSLOT", "{user1000}.following") == \
        h.call("CLUSTER", "KEYSLOT", "{user1000}.followers")


@pytest.mark.parametrize(("sub", "arity"), [
    ("info", 2), ("nodes", 2), ("shards", 2), ("slots", 2), ("myid", 2),
    ("count-failure-reports", 3), ("keyslot", 3)])
def test_arity_and_docs_follow_redis(h: Harness, sub: str, arity: int) -> None:
    info = h.call("COMMAND", "INFO", f"cluster|{sub}")[0]
    assert info[0] == f"cluster|{sub}".encode() and info[1] == arity
    extra = ["x"] * (arity - 1)  # one argument too many
    error = h.reply("CLUSTER", sub, *extra)
    assert str(error) == f"ERR wrong number of arguments for 'cluster|{sub}' command"
    docs = h.reply("COMMAND", "DOCS", f"cluster|{sub}", proto=3)[f"cluster|{sub}".encode()]
    assert docs[b"group"] == b"cluster" and docs[b"summary"] and docs[b"since"]
    if arity == 3:
        assert docs[b"arguments"][0][b"name"] in (b"node-id", b"key")


# --- BUS ------------------------------------------------------------------------------------


def test_bus_publish_outcomes_in_one_batch(h: Harness) -> None:
    replies = h.publish(msg("hello", A, 1, 1, addr="10.0.0.1:7000"),
                        msg("hello", A, 1, 1, addr="10.0.0.1:7000"),
                        b'{"v": 1, "type": "heartbeat"}')
    assert replies[:2] == [b"applied", b"stale: have epoch 1 seq 1"]
    assert isinstance(replies[2], hiredis.ReplyError)
    assert str(replies[2]) == "ERR invalid message: node: Object missing required field `node`"


def test_bus_publish_replies_read_the_same_in_resp3(h: Harness) -> None:
    raw = h.raw("BUS", "PUBLISH", msg("hello", A, 1, 1, addr="10.0.0.1:7000"), b"[", proto=3)
    assert raw == b"*2\r\n+applied\r\n-ERR invalid message: invalid JSON: " + raw.split(
        b"invalid JSON: ", 1)[1]
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 3


def test_bus_info_counts(h: Harness) -> None:
    h.three_masters(replicas=False)
    h.publish(msg("hello", A, 1, 1, addr="10.0.0.1:7000"), b"nope", b'{"v": 2}')
    info = h.reply("BUS", "INFO", proto=3)
    assert info[b"bus"] == b"memory"
    assert info[b"received"] == {b"hello": 4, b"heartbeat": 0, b"slots": 3,
                                 b"fail_report": 0, b"leave": 0}
    assert (info[b"applied"], info[b"stale"], info[b"rejected"]) == (6, 1, 2)
    assert info[b"rejected_by_reason"][b"json"] == 1
    assert info[b"rejected_by_reason"][b"version"] == 1
    assert info[b"messages"] == 9
    assert (info[b"nodes"], info[b"current_epoch"], info[b"cluster_state"]) == (3, 3, b"ok")
    assert info[b"model_version"] == h.server.model.version
    flat = h.reply("BUS", "INFO", proto=2)
    assert flat[0] == b"bus" and len(flat) % 2 == 0


def test_bus_info_shows_the_fail_rule_in_force(h: Harness) -> None:
    h.three_masters(replicas=False)
    info = h.reply("BUS", "INFO", proto=3)
    assert (info[b"fail_rule"], info[b"fail_rule_setting"]) == (b"timer", b"auto")
    h.publish(msg("fail_report", A, 1, 10, target=B, state="pfail"))
    info = h.reply("BUS", "INFO", proto=3)
    assert (info[b"fail_rule"], info[b"fail_rule_setting"]) == (b"redis", b"auto")


def test_fail_rule_setting_from_flags_env_and_toml(tmp_path: Any) -> None:
    assert ServerConfig().fail_rule == "auto"
    assert load_config(flags={"fail_rule": "redis"}, environ={}).fail_rule == "redis"
    assert load_config(environ={"CLUSTERWATCH_FAIL_RULE": "timer"}).fail_rule == "timer"
    path = tmp_path / "cw.toml"
    path.write_text('[server]\nfail-rule = "redis"\n')
    assert load_config(config_file=str(path), environ={}).fail_rule == "redis"
    with pytest.raises(ConfigError, match="--fail-rule: 'never' is not one of auto, redis, timer"):
        load_config(flags={"fail_rule": "never"}, environ={})


def test_cluster_forget_replies_as_redis(h: Harness) -> None:
    h.three_masters()
    assert h.call("CLUSTER", "FORGET", RC) == b"OK"
    assert RC not in h.call("CLUSTER", "NODES").decode()
    assert h.info()["cluster_known_nodes"] == "5"
    error = h.reply("CLUSTER", "FORGET", RC)
    assert str(error) == f"ERR Unknown node {RC}"
    error = h.reply("CLUSTER", "FORGET", h.server.myid)
    assert str(error) == "ERR I tried hard but I can't forget myself..."
    error = h.reply("CLUSTER", "FORGET")
    assert str(error) == "ERR wrong number of arguments for 'cluster|forget' command"
    # Redis's blacklist: the forgotten node's messages are refused for 60 s.
    replies = h.publish(msg("heartbeat", RC, 3, 9))
    assert isinstance(replies[0], hiredis.ReplyError)
    assert "was forgotten" in str(replies[0])
    h.now += 60_000
    # After the ban it is a stranger: a hello first (--require-hello), then its heartbeats.
    refused = h.publish(msg("heartbeat", RC, 3, 10))
    assert isinstance(refused[0], hiredis.ReplyError) and "say hello first" in str(refused[0])
    assert h.publish(msg("hello", RC, 3, 11, addr="10.0.0.9:7000", role="replica")) == [
        b"applied"]
    assert h.publish(msg("heartbeat", RC, 3, 12)) == [b"applied"]
    reasons = h.reply("BUS", "INFO", proto=3)[b"rejected_by_reason"]
    assert (reasons[b"forgotten"], reasons[b"max_nodes"], reasons[b"no_hello"]) == (1, 0, 1)


def test_cluster_forget_is_admin_so_the_monitor_role_cannot_run_it(h: Harness) -> None:
    spec = h.server.table.lookup_name("cluster|forget")
    assert spec is not None and {"@admin", "@dangerous"} <= set(spec.categories)
    from clusterwatch.commands._acl_user import apply_rules, new_user

    monitor = apply_rules(new_user("m"), ["+@all", "-@publish", "-@admin"],
                          h.server.table.catalog)
    assert "cluster|forget" not in monitor.allowed and "cluster|info" in monitor.allowed


def test_max_nodes_refuses_one_node_too_many() -> None:
    harness = Harness(node_timeout=1000, max_nodes=2)
    try:
        replies = harness.publish(msg("hello", A, 1, 1, addr="10.0.0.1:7000"),
                                  msg("hello", B, 1, 1, addr="10.0.0.2:7000"),
                                  msg("hello", C, 1, 1, addr="10.0.0.3:7000"))
        assert replies[:2] == [b"applied", b"applied"]
        assert str(replies[2]) == "ERR invalid message: node: too many nodes: max-nodes is 2"
        info = harness.reply("BUS", "INFO", proto=3)
        assert info[b"rejected_by_reason"][b"max_nodes"] == 1 and info[b"nodes"] == 2
    finally:
        harness.close()


def test_bus_publish_needs_a_message(h: Harness) -> None:
    error = h.reply("BUS", "PUBLISH")
    assert str(error) == "ERR wrong number of arguments for 'bus|publish' command"


# --- INFO cluster ---------------------------------------------------------------------------


def test_info_cluster_section(h: Harness) -> None:
    h.three_masters()
    h.publish(b"{}")
    text = h.call("INFO", "cluster").decode()
    fields = dict(line.split(":", 1) for line in text.split("\r\n")[1:] if line)
    assert text.startswith("# Cluster\r\n")
    assert fields["cluster_enabled"] == "1"
    # No cluster_* field that CLUSTER INFO carries: the exporter would drop the duplicate.
    assert [name for name in fields if name.startswith("cluster_")] == ["cluster_enabled"]
    assert fields["clusterwatch_myid"] == h.server.myid
    assert fields["clusterwatch_nodes_known"] == "6"
    assert fields["clusterwatch_bus_messages_applied"] == "9"
    assert fields["clusterwatch_bus_messages_rejected"] == "1"
    assert fields["clusterwatch_bus_messages_received"] == "10"
    assert h.call("CONFIG", "GET", "cluster-enabled") == [b"cluster-enabled", b"yes"]
