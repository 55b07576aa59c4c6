"""Failure evidence: who says which node is failing (or forgotten), since when, and what counts.

Two sources of failure reports, one count:
* a `fail_report` message: a report by its sender about its target at its receive time; only
  the latest per (target, reporter) pair is kept, and its `pfail`/`fail` wording does not
  matter;
* a heartbeat's `failing` list: every id listed is a report by the sender at the heartbeat's
  receive time, and the next heartbeat's list replaces it, so an id it no longer lists is
  withdrawn at once (`Listings`).
A report counts while it is younger than the validity window (2 x node timeout) and its
reporter is a master serving slots at the time of counting, and a reporter counts once
however many of its reports are valid.

Quorum (`fails_by_quorum`): the valid reporters of a node reach a majority of the
slot-serving masters, not counting the node itself nor a reporter that such a majority
reports in turn: the side of a partition the majority cannot reach reports everybody else,
and its word must not complete a quorum the majority's nodes do not see.

Heartbeats' `forgotten` lists are `Listings` too: a node that a majority of the slot-serving
masters lists there, validly, is forgotten (`forgetters`, no exclusion: a partitioned node
forgets nobody).

The fail rule that acts on these counts (`--fail-rule`) is stated in docs/merge-rules.md rule 5.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator

__all__ = ["FailureReports", "Listings", "fails_by_quorum", "quorum", "reporters_of"]


def quorum(cluster_size: int) -> int:
    """Masters needed for a majority of `cluster_size` masters (Redis `size / 2 + 1`)."""
    return cluster_size // 2 + 1


class FailureReports:
    """The latest `fail_report` time per (target, reporter)."""

    __slots__ = ("_by_reporter", "_by_target")

    def __init__(self) -> None:
        self._by_target: dict[str, dict[str, int]] = {}
        self._by_reporter: dict[str, set[str]] = {}

    def __len__(self) -> int:
        """Targets with a report kept."""
        return len(self._by_target)

    def __contains__(self, target: object) -> bool:
        return target in self._by_target

    def record(self, target: str, reporter: str, now_ms: int) -> None:
        self._by_target.setdefault(target, {})[reporter] = now_ms
        self._by_reporter.setdefault(reporter, set()).add(target)

    def reporters(self, target: str, oldest_ms: int) -> Iterator[str]:
        """Who reported `target` at `oldest_ms` or later."""
        reports = self._by_target.get(target)
        if reports:
            yield from (reporter for reporter, at in reports.items() if at >= oldest_ms)

    def discard(self, node: str) -> None:
        """Forget every report about `node` and every report it made (CLUSTER FORGET)."""
        reports = self._by_target.pop(node, None)
        for reporter in reports or ():
            kept = self._by_reporter[reporter]
            kept.discard(node)
            if not kept:
                del self._by_reporter[reporter]
        for target in self._by_reporter.pop(node, ()):
            about = self._by_target[target]
            del about[node]
            if not about:
                del self._by_target[target]

    def reported_at(self, target: str, reporter: str) -> int | None:
        """When `reporter` last reported `target` (None: no report kept)."""
        reports = self._by_target.get(target)
        return None if reports is None else reports.get(reporter)

    def reported_by(self, reporter: str, oldest_ms: int) -> Iterator[str]:
        """Whom `reporter` reported at `oldest_ms` or later."""
        for target in self._by_reporter.get(reporter, ()):
            at = self._by_target[target].get(reporter)
            if at is not None and at >= oldest_ms:
                yield target

    def targets(self) -> Iterable[str]:
        return self._by_target.keys()

    def times(self) -> Iterator[tuple[int, str, str]]:
        """`(time, reporter, target)` of every report kept."""
        for target, reports in self._by_target.items():
            for reporter, at in reports.items():
                yield at, reporter, target

    def prune(self, oldest_ms: int) -> None:
        """Forget reports older than `oldest_ms`: they can no longer count."""
        for target in list(self._by_target):
            reports = self._by_target[target]
            for reporter in [r for r, at in reports.items() if at < oldest_ms]:
                del reports[reporter]
                kept = self._by_reporter[reporter]
                kept.discard(target)
                if not kept:
                    del self._by_reporter[reporter]
            if not reports:
                del self._by_target[target]


class Listings:
    """Each reporter's latest list of node ids and its receive time, and who lists whom."""

    __slots__ = ("_listers", "_lists")

    def __init__(self) -> None:
        self._lists: dict[str, tuple[frozenset[str], int]] = {}
        self._listers: dict[str, set[str]] = {}

    def __contains__(self, reporter: object) -> bool:
        return reporter in self._lists

    def __len__(self) -> int:
        """Reporters with a list kept."""
        return len(self._lists)

    def replace(self, reporter: str, ids: frozenset[str], now_ms: int,
                oldest_ms: int) -> tuple[frozenset[str], frozenset[str]]:
        """`reporter`'s list is now `ids`, at `now_ms`; the ids that became valid reports
        (new, or listed again after the old list expired at `oldest_ms`) and the ids whose
        report was withdrawn."""
        old = self._lists.get(reporter)
        old_ids, old_at = (frozenset(), now_ms) if old is None else old
        if old_at < oldest_ms:
            old_ids = frozenset()
        self._unindex(reporter)
        if ids:
            self._lists[reporter] = (ids, now_ms)
            listers = self._listers
            for target in ids:
                found = listers.get(target)
                if found is None:
                    listers[target] = {reporter}
                else:
                    found.add(reporter)
        return ids - old_ids, old_ids - ids

    def refresh(self, reporter: str, now_ms: int) -> None:
        """The same list again, at `now_ms` (the caller checked it is the same)."""
        ids, _at = self._lists[reporter]
        self._lists[reporter] = (ids, now_ms)

    def listed_by(self, reporter: str, oldest_ms: int) -> frozenset[str]:
        """`reporter`'s list if it is valid at `oldest_ms`, else nothing."""
        entry = self._lists.get(reporter)
        if entry is None or entry[1] < oldest_ms:
            return frozenset()
        return entry[0]

    def listed_at(self, reporter: str) -> int | None:
        """When `reporter`'s list was last received (None without one)."""
        entry = self._lists.get(reporter)
        return None if entry is None else entry[1]

    def current(self, reporter: str) -> frozenset[str] | None:
        """`reporter`'s list whatever its age (None without one)."""
        entry = self._lists.get(reporter)
        return None if entry is None else entry[0]

    def listers(self, target: str, oldest_ms: int) -> Iterator[str]:
        """Who lists `target` in a list valid at `oldest_ms`."""
        lists = self._lists
        for reporter in self._listers.get(target, ()):
            if lists[reporter][1] >= oldest_ms:
                yield reporter

    def targets(self) -> Iterable[str]:
        return self._listers.keys()

    def times(self) -> Iterator[tuple[int, str, frozenset[str]]]:
        """`(time, reporter, ids)` of every list kept."""
        for reporter, (ids, at) in self._lists.items():
            yield at, reporter, ids

    def withdraw(self, reporter: str) -> frozenset[str]:
        """Drop `reporter`'s list; the ids it held."""
        entry = self._lists.get(reporter)
        self._unindex(reporter)
        return frozenset() if entry is None else entry[0]

    def prune(self, oldest_ms: int) -> None:
        for reporter in [r for r, (_ids, at) in self._lists.items() if at < oldest_ms]:
            self._unindex(reporter)

    def _unindex(self, reporter: str) -> None:
        entry = self._lists.pop(reporter, None)
        if entry is None:
            return
        listers = self._listers
        for target in entry[0]:
            found = listers[target]
            found.discard(reporter)
            if not found:
                del listers[target]


def reporters_of(target: str, oldest_ms: int, reports: FailureReports, failing: Listings,
                 masters: Container[str]) -> set[str]:
    """The slot-serving masters other than `target` with a report about it valid at
    `oldest_ms`."""
    found = {r for r in failing.listers(target, oldest_ms) if r in masters and r != target}
    found.update(r for r in reports.reporters(target, oldest_ms) if r in masters and r != target)
    return found


def fails_by_quorum(target: str, oldest_ms: int, reports: FailureReports, failing: Listings,
                    masters: Container[str], needed: int) -> bool:
    """Whether `needed` valid reporters of `target` are not themselves reported by
    `needed` valid reporters."""
    found = reporters_of(target, oldest_ms, reports, failing, masters)
    if len(found) < needed:
        return False
    counted = sum(1 for reporter in found
                  if len(reporters_of(reporter, oldest_ms, reports, failing, masters)) < needed)
    return counted >= needed


def forgetters(target: str, oldest_ms: int, forgotten: Listings,
               masters: Container[str]) -> int:
    """The slot-serving masters other than `target` whose valid list forgets it."""
    return sum(1 for r in forgotten.listers(target, oldest_ms) if r in masters and r != target)
