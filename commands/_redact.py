"""Secrets out of what the server keeps about a request.

Rule: the arguments of a request that carry a password never reach a record another client
can read (the slow log is the one that keeps arguments). They are replaced by
``(redacted)``, as redis-server 7.0 does:

    AUTH [username] password          every argument
    HELLO ... AUTH username password  the two arguments after each AUTH
    ACL SETUSER username rule ...     every argument from the username on

Redis redacts HELLO's pair only once it has parsed the options before it, so a HELLO that
fails on its protocol version or an earlier option keeps the password in Redis's slow log;
here it is redacted whatever the outcome, as is a lone argument after AUTH.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["REDACTED", "redacted"]

REDACTED: Final = b"(redacted)"


def redacted(argv: Sequence[bytes]) -> Sequence[bytes]:
    """``argv`` with its secrets replaced; ``argv`` itself when it holds none."""
    name = argv[0].lower()
    if name == b"auth":
        return [argv[0], *(REDACTED for _ in argv[1:])]
    if name == b"hello":
        return _hello(argv)
    if name == b"acl" and len(argv) > 2 and argv[1].lower() == b"setuser":
        return [argv[0], argv[1], *(REDACTED for _ in argv[2:])]
    return argv


def _hello(argv: Sequence[bytes]) -> Sequence[bytes]:
    shown = list(argv)
    index = 1
    while index < len(shown):
        option = shown[index].lower()
        if option == b"auth":
            for secret in range(index + 1, min(index + 3, len(shown))):
                shown[secret] = REDACTED
            index += 3
        elif option == b"setname":
            index += 2
        else:
            index += 1
    return shown
