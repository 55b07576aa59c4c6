"""Failure reports: who said which node is failing, and when.

A report counts toward a quorum while it is younger than the validity window and its reporter
is a master serving slots at the time of counting. Only the latest report per (target,
reporter) pair is kept; a report's `pfail` or `fail` wording does not matter.

The fail rule (`--fail-rule`, ModelConfig.fail_rule, applied in cluster/merge.py rule 5):
`redis` makes a pfail node fail only on a quorum counted here; `timer` also after
`fail_after`; the DEFAULT `auto` is `timer` until the first fail_report message arrives and
`redis` from then on. Reports from unknown nodes, replicas or slot-less masters never count,
so forging a FAIL needs the identities of a majority of the slot-serving masters.
"""

from __future__ import annotations

from collections.abc import Container

__all__ = ["FailureReports", "quorum"]


def quorum(cluster_size: int) -> int:
    """Masters needed for a majority of `cluster_size` masters (Redis `size / 2 + 1`)."""
    return cluster_size // 2 + 1


class FailureReports:
    """The latest report time per (target, reporter)."""

    __slots__ = ("_by_target",)

    def __init__(self) -> None:
        self._by_target: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        """Targets with a report kept."""
        return len(self._by_target)

    def __contains__(self, target: object) -> bool:
        return target in self._by_target

    def record(self, target: str, reporter: str, now_ms: int) -> None:
        self._by_target.setdefault(target, {})[reporter] = now_ms

    def count(self, target: str, now_ms: int, validity_ms: int, masters: Container[str]) -> int:
        """Valid reports against `target` from reporters in `masters`."""
        reports = self._by_target.get(target)
        if not reports:
            return 0
        oldest = now_ms - validity_ms
        return sum(
            1
            for reporter, at in reports.items()
            if at >= oldest and reporter in masters and reporter != target
        )

    def discard(self, target: str) -> None:
        """Forget every report about `target` (CLUSTER FORGET)."""
        self._by_target.pop(target, None)

    def prune(self, now_ms: int, validity_ms: int) -> None:
        """Forget reports that can no longer count."""
        oldest = now_ms - validity_ms
        for target in list(self._by_target):
            reports = self._by_target[target]
            for reporter in [r for r, at in reports.items() if at < oldest]:
                del reports[reporter]
            if not reports:
                del self._by_target[target]
