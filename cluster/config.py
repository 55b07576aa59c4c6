"""Model configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["FAIL_RULES", "ModelConfig"]

# `redis`: a majority of slot-serving masters reporting a node within the validity window makes
# it fail, whether or not it speaks. `timer`: that for a pfail node, or `fail_after` of pfail.
# `auto` (the default): `redis` once any report has been received (a fail_report message or a
# heartbeat carrying `failing`), `timer` before. docs/merge-rules.md rule 5 states them in full.
FAIL_RULES: Final = ("auto", "redis", "timer")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """Tunables of the cluster model; every time is in milliseconds.

    Attributes:
        node_timeout_ms: silence after which a node is `pfail` (Redis `cluster-node-timeout`).
        fail_after_ms: time a node stays `pfail` before it is `fail` without a quorum of
            failure reports. None means `2 * node_timeout_ms`, the same window in which
            Redis keeps a failure report valid, so a silent node is `fail` after 3 timeouts.
            Used only while the timer rule is in force (`fail_rule`).
        fail_rule: `auto` (default), `redis` or `timer`: which rule makes a node fail
            (FAIL_RULES above, docs/merge-rules.md rule 5).
        require_full_coverage: `cluster_state` is `fail` while any slot is unassigned or served
            by a `fail` node (Redis `cluster-require-full-coverage`).
        max_nodes: nodes the table holds; a message from one more new node is rejected
            (code `max_nodes`), the known nodes untouched.
        forget_after_ms: silence after which a node is forgotten as CLUSTER FORGET would;
            0 never forgets.
        forget_ban_ms: how long a forgotten node's messages are refused (Redis: 60 s).
        max_message_bytes: larger node messages are refused before decoding.
        max_events: change events kept for `drain_events()`; older ones are dropped.
        require_hello: a heartbeat, slots or fail_report from a node the model does not
            hold is refused (code `no_hello`) instead of adding the node without an
            address (docs/merge-rules.md, "Entering the table"). The server turns it on
            (`--require-hello`); the model's default keeps the older rule for publishers
            and replays that start with any message.
    """

    node_timeout_ms: int = 15_000
    fail_after_ms: int | None = None
    fail_rule: str = "auto"
    require_full_coverage: bool = True
    max_nodes: int = 10_000
    forget_after_ms: int = 3_600_000
    forget_ban_ms: int = 60_000
    max_message_bytes: int = 65_536
    max_events: int = 4096
    require_hello: bool = False

    def __post_init__(self) -> None:
        if self.node_timeout_ms <= 0:
            raise ValueError("node_timeout_ms must be positive")
        if self.fail_after_ms is not None and self.fail_after_ms < 0:
            raise ValueError("fail_after_ms must not be negative")
        if self.fail_rule not in FAIL_RULES:
            raise ValueError("fail_rule must be auto, redis or timer")
        if self.max_nodes <= 0:
            raise ValueError("max_nodes must be positive")
        if self.forget_after_ms < 0 or self.forget_ban_ms < 0:
            raise ValueError("forget_after_ms and forget_ban_ms must not be negative")
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if self.max_events <= 0:
            raise ValueError("max_events must be positive")

    @property
    def fail_after(self) -> int:
        """`fail_after_ms` with its default resolved."""
        return 2 * self.node_timeout_ms if self.fail_after_ms is None else self.fail_after_ms

    @property
    def fail_undo_ms(self) -> int:
        """How long a master that serves slots stays `fail` at least, unless its slots are
        taken over (Redis's FAIL undo time: 2 * node timeout)."""
        return 2 * self.node_timeout_ms

    @property
    def report_validity_ms(self) -> int:
        """How long a failure report counts toward a quorum (Redis: 2 * node timeout)."""
        return 2 * self.node_timeout_ms
