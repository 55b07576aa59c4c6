"""Errors split by blame (h11 style)."""

from __future__ import annotations

from ._types import ErrorReply


class ProtocolError(Exception):
    """Base class for protocol violations."""


class RemoteProtocolError(ProtocolError):
    """The client broke the protocol. Send ``reply``, read nothing more, then close."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reply = ErrorReply("ERR", f"Protocol error: {message}")
        if not message.isascii():
            # A byte the message quotes (``expected '$', got '\xd4'``) goes out as it came
            # in, as Redis sends it; the message holds it as the code point of that value.
            self.reply.frame = b"-%b\r\n" % self.reply.line.encode("latin-1")


class LocalProtocolError(ProtocolError):
    """We tried to emit something the protocol cannot carry (a bug on our side)."""
