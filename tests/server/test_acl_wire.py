"""ACL on the wire, byte for byte against redis-server 7: the same users set up on both
with the same ACL SETUSER, then the same requests; the replies must be identical.

Not compared byte for byte: ``ACL CAT`` (clusterwatch lists Redis's categories, in Redis's
order, then its own two), ACL LOG's ``age-seconds`` and ``client-info`` values, and
protected mode's reply is compared once the connection is refused on both.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest

from tests.conftest import ServerProcess, start_server
from tests.integration.helpers import read_until_closed
from tests.server.test_wire_exact import RedisServer, bulk, exchange

pytestmark = pytest.mark.integration

SETUP = [
    (b"ACL", b"SETUSER", b"mon", b"on", b">monpw", b"+@all", b"-@admin", b"+config|get"),
    (b"ACL", b"SETUSER", b"ping-only", b"on", b">pp", b"-@all", b"+ping"),
    (b"ACL", b"SETUSER", b"sleeper", b"off", b">zz", b"+@all"),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    real = RedisServer()
    ours = start_server(tmp_path_factory.mktemp("cw-acl"))
    for port in (real.port, ours.port):
        payload = b"".join(bulk(*command) for command in SETUP)
        assert exchange(port, payload, len(SETUP)) == b"+OK\r\n" * len(SETUP)
    yield real.port, ours.port
    ours.stop()
    real.stop()


def both(pair: tuple[int, int], payload: bytes, replies: int = 1) -> tuple[bytes, bytes]:
    return exchange(pair[0], payload, replies), exchange(pair[1], payload, replies)


def auth(user: bytes, password: bytes) -> bytes:
    return bulk(b"AUTH", user, password)


SAME = [
    pytest.param(bulk(b"ACL", b"WHOAMI"), 1, id="whoami-default"),
    pytest.param(auth(b"mon", b"monpw") + bulk(b"ACL", b"WHOAMI"), 2, id="whoami-after-auth"),
    pytest.param(auth(b"mon", b"wrong"), 1, id="wrongpass"),
    pytest.param(auth(b"nobody", b"x"), 1, id="unknown-user"),
    pytest.param(auth(b"sleeper", b"zz"), 1, id="disabled-user"),
    pytest.param(bulk(b"AUTH", b"x"), 1, id="auth-without-default-password"),
    pytest.param(auth(b"ping-only", b"pp") + bulk(b"INFO") + bulk(b"CONFIG", b"GET", b"port")
                 + bulk(b"PING"), 4, id="noperm-command-and-subcommand"),
    pytest.param(auth(b"mon", b"monpw") + bulk(b"ACL", b"SETUSER", b"x"), 2,
                 id="noperm-admin"),
    pytest.param(auth(b"ping-only", b"pp") + bulk(b"MULTI"), 2, id="noperm-multi"),
    pytest.param(bulk(b"ACL", b"GETUSER", b"mon"), 1, id="getuser"),
    pytest.param(bulk(b"ACL", b"GETUSER", b"default"), 1, id="getuser-default"),
    pytest.param(bulk(b"ACL", b"GETUSER", b"nosuch"), 1, id="getuser-unknown"),
    pytest.param(bulk(b"ACL", b"USERS"), 1, id="users"),
    pytest.param(bulk(b"ACL", b"LIST"), 1, id="list"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"x", b"+foo"), 1, id="setuser-unknown-command"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"x", b"+config|nosuch"), 1,
                 id="setuser-unknown-sub"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"x", b"blah"), 1, id="setuser-syntax"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"x", b"#abc"), 1, id="setuser-bad-hash"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"x", b"<nope"), 1, id="setuser-no-such-password"),
    pytest.param(bulk(b"ACL", b"SETUSER", b"a b"), 1, id="setuser-bad-name"),
    pytest.param(bulk(b"ACL", b"SETUSER"), 1, id="setuser-arity"),
    pytest.param(bulk(b"ACL", b"DELUSER", b"default"), 1, id="deluser-default"),
    pytest.param(bulk(b"ACL", b"DELUSER", b"nosuch"), 1, id="deluser-unknown"),
    pytest.param(bulk(b"ACL", b"SAVE"), 1, id="save-without-file"),
    pytest.param(bulk(b"ACL", b"LOAD"), 1, id="load-without-file"),
    pytest.param(bulk(b"ACL", b"CAT", b"nosuch"), 1, id="cat-unknown"),
    pytest.param(bulk(b"ACL", b"WHOAMI", b"x"), 1, id="whoami-arity"),
    pytest.param(bulk(b"ACL", b"LOG", b"foo"), 1, id="log-not-a-number"),
    pytest.param(bulk(b"ACL", b"DRYRUN", b"ping-only", b"info"), 1, id="dryrun-denied"),
    pytest.param(bulk(b"ACL", b"DRYRUN", b"ping-only", b"ping"), 1, id="dryrun-allowed"),
    pytest.param(bulk(b"ACL", b"DRYRUN", b"nosuch", b"ping"), 1, id="dryrun-unknown-user"),
    pytest.param(bulk(b"ACL", b"GENPASS", b"0"), 1, id="genpass-zero"),
]


@pytest.mark.parametrize(("payload", "replies"), SAME)
def test_same_bytes_as_redis(pair: tuple[int, int], payload: bytes, replies: int) -> None:
    real, ours = both(pair, payload, replies)
    assert ours == real


def test_getuser_in_resp3_is_redis_map(pair: tuple[int, int]) -> None:
    """HELLO's own reply differs (server version, client id); what follows must not."""
    marker = b"%6\r\n$5\r\nflags\r\n"
    real, ours = both(pair, bulk(b"HELLO", b"3") + bulk(b"ACL", b"GETUSER", b"mon"), 2)
    assert marker in real
    assert ours[ours.index(marker):] == real[real.index(marker):]


def test_acl_cat_lists_redis_categories_in_redis_order_then_ours(
        pair: tuple[int, int]) -> None:
    reader_real, reader_ours = hiredis.Reader(), hiredis.Reader()
    raw_real, raw_ours = both(pair, bulk(b"ACL", b"CAT"))
    reader_real.feed(raw_real)
    reader_ours.feed(raw_ours)
    real, ours = reader_real.gets(), reader_ours.gets()
    assert ours[:len(real)] == real
    assert ours[len(real):] == [b"status", b"publish"]


def test_acl_log_has_redis_fields_and_values(pair: tuple[int, int]) -> None:
    for port in pair:
        exchange(port, bulk(b"ACL", b"LOG", b"RESET"), 1)
        exchange(port, auth(b"mon", b"bad") + auth(b"ping-only", b"pp") + bulk(b"INFO")
                 + bulk(b"INFO"), 4)
    logs = []
    for port in pair:
        reader = hiredis.Reader()
        reader.feed(exchange(port, bulk(b"ACL", b"LOG"), 1))
        logs.append(reader.gets())
    real, ours = logs
    assert len(real) == len(ours) == 2
    for real_entry, our_entry in zip(real, ours, strict=True):
        real_fields = dict(zip(real_entry[::2], real_entry[1::2], strict=True))
        our_fields = dict(zip(our_entry[::2], our_entry[1::2], strict=True))
        assert real_entry[::2] == our_entry[::2]  # same field names, same order
        for name in (b"count", b"reason", b"context", b"object", b"username"):
            assert our_fields[name] == real_fields[name], name
        assert float(our_fields[b"age-seconds"]) < 5
        assert our_fields[b"client-info"].startswith(b"id=")
    assert [dict(zip(e[::2], e[1::2], strict=True))[b"count"] for e in ours] == [2, 1]


def _connect_from(source: str, port: int, payload: bytes) -> tuple[bytes, bool]:
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))
        sock.sendall(payload)
        return read_until_closed(sock, 3.0)


def test_protected_mode_denies_like_redis(tmp_path: Path) -> None:
    """127.0.0.2 is not 127.0.0.1 to Redis's test, so loopback can play the outsider."""
    real = RedisServer()
    ours = start_server(tmp_path)
    try:
        real_reply, real_closed = _connect_from("127.0.0.2", real.port, b"PING\r\n")
        our_reply, our_closed = _connect_from("127.0.0.2", ours.port, b"PING\r\n")
        assert real_reply.startswith(b"-DENIED Redis is running in protected mode")
        assert (our_reply, our_closed) == (real_reply, real_closed) == (real_reply, True)
        assert _connect_from("127.0.0.1", ours.port, b"PING\r\n")[0] == b"+PONG\r\n"
    finally:
        ours.stop()
        real.stop()


@pytest.mark.parametrize("args", [("--requirepass", "pw"), ("--protected-mode", "no")])
def test_protected_mode_is_off_with_a_password_or_when_disabled(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    ours: ServerProcess = start_server(tmp_path, *args)
    try:
        reply, _ = _connect_from("127.0.0.2", ours.port, b"PING\r\nQUIT\r\n")
        assert reply.startswith((b"+PONG", b"-NOAUTH")), reply
        assert b"DENIED" not in reply
    finally:
        ours.stop()
