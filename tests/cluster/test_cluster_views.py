"""CLUSTER INFO / NODES / SLOTS / SHARDS shapes and caching."""

from __future__ import annotations

from clusterwatch.cluster import ClusterModel, NetInfo, NodeState, SlotRange
from tests.cluster.clusterkit import (
    T0,
    TIMEOUT,
    fail_report,
    heartbeat,
    hello,
    info_fields,
    leave,
    message,
    nodes_lines,
    publish_ok,
    slots,
    three_masters,
)

INFO_ORDER = [
    "cluster_state",
    "cluster_slots_assigned",
    "cluster_slots_ok",
    "cluster_slots_pfail",
    "cluster_slots_fail",
    "cluster_known_nodes",
    "cluster_size",
    "cluster_current_epoch",
    "cluster_my_epoch",
]


def test_cluster_info_lines_are_crlf_terminated_with_one_colon_in_redis_order() -> None:
    model = three_masters(replicas=True)
    publish_ok(model, fail_report("a", 1, 9, "b"), T0)
    assert model.publish(heartbeat("a", 1, 9), T0).kind == "stale"
    text = model.cluster_info_text(T0)
    assert text.endswith("\r\n")
    lines = text.split("\r\n")[:-1]
    assert all(line.count(":") == 1 and "\n" not in line and "\r" not in line for line in lines)
    names = [line.split(":")[0] for line in lines]
    assert names == [
        *INFO_ORDER,
        "cluster_stats_messages_hello_received",
        "cluster_stats_messages_heartbeat_received",
        "cluster_stats_messages_slots_received",
        "cluster_stats_messages_fail_report_received",
        "cluster_stats_messages_sent",
        "cluster_stats_messages_received",
        "total_cluster_links_buffer_limit_exceeded",
    ]
    fields = info_fields(text)
    assert fields["cluster_stats_messages_hello_received"] == "6"
    assert fields["cluster_stats_messages_received"] == "11"
    assert fields["cluster_my_epoch"] == "0" and fields["cluster_size"] == "3"
    assert fields["cluster_known_nodes"] == "6"


def test_cluster_info_counts_stale_messages_without_a_version_change() -> None:
    model = three_masters()
    version = model.version
    before = info_fields(model.cluster_info_text(T0))
    model.publish(hello("a", 1, 1), T0)
    after = info_fields(model.cluster_info_text(T0))
    assert model.version == version
    assert int(after["cluster_stats_messages_hello_received"]) == 4
    assert (
        int(after["cluster_stats_messages_received"])
        == int(before["cluster_stats_messages_received"]) + 1
    )


def test_cluster_nodes_format() -> None:
    model = three_masters(replicas=True)
    publish_ok(model, hello("a", 1, 3, port=7000, hostname="host-a"), T0)
    publish_ok(
        model,
        message("hello", "rb", 1, 2, addr="10.0.0.9:7101@9999", role="replica", replicaof="b"),
        T0,
    )
    publish_ok(model, slots("b", 2, 3, (5461, 5461), (5463, 10922), released=[[5462, 5462]]),
               T0 + 7)
    publish_ok(model, heartbeat("zz", 0, 1), T0 + 8)
    text = model.cluster_nodes_text(T0 + 8)
    assert text.endswith("\n") and text.count("\n") == 7
    lines = text.split("\n")[:-1]
    assert [line.split(" ")[0] for line in lines] == ["a", "b", "c", "ra", "rb", "rc", "zz"]
    assert lines[0] == f"a 10.0.0.1:7000@17000,host-a master - 0 {T0} 1 connected 0-5460"
    assert lines[1] == f"b 10.0.0.1:7001@17001 master - 0 {T0 + 7} 2 connected 5461 5463-10922"
    assert lines[4] == f"rb 10.0.0.9:7101@9999 slave b 0 {T0} 1 connected"
    assert lines[6] == f"zz :0@0 master,noaddr - 0 {T0 + 8} 0 connected"


def test_every_cluster_nodes_line_ends_with_newline() -> None:
    model = three_masters(replicas=True)
    text = model.cluster_nodes_text(T0)
    assert text.splitlines(keepends=True) == [line + "\n" for line in text.split("\n")[:-1]]
    assert all(len(line.split(" ")) >= 8 for line in text.splitlines())


def test_replica_that_owns_slots_is_shown_as_master() -> None:
    model = three_masters(replicas=True)
    publish_ok(model, slots("ra", 5, 2, (0, 10)), T0)
    line = nodes_lines(model.cluster_nodes_text(T0))["ra"]
    assert line[2:4] == ["master", "-"] and line[8:] == ["0-10"]
    info = model.node("ra")
    assert info is not None and info.role == "master" and info.replicaof == "a"


def test_cluster_slots_merges_ranges_and_drops_failed_replicas() -> None:
    model = three_masters(replicas=True)
    publish_ok(model, slots("b", 2, 3, (5461, 10922), (0, 0)), T0)
    publish_ok(model, slots("a", 1, 3, (1, 5460)), T0)
    rows = model.cluster_slots(T0)
    assert [(r.start, r.end, r.master.id) for r in rows] == [
        (0, 0, "b"),
        (1, 5460, "a"),
        (5461, 10922, "b"),
        (10923, 16383, "c"),
    ]
    assert rows[1] == SlotRange(
        1, 5460, NetInfo("10.0.0.1", 7000, "a", None), (NetInfo("10.0.0.1", 7100, "ra", None),)
    )
    t = T0 + 3 * TIMEOUT
    for seq, node in enumerate(["a", "b", "c", "rb", "rc"], start=10):
        info = model.node(node)
        assert info is not None
        publish_ok(model, heartbeat(node, info.config_epoch, seq), t - 1)
    rows = model.cluster_slots(t)
    ra = model.node("ra")
    assert ra is not None and ra.state is NodeState.FAIL
    assert [r.replicas for r in rows if r.master.id == "a"] == [()]
    assert [len(r.replicas) for r in rows if r.master.id in "bc"] == [1, 1, 1]


def test_cluster_shards_shape() -> None:
    model = three_masters(replicas=True)
    publish_ok(
        model, hello("rc", 1, 2, port=7102, role="replica", replicaof="c", hostname="h-rc"), T0
    )
    shards = model.cluster_shards(T0)
    assert [s["slots"] for s in shards] == [[0, 5460], [5461, 10922], [10923, 16383]]
    assert shards[2]["nodes"] == [
        {
            "id": "c",
            "port": 7002,
            "ip": "10.0.0.1",
            "endpoint": "10.0.0.1",
            "role": "master",
            "replication-offset": 0,
            "health": "online",
        },
        {
            "id": "rc",
            "port": 7102,
            "ip": "10.0.0.1",
            "endpoint": "10.0.0.1",
            "hostname": "h-rc",
            "role": "replica",
            "replication-offset": 0,
            "health": "online",
        },
    ]
    assert list(shards[2]["nodes"][1]) == [
        "id",
        "port",
        "ip",
        "endpoint",
        "hostname",
        "role",
        "replication-offset",
        "health",
    ]


def test_returned_view_data_cannot_corrupt_the_cache() -> None:
    model = three_masters(replicas=True)
    shards = model.cluster_shards(T0)
    shards[0]["slots"].append(99)
    shards[0]["nodes"][0]["port"] = 1
    shards.clear()
    model.cluster_slots(T0).clear()
    assert model.cluster_shards(T0)[0]["slots"] == [0, 5460]
    assert model.cluster_shards(T0)[0]["nodes"][0]["port"] == 7000
    assert len(model.cluster_slots(T0)) == 3


def test_views_are_cached_until_the_model_changes() -> None:
    model = three_masters()
    first = model.cluster_nodes_bytes(T0)
    assert model.cluster_nodes_bytes(T0 + 1) is first
    publish_ok(model, heartbeat("a", 1, 5), T0 + 2)
    second = model.cluster_nodes_bytes(T0 + 2)
    assert second is not first and f"0 {T0 + 2} 1 connected" in second.decode()
    assert model.cluster_nodes_text(T0 + 2) == second.decode()


def test_node_records() -> None:
    model = three_masters(replicas=True)
    publish_ok(model, leave("rc", 1, 5), T0)
    assert [n.id for n in model.nodes()] == ["a", "b", "c", "ra", "rb"]
    info = model.node("rb")
    assert info is not None
    assert (info.addr, info.host, info.port, info.busport) == (
        "10.0.0.1:7101",
        "10.0.0.1",
        7101,
        17101,
    )
    assert (info.role, info.replicaof, info.state, info.slots_owned) == ("replica", "b", "ok", 0)
    assert model.node("rc") is None and model.node("nope") is None
    a = model.node("a")
    assert a is not None and a.slots_owned == 5461 and a.config_epoch == 1 and a.seq == 2


def test_heartbeats_leave_topology_and_the_info_head_unchanged() -> None:
    model = ClusterModel()
    for i in range(1000):
        publish_ok(model, hello(f"n{i:04d}", 1, 1, port=1000 + i), T0)
    publish_ok(model, slots("n0000", 1, 2, (0, 16383)), T0)
    head = model.cluster_info_text(T0)
    topology = model.topology_version
    for i in range(1000):
        publish_ok(model, heartbeat(f"n{i:04d}", 1, 3), T0 + 1)
    assert model.topology_version == topology
    assert model.cluster_info_text(T0 + 1) == head.replace(
        "cluster_stats_messages_hello_received:1000\r\n",
        "cluster_stats_messages_hello_received:1000\r\ncluster_stats_messages_heartbeat_received:1000\r\n",
    ).replace("received:1001\r\n", "received:2001\r\n")


def test_a_node_without_a_cluster_bus_shows_bus_port_0_not_an_invented_one() -> None:
    """A standalone Redis's agent announces `host:port@0` (issue 24: it showed port + 10000)."""
    model = ClusterModel()
    publish_ok(model, message("hello", "solo", 1, 1, addr="10.0.0.5:6379@0"), T0)
    publish_ok(model, message("hello", "member", 1, 1, addr="10.0.0.6:6379"), T0)
    lines = nodes_lines(model.cluster_nodes_text(T0))
    assert lines["solo"][1] == "10.0.0.5:6379@0"
    assert lines["member"][1] == "10.0.0.6:6379@16379"  # Redis's default cluster port
    info = model.node("solo")
    assert info is not None and info.busport == 0
