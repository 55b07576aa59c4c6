"""Errors a handler raises; dispatch turns them into error replies.

Every message is worded as redis-server words it for the same situation.
"""

from __future__ import annotations


class CommandError(Exception):
    """An error reply: ``-<prefix> <message>``."""

    def __init__(self, message: str, prefix: str = "ERR") -> None:
        super().__init__(message)
        self.prefix = prefix
        self.message = message


def syntax_error() -> CommandError:
    return CommandError("syntax error")


def not_an_integer() -> CommandError:
    return CommandError("value is not an integer or out of range")


def not_a_float() -> CommandError:
    return CommandError("value is not a valid float")


def wrong_arity(full_name: str) -> CommandError:
    return CommandError(f"wrong number of arguments for '{full_name}' command")


def unknown_command(name: bytes, args: list[bytes]) -> CommandError:
    """Redis lists the arguments, each quoted, while the list is under 128 bytes."""
    listed = ""
    for arg in args:
        if len(listed) >= 128:
            break
        listed += f"'{_text(arg)[: 128 - len(listed)]}' "
    return CommandError(
        f"unknown command '{_text(name)[:128]}', with args beginning with: {listed}"
    )


def unknown_subcommand(container: str, sub: bytes) -> CommandError:
    return CommandError(f"unknown subcommand '{_text(sub)[:128]}'. Try {container.upper()} HELP.")


NOAUTH = CommandError("Authentication required.", "NOAUTH")
WRONGPASS = CommandError(
    "invalid username-password pair or user is disabled.", "WRONGPASS"
)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def no_permission(full_name: str) -> CommandError:
    return CommandError(f"this user has no permissions to run the '{full_name}' command",
                        "NOPERM")
