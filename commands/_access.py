"""Who may do what: the ACL users, authentication, and the ``users.acl`` file format.

``requirepass`` is the ``default`` user's password, as in Redis. A connection starts as
``default``, authenticated when that user is on and ``nopass``; AUTH and HELLO AUTH switch
it to another user. The file format is Redis's: one ``user <name> <rule> ...`` line per
user, blank lines ignored; any bad line refuses the whole file, naming the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._acl_log import AclLog
from ._acl_user import (
    UNKNOWN_RULE,
    AclRuleError,
    CommandCatalog,
    User,
    apply_rules,
    default_user,
    new_user,
)

_NO_CHANGE = "WARNING: ACL errors detected, no change to the previously active ACL rules " \
             "was performed"


class AclFileError(ValueError):
    """An ACL file Redis would refuse; the message is Redis's, with the line number."""


def valid_username(name: str) -> bool:
    return bool(name) and not any(ch.isspace() or ch == "\0" for ch in name)


class AccessControl:
    def __init__(self, catalog: CommandCatalog, *, requirepass: str = "") -> None:
        self.catalog = catalog
        self.requirepass = requirepass
        self.users: dict[str, User] = {"default": default_user(catalog, requirepass)}
        self.log = AclLog()

    @property
    def default(self) -> User:
        return self.users["default"]

    def default_login(self) -> User | None:
        """The ``default`` user when a new connection is authenticated as it at once
        (on, ``nopass``), else None: the client must AUTH first."""
        user = self.default
        return user if user.enabled and user.nopass else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The user these credentials open, or None (unknown, off or wrong password)."""
        user = self.users.get(name)
        if user is None or not user.enabled or not user.check_password(password):
            return None
        return user

    def setuser(self, name: str, rules: Sequence[str]) -> User:
        """Create or change a user; all rules apply or none (``AclRuleError``)."""
        if not valid_username(name):
            raise AclRuleError("Usernames can't contain spaces or null characters")
        current = self.users.get(name) or new_user(name)
        try:
            updated = apply_rules(current, rules, self.catalog)
        except AclRuleError as exc:
            raise AclRuleError(f"Error in ACL SETUSER modifier '{exc.rule}': {exc}") from None
        self.users[name] = updated
        return updated

    def deluser(self, names: Iterable[str]) -> list[str]:
        wanted = list(names)
        if "default" in wanted:
            raise AclRuleError("The 'default' user cannot be removed")
        return [name for name in wanted if self.users.pop(name, None) is not None]

    def lines(self) -> list[str]:
        """``ACL LIST``: every user as a rule line, by name."""
        return [self.users[name].describe() for name in sorted(self.users)]

    def file_text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines())

    def parse_file(self, text: str, path: str) -> dict[str, User]:
        """The users an ACL file defines, with ``default`` as Redis makes it when the
        file leaves it out; raises ``AclFileError`` for the first bad line."""
        users: dict[str, User] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            words = raw.split()
            if not words:
                continue
            if len(words) < 2 or words[0] != "user":
                raise AclFileError(f"{path}:{number} should start with user keyword "
                                   f"followed by the username. {_NO_CHANGE}")
            name, rules = words[1], words[2:]
            if name in users:
                raise AclFileError(f"WARNING: Duplicate user '{name}' found on line "
                                   f"{number}. {_NO_CHANGE}")
            if not valid_username(name):
                raise AclFileError(f"{path}:{number}: Usernames can't contain spaces or "
                                   f"null characters. {_NO_CHANGE}")
            try:
                users[name] = apply_rules(new_user(name), rules, self.catalog)
            except AclRuleError as exc:
                # Redis quotes only an unknown command or category: any other rule may be
                # a password (``<secret``, ``#not-a-hash``), and this text reaches logs.
                quoted = (f"Error in applying operation '{exc.rule}': "
                          if str(exc) == UNKNOWN_RULE else "")
                raise AclFileError(f"{path}:{number}: {quoted}{exc}. {_NO_CHANGE}") from None
        users.setdefault("default", default_user(self.catalog, self.requirepass))
        return users

    def replace(self, users: dict[str, User]) -> None:
        self.users = dict(users)
