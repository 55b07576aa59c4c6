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


class LocalProtocolError(ProtocolError):
    """We tried to emit something the protocol cannot carry (a bug on our side)."""
