"""Who listens to which channel: the pub/sub registry, by session id.

clusterwatch publishes its own channels (server/watch.py); clients only subscribe. The
registry is plain data: the server looks up the connections of the ids it returns.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator

from ._context import Session

#: What a RESP2 client may send while subscribed (Redis's rule); RESP3 clients may send
#: anything, since pushes are told apart from replies.
SUBSCRIBED_MODE_COMMANDS = frozenset({
    "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ping", "quit", "reset",
})


class Subscriptions:
    def __init__(self) -> None:
        self.channels: dict[bytes, set[int]] = {}
        self.patterns: dict[bytes, set[int]] = {}

    def subscribe(self, session: Session, channel: bytes) -> None:
        session.channels.add(channel)
        self.channels.setdefault(channel, set()).add(session.id)

    def psubscribe(self, session: Session, pattern: bytes) -> None:
        session.patterns.add(pattern)
        self.patterns.setdefault(pattern, set()).add(session.id)

    def unsubscribe(self, session: Session, channel: bytes) -> None:
        session.channels.discard(channel)
        _discard(self.channels, channel, session.id)

    def punsubscribe(self, session: Session, pattern: bytes) -> None:
        session.patterns.discard(pattern)
        _discard(self.patterns, pattern, session.id)

    def drop(self, session: Session) -> None:
        """A connection went away: forget all it listened to."""
        for channel in session.channels:
            _discard(self.channels, channel, session.id)
        for pattern in session.patterns:
            _discard(self.patterns, pattern, session.id)
        session.channels.clear()
        session.patterns.clear()

    def receivers(self, channel: bytes) -> Iterator[tuple[int, bytes | None]]:
        """``(session id, pattern)`` per delivery of a message on ``channel``: once per
        channel subscriber (pattern None), once per matching pattern of each client."""
        for session_id in self.channels.get(channel, ()):
            yield session_id, None
        if self.patterns:
            text = channel.decode("utf-8", "replace")
            for pattern, ids in self.patterns.items():
                if fnmatch.fnmatchcase(text, pattern.decode("utf-8", "replace")):
                    for session_id in ids:
                        yield session_id, pattern

    def has_listeners(self, channel: bytes) -> bool:
        return channel in self.channels or any(True for _ in self.receivers(channel))

    def active_channels(self, pattern: bytes | None) -> list[bytes]:
        names: Iterable[bytes] = self.channels
        if pattern is not None:
            wanted = pattern.decode("utf-8", "replace")
            names = (name for name in names
                     if fnmatch.fnmatchcase(name.decode("utf-8", "replace"), wanted))
        return sorted(names)


def _discard(index: dict[bytes, set[int]], key: bytes, session_id: int) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(session_id)
        if not ids:
            del index[key]
