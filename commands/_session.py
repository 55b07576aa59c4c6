"""One client connection's protocol state, and its CLIENT LIST line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from clusterwatch.resp import Reply

    from ._deferred import Deferred


@dataclass(slots=True, kw_only=True)
class Session:
    """One client connection's protocol state (Redis's ``client`` struct, minus the I/O)."""

    id: int
    addr: str = ""
    laddr: str = ""
    fd: int = -1
    created_ms: int = 0
    last_interaction_ms: int = 0
    protocol: Literal[2, 3] = 2
    name: str = ""
    lib_name: str = ""
    lib_ver: str = ""
    user: str = "default"
    authenticated: bool = True
    # Full names of the commands this client may run now: its ACL user's, narrowed to
    # the subscribed-mode commands while a RESP2 client is subscribed; empty before AUTH.
    allowed: frozenset[str] = frozenset()
    channels: set[bytes] = field(default_factory=set)
    patterns: set[bytes] = field(default_factory=set)
    # A RESP2 client with subscriptions: PING answers ["pong", msg], as Redis.
    resp2_subscribed: bool = False
    db: int = 0
    last_command: str = "NULL"
    multi: list[list[bytes]] | None = None
    multi_dirty: bool = False
    close_after_reply: bool = False
    readonly: bool = False
    # The reply this client waits for (a blocked client); its later requests wait too.
    blocked: Deferred[Reply] | None = None
    # Set while EXEC runs its queue: a handler answers at once instead of blocking.
    deny_blocking: bool = False
    # Filled in by the server when a listing is asked for.
    query_buffer: int = 0
    output_buffer: int = 0
    flags: set[str] = field(default_factory=set)


def client_info_line(session: Session, now_ms: int) -> str:
    """One CLIENT LIST line, with Redis's field names and order."""
    age = max(0, (now_ms - session.created_ms) // 1000)
    idle = max(0, (now_ms - session.last_interaction_ms) // 1000)
    flags = "".join(sorted(session.flags)) or "N"
    if session.multi is not None:
        flags = flags.replace("N", "") + "x"
    multi = -1 if session.multi is None else len(session.multi)
    return (
        f"id={session.id} addr={session.addr} laddr={session.laddr} fd={session.fd} "
        f"name={session.name} age={age} idle={idle} flags={flags} db={session.db} "
        f"sub={len(session.channels)} psub={len(session.patterns)} ssub=0 multi={multi} "
        f"qbuf={session.query_buffer} qbuf-free=0 "
        f"argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={session.output_buffer} "
        f"tot-mem=0 events=r cmd={session.last_command} user={session.user} redir=-1 "
        f"resp={session.protocol} lib-name={session.lib_name} lib-ver={session.lib_ver}"
    )
