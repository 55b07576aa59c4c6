"""ACL users and their rules, in Redis 7's syntax (``ACL SETUSER``, ``users.acl``).

A user is a name, an on/off switch, password hashes (SHA-256) or ``nopass``, key patterns
(kept and shown for Redis clients; clusterwatch has no keyspace), channel patterns (the
channels it may SUBSCRIBE to, matched as Redis globs, and the patterns it may PSUBSCRIBE
to, as written) and command rules. Command rules are applied in order over a base of ``+@all`` or
``-@all``; the user's ``allowed`` set is the result: the full names (``cluster|info``)
of the commands it may run. The rules are kept in the compact form Redis shows: a rule
replaces earlier rules on the same command, category or container, and a rule that
changes nothing where it stands is dropped, so ``+@all -ping +ping`` reads back as
``+@all``. Redis expands some rules further (``+@admin -config`` into one rule per CONFIG
subcommand); the meaning is the same. Selectors
(``(...)``) are not supported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._categories import CATEGORIES
from ._glob import compile_glob

_HASH = re.compile(r"[0-9a-f]{64}")
UNKNOWN_RULE = "Unknown command or category name in ACL"


class AclRuleError(ValueError):
    """A rule Redis would refuse; the message is Redis's reason, ``rule`` the rule."""

    def __init__(self, reason: str, rule: str = "") -> None:
        super().__init__(reason)
        self.rule = rule


class CatalogEntry(Protocol):
    """What the catalog reads of a command's spec (``_spec.CommandSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def full_name(self) -> str: ...

    @property
    def container(self) -> str | None: ...

    @property
    def categories(self) -> tuple[str, ...]: ...


class CommandCatalog:
    """What ACL rules can name: runnable commands by full name, containers, categories."""

    def __init__(self, runnable: Iterable[CatalogEntry]) -> None:
        specs = list(runnable)
        self.everything = frozenset(spec.full_name for spec in specs)
        self.by_category: dict[str, frozenset[str]] = {
            name: frozenset(s.full_name for s in specs if f"@{name}" in s.categories)
            for name in CATEGORIES
        }
        members: dict[str, set[str]] = {}
        for spec in specs:
            members.setdefault(spec.container or spec.name, set()).add(spec.full_name)
        self.by_command = {name: frozenset(names) for name, names in members.items()}

    def target(self, name: str) -> frozenset[str]:
        """The commands ``@category``, ``command`` or ``command|sub`` names."""
        name = name.lower()
        if name.startswith("@"):
            found = self.by_category.get(name[1:])
        elif "|" in name:
            found = frozenset({name}) if name in self.everything else None
        else:
            found = self.by_command.get(name)
        if found is None:
            raise AclRuleError(UNKNOWN_RULE)
        return found


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(slots=True, eq=False)
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    sanitize: str = ""  # "", "sanitize-payload" or "skip-sanitize-payload"
    passwords: list[str] = field(default_factory=list)  # SHA-256 hex, in the order added
    all_keys: bool = False
    keys: list[str] = field(default_factory=list)  # as written: "~x", "%R~y"
    all_channels: bool = False
    channels: list[str] = field(default_factory=list)
    all_commands: bool = False  # the base: +@all or -@all
    rules: list[str] = field(default_factory=list)  # "+ping", "-@admin", "+config|get"
    allowed: frozenset[str] = frozenset()

    def copy(self) -> User:
        return dataclasses.replace(self, passwords=list(self.passwords), keys=list(self.keys),
                                   channels=list(self.channels), rules=list(self.rules))

    def may_use_channel(self, channel: bytes) -> bool:
        """A channel the user may SUBSCRIBE to: one its ``&pattern`` rules match."""
        return self.all_channels or any(compile_glob(pattern.encode()).matches(channel)
                                        for pattern in self.channels)

    def may_write_key(self, key: str) -> bool:
        """A key this user may write (a node id it may publish for): ``allkeys``, or one of
        its ``~pattern`` / ``%W~pattern`` / ``%RW~pattern`` rules matches it (``%R~`` only
        reads: clusterwatch has no key to read)."""
        if self.all_keys:
            return True
        raw = key.encode()
        for rule in self.keys:
            permission, _, pattern = rule.partition("~")
            if permission.upper() in ("", "%W", "%RW", "%WR") and compile_glob(
                    pattern.encode()).matches(raw):
                return True
        return False

    def may_use_pattern(self, pattern: bytes) -> bool:
        """A pattern the user may PSUBSCRIBE to: one of its ``&pattern`` rules, as written
        (Redis compares patterns, it does not match one against another)."""
        return self.all_channels or pattern.decode("utf-8", "replace") in self.channels

    def may_keep(self, channels: Iterable[bytes], patterns: Iterable[bytes]) -> bool:
        """A client of this user may keep these subscriptions (Redis 7 disconnects one
        that may not, when its user's channel rules change)."""
        if self.all_channels:
            return True
        allowed = set(self.channels)
        if any(pattern.decode("utf-8", "replace") not in allowed for pattern in patterns):
            return False
        rules = [compile_glob(rule.encode()) for rule in self.channels]
        return all(any(rule.matches(channel) for rule in rules) for channel in channels)

    def check_password(self, password: str) -> bool:
        if self.nopass:
            return True
        digest = password_hash(password)
        return any(hmac.compare_digest(digest, known) for known in self.passwords)

    def flags(self) -> list[str]:
        names = ["on" if self.enabled else "off"]
        if self.nopass:
            names.append("nopass")
        if self.sanitize:
            names.append(self.sanitize)
        return names

    def keys_text(self) -> str:
        return "~*" if self.all_keys else " ".join(self.keys)

    def channels_text(self) -> str:
        return "&*" if self.all_channels else " ".join(f"&{p}" for p in self.channels)

    def commands_text(self) -> str:
        return " ".join(["+@all" if self.all_commands else "-@all", *self.rules])

    def describe(self) -> str:
        """The user as one ``ACL LIST`` / ``users.acl`` line."""
        parts = ["user", self.name, *self.flags(), *(f"#{h}" for h in self.passwords)]
        if self.keys_text():
            parts.append(self.keys_text())
        parts.append("&*" if self.all_channels else "resetchannels")
        if not self.all_channels:
            parts.extend(f"&{pattern}" for pattern in self.channels)
        parts.append(self.commands_text())
        return " ".join(parts)


def new_user(name: str) -> User:
    """A user as ``ACL SETUSER name`` creates it: off, no password, nothing allowed."""
    return User(name=name)


def default_user(catalog: CommandCatalog, password: str) -> User:
    """Redis's ``default`` user: everything, with ``requirepass`` as its password."""
    user = User(name="default", enabled=True, all_keys=True, all_channels=True,
                all_commands=True, allowed=catalog.everything)
    if password:
        user.passwords.append(password_hash(password))
    else:
        user.nopass = True
    return user


def apply_rules(user: User, rules: Sequence[str], catalog: CommandCatalog) -> User:
    """A copy of ``user`` with ``rules`` applied in order; ``user`` is untouched.

    Raises ``AclRuleError`` with Redis's reason and the first rule that fails.
    """
    changed = user.copy()
    for rule in rules:
        try:
            _apply(changed, rule, catalog)
        except AclRuleError as exc:
            raise AclRuleError(str(exc), rule) from None
    return changed


def _apply(user: User, rule: str, catalog: CommandCatalog) -> None:
    lowered = rule.lower()
    simple = _SIMPLE.get(lowered)
    if simple is not None:
        simple(user, catalog)
    elif rule.startswith(">"):
        digest = password_hash(rule[1:])
        user.nopass = False
        if digest not in user.passwords:
            user.passwords.append(digest)
    elif rule.startswith("#"):
        digest = rule[1:]
        if not _HASH.fullmatch(digest):
            raise AclRuleError("The password hash must be exactly 64 characters and contain "
                               "only lowercase hexadecimal characters")
        user.nopass = False
        if digest not in user.passwords:
            user.passwords.append(digest)
    elif rule.startswith(("<", "!")):
        digest = password_hash(rule[1:]) if rule[0] == "<" else rule[1:]
        if rule[0] == "!" and not _HASH.fullmatch(digest):
            raise AclRuleError("The password hash must be exactly 64 characters and contain "
                               "only lowercase hexadecimal characters")
        if digest not in user.passwords:
            raise AclRuleError("The password you are trying to remove from the user does "
                               "not exist")
        user.passwords.remove(digest)
    elif rule.startswith("~") or re.match(r"%(R|W|RW)~", rule, re.IGNORECASE):
        if rule == "~*":
            _all_keys(user, catalog)
        elif not user.all_keys and rule not in user.keys:
            user.keys.append(rule)
    elif rule.startswith("&"):
        if rule == "&*":
            _all_channels(user, catalog)
        elif not user.all_channels and rule[1:] not in user.channels:
            user.channels.append(rule[1:])
    elif rule[:1] in "+-" and len(rule) > 1:
        _command_rule(user, rule[0] == "+", rule[1:].lower(), catalog)
    elif rule.startswith("("):
        raise AclRuleError("Selectors are not supported by clusterwatch")
    else:
        raise AclRuleError("Syntax error")


def _command_rule(user: User, allow: bool, name: str, catalog: CommandCatalog) -> None:
    if name == "@all":
        (_all_commands if allow else _no_commands)(user, catalog)
        return
    catalog.target(name)  # an unknown name fails here, before anything changes
    container = name if not name.startswith("@") and "|" not in name else None
    kept = [r for r in user.rules
            if r[1:] != name and not (container and r[1:].startswith(container + "|"))]
    user.rules, user.allowed = _effective(user.all_commands,
                                          [*kept, ("+" if allow else "-") + name], catalog)


def _effective(all_commands: bool, rules: Sequence[str], catalog: CommandCatalog
               ) -> tuple[list[str], frozenset[str]]:
    """The rules without those that change nothing where they stand, and what they allow."""
    allowed = catalog.everything if all_commands else frozenset()
    kept: list[str] = []
    for rule in rules:
        members = catalog.target(rule[1:])
        after = allowed | members if rule[0] == "+" else allowed - members
        if after != allowed:
            kept.append(rule)
            allowed = after
    return kept, allowed


def _on(user: User, catalog: CommandCatalog) -> None:
    user.enabled = True


def _off(user: User, catalog: CommandCatalog) -> None:
    user.enabled = False


def _nopass(user: User, catalog: CommandCatalog) -> None:
    user.nopass = True
    user.passwords.clear()


def _resetpass(user: User, catalog: CommandCatalog) -> None:
    user.nopass = False
    user.passwords.clear()


def _all_keys(user: User, catalog: CommandCatalog) -> None:
    user.all_keys = True
    user.keys.clear()


def _reset_keys(user: User, catalog: CommandCatalog) -> None:
    user.all_keys = False
    user.keys.clear()


def _all_channels(user: User, catalog: CommandCatalog) -> None:
    user.all_channels = True
    user.channels.clear()


def _reset_channels(user: User, catalog: CommandCatalog) -> None:
    user.all_channels = False
    user.channels.clear()


def _all_commands(user: User, catalog: CommandCatalog) -> None:
    user.all_commands = True
    user.rules.clear()
    user.allowed = catalog.everything


def _no_commands(user: User, catalog: CommandCatalog) -> None:
    user.all_commands = False
    user.rules.clear()
    user.allowed = frozenset()


def _sanitize(user: User, catalog: CommandCatalog) -> None:
    user.sanitize = "sanitize-payload"


def _skip_sanitize(user: User, catalog: CommandCatalog) -> None:
    user.sanitize = "skip-sanitize-payload"


def _reset(user: User, catalog: CommandCatalog) -> None:
    for step in (_resetpass, _reset_keys, _reset_channels, _off, _no_commands, _sanitize):
        step(user, catalog)


def _clear_selectors(user: User, catalog: CommandCatalog) -> None:
    return None


_SIMPLE = {
    "on": _on, "off": _off, "nopass": _nopass, "resetpass": _resetpass,
    "allkeys": _all_keys, "resetkeys": _reset_keys,
    "allchannels": _all_channels, "resetchannels": _reset_channels,
    "allcommands": _all_commands, "nocommands": _no_commands,
    "sanitize-payload": _sanitize, "skip-sanitize-payload": _skip_sanitize,
    "reset": _reset, "clearselectors": _clear_selectors,
}
