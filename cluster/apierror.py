"""`ApiError`: a status request that cannot be answered, with the HTTP code the source API gives.

The status views (`services`, `health`, `nodestatus`, `clusterstatus`) raise it for bad
arguments and unknown names; nothing in the model changes. `message` is the one line a RESP
error reply carries, `http_status` and `to_json()` what the HTTP mirror sends (Puppet's
`{"kind": ..., "msg": ...}` error body shape, which the other views reuse).
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(ValueError):
    """A request a status view refuses.

    Attributes:
        message: one line for a RESP error reply, e.g. `not found: db`.
        http_status: 400 for a bad argument, 404 for an unknown service or node.
        kind: stable label, e.g. `data-invalid`, `service-not-found`, `node-not-found`.
        detail: the text of the JSON error body (defaults to `message`).
    """

    def __init__(
        self, message: str, *, http_status: int, kind: str, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.kind = kind
        self.detail = message if detail is None else detail

    def to_json(self) -> dict[str, str]:
        """The JSON error body: `{"kind": ..., "msg": ...}`."""
        return {"kind": self.kind, "msg": self.detail}


def bad_argument(message: str) -> ApiError:
    """A 400 `data-invalid` error."""
    return ApiError(message, http_status=400, kind="data-invalid")


def unknown_node(node_id: str) -> ApiError:
    """A 404 for a node the model does not know."""
    return ApiError(f"unknown node '{echo(node_id)}'", http_status=404, kind="node-not-found")


def echo(text: str, limit: int = 64) -> str:
    """User input quoted in an error: one line (RESP errors cannot hold CR or LF), bounded."""
    line = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return line if len(line) <= limit else line[: limit - 3] + "..."


def text_arg(value: str | bytes) -> str:
    """A command argument as text; undecodable bytes are replaced, never raised."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
