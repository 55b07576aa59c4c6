"""One liveness verdict per node: what every view says about whether a node is there.

The model judges each node once per model instant (`judge`, from the node's record, the
bus's freshness and `now_ms`; the record only changes with a new model version, so every
view that reads the verdict at one version and instant reads the same one). Every view
derives its liveness words from this verdict through the tables below; none looks at the
node's state on its own.

Verdicts, most severe first (the first that holds is the verdict):

    verdict     holds when                                           since
    left        the model no longer holds the node: it sent `leave`, the time it went
                was forgotten (CLUSTER FORGET, forget-after, a       (unknown: None)
                quorum's `forgotten` lists)
    fail        `fail` under the fail rule in force (a quorum of     fail_since
                slot-serving masters, or the timer)
    bus         the bus itself is not fresh (the Redis stream is     when it stopped
                unreachable): the model is the last one read, so     being fresh
                nothing in it is current
    stale       `fail?` (no applied message for node_timeout) while  pfail_since
                the node's messages still arrive but are stale (at
                or below its last applied epoch and seq): its
                publisher restarted behind itself or was poisoned
    pfail       `fail?`: no message for node_timeout                 pfail_since
    reachable   the node's messages arrive and are applied           last message

`fail` ranks above `bus`: the cluster's own verdict, reached before the bus went quiet, still
holds; every other verdict is unknowable while the bus is out.

What each seed API says for each verdict (a word in quotes is the seed document's own; where
the document has no word for "unreachable" the closest one it has is used):

    verdict   CLUSTER NODES  STATUS SERVICES  STATUS NODE (Curity)        CLUSTER STATUS  HEALTH
              (Redis flags)  (Puppet state)   nodeState / isReady /       (ksqlDB         NODE
                                              isServing / clusterState    hostAlive)      reachable
    reachable (none)         as reported      as reported                 true            "UP"
    pfail     "fail?"        "unknown"        "ERROR" / false / false /   false           "DOWN"
    stale     "fail?"        "unknown"          "DISCONNECTED"            false           "DOWN"
    fail      "fail"         "unknown"          (a node that last said    false           "DOWN"
    bus       (none: the     "unknown"          "BOOTING" or "STOPPING"   false           "UNKNOWN"
              last model)                       keeps that word)
    left      (not listed)   (not listed)     (unknown node)              (not listed)    (unknown)

CLUSTER SHARDS and CLUSTER SLOTS follow Redis: a shard member's `health` is "fail" for
`fail` only ("online" otherwise, `fail?` included, as Redis has it), and SLOTS leaves out
failed replicas.

Curity's `nodeState` words all describe a node speaking about itself; "ERROR" ("the node is
in an unrecoverable error state") is the one that does not claim it is serving, and a node
that last said it was booting or stopping is most likely still doing so. Redis's flags
describe the cluster bus, which clusterwatch's own bus being out says nothing about, so
CLUSTER NODES keeps the last model's flags under `bus` (INFO and HEALTH's `busFresh` say the
model is stale). HEALTH NODE: a node not reachable is not READY whatever its latch (the latch
waits for it to be reachable again), and its whole report is UNKNOWN under `bus`; only LIVE's
Zeebe grace window may still say UP, naming the outage. `/metrics` exports the verdict as
`clusterwatch_node_up` (1 only for `reachable`) and `clusterwatch_node_verdict{verdict=...}`.
Pub/sub: a `node_state` event precedes the service-state events its verdict causes (the
watch compares service states at the 10 Hz tick); `bus` has no event of its own.
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


# The per-view words of the table above.
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
