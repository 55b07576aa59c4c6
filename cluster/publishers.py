"""Who speaks for a node (DESIGN merge rule 7): the user that publishes a message, what it
may publish, and which user each node is bound to.

Keys. A node message's key is its node id, the sender's (a `fail_report` is about its
  target but spoken by its sender). A publisher whose ACL key patterns (`~pattern`,
  `%W~pattern`) do not cover the id may not publish the message: it is refused with code
  `key`, as Redis refuses a command on a key outside the user's patterns. The command layer
  turns patterns into `may_write`; verdicts are kept per id, so a publisher costs one dict
  lookup per message after its first message for a node.
Binding. The first applied message for a node id binds the node to its publisher's user.
  Messages for it from another user are refused with code `bound`, unless that user is an
  admin (`Publisher.admin`: one who may run `BUS REBIND`, which also moves a binding). A
  binding lasts while the model holds the node: it ends when the node leaves or is
  forgotten (CLUSTER FORGET, forget-after), and the next message for it binds it afresh.
  Messages applied with no publisher (a snapshot's history, an in-process feed) neither bind
  nor are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from typing import Final

from clusterwatch.cluster.messages import MessageError

__all__ = ["KEY_REFUSED", "Bindings", "KeyRefusedError", "Publisher"]

# Redis's own words for a key outside the user's patterns (7.0).
KEY_REFUSED: Final = "this user has no permissions to access one of the keys used as arguments"


class KeyRefusedError(MessageError):
    """A message for a node id outside its publisher's key patterns."""

    def __init__(self, node_id: str) -> None:
        super().__init__("node", KEY_REFUSED, "key")
        self.node_id = node_id


class Publisher:
    """The user a batch of messages is published as."""

    __slots__ = ("admin", "may_write", "name", "verdicts")

    def __init__(self, name: str, *, admin: bool = False,
                 may_write: Callable[[str], bool] | None = None) -> None:
        self.name = name
        self.admin = admin
        self.may_write = may_write  # None: every node id
        self.verdicts: dict[str, bool] = {}  # node id -> may_write's answer, kept

    def may_publish_for(self, node_id: str) -> bool:
        may_write = self.may_write
        if may_write is None:
            return True
        verdict = self.verdicts.get(node_id)
        if verdict is None:
            if len(self.verdicts) >= _VERDICTS:
                self.verdicts.clear()
            verdict = self.verdicts[node_id] = may_write(node_id)
        return verdict


_VERDICTS: Final = 65_536


class Bindings:
    """Node id -> the user that publishes for it, valid while the model knows the node."""

    __slots__ = ("owners",)

    def __init__(self) -> None:
        # Read directly on the hot path (ClusterModel.apply_decoded); changed only here.
        self.owners: dict[str, str] = {}

    def owner(self, node_id: str, known: Container[str]) -> str | None:
        """The user `node_id` is bound to, or None when it is bound to nobody (or to a
        node the model no longer holds: that binding has ended)."""
        owner = self.owners.get(node_id)
        if owner is not None and node_id not in known:
            del self.owners[node_id]
            return None
        return owner

    def refusal(self, node_id: str, publisher: Publisher,
                known: Container[str]) -> MessageError | None:
        """Why `publisher` may not publish for `node_id` now, or None."""
        if not publisher.may_publish_for(node_id):
            return KeyRefusedError(node_id)
        owner = self.owner(node_id, known)
        if owner is not None and owner != publisher.name and not publisher.admin:
            return MessageError("node", f"node {node_id} is published by another user (an "
                                "admin can move it with BUS REBIND)", "bound")
        return None

    def bind(self, node_id: str, user: str) -> None:
        """Bind `node_id` to `user` unless it is bound already."""
        self.owners.setdefault(node_id, user)

    def rebind(self, node_id: str, user: str) -> None:
        self.owners[node_id] = user

    def release(self, node_id: str) -> None:
        self.owners.pop(node_id, None)

    def prune(self, known: Container[str]) -> None:
        """Drop the bindings of nodes the model no longer holds."""
        for node_id in [n for n in self.owners if n not in known]:
            del self.owners[node_id]

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self.owners.items())

    def __len__(self) -> int:
        return len(self.owners)
