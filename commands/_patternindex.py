"""Which subscribed patterns match a channel, without trying every pattern per message.

Each distinct pattern is compiled once (commands/_glob.py) however many clients hold it.
Patterns are filed by their literal prefix (``__status__:`` for ``__status__:*/web``), so
a channel tries only the patterns whose prefix it starts with: one dict lookup per
distinct prefix length. The answer is kept per channel (clusterwatch's channels are a
small vocabulary), and kept current as patterns come and go: a pattern added since a
channel's answer was made is tried against that channel when it is next published on,
once; a pattern removed is skipped and pruned. So a message costs its receivers, and a
new pattern one match per channel in use; nothing costs more than trying every pattern.

The trying is done by a ``Scan`` the caller advances a budget at a time (the fan-out does,
one slice per turn of the event loop), so many patterns never hold the loop: the answer is
kept once the scan is through. Answers are never changed in place, so a scan's list stays
what it was for the message that made it.
"""

from __future__ import annotations

from ._glob import Glob

CACHED_CHANNELS = 4096  # channels whose answer is kept; the oldest goes first
ADDED_KEPT = 1024  # additions remembered for the answers to catch up with (or as many as
# there are patterns); past that, the answers are forgotten and made anew when needed
UNCOMPILED_COST = 8  # a pattern's first match parses it: about this many matches' work


class PatternEntry(Glob):
    """One distinct pattern: its matcher and the ids of the clients holding it (the set
    the registry keeps; it changes in place). One object per pattern, for the garbage
    collector's sake."""

    __slots__ = ("ids", "live")

    def __init__(self, pattern: bytes, ids: set[int]) -> None:
        super().__init__(pattern)
        self.ids = ids
        self.live = True


class _Answer:
    """A channel's matching patterns, as of ``seen`` additions and ``pruned`` removals."""

    __slots__ = ("entries", "pruned", "seen")

    def __init__(self, entries: list[PatternEntry], seen: int, pruned: int) -> None:
        self.entries = entries
        self.seen = seen
        self.pruned = pruned


class Scan:
    """The patterns matching one channel, found a budget at a time: ``found`` grows as
    ``advance`` tries the ``candidates``; ``done`` when all were tried."""

    __slots__ = ("_candidates", "_channel", "_generation", "_index", "_next", "_pruned",
                 "_seen", "found")

    def __init__(self, index: PatternIndex | None, channel: bytes,
                 found: list[PatternEntry], candidates: list[PatternEntry], seen: int = 0,
                 pruned: int = 0, generation: int = 0) -> None:
        self._index = index
        self._channel = channel
        self.found = found
        self._candidates = candidates
        self._next = 0
        self._seen = seen
        self._pruned = pruned
        self._generation = generation

    @property
    def done(self) -> bool:
        return self._next == len(self._candidates)

    def advance(self, budget: int) -> int:
        """Try candidates until done or ``budget`` (matches) is spent; the budget left."""
        candidates, channel, found = self._candidates, self._channel, self.found
        while self._next < len(candidates) and budget > 0:
            entry = candidates[self._next]
            self._next += 1
            budget -= 1 if entry.compiled else UNCOMPILED_COST
            if entry.live and entry.matches(channel):
                found.append(entry)
        if self._index is not None and self._next == len(candidates):
            self._index.keep(channel, self.found, self._seen, self._pruned,
                             self._generation)
            self._index = None
        return budget


class PatternIndex:
    def __init__(self, cached_channels: int = CACHED_CHANNELS,
                 added_kept: int = ADDED_KEPT) -> None:
        # Patterns by literal prefix: the one pattern with it, or a dict of them by text.
        self._by_prefix: dict[bytes, PatternEntry | dict[bytes, PatternEntry]] = {}
        self._prefix_sizes: dict[int, int] = {}  # prefix length -> prefixes that long
        self._sizes: list[int] | None = []  # sorted, None when stale
        self._added: list[PatternEntry] = []  # additions since ``_added_base``
        self._added_base = 0
        self._removals = 0
        self._generation = 0  # moves when every answer is forgotten
        self._answers: dict[bytes, _Answer] = {}
        self._cached_channels = cached_channels
        self._added_kept = added_kept
        self.size = 0

    def add(self, pattern: bytes, ids: set[int]) -> PatternEntry:
        entry = PatternEntry(pattern, ids)
        prefix = entry.prefix
        bucket = self._by_prefix.get(prefix)
        if bucket is None:  # most patterns have a prefix of their own: no dict for them
            self._by_prefix[prefix] = entry
            self._count_prefix(len(prefix), 1)
        elif isinstance(bucket, PatternEntry):
            self._by_prefix[prefix] = {bucket.pattern: bucket, pattern: entry}
        else:
            bucket[pattern] = entry
        self.size += 1
        if len(self._added) >= max(self._added_kept, self.size):
            self._forget_answers()
        self._added.append(entry)
        return entry

    def remove(self, entry: PatternEntry) -> None:
        entry.live = False
        prefix = entry.prefix
        bucket = self._by_prefix[prefix]
        if isinstance(bucket, PatternEntry):
            del self._by_prefix[prefix]
            self._count_prefix(len(prefix), -1)
        else:
            del bucket[entry.pattern]
            if len(bucket) == 1:
                self._by_prefix[prefix] = next(iter(bucket.values()))
        self.size -= 1
        self._removals += 1

    def matching(self, channel: bytes) -> Scan:
        """The live patterns that match ``channel``, as a scan (done at once when the
        channel's answer is kept and current)."""
        answer = self._answers.get(channel)
        added_end = self._added_base + len(self._added)
        if answer is not None:
            if answer.pruned != self._removals:
                answer.entries = [entry for entry in answer.entries if entry.live]
                answer.pruned = self._removals
            if answer.seen == added_end:
                return Scan(None, channel, answer.entries, [])
            found = list(answer.entries)
            candidates = self._added[answer.seen - self._added_base:]
        else:
            found, candidates = [], self._candidates(channel)
        scan = Scan(self, channel, found, candidates, added_end, self._removals,
                    self._generation)
        if not candidates:
            scan.advance(0)  # nothing to try: the answer is kept now
        return scan

    def keep(self, channel: bytes, entries: list[PatternEntry], seen: int, pruned: int,
             generation: int) -> None:
        """A scan is through: keep its answer, unless every answer was forgotten since."""
        if generation != self._generation:
            return
        if channel not in self._answers and len(self._answers) >= self._cached_channels:
            del self._answers[next(iter(self._answers))]
        self._answers[channel] = _Answer(entries, seen, pruned)

    def _candidates(self, channel: bytes) -> list[PatternEntry]:
        """The patterns whose literal prefix ``channel`` starts with."""
        found: list[PatternEntry] = []
        if self._sizes is None:
            self._sizes = sorted(self._prefix_sizes)
        by_prefix = self._by_prefix
        for size in self._sizes:
            if size > len(channel):
                break
            bucket = by_prefix.get(channel[:size])
            if isinstance(bucket, PatternEntry):
                found.append(bucket)
            elif bucket is not None:
                found.extend(bucket.values())
        return found

    def _count_prefix(self, size: int, change: int) -> None:
        count = self._prefix_sizes.get(size, 0) + change
        if count:
            self._prefix_sizes[size] = count
        else:
            del self._prefix_sizes[size]
        if count == (1 if change > 0 else 0):  # a prefix length came or went
            self._sizes = None

    def _forget_answers(self) -> None:
        self._answers.clear()
        self._added_base += len(self._added)
        self._added.clear()
        self._generation += 1
