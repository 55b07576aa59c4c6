"""One liveness verdict per node: what every view says about whether a node is there.

The model judges each node once per model instant (`judge`, from the node's record, the
bus's freshness and `now_ms`; the record only changes with a new model version, so every
view that reads the verdict at one version and instant reads the same one). Every view
derives its liveness words from this verdict through the tables here (`CLUSTER_FLAG`,
`PUPPET_STATE`, `CURITY_NODE_STATE`); none looks at the node's state on its own.

Verdicts, most severe first (the first that holds is the verdict), each with since when:

    left        the model no longer holds the node: it left or was forgotten (since: None)
    fail        `fail` under the fail rule in force (fail_since)
    bus         the bus is not fresh: the model is the last one read (since it stopped)
    stale       `fail?` while its messages still arrive but are stale (pfail_since)
    pfail       `fail?`: no message for node_timeout (pfail_since)
    reachable   its messages arrive and are applied (its last message)

`fail` ranks above `bus`: the cluster's own verdict, reached before the bus went quiet,
still holds; every other verdict is unknowable while the bus is out. A node that is not
`reachable` (`reachable()` tests it without building a `Liveness`) is never running,
serving, alive or UP in any view, but in HEALTH LIVE's grace window, which names the outage.

Each verdict in full, and what each seed API, /metrics and pub/sub say: docs/liveness.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

from clusterwatch.cluster.records import NodeState

__all__ = [
    "CLUSTER_FLAG",
    "CURITY_NODE_STATE",
    "PUPPET_STATE",
    "Liveness",
    "Verdict",
    "judge",
    "reachable",
]


class Verdict(StrEnum):
    REACHABLE = "reachable"
    PFAIL = "pfail"
    STALE = "stale"
    FAIL = "fail"
    BUS = "bus"
    LEFT = "left"


class Liveness(NamedTuple):
    """A node's verdict, why, and since when (model clock, ms; None when unknown)."""

    verdict: Verdict
    reason: str
    since_ms: int | None

    @property
    def reachable(self) -> bool:
        return self.verdict is Verdict.REACHABLE

    def describe(self) -> str:
        """`<verdict> (<reason>)`, as the views' texts quote it."""
        return f"{self.verdict} ({self.reason})"


# The per-view words of docs/liveness.md's table.
CLUSTER_FLAG: Final[dict[Verdict, str | None]] = {
    Verdict.REACHABLE: None, Verdict.PFAIL: "fail?", Verdict.STALE: "fail?",
    Verdict.FAIL: "fail", Verdict.BUS: None, Verdict.LEFT: None,
}
PUPPET_STATE: Final = "unknown"  # every verdict but reachable
CURITY_NODE_STATE: Final = "ERROR"  # unless the node last said BOOTING or STOPPING
CURITY_KEPT_STATES: Final = ("BOOTING", "STOPPING")


def reachable(state: NodeState, bus_fresh: bool) -> bool:
    """The verdict is `reachable`: what the per-node views test, without building a
    `Liveness` (the same rule as `judge`)."""
    return state is NodeState.OK and bus_fresh


def judge(state: NodeState, *, last_seen_ms: int, pfail_since_ms: int, fail_since_ms: int,
          stale_seen_ms: int | None, bus_stale_since_ms: int | None,
          node_timeout_ms: int) -> Liveness:
    """The verdict on a node the model holds (see the module notes)."""
    if state is NodeState.FAIL:
        # Not which rule failed it: `auto` changes rules later, and the verdict must not move
        # without the node's record moving.
        return Liveness(Verdict.FAIL, "failed by the fail rule (a majority of the "
                        "slot-serving masters' reports, or the timer)", fail_since_ms)
    if bus_stale_since_ms is not None:
        return Liveness(Verdict.BUS, "the bus is not fresh: the model is the last one read",
                        bus_stale_since_ms)
    if state is NodeState.PFAIL:
        silent = f"no message applied for {node_timeout_ms} ms (last at {last_seen_ms})"
        if stale_seen_ms is not None:
            return Liveness(Verdict.STALE, f"{silent}; its messages still arrive but are stale "
                            "(at or below its last applied epoch and seq)", pfail_since_ms)
        return Liveness(Verdict.PFAIL, silent, pfail_since_ms)
    return Liveness(Verdict.REACHABLE, f"last message {last_seen_ms}", last_seen_ms)


def left(node_id: str) -> Liveness:
    """The verdict on a node the model no longer holds but remembers."""
    return Liveness(Verdict.LEFT, f"node {node_id} left or was forgotten", None)
