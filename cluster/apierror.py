"""`ApiError`: a status request that cannot be answered, and what kind of refusal it is.

The status views (`services`, `health`, `nodestatus`, `clusterstatus`, `whatif`) raise it
for bad arguments and unknown names; nothing in the model changes. `message` is the one line
a RESP error reply carries, `to_json()` the body the HTTP mirror sends (Puppet's `{"kind":
..., "msg": ...}` error body shape, which the other views reuse). The model says which kind
of refusal it is (`KINDS`); the HTTP code for each kind is the server's
(`server/http.py`).
"""

from __future__ import annotations

__all__ = ["KINDS", "ApiError"]

# What a status view can refuse: an argument it cannot take (Puppet's `data-invalid`), a
# status format version the service does not have, a service or a node nobody reports.
KINDS = frozenset({"data-invalid", "service-status-version-not-found", "service-not-found",
                   "node-not-found", "not-found"})


class ApiError(ValueError):
    """A request a status view refuses.

    Attributes:
        message: one line for a RESP error reply, e.g. `not found: db`.
        kind: one of `KINDS`, e.g. `data-invalid`, `service-not-found`, `node-not-found`.
        detail: the text of the JSON error body (defaults to `message`).
    """

    def __init__(self, message: str, *, kind: str, detail: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"ApiError kind {kind!r} is not one of KINDS")
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.detail = message if detail is None else detail

    def to_json(self) -> dict[str, str]:
        """The JSON error body: `{"kind": ..., "msg": ...}`."""
        return {"kind": self.kind, "msg": self.detail}


def bad_argument(message: str) -> ApiError:
    """A `data-invalid` refusal."""
    return ApiError(message, kind="data-invalid")


def unknown_node(node_id: str) -> ApiError:
    """A node the model does not know."""
    return ApiError(f"unknown node '{echo(node_id)}'", kind="node-not-found")


def echo(text: str, limit: int = 64) -> str:
    """User input quoted in an error: one line (RESP errors cannot hold CR or LF), bounded."""
    line = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return line if len(line) <= limit else line[: limit - 3] + "..."


def text_arg(value: str | bytes) -> str:
    """A command argument as text; undecodable bytes are replaced, never raised."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
