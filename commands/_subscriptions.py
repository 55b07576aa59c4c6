"""Who listens to which channel: the pub/sub registry, by session id.

clusterwatch publishes its own channels (server/watch.py); clients only subscribe. The
registry is plain data: the server looks up the connections of the ids it returns.
Patterns are Redis's globs (commands/_glob.py), each distinct one compiled once and
found through ``PatternIndex``, so a message costs its receivers, not the patterns held.
"""

from __future__ import annotations

from ._glob import Glob
from ._patternindex import PatternEntry, PatternIndex, Scan
from ._session import Session

#: What a RESP2 client may send while subscribed (Redis's rule); RESP3 clients may send
#: anything, since pushes are told apart from replies.
SUBSCRIBED_MODE_COMMANDS = frozenset({
    "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping", "quit", "reset",
})

class Subscriptions:
    def __init__(self) -> None:
        self.channels: dict[bytes, set[int]] = {}
        self.patterns: dict[bytes, set[int]] = {}
        self._entries: dict[bytes, PatternEntry] = {}
        self._index = PatternIndex()

    def subscribe(self, session: Session, channel: bytes) -> None:
        session.channels.add(channel)
        self.channels.setdefault(channel, set()).add(session.id)

    def psubscribe(self, session: Session, pattern: bytes) -> None:
        session.patterns.add(pattern)
        ids = self.patterns.get(pattern)
        if ids is None:
            ids = self.patterns[pattern] = set()
            self._entries[pattern] = self._index.add(pattern, ids)
        ids.add(session.id)

    def unsubscribe(self, session: Session, channel: bytes) -> None:
        session.channels.discard(channel)
        _discard(self.channels, channel, session.id)

    def punsubscribe(self, session: Session, pattern: bytes) -> None:
        session.patterns.discard(pattern)
        if _discard(self.patterns, pattern, session.id):
            self._index.remove(self._entries.pop(pattern))

    def drop(self, session: Session) -> None:
        """Forget all ``session`` listens to (RESET)."""
        self.drop_some(session, len(session.channels) + len(session.patterns))

    def drop_some(self, session: Session, budget: int) -> bool:
        """Forget up to ``budget`` of what ``session`` listens to; True when it is all
        gone. (A client that went away with many subscriptions is forgotten a slice per
        turn of the event loop; meanwhile nothing reaches it, as it has no connection.)"""
        channels, patterns = session.channels, session.patterns
        while channels and budget > 0:
            _discard(self.channels, channels.pop(), session.id)
            budget -= 1
        while patterns and budget > 0:
            pattern = patterns.pop()
            if _discard(self.patterns, pattern, session.id):
                self._index.remove(self._entries.pop(pattern))
            budget -= 1
        return not channels and not patterns

    def receivers(self, channel: bytes) -> tuple[tuple[int, ...], Scan]:
        """Who gets a message on ``channel``: the ids subscribed to it, as they are now,
        and a scan for the patterns matching it (a client matching by several gets the
        message once per pattern, as in Redis). The caller advances the scan by slices."""
        return tuple(self.channels.get(channel, ())), self._index.matching(channel)

    def active_channels(self, pattern: bytes | None) -> list[bytes]:
        """PUBSUB CHANNELS: the channels with subscribers, those matching ``pattern``."""
        if pattern is None:
            return sorted(self.channels)
        matches = Glob(pattern).matches
        return sorted(name for name in self.channels if matches(name))


def _discard(index: dict[bytes, set[int]], key: bytes, session_id: int) -> bool:
    """Remove ``session_id`` under ``key``; True when that left ``key`` with nobody."""
    ids = index.get(key)
    if ids is not None:
        ids.discard(session_id)
        if not ids:
            del index[key]
            return True
    return False
