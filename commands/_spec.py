"""Command metadata, modelled on Redis's command JSON files: one ``CommandSpec`` per
command or subcommand drives lookup, the arity check, ``COMMAND INFO`` and ``COMMAND DOCS``.
Its handler is called with a ``CommandContext``: the client's ``Session``, the
``ServerView`` and the table as a ``CommandLookup``.

Arity follows Redis's sign rule and counts the command name (and the subcommand): a
positive arity is an exact argument count, a negative one a minimum of ``-arity``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ._categories import ordered

if TYPE_CHECKING:
    from clusterwatch.resp import Reply

    from ._acl_user import CommandCatalog
    from ._context import ServerView
    from ._deferred import Deferred
    from ._session import Session

Handler = Callable[["CommandContext", Sequence[bytes]], "Reply | Deferred[Reply]"]


class Flag(enum.Flag):
    NONE = 0
    READONLY = enum.auto()
    ADMIN = enum.auto()
    NOSCRIPT = enum.auto()
    LOADING = enum.auto()
    STALE = enum.auto()
    FAST = enum.auto()
    NO_AUTH = enum.auto()
    NO_MULTI = enum.auto()
    ALLOW_BUSY = enum.auto()
    WRITE = enum.auto()
    PUBSUB = enum.auto()
    SENTINEL = enum.auto()
    # Its keys are found by parsing its arguments (COMMAND GETKEYS), as Redis's flag says.
    MOVABLEKEYS = enum.auto()


# Redis's wire names for the flags, in COMMAND INFO order.
FLAG_NAMES: tuple[tuple[Flag, str], ...] = (
    (Flag.WRITE, "write"),
    (Flag.READONLY, "readonly"),
    (Flag.ADMIN, "admin"),
    (Flag.PUBSUB, "pubsub"),
    (Flag.NOSCRIPT, "noscript"),
    (Flag.LOADING, "loading"),
    (Flag.STALE, "stale"),
    (Flag.FAST, "fast"),
    (Flag.NO_AUTH, "no_auth"),
    (Flag.NO_MULTI, "no_multi"),
    (Flag.ALLOW_BUSY, "allow_busy"),
    (Flag.MOVABLEKEYS, "movablekeys"),
)


class Group(enum.StrEnum):
    CONNECTION = "connection"
    SERVER = "server"
    CLUSTER = "cluster"
    TRANSACTIONS = "transactions"
    PUBSUB = "pubsub"
    GENERIC = "generic"
    # clusterwatch's own commands; redis-cli prints the group in `help`.
    STATUS = "status"
    BUS = "bus"


class ArgType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DOUBLE = "double"
    KEY = "key"
    PATTERN = "pattern"
    UNIX_TIME = "unix-time"
    PURE_TOKEN = "pure-token"
    ONEOF = "oneof"
    BLOCK = "block"


@dataclass(frozen=True, slots=True, kw_only=True)
class Arg:
    """One argument in COMMAND DOCS form (redis-cli builds hints and `help` from these)."""

    name: str
    type: ArgType
    token: str | None = None
    optional: bool = False
    multiple: bool = False
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    """A command or a subcommand. ``container`` names the parent of a subcommand."""

    name: str
    arity: int
    summary: str
    group: Group
    since: str = "1.0.0"
    complexity: str = "O(1)"
    flags: Flag = Flag.NONE
    # Categories beyond those the flags and group imply (see ``categories``).
    acl_categories: tuple[str, ...] = ()
    args: tuple[Arg, ...] = ()
    handler: Handler | None = None
    container: str | None = None
    subcommands: tuple[CommandSpec, ...] = field(default=())
    # The keys of a call (its whole argv), for COMMAND GETKEYS; with Flag.MOVABLEKEYS.
    getkeys: Callable[[Sequence[bytes]], list[bytes]] | None = None
    # What COMMAND INFO says of where the keys are (a note; clusterwatch's keys sit inside
    # arguments, so their search is "unknown", as Redis says of such commands).
    key_note: str = ""
    # Derived once, read on every call: ``cluster|info`` as Redis names a subcommand in
    # errors and COMMAND, and the argument-count bounds from the arity.
    full_name: str = field(init=False)
    min_argc: int = field(init=False)
    max_argc: int = field(init=False)
    fast: bool = field(init=False)
    # Every ACL category of the command, ``@``-prefixed, in Redis's order.
    categories: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        full = f"{self.container}|{self.name}" if self.container else self.name
        object.__setattr__(self, "full_name", full)
        object.__setattr__(self, "fast", Flag.FAST in self.flags)
        object.__setattr__(self, "min_argc", abs(self.arity))
        object.__setattr__(self, "max_argc", self.arity if self.arity >= 0 else 2**31)
        object.__setattr__(self, "categories", ordered(
            (*self.acl_categories, *_implied_categories(self.flags, self.group))))

    def arity_ok(self, argc: int) -> bool:
        return self.min_argc <= argc <= self.max_argc

    def flag_names(self) -> list[str]:
        return [name for flag, name in FLAG_NAMES if flag in self.flags]


_FLAG_CATEGORIES: tuple[tuple[Flag, tuple[str, ...]], ...] = (
    (Flag.WRITE, ("write",)),
    (Flag.READONLY, ("read",)),
    (Flag.ADMIN, ("admin", "dangerous")),
    (Flag.PUBSUB, ("pubsub",)),
)
_GROUP_CATEGORIES: dict[Group, tuple[str, ...]] = {
    Group.CONNECTION: ("connection",),
    Group.TRANSACTIONS: ("transaction",),
    Group.PUBSUB: ("pubsub",),
    Group.CLUSTER: ("status",),
    Group.STATUS: ("status",),
}


def _implied_categories(flags: Flag, group: Group) -> list[str]:
    """Redis's implicit categories (from the flags) and the group's."""
    implied = ["fast" if Flag.FAST in flags else "slow"]
    for flag, names in _FLAG_CATEGORIES:
        if flag in flags:
            implied.extend(names)
    implied.extend(_GROUP_CATEGORIES.get(group, ()))
    return implied


class CommandLookup(Protocol):
    """The command table as handlers see it (COMMAND, ACL CAT and DRYRUN, EXEC, HELP)."""

    @property
    def commands(self) -> Mapping[bytes, CommandSpec]: ...

    @property
    def catalog(self) -> CommandCatalog: ...

    def resolve(self, argv: Sequence[bytes]) -> CommandSpec: ...

    def lookup_name(self, name: str) -> CommandSpec | None: ...

    def all_specs(self) -> list[CommandSpec]: ...

    def runnable(self) -> list[CommandSpec]: ...

    def dispatch(self, ctx: CommandContext, argv: list[bytes]) -> Reply | Deferred[Reply]: ...


@dataclass(slots=True, kw_only=True)
class CommandContext:
    """Passed to every handler; built once per connection."""

    session: Session
    server: ServerView
    table: CommandLookup

    def block(self, deferred: Deferred[Reply]) -> Deferred[Reply]:
        """Make this client wait for ``deferred``; the handler returns what this returns."""
        self.session.blocked = deferred
        return deferred
