"""Secrets against a real server process: no password reaches a record another client or
the operator can read (SLOWLOG, ACL LOG, CLIENT LIST, INFO, BUS INFO, HEALTH, LATENCY,
/metrics, the server's own log), and the slow log redacts what redis-server 7.0 redacts,
checked against a real redis-server given the same requests.

Found on main: passwords from ``AUTH``, ``HELLO ... AUTH`` and ``ACL SETUSER u >pw`` in
clear in ``SLOWLOG GET``, and a bad password rule in an ACL file quoted in the start-up
error (stderr and the log). ``CONFIG GET requirepass`` still shows the password, as Redis
does (README, "Who may do what").
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from tests.conftest import ROOT, ServerProcess, free_port, start_server
from tests.integration.redis_procs import RedisProcess, redis_factory  # noqa: F401

pytestmark = pytest.mark.integration

ADMIN = "adm1n-S3CRET"
ALICE = "al1ce-S3CRET"
BOB = "b0b-S3CRET"
WRONG = "wr0ng-S3CRET"
BUS = "bu5-S3CRET"
SECRETS = (ADMIN, ALICE, BOB, WRONG, BUS)

# Sent alike to clusterwatch and to redis-server: the commands that carry passwords.
SHARED: list[tuple[str, ...]] = [
    ("AUTH", WRONG),
    ("AUTH", ADMIN),
    ("ACL", "SETUSER", "alice", "on", ">" + ALICE, "~*", "&*", "+@all"),
    ("ACL", "SETUSER", "mallory", "on", "<" + BOB),  # refused: no such password
    ("HELLO", "3", "AUTH", "alice", ALICE, "SETNAME", "c1"),
    ("HELLO", "2", "AUTH", "alice", WRONG),
    ("auth", "alice", WRONG),
    ("AUTH", "alice", ALICE),
]
# Redis fails these before it redacts, so its slow log keeps the password; ours does not.
OURS_ONLY: list[tuple[str, ...]] = [
    ("HELLO", "9", "AUTH", "alice", ALICE),
    ("HELLO", "3", "BOGUS", "AUTH", "alice", ALICE),
]


def exchange(port: int, requests: Sequence[Sequence[str]]) -> list[Any]:
    """Send each request on one raw connection, in order; the replies as hiredis reads
    them (errors as ReplyError values)."""
    reader = hiredis.Reader()
    replies: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for request in requests:
            words = [w.encode() for w in request]
            sock.sendall(b"*%d\r\n" % len(words)
                         + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words))
            reply = reader.gets()
            while reply is False:
                reader.feed(sock.recv(65536))
                reply = reader.gets()
            replies.append(reply)
    return replies


def slowlog(port: int, *names: str) -> list[list[bytes]]:
    """The slow log's argument lists for these commands, oldest first."""
    entries = exchange(port, [("AUTH", ADMIN), ("SLOWLOG", "GET", "1000")])[1]
    wanted = {name.lower() for name in names}
    return [list(entry[3]) for entry in reversed(entries)
            if entry[3][0].decode().lower() in wanted]


def http_get(port: int, path: str, user: str, password: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_no_password_in_anything_a_client_or_the_operator_can_read(
        redis_factory: Callable[..., RedisProcess], tmp_path: Path) -> None:  # noqa: F811
    bus = redis_factory("--requirepass", BUS)
    http_port = free_port()
    server = start_server(
        tmp_path, "--requirepass", ADMIN, "--slowlog-log-slower-than", "0",
        "--slowlog-max-len", "1000", "--latency-monitor-threshold", "1", "--log-level", "debug",
        "--http-port", str(http_port), "--node-timeout", "3000",
        "--bus", f"redis://default:{BUS}@127.0.0.1:{bus.port}/0")
    try:
        replies = exchange(server.port, [*SHARED, *OURS_ONLY])
        print(replies)
        # What the client that sent them sees is Redis's answer, as before.
        assert isinstance(replies[0], hiredis.ReplyError) and str(replies[0]).startswith(
            "WRONGPASS")
        assert replies[1] == b"OK" and replies[2] == b"OK"
        assert str(replies[3]).startswith("ERR Error in ACL SETUSER modifier '<")
        assert http_get(http_port, "/metrics", "alice", WRONG)[0] == 401
        code, metrics = http_get(http_port, "/metrics", "alice", ALICE)
        assert code == 200

        admin = redis.Redis(port=server.port, password=ADMIN, protocol=3, socket_timeout=10)
        admin2 = redis.Redis(port=server.port, password=ADMIN, protocol=2, socket_timeout=10)
        readable: list[Any] = [metrics, server.logs()]
        for client in (admin, admin2):
            for request in (("SLOWLOG", "GET", "1000"), ("ACL", "LOG"), ("CLIENT", "LIST"),
                            ("CLIENT", "INFO"), ("INFO", "everything"), ("BUS", "INFO"),
                            ("HEALTH", "VERBOSE"), ("LATENCY", "LATEST"), ("STATUS", "NODE"),
                            ("ACL", "LIST"), ("ACL", "GETUSER", "alice")):
                readable.append(client.execute_command(*request))
        text = repr(readable)
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{leaked} readable in {text[:2000]}"
        assert b"(redacted)" in repr(readable[2]).encode()

        # CONFIG GET shows requirepass, as Redis's does (README).
        assert admin2.execute_command("CONFIG", "GET", "requirepass") == [
            b"requirepass", ADMIN.encode()]
        assert admin2.execute_command("BUS", "INFO")  # the server and its bus are intact
    finally:
        server.stop()
    assert not [secret for secret in SECRETS if secret in server.logs()], server.logs()[-3000:]


def test_the_slow_log_redacts_what_redis_server_redacts(
        redis_factory: Callable[..., RedisProcess], server_factory: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    reference = redis_factory("--requirepass", ADMIN, "--slowlog-log-slower-than", "0",
                              "--slowlog-max-len", "1000")
    server = server_factory("--requirepass", ADMIN, "--slowlog-log-slower-than", "0",
                            "--slowlog-max-len", "1000")
    for port in (reference.port, server.port):
        exchange(port, SHARED)
    theirs = slowlog(reference.port, "auth", "hello", "acl")
    ours = slowlog(server.port, "auth", "hello", "acl")
    print("redis-server:", theirs)
    print("clusterwatch:", ours)
    assert ours[:len(theirs)] == theirs  # SLOWLOG GET's own AUTH comes after them in both
    assert any(b"(redacted)" in args for args in ours)

    exchange(server.port, OURS_ONLY)
    stricter = slowlog(server.port, "hello")[-len(OURS_ONLY):]
    assert stricter == [[b"HELLO", b"9", b"AUTH", b"(redacted)", b"(redacted)"],
                        [b"HELLO", b"3", b"BOGUS", b"AUTH", b"(redacted)", b"(redacted)"]]


def test_an_acl_file_error_names_the_line_not_the_password(
        redis_factory: Callable[..., RedisProcess], tmp_path: Path) -> None:  # noqa: F811
    """A bad password rule stops the start naming the file and line, in Redis's words,
    without the password: on stderr and in the log; ACL LOAD answers the same as
    redis-server's ACL LOAD for the same file."""
    aclfile = tmp_path / "users.acl"
    good = f"user default on >{ADMIN} ~* &* +@all\n"
    bad = good + f"user bob on <{BOB} ~* +@all\n"
    aclfile.write_text(bad)
    result = subprocess.run(
        [sys.executable, "-m", "clusterwatch", "serve", "--port", "0", "--aclfile", str(aclfile)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(result.stderr)
    assert result.returncode == 2
    assert (f"{aclfile}:2: The password you are trying to remove from the user does not "
            "exist") in result.stderr
    assert BOB not in result.stdout + result.stderr

    aclfile.write_text(good)
    reference_file = tmp_path / "redis-users.acl"
    reference_file.write_text(good)
    reference = redis_factory("--aclfile", str(reference_file))
    server = start_server(tmp_path, "--aclfile", str(aclfile))
    try:
        aclfile.write_text(bad)
        reference_file.write_text(bad)
        ours = exchange(server.port, [("AUTH", ADMIN), ("ACL", "LOAD")])[1]
        theirs = exchange(reference.port, [("AUTH", ADMIN), ("ACL", "LOAD")])[1]
        assert isinstance(ours, hiredis.ReplyError)
        assert str(ours) == str(theirs).replace(str(reference_file), str(aclfile))
        assert BOB not in str(ours) and BOB not in server.logs()
    finally:
        server.stop()
