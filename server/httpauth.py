"""Who may read what on the HTTP port: probes stay open, details take HTTP Basic auth
against the ACL users, with the permissions of the RESP command that shows the same thing.

    request                                        open   needs (as RESP would)
    /startup /ready /health /live, /actuator/*     yes    (with ?verbose or ?node=: health,
                                                          as HEALTH VERBOSE and HEALTH NODE)
    /health/explain, /safe-to-stop                 no     health (HEALTH EXPLAIN and
                                                          SAFE-TO-STOP need AUTH)
    /status/v1/simple                              yes
    /status/v1/simple/<name>                       no     status|simple
    /  /serving (Curity's node document)           no     status|node
    /status/v1/services                            no     status|services
    /status/v1/services/<name>                     no     status|service
    /clusterStatus                                 no     cluster|status
    /metrics                                       no     info (what INFO commandstats and
                                                          the status commands show)

A request without credentials is the ``default`` user when that user needs no password
(as a RESP connection is), so a server without passwords stays open. Otherwise a detail
request without valid credentials is a 401 with ``WWW-Authenticate: Basic``, and one whose
user may not run the command a 403. Failed logins and denials go to ACL LOG, as on RESP.
An answer given before authentication never depends on which nodes or services exist: a
name or a node id makes a request a detail.

Protected mode (``server.protected``: no password for ``default``) is RESP's rule: a detail
request from a peer other than 127.0.0.1, ::1 or a Unix socket is a 403 carrying Redis's
``DENIED`` explanation; the open probes answer everyone, as documented.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from clusterwatch.commands import AccessControl, AclLogEntry, User

_OPEN_PREFIXES: Final = ("/startup", "/ready", "/health", "/live", "/actuator/health",
                         "/status/v1/simple")
_SIMPLE_ONE: Final = "/status/v1/simple/"
# Details under an open prefix: they name nodes and reasons whatever their parameters.
_HEALTH_DETAILS: Final = {"/health/explain": "health", "/safe-to-stop": "health"}
_EXACT: Final = {
    "/": "status|node",
    "/serving": "status|node",
    "/status/v1/services": "status|services",
    "/clusterStatus": "cluster|status",
    "/metrics": "info",
}
_FALSE: Final = frozenset({"0", "false", "no", "off"})
CHALLENGE: Final = 'Basic realm="clusterwatch", charset="UTF-8"'


class AccessDeniedError(Exception):
    """The request may not see this path: ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def required_command(path: str, verbose: str | None, node: str | None = None) -> str | None:
    """The RESP command whose permission a request needs, or None for an open probe."""
    if path.startswith(_SIMPLE_ONE):
        return "status|simple"
    if path in _HEALTH_DETAILS:
        return _HEALTH_DETAILS[path]
    if path.startswith(_OPEN_PREFIXES):
        if node is not None or (verbose is not None and verbose.strip().lower() not in _FALSE):
            return "health"
        return None
    if path.startswith("/status/v1/services/"):
        return "status|service"
    return _EXACT.get(path)


def credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header; an empty user name
    is ``default`` (as ``AUTH <password>``). None when absent or not Basic."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return (user or "default", password)


def authorize(acl: AccessControl, command: str, header: str | None, *, peer: str,
              now_ms: int) -> User:
    """The user a detail request runs as; raises ``AccessDeniedError`` (401/403) and logs it."""
    given = credentials(header)
    if given is None:
        user = acl.default_login()
        if user is None:
            raise AccessDeniedError(401, "authentication required")
    else:
        user = acl.authenticate(*given)
        if user is None:
            _log(acl, "auth", "AUTH", given[0], peer, now_ms)
            raise AccessDeniedError(401, "invalid username-password pair or user is disabled")
    if command not in user.allowed:
        _log(acl, "command", command, user.name, peer, now_ms)
        raise AccessDeniedError(403, f"this user has no permissions to run the '{command}' command")
    return user


def _log(acl: AccessControl, reason: str, what: str, username: str, peer: str,
         now_ms: int) -> None:
    acl.log.add(AclLogEntry(reason=reason, context="toplevel", object=what,
                            username=username, client_info=f"addr={peer} transport=http",
                            updated_ms=now_ms))
