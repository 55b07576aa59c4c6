"""ACL users with the real clients: the documented roles of docs/users.acl.example
(default = admin, monitor reads everything and publishes nothing, publisher only
publishes), redis-cli, redis-py (RESP2 and RESP3, sync and asyncio), redis_exporter, the
bundled simulator, the HTTP port's Basic auth, and ACL LOAD/SAVE on a real file."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.conftest import ROOT, ServerProcess, free_port, require_tool, start_server
from tests.integration.cluster_helpers import info_fields, message, poll
from tests.integration.exporter import metric_value
from tests.integration.helpers import run, wait_for

pytestmark = pytest.mark.integration

ADMIN, MONITOR, PUBLISHER = (("default", "change-me-admin"), ("monitor", "change-me-monitor"),
                             ("publisher", "change-me-publisher"))
NODE = "a" * 40
HELLO = message("hello", NODE, 1, 1, addr="10.0.0.1:7000")


@pytest.fixture
def acl_server(tmp_path: Path) -> tuple[ServerProcess, Path, int]:
    aclfile = tmp_path / "users.acl"
    shutil.copy(ROOT / "docs" / "users.acl.example", aclfile)
    http_port = free_port()
    server = start_server(tmp_path, "--aclfile", str(aclfile), "--http-port", str(http_port))
    yield server, aclfile, http_port  # type: ignore[misc]
    server.stop()


def client(server: ServerProcess, user: tuple[str, str], **options: object) -> redis.Redis:
    return redis.Redis(port=server.port, username=user[0], password=user[1],
                       socket_timeout=5, **options)  # type: ignore[arg-type]


def cli(server: ServerProcess, user: tuple[str, str], *command: str) -> str:
    result = run([require_tool("redis-cli"), "-p", str(server.port), "--user", user[0],
                  "--pass", user[1], "--no-auth-warning", *command])
    return result.stdout.strip()


def test_redis_cli_monitor_reads_and_cannot_publish_publisher_the_reverse(
        acl_server: tuple[ServerProcess, Path, int]) -> None:
    server, _, _ = acl_server
    assert cli(server, MONITOR, "CLUSTER", "INFO").startswith("cluster_state:")
    assert cli(server, MONITOR, "BUS", "PUBLISH", HELLO.decode()) == (
        "NOPERM this user has no permissions to run the 'bus|publish' command")
    assert "applied" in cli(server, PUBLISHER, "BUS", "PUBLISH", HELLO.decode())
    assert cli(server, PUBLISHER, "CLUSTER", "INFO") == (
        "NOPERM this user has no permissions to run the 'cluster|info' command")
    assert cli(server, MONITOR, "CLUSTER", "INFO").count("cluster_known_nodes:1") == 1
    log = client(server, ADMIN).acl_log()
    assert {(entry["username"], entry["object"]) for entry in log} == {
        ("monitor", "bus|publish"), ("publisher", "cluster|info")}
    assert all(entry["reason"] == "command" for entry in log)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sync_with_acl_users(acl_server: tuple[ServerProcess, Path, int],
                                      protocol: int) -> None:
    server, _, _ = acl_server
    monitor = client(server, MONITOR, protocol=protocol)
    assert monitor.acl_whoami() in ("monitor", b"monitor")  # RESP3 has no decoding callback
    assert info_fields(monitor.execute_command("CLUSTER", "INFO"))["cluster_state"]
    with pytest.raises(redis.exceptions.NoPermissionError, match="bus\\|publish"):
        monitor.execute_command("BUS", "PUBLISH", HELLO)
    publisher = client(server, PUBLISHER, protocol=protocol)
    assert publisher.execute_command("BUS", "PUBLISH", HELLO)
    with pytest.raises(redis.exceptions.NoPermissionError):
        publisher.execute_command("CLUSTER", "INFO")
    with pytest.raises(redis.exceptions.AuthenticationError):
        client(server, ("monitor", "wrong"), protocol=protocol).ping()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_py_asyncio_with_acl_users(acl_server: tuple[ServerProcess, Path, int],
                                               protocol: int) -> None:
    server, _, _ = acl_server
    await reads_but_may_not_publish(redis.asyncio.Redis(
        port=server.port, username=MONITOR[0], password=MONITOR[1], protocol=protocol))


async def reads_but_may_not_publish(monitor: redis.asyncio.Redis) -> None:
    """The monitor role over any connection: reads the model, BUS PUBLISH is NOPERM."""
    try:
        assert await monitor.acl_whoami() in ("monitor", b"monitor")
        assert b"cluster_state" in await monitor.execute_command("CLUSTER", "INFO")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await monitor.execute_command("BUS", "PUBLISH", HELLO)
    finally:
        await monitor.aclose()


def test_health_stays_open_to_probes_without_credentials(
        acl_server: tuple[ServerProcess, Path, int]) -> None:
    server, _, _ = acl_server
    probe = run([require_tool("redis-cli"), "-p", str(server.port), "HEALTH", "LIVE"])
    assert probe.stdout.strip() in ("UP", "DOWN", "DEGRADED", "UNKNOWN", "OUT_OF_SERVICE")
    anonymous = redis.Redis(port=server.port, protocol=2)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.execute_command("CLUSTER", "INFO")


def test_exporter_scrapes_as_monitor_without_denials(
        acl_server: tuple[ServerProcess, Path, int],
        exporter_factory: Callable[..., object]) -> None:
    server, _, _ = acl_server
    exporter = exporter_factory(server, "-redis.user", MONITOR[0],
                                "-redis.password", MONITOR[1])
    text = exporter.scrape()  # type: ignore[attr-defined]
    assert metric_value(text, "redis_up") == 1
    assert metric_value(text, "redis_cluster_state") in (0, 1)
    assert client(server, ADMIN).acl_log() == []


def test_simulator_publishes_as_publisher(acl_server: tuple[ServerProcess, Path, int],
                                          tmp_path: Path) -> None:
    server, _, _ = acl_server
    result = subprocess.run(
        [sys.executable, "-m", "clusterwatch", "simulate", "--server", f"127.0.0.1:{server.port}",
         "--user", PUBLISHER[0], "--password", PUBLISHER[1], "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    fields = info_fields(client(server, MONITOR).execute_command("CLUSTER", "INFO"))
    assert fields["cluster_known_nodes"] == "6"
    denied = subprocess.run(
        [sys.executable, "-m", "clusterwatch", "simulate", "--server", f"127.0.0.1:{server.port}",
         "--user", MONITOR[0], "--password", MONITOR[1], "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert denied.returncode != 0
    assert "NOPERM" in denied.stdout + denied.stderr


def test_setuser_applies_to_connected_clients_and_deluser_disconnects_them(
        acl_server: tuple[ServerProcess, Path, int]) -> None:
    server, _, _ = acl_server
    admin = client(server, ADMIN)
    admin.acl_setuser("carol", enabled=True, passwords=["+cpw"], commands=["+ping",
                                                                             "+cluster|info"])
    carol = client(server, ("carol", "cpw"), single_connection_client=True)
    assert carol.execute_command("CLUSTER", "INFO")
    admin.acl_setuser("carol", commands=["-cluster|info"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        carol.execute_command("CLUSTER", "INFO")
    assert carol.ping()
    assert admin.acl_deluser("carol") == 1
    with pytest.raises(redis.exceptions.ConnectionError):
        carol.connection.send_command("PING")  # type: ignore[union-attr]
        carol.connection.read_response()  # type: ignore[union-attr]
    assert admin.ping()


def test_acl_save_and_load_round_trip_and_a_bad_file_keeps_the_users(
        acl_server: tuple[ServerProcess, Path, int]) -> None:
    server, aclfile, _ = acl_server
    admin = client(server, ADMIN)
    admin.acl_setuser("dave", enabled=True, passwords=["+dpw"], commands=["+@status"])
    assert admin.acl_save()
    saved = aclfile.read_text()
    assert "user dave on #" in saved and "+@status" in saved
    listing = admin.acl_list()
    aclfile.write_text(saved + "user eve on >e +nosuchcommand\n")
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        admin.acl_load()
    line = len(saved.splitlines()) + 1
    assert str(caught.value).startswith(
        f"{aclfile}:{line}: Error in applying operation '+nosuchcommand': Unknown command")
    assert admin.acl_list() == listing
    aclfile.write_text(saved)
    assert admin.acl_load()
    assert client(server, ("dave", "dpw")).execute_command("CLUSTER", "INFO")


def test_a_bad_aclfile_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user alice on >a +@all\nuser bob on +@nosuch\n")
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--port", "0",
                             "--aclfile", str(aclfile)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert f"{aclfile}:2: Error in applying operation '+@nosuch'" in result.stderr


def _get(url: str, user: tuple[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


@pytest.mark.parametrize(("path", "command"), [
    ("/clusterStatus", "cluster|status"),
    ("/metrics", "info"),
    ("/status/v1/services", "status|services"),
    ("/status/v1/services/redis", "status|service"),
    ("/", "status|node"),
    ("/ready?verbose", "health"),
    ("/actuator/health?verbose=true", "health"),
    ("/ready?node=" + "a" * 40, "health"),
    ("/status/v1/simple/redis", "status|simple"),
])
def test_http_details_take_basic_auth_with_the_same_permissions(
        acl_server: tuple[ServerProcess, Path, int], path: str, command: str) -> None:
    server, _, http_port = acl_server
    url = f"http://127.0.0.1:{http_port}{path}"
    status, headers = _get(url)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert _get(url, ("monitor", "wrong"))[0] == 401
    assert _get(url, PUBLISHER)[0] == 403
    assert _get(url, MONITOR)[0] not in (401, 403)
    admin = client(server, ADMIN)
    admin.acl_setuser("narrow", enabled=True, passwords=["+n"],
                      commands=["+@all", f"-{command}"])
    assert _get(url, ("narrow", "n"))[0] == 403
    objects = {entry["object"] for entry in admin.acl_log()}
    assert {command, "AUTH"} <= objects


@pytest.mark.parametrize("path", ["/ready", "/health", "/live", "/startup",
                                  "/actuator/health", "/actuator/health/readiness",
                                  "/status/v1/simple"])
def test_http_probes_stay_open(acl_server: tuple[ServerProcess, Path, int],
                               path: str) -> None:
    _, _, http_port = acl_server
    assert wait_for(lambda: _get(f"http://127.0.0.1:{http_port}{path}")[0]
                    not in (401, 403), timeout=5)


def test_requirepass_is_the_default_users_password(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--requirepass", "s3cret")
    try:
        assert client(server, ("default", "s3cret")).acl_whoami() == "default"
        legacy = redis.Redis(port=server.port, password="s3cret", decode_responses=True)
        assert legacy.acl_whoami() == "default"
        assert "nopass" not in legacy.acl_list()[0]
        poll(lambda: legacy.ping(), lambda ok: ok, what="ping")
    finally:
        server.stop()
