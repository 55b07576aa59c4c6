"""HEALTH SAFE-TO-STOP's what-if (cluster/whatif.py), with explicit times.

Three masters a, b, c with replicas ra, rb, rc, node timeout 15 s.
"""

from __future__ import annotations

from typing import Any

import pytest

from clusterwatch.cluster import ApiError, ModelConfig
from clusterwatch.cluster.whatif import MAX_IDS
from clusterwatch.server.http import refusal_code
from tests.cluster.clusterkit import T0, TIMEOUT, Timeline

MASTERS = ("a", "b", "c")
REPLICAS = ("ra", "rb", "rc")


def redis_service(link: str | None = "up", **info: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"role": "slave", **info}
    if link is not None:
        fields["master_link_status"] = link
    return {"redis": {"state": "running", "status": {"critical": {"up": True}, "info": fields}}}


class Run(Timeline):
    def __init__(self, full_coverage: bool = True) -> None:
        super().__init__(ModelConfig(node_timeout_ms=TIMEOUT,
                                     require_full_coverage=full_coverage))

    def healthy(self, now: int) -> None:
        self.beat(now, *MASTERS, failing=[], services={"redis": {"state": "running"}})
        self.beat(now, *REPLICAS, failing=[], services=redis_service(replication_lag=0,
                                                                     master_last_io_seconds_ago=1))

    def ask(self, now: int, *ids: str) -> dict[str, Any]:
        return self.model.safe_to_stop(list(ids), now)


def verdicts(doc: dict[str, Any], rule: str) -> list[str]:
    return [f["verdict"] for f in doc["findings"] if f["rule"] == rule]


def test_a_master_with_an_in_sync_replica_is_safe_with_the_failover_noted() -> None:
    run = Run()
    run.healthy(T0)
    doc = run.ask(T0 + 500, "a")
    assert doc["safe"] is True and doc["verdict"] == "safe"
    (coverage,) = [f for f in doc["findings"] if f["rule"] == "coverage"]
    assert coverage["reason"] == ("a serves 5461 slots; in-sync replica to promote: ra (link "
                                  "up, heartbeat 500 ms old, 0 bytes behind)")
    assert verdicts(doc, "majority") == ["safe"]
    assert any("CLUSTER FAILOVER" in note for note in doc["notes"])


def test_a_master_whose_replica_is_down_is_not_safe() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 16_000, "a", "b", "c", "rb", "rc", failing=[])
    doc = run.ask(T0 + 16_000, "a")
    assert doc["safe"] is False and doc["verdict"] == "unsafe"
    (coverage,) = [f for f in doc["findings"] if f["rule"] == "coverage"]
    assert coverage["verdict"] == "unsafe"
    assert "would be uncovered: no replica to promote (ra is fail?)" in coverage["reason"]


def test_a_replica_with_its_link_down_is_no_promotion() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 100, "ra", services=redis_service("down"))
    doc = run.ask(T0 + 200, "a")
    assert doc["verdict"] == "unsafe"
    assert "ra: link to its master down" in doc["findings"][1]["reason"]


def test_a_replica_too_long_without_data_may_not_be_promoted() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 100, "ra", services=redis_service(master_last_io_seconds_ago=151))
    assert run.ask(T0 + 200, "a")["verdict"] == "unsafe"


def test_a_replica_whose_heartbeat_says_nothing_of_its_link_is_unknown() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 100, "ra", services=redis_service(None))
    doc = run.ask(T0 + 200, "a")
    assert doc["safe"] is False and doc["verdict"] == "unknown"
    assert "cannot know whether it is in sync" in doc["findings"][1]["reason"]


def test_two_masters_of_three_leave_no_majority() -> None:
    run = Run()
    run.healthy(T0)
    doc = run.ask(T0 + 100, "a", "b")
    assert doc["verdict"] == "unsafe"
    (majority,) = [f for f in doc["findings"] if f["rule"] == "majority"]
    assert majority["reason"].startswith("1 of 3 slot-serving masters would be left "
                                         "reachable; a majority is 2")


def test_a_master_and_its_replica_together_uncover_the_slots() -> None:
    run = Run()
    run.healthy(T0)
    doc = run.ask(T0 + 100, "a", "ra")
    assert doc["verdict"] == "unsafe"
    assert "ra stops too" in doc["findings"][1]["reason"]


def test_replicas_alone_are_safe() -> None:
    run = Run()
    run.healthy(T0)
    doc = run.ask(T0 + 100, "ra", "rb", "rc")
    assert doc["verdict"] == "safe"
    assert verdicts(doc, "services") == ["safe"]


def test_without_full_coverage_uncovered_slots_are_not_fatal() -> None:
    run = Run(full_coverage=False)
    run.healthy(T0)
    run.beat(T0 + 16_000, "a", "b", "c", "rb", "rc", failing=[])
    assert run.ask(T0 + 16_000, "a")["verdict"] == "safe"


def test_a_failed_cluster_is_never_safe() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 16_000, "a", "ra", "rb", "rc", failing=[])
    doc = run.ask(T0 + 16_000, "ra")
    assert doc["verdict"] == "unsafe"
    assert doc["findings"][0] == {"rule": "state", "verdict": "unsafe",
                                  "reason": "cluster_state is fail already"}


def test_zeebe_partitions_keep_a_raft_majority() -> None:
    run = Run()
    run.healthy(T0)

    def parts(*ids: int) -> list[dict[str, Any]]:
        return [{"id": i, "role": "follower", "health": "healthy"} for i in ids]

    run.beat(T0 + 100, "ra", partitions=parts(1, 2))
    run.beat(T0 + 100, "rb", partitions=parts(1, 2))
    run.beat(T0 + 100, "rc", partitions=parts(1))
    doc = run.ask(T0 + 200, "rb")
    assert verdicts(doc, "partitions") == ["safe", "unsafe"]
    assert doc["findings"][-1]["reason"] == ("partition 2: 1 of its 2 replicas would be left "
                                             "on nodes that are ok; a raft majority is 2")


def test_a_service_running_on_the_stopping_nodes_only_is_unsafe() -> None:
    run = Run()
    run.healthy(T0)
    run.beat(T0 + 100, "rc", services={"broker": {"state": "running"},
                                       **redis_service()})
    doc = run.ask(T0 + 200, "rc")
    assert doc["verdict"] == "unsafe"
    assert {"rule": "services", "verdict": "unsafe",
            "reason": "service broker would be running on no reachable node"} in doc["findings"]


@pytest.mark.parametrize(("ids", "status", "message"), [
    ([], 400, "no node given"),
    (["a", "a"], 400, "Node a specified multiple times"),
    (["a", "nope"], 404, "Unknown node nope"),
    ([f"n{i}" for i in range(MAX_IDS + 1)], 400,
     f"too many nodes: at most {MAX_IDS} at a time, got {MAX_IDS + 1}"),
    (["x" * 10_000], 404, "Unknown node " + "x" * 61 + "..."),
])
def test_bad_ids_are_refused_before_any_work(ids: list[str], status: int, message: str) -> None:
    run = Run()
    with pytest.raises(ApiError) as caught:
        run.ask(T0, *ids)
    assert (refusal_code(caught.value), caught.value.message) == (status, message)
