"""redis-py 8 (hiredis parser), sync and asyncio, RESP3 (its default) and RESP2."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.retry import Retry

from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration

PASSWORD = "py-s3cret"
# AuthenticationError is a ConnectionError, which redis-py retries with backoff by default.
NO_RETRY = Retry(NoBackoff(), 0)


def _client(server: ServerProcess, **kwargs: object) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10, **kwargs)


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[redis.Redis]:
    """A second, independent client for looking at the server from outside."""
    client = _client(server, protocol=2, decode_responses=True)
    yield client
    client.close()


def _calls(admin: redis.Redis, command: str) -> int:
    stats = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _check_basic_commands(r: redis.Redis, protocol: int) -> None:
    assert r.ping() is True
    info = r.info()
    assert isinstance(info, dict)
    assert info["redis_version"] == "7.0.15"
    assert info["loading"] == 0
    assert info["connected_clients"] >= 1
    assert r.echo("hello") == b"hello"
    assert r.client_setname("worker-1") is True
    assert r.client_getname() in ("worker-1", b"worker-1")
    client_id = r.client_id()
    assert isinstance(client_id, int)
    assert client_id > 0
    listed = r.client_list()
    mine = [c for c in listed if c["id"] == str(client_id)]
    assert len(mine) == 1
    assert mine[0]["name"] == "worker-1"
    assert mine[0]["resp"] == str(protocol)
    assert mine[0]["lib-name"] == "redis-py"
    config = r.config_get("*")
    assert config["maxclients"] == "10000"
    assert config["databases"] == "1"
    assert len(config) >= 10
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 60
    assert 0 <= micros < 1_000_000
    assert r.dbsize() == 0


def test_default_is_resp3(server: ServerProcess, admin: redis.Redis) -> None:
    hello_before = _calls(admin, "hello")
    with _client(server) as r:
        _check_basic_commands(r, protocol=3)
        assert r.client_info()["resp"] == "3"
    # redis-py 8 handshakes with HELLO 3 by default, and the server accepted it.
    assert _calls(admin, "hello") == hello_before + 1


def test_resp2(server: ServerProcess, admin: redis.Redis) -> None:
    hello_before = _calls(admin, "hello")
    with _client(server, protocol=2) as r:
        _check_basic_commands(r, protocol=2)
        assert r.client_info()["resp"] == "2"
    assert _calls(admin, "hello") == hello_before


def test_resp3_types(server: ServerProcess) -> None:
    with _client(server) as r:
        hello = r.execute_command("HELLO", "3")
        assert isinstance(hello, dict)
        assert hello[b"proto"] == 3
        assert hello[b"server"] == b"redis"
        assert hello[b"version"] == b"7.0.15"
        assert hello[b"modules"] == []
        # No reply callback for the bare command name: this is the parser's own type.
        assert r.execute_command("CONFIG", "GET", "maxclients") == {b"maxclients": b"10000"}
        # INFO in RESP3 is a verbatim string; redis-py still parses it into a dict.
        assert r.info("server")["redis_mode"] == "standalone"


def test_resp2_types(server: ServerProcess) -> None:
    with _client(server, protocol=2) as r:
        assert r.execute_command("CONFIG", "GET", "maxclients") == [b"maxclients", b"10000"]
        hello2 = r.execute_command("HELLO", "2")
        assert isinstance(hello2, list)
        assert hello2[hello2.index(b"proto") + 1] == 2


def test_health_check_interval(server: ServerProcess, admin: redis.Redis) -> None:
    pings_before = _calls(admin, "ping")
    with _client(server, health_check_interval=1) as r:
        assert r.echo("a") == b"a"
        after_connect = _calls(admin, "ping")
        time.sleep(1.3)
        assert r.echo("b") == b"b"  # preceded by a health-check PING answered PONG
        after_idle = _calls(admin, "ping")
    assert after_connect >= pings_before + 1
    assert after_idle == after_connect + 1


def test_client_name_in_constructor(server: ServerProcess, admin: redis.Redis) -> None:
    with _client(server, client_name="svc") as r:
        assert r.ping() is True
        names = [c["name"] for c in admin.client_list()]
        assert "svc" in names
        assert r.client_getname() in ("svc", b"svc")


@pytest.mark.parametrize("protocol", [2, 3])
def test_transactional_pipeline(server: ServerProcess, admin: redis.Redis,
                                protocol: int) -> None:
    multi, exec_ = _calls(admin, "multi"), _calls(admin, "exec")
    with _client(server, protocol=protocol) as r:
        pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
        pipe.ping().echo("x").client_setname("piped").client_getname().dbsize()
        result = pipe.execute()
    # redis-py decodes CLIENT GETNAME to str with its RESP2 callbacks only.
    assert result == [True, b"x", True, "piped" if protocol == 2 else b"piped", 0]
    assert _calls(admin, "multi") == multi + 1
    assert _calls(admin, "exec") == exec_ + 1


@pytest.mark.parametrize("protocol", [2, 3])
def test_plain_pipeline(server: ServerProcess, admin: redis.Redis, protocol: int) -> None:
    multi = _calls(admin, "multi")
    with _client(server, protocol=protocol) as r:
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.echo(str(i))
        pipe.ping()
        assert pipe.execute() == [str(i).encode() for i in range(50)] + [True]
    assert _calls(admin, "multi") == multi


@pytest.fixture
def auth_server(server_factory: object) -> ServerProcess:
    return server_factory("--requirepass", PASSWORD)  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize("protocol", [2, 3])
def test_password(auth_server: ServerProcess, protocol: int) -> None:
    with _client(auth_server, protocol=protocol, password=PASSWORD) as r:
        assert r.ping() is True
        info = r.client_info()
        assert info["resp"] == str(protocol)
        assert info["user"] == "default"


@pytest.mark.parametrize("protocol", [2, 3])
def test_wrong_password(auth_server: ServerProcess, protocol: int) -> None:
    with _client(auth_server, protocol=protocol, password="wrong",
                 retry=NO_RETRY) as r, \
            pytest.raises(AuthenticationError):
        r.ping()
    # The server is fine afterwards.
    with _client(auth_server, protocol=protocol, password=PASSWORD) as r:
        assert r.ping() is True


def test_no_password_is_refused(auth_server: ServerProcess) -> None:
    with _client(auth_server, protocol=2, retry=NO_RETRY) as r, \
            pytest.raises(AuthenticationError, match="Authentication required"):
        r.ping()


# --- asyncio ---------------------------------------------------------------------------


@pytest.fixture
async def aclient_factory(server: ServerProcess) -> AsyncIterator[object]:
    made: list[redis.asyncio.Redis] = []

    def make(**kwargs: object) -> redis.asyncio.Redis:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port, socket_timeout=10,
                                     **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.mark.parametrize("protocol", [None, 2, 3])
async def test_asyncio(aclient_factory: object, protocol: int | None) -> None:
    kwargs = {} if protocol is None else {"protocol": protocol}
    r = aclient_factory(**kwargs)  # type: ignore[operator]
    expected = 3 if protocol is None else protocol
    assert await r.ping() is True
    info = await r.info()
    assert info["redis_version"] == "7.0.15"
    assert await r.echo("hi") == b"hi"
    assert await r.client_setname("aio") is True
    assert await r.client_getname() in ("aio", b"aio")
    assert (await r.client_info())["resp"] == str(expected)
    assert isinstance(await r.client_id(), int)
    assert (await r.config_get("maxclients")) == {"maxclients": "10000"}
    assert await r.dbsize() == 0
    raw = await r.execute_command("CONFIG", "GET", "maxclients")
    if expected == 3:
        assert raw == {b"maxclients": b"10000"}
    else:
        assert raw == [b"maxclients", b"10000"]
    pipe = r.pipeline()
    pipe.ping().echo("y")
    assert await pipe.execute() == [True, b"y"]
    pipe = r.pipeline(transaction=False)
    pipe.ping().echo("z")
    assert await pipe.execute() == [True, b"z"]


async def test_asyncio_password(auth_server: ServerProcess) -> None:
    for protocol in (2, 3):
        good = redis.asyncio.Redis(port=auth_server.port, password=PASSWORD, protocol=protocol)
        try:
            assert await good.ping() is True
        finally:
            await good.aclose()
        bad = redis.asyncio.Redis(port=auth_server.port, password="wrong", protocol=protocol,
                                  retry=AsyncRetry(NoBackoff(), 0))
        try:
            with pytest.raises(AuthenticationError):
                await bad.ping()
        finally:
            await bad.aclose()
