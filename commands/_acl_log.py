"""ACL LOG: the recent denied commands and failed authentications, as Redis keeps them.

An event like one already logged (same reason, context, object and user) less than a
minute after it updates that entry and counts it instead of adding one; the log keeps
the newest ``max_len`` entries, newest first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from clusterwatch.resp import Map, Reply

_GROUP_WINDOW_MS = 60_000


@dataclass(slots=True, kw_only=True)
class AclLogEntry:
    reason: str  # "command", "auth" (Redis also has "key" and "channel")
    context: str  # "toplevel" or "multi"
    object: str  # the command's full name, or "AUTH"
    username: str
    client_info: str
    updated_ms: int
    count: int = 1

    def same_event(self, other: AclLogEntry) -> bool:
        return (self.reason, self.context, self.object, self.username) == (
            other.reason, other.context, other.object, other.username)


class AclLog:
    def __init__(self, max_len: int = 128) -> None:
        self.max_len = max_len
        self._entries: deque[AclLogEntry] = deque()

    def add(self, entry: AclLogEntry) -> None:
        for known in self._entries:
            if known.same_event(entry) and entry.updated_ms - known.updated_ms < _GROUP_WINDOW_MS:
                known.count += 1
                known.updated_ms = entry.updated_ms
                known.client_info = entry.client_info
                return
        self._entries.appendleft(entry)
        while len(self._entries) > self.max_len:
            self._entries.pop()

    def reset(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def reply(self, count: int, now_ms: int) -> list[Reply]:
        """The newest ``count`` entries in ``ACL LOG``'s shape (Redis 7.0's fields)."""
        return [Map([
            ("count", entry.count),
            ("reason", entry.reason),
            ("context", entry.context),
            ("object", entry.object),
            ("username", entry.username),
            ("age-seconds", max(now_ms - entry.updated_ms, 0) / 1000),
            ("client-info", entry.client_info),
        ]) for entry in list(self._entries)[:count]]
