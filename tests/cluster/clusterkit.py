"""Builders and oracles shared by the cluster tests."""

from __future__ import annotations

from typing import Any

import msgspec

from clusterwatch.cluster import NUM_SLOTS, ClusterModel, ModelConfig, NodeState

T0 = 1_700_000_000_000
TIMEOUT = 15_000


def encode(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc)


def message(kind: str, node: str, epoch: int, seq: int, **fields: Any) -> bytes:
    return encode({"v": 1, "type": kind, "node": node, "epoch": epoch, "seq": seq, **fields})


def hello(node: str, epoch: int, seq: int, port: int = 7000, **fields: Any) -> bytes:
    return message("hello", node, epoch, seq, addr=f"10.0.0.1:{port}", **fields)


def heartbeat(node: str, epoch: int, seq: int, **fields: Any) -> bytes:
    return message("heartbeat", node, epoch, seq, **fields)


def slots(node: str, epoch: int, seq: int, *ranges: tuple[int, int], **fields: Any) -> bytes:
    return message("slots", node, epoch, seq, ranges=[list(r) for r in ranges], **fields)


def fail_report(node: str, epoch: int, seq: int, target: str, state: str = "pfail") -> bytes:
    return message("fail_report", node, epoch, seq, target=target, state=state)


def leave(node: str, epoch: int, seq: int) -> bytes:
    return message("leave", node, epoch, seq)


THIRDS = ((0, 5460), (5461, 10922), (10923, NUM_SLOTS - 1))


def three_masters(
    now: int = T0, *, replicas: bool = False, config: ModelConfig | None = None
) -> ClusterModel:
    """Masters a, b, c at epochs 1..3 covering all slots; with `replicas`, ra/rb/rc too."""
    model = ClusterModel(config or ModelConfig(node_timeout_ms=TIMEOUT))
    for i, (name, span) in enumerate(zip("abc", THIRDS, strict=True)):
        publish_ok(model, hello(name, i + 1, 1, port=7000 + i), now)
        publish_ok(model, slots(name, i + 1, 2, span), now)
        if replicas:
            msg = hello(f"r{name}", 1, 1, port=7100 + i, role="replica", replicaof=name)
            publish_ok(model, msg, now)
    return model


def publish_ok(model: ClusterModel, data: bytes, now: int) -> None:
    outcome = model.publish(data, now)
    assert outcome.kind == "applied", outcome


def beat_all(model: ClusterModel, now: int, seq: int, *, skip: tuple[str, ...] = ()) -> None:
    """A heartbeat from every node not in `skip`, at its current epoch."""
    for info in list(model.nodes()):
        if info.id not in skip:
            publish_ok(model, heartbeat(info.id, info.config_epoch, seq), now)


class Timeline:
    """Masters a, b, c and replicas ra, rb, rc, each message sent at an explicit time and
    numbered after the last."""

    def __init__(self, config: ModelConfig) -> None:
        self.model = three_masters(replicas=True, config=config)
        self.seq = 1000

    def beat(self, now: int, *nodes: str, **fields: Any) -> None:
        for node in nodes:
            info = self.model.node(node)
            assert info is not None
            self.seq += 1
            publish_ok(self.model, heartbeat(node, info.config_epoch, self.seq, **fields), now)

    def report(self, now: int, reporter: str, target: str) -> None:
        info = self.model.node(reporter)
        assert info is not None
        self.seq += 1
        publish_ok(self.model, fail_report(reporter, info.config_epoch, self.seq, target), now)


def info_fields(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.split("\r\n") if line)


def nodes_lines(text: str) -> dict[str, list[str]]:
    return {line.split(" ")[0]: line.split(" ") for line in text.splitlines()}


def brute_force_info(model: ClusterModel, now: int) -> dict[str, int | str]:
    """CLUSTER INFO's slot and state fields recomputed from the public per-node data."""
    owner: dict[int, str] = {}
    for row in model.cluster_slots(now):
        for slot in range(row.start, row.end + 1):
            assert slot not in owner
            owner[slot] = row.master.id
    states = {info.id: info.state for info in model.nodes()}
    owned = {info.id: info.slots_owned for info in model.nodes() if info.slots_owned}
    assert owned == {n: list(owner.values()).count(n) for n in set(owner.values())}
    counts = {state: 0 for state in NodeState}
    for node in owner.values():
        counts[states[node]] += 1
    reachable = sum(1 for n in owned if states[n] is NodeState.OK)
    full = len(owner) == NUM_SLOTS and counts[NodeState.FAIL] == 0
    coverage_ok = full or not model.config.require_full_coverage
    return {
        "cluster_state": "ok" if coverage_ok and reachable >= len(owned) // 2 + 1 else "fail",
        "cluster_slots_assigned": len(owner),
        "cluster_slots_ok": counts[NodeState.OK],
        "cluster_slots_pfail": counts[NodeState.PFAIL],
        "cluster_slots_fail": counts[NodeState.FAIL],
        "cluster_known_nodes": len(states),
        "cluster_size": len(owned),
    }


def views(model: ClusterModel, now: int, *, mask_pong: bool = False) -> tuple[Any, ...]:
    """Every derived view, for comparing two models."""
    nodes = model.cluster_nodes_text(now)
    if mask_pong:
        nodes = "\n".join(
            " ".join([*f[:5], "*", *f[6:]]) for f in (ln.split(" ") for ln in nodes.splitlines())
        )
    info = [
        line
        for line in model.cluster_info_text(now).split("\r\n")
        if not line.startswith("cluster_stats_messages")
    ]
    return (
        info,
        nodes,
        model.cluster_slots(now),
        model.cluster_shards(now),
        model.current_epoch,
        {n.id: model.count_failure_reports(n.id, now) for n in model.nodes()},
    )
