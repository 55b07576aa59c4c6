"""Secrets stay out of what the server keeps: the slow log redacts what redis-server 7.0
redacts (checked against it in tests/hostile/test_secrets.py), and an ACL file error
quotes only what Redis quotes (an unknown command or category), never a password rule."""

from __future__ import annotations

import pytest

from clusterwatch.commands import AccessControl, AclFileError, CommandContext
from clusterwatch.server.config import ServerConfig
from tests.commands.test_acl_rules import CATALOG
from tests.commands.test_handlers import make_ctx, run

R = b"(redacted)"
SECRET = b"s3cret-pw"


@pytest.mark.parametrize(("argv", "shown"), [
    ([b"AUTH", SECRET], [b"AUTH", R]),
    ([b"auth", b"alice", SECRET], [b"auth", R, R]),
    ([b"HELLO", b"3", b"AUTH", b"alice", SECRET], [b"HELLO", b"3", b"AUTH", R, R]),
    ([b"hello", b"3", b"setname", b"cli", b"auth", b"u", SECRET, b"SETNAME", b"x"],
     [b"hello", b"3", b"setname", b"cli", b"auth", R, R, b"SETNAME", b"x"]),
    # Redis keeps these in clear (it fails before it redacts); here they are redacted.
    ([b"HELLO", b"9", b"AUTH", b"u", SECRET], [b"HELLO", b"9", b"AUTH", R, R]),
    ([b"HELLO", b"AUTH", b"u", SECRET], [b"HELLO", b"AUTH", R, R]),
    ([b"HELLO", b"3", b"BOGUS", b"AUTH", b"u", SECRET], [b"HELLO", b"3", b"BOGUS", b"AUTH", R, R]),
    ([b"HELLO", b"3", b"AUTH", SECRET], [b"HELLO", b"3", b"AUTH", R]),
    ([b"HELLO", b"3", b"SETNAME", b"AUTH"], [b"HELLO", b"3", b"SETNAME", b"AUTH"]),
    ([b"ACL", b"SETUSER", b"bob", b"on", b">" + SECRET, b"+@all"],
     [b"ACL", b"SETUSER", R, R, R, R]),
    ([b"acl", b"setuser", b"bob"], [b"acl", b"setuser", R]),
    ([b"ACL", b"GETUSER", b"bob"], [b"ACL", b"GETUSER", b"bob"]),
    ([b"PING", SECRET], [b"PING", SECRET]),
])
def test_what_the_slow_log_may_keep(argv: list[bytes], shown: list[bytes]) -> None:
    from clusterwatch.commands._redact import redacted

    assert list(redacted(argv)) == shown


def slow_ctx() -> CommandContext:
    """A server that logs every command in the slow log, as slowlog-log-slower-than 0."""
    return make_ctx(ServerConfig(slowlog_log_slower_than=0))


def logged_args(ctx: CommandContext) -> list[list[bytes]]:
    entries = run(ctx, "SLOWLOG", "GET", "100")
    assert isinstance(entries, list)
    return [list(entry[3]) for entry in entries]  # type: ignore[index]


def test_slowlog_shows_no_password_whatever_the_outcome() -> None:
    ctx = slow_ctx()
    requests = [
        ("ACL", "SETUSER", "alice", "on", ">" + SECRET.decode(), "+@all", "~*"),
        ("ACL", "SETUSER", "mallory", "on", "<" + SECRET.decode()),  # refused: no such pw
        ("AUTH", "alice", SECRET.decode()),
        ("AUTH", "alice", "wrong-" + SECRET.decode()),
        ("AUTH", SECRET.decode()),
        ("HELLO", "3", "AUTH", "alice", SECRET.decode(), "SETNAME", "c1"),
        ("HELLO", "7", "AUTH", "alice", SECRET.decode()),
    ]
    for request in requests:
        run(ctx, *request)
    logged = logged_args(ctx)
    assert not [args for args in logged if any(SECRET in arg for arg in args)], logged
    assert [b"ACL", b"SETUSER", R, R, R, R, R] in logged
    assert [b"AUTH", R, R] in logged
    assert [b"HELLO", b"3", b"AUTH", R, R, b"SETNAME", b"c1"] in logged


def test_a_pipelined_run_of_auth_is_logged_redacted() -> None:
    ctx = slow_ctx()
    ctx.table.execute(ctx, [[b"AUTH", SECRET], [b"AUTH", SECRET], [b"PING"]])
    logged = logged_args(ctx)
    assert [b"AUTH", R] in logged and not any(SECRET in a for args in logged for a in args)


SUFFIX = ". WARNING: ACL errors detected, no change to the previously active ACL rules " \
         "was performed"


@pytest.mark.parametrize(("rule", "error"), [
    # redis-server 7.0.15's ACL LOAD errors for the same lines, byte for byte.
    ("<" + SECRET.decode(), "The password you are trying to remove from the user does not exist"),
    ("#" + SECRET.decode(), "The password hash must be exactly 64 characters and contain only "
                            "lowercase hexadecimal characters"),
    ("!" + SECRET.decode(), "The password hash must be exactly 64 characters and contain only "
                            "lowercase hexadecimal characters"),
    ("bogus" + SECRET.decode(), "Syntax error"),
])
def test_an_acl_file_error_does_not_quote_a_password_rule(rule: str, error: str) -> None:
    acl = AccessControl(CATALOG)
    with pytest.raises(AclFileError) as caught:
        acl.parse_file(f"user alice on >a +@all\nuser bob on {rule} +@all\n", "/x/users.acl")
    assert str(caught.value) == f"/x/users.acl:2: {error}{SUFFIX}"
    assert SECRET.decode() not in str(caught.value)
