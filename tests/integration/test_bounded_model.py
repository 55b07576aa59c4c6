"""Issue 9's bounded model against a running server: 20000 distinct node ids against
`--max-nodes 10000`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import start_server

from .redis_procs import bus_info, connect

pytestmark = pytest.mark.integration


def hello(i: int) -> bytes:
    return json.dumps({"v": 1, "type": "hello", "node": f"node-{i:05d}", "epoch": 1, "seq": 1,
                       "addr": f"10.{i // 250 % 250}.{i % 250}.1:6379"}).encode()


def test_twenty_thousand_node_ids_against_max_nodes_ten_thousand(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--max-nodes", "10000")
    try:
        r = connect(server)
        replies: list[bytes | Exception] = []
        rss_empty = int(r.info("memory")["used_memory_rss"])
        for start in range(0, 10_000, 1000):
            replies += r.execute_command("BUS", "PUBLISH", *(hello(i) for i in
                                                              range(start, start + 1000)))
        rss_at_limit = int(r.info("memory")["used_memory_rss"])
        for start in range(10_000, 20_000, 1000):
            replies += r.execute_command("BUS", "PUBLISH", *(hello(i) for i in
                                                              range(start, start + 1000)))
        rss_after = int(r.info("memory")["used_memory_rss"])
        assert replies[:10_000] == [b"applied"] * 10_000
        refused = replies[10_000:]
        assert all(isinstance(reply, Exception) for reply in refused)
        assert str(refused[0]) == "invalid message: node: too many nodes: max-nodes is 10000"
        info = bus_info(server)
        assert info["nodes"] == 10_000
        rejected = dict(zip(info["rejected_by_reason"][::2], info["rejected_by_reason"][1::2],
                            strict=True))
        assert rejected[b"max_nodes"] == 10_000
        text = r.execute_command("CLUSTER", "INFO").decode()
        assert "cluster_known_nodes:10000\r\n" in text
        # Loose: the refused half costs far less than the served half (which includes the
        # replies' and the server's own overhead); print the numbers for the report.
        print(f"rss empty {rss_empty}, at 10000 nodes {rss_at_limit}, "
              f"after 10000 refused {rss_after}")
        assert rss_after - rss_at_limit < 16 * 1024 * 1024
    finally:
        server.stop()
