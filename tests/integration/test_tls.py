"""TLS on real sockets: redis-cli, redis-py (RESP2 and RESP3, sync and asyncio),
redis_exporter and the bundled simulator and agent, authenticated as the documented ACL
users of docs/users.acl.example over ``--tls-port``; HTTPS on the HTTP port; and the bad
input a TLS port meets (garbage, plain RESP, expired, unknown-CA and missing client
certificates), each refused while a connected client goes on, logged, and not leaked.
The certificates are made with the openssl CLI once per session."""

from __future__ import annotations

import base64
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.conftest import ROOT, ServerProcess, free_port, require_tool, start_server
from tests.integration.cluster_helpers import info_fields, message
from tests.integration.exporter import metric_value
from tests.integration.helpers import run, wait_for
from tests.integration.test_acl_clients import reads_but_may_not_publish

pytestmark = pytest.mark.integration

ADMIN, MONITOR, PUBLISHER = (("default", "change-me-admin"), ("monitor", "change-me-monitor"),
                             ("publisher", "change-me-publisher"))
HELLO = message("hello", "b" * 40, 1, 1, addr="10.0.0.2:7000")
NOPERM = "NOPERM this user has no permissions to run the 'bus|publish' command"


def _openssl(directory: Path, *args: str) -> None:
    result = subprocess.run([require_tool("openssl"), *args], cwd=directory,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def _key_and_csr(directory: Path, name: str, subject: str) -> None:
    _openssl(directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}")


def _sign(directory: Path, name: str, ca: str, ext: str) -> None:
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
             f"{ca}.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "30",
             "-extfile", ext)


def _self_signed_ca(directory: Path, name: str) -> None:
    _openssl(directory, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.crt", "-days", "30", "-subj", f"/CN={name}")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca, server (127.0.0.1 and localhost), server2 (the same names, another CN, for the
    reload), client, expired (same CA, validity in 2020), other (from another CA)."""
    d = tmp_path_factory.mktemp("tls")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    _self_signed_ca(d, "ca")
    _self_signed_ca(d, "other-ca")
    for name, subject, ca, ext in (("server", "localhost", "ca", "server.ext"),
                                   ("server2", "reloaded", "ca", "server.ext"),
                                   ("client", "client", "ca", "client.ext"),
                                   ("other", "other", "other-ca", "client.ext")):
        _key_and_csr(d, name, subject)
        _sign(d, name, ca, ext)
    # openssl 3.0's x509 cannot backdate; `openssl ca` can.
    _key_and_csr(d, "expired", "expired")
    (d / "db").mkdir()
    (d / "db" / "index.txt").write_text("")
    (d / "db" / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca=c\n[c]\ndatabase=db/index.txt\n"
                              "serial=db/serial\nnew_certs_dir=db\ndefault_md=sha256\n"
                              "policy=p\n[p]\ncommonName=supplied\n")
    _openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
             "-in", "expired.csr", "-out", "expired.crt", "-startdate", "20200101000000Z",
             "-enddate", "20200201000000Z", "-extfile", "client.ext", "-notext")
    return d


class TlsServer:
    def __init__(self, process: ServerProcess, tls_port: int, http_port: int,
                 certs: Path) -> None:
        self.process = process
        self.port = process.port
        self.tls_port = tls_port
        self.http_port = http_port
        self.certs = certs

    def client(self, user: tuple[str, str] = ADMIN, *, cert: str | None = "client",
               **options: object) -> redis.Redis:
        extra: dict[str, object] = {}
        if cert:
            extra = {"ssl_certfile": str(self.certs / f"{cert}.crt"),
                     "ssl_keyfile": str(self.certs / f"{cert}.key")}
        return redis.Redis(port=self.tls_port, username=user[0], password=user[1],
                           ssl=True, ssl_ca_certs=str(self.certs / "ca.crt"),
                           socket_timeout=5, **extra, **options)  # type: ignore[arg-type]

    def plain(self, user: tuple[str, str] = ADMIN) -> redis.Redis:
        return redis.Redis(port=self.port, username=user[0], password=user[1],
                           socket_timeout=5, decode_responses=True)


def _start(tmp: Path, certs: Path, *extra: str, files: Path | None = None) -> TlsServer:
    """A server with the example ACL users, TLS and HTTPS; its certificate, key and CA
    read from ``files`` (default: ``certs``)."""
    files = files or certs
    aclfile = tmp / "users.acl"
    shutil.copy(ROOT / "docs" / "users.acl.example", aclfile)
    tls_port, http_port = free_port(), free_port()
    process = start_server(tmp, "--aclfile", str(aclfile), "--tls-port", str(tls_port),
                           "--tls-cert-file", str(files / "server.crt"),
                           "--tls-key-file", str(files / "server.key"),
                           "--tls-ca-cert-file", str(files / "ca.crt"),
                           "--http-port", str(http_port), "--tls-http", "yes", *extra)
    return TlsServer(process, tls_port, http_port, certs)


@pytest.fixture(scope="module")
def tls_server(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    server = _start(tmp_path_factory.mktemp("tls-server"), certs)
    yield server
    server.process.stop()


def _cli(server: TlsServer, user: tuple[str, str], *command: str,
         cert: str | None = "client") -> subprocess.CompletedProcess[str]:
    certificate = ["--cert", str(server.certs / f"{cert}.crt"),
                   "--key", str(server.certs / f"{cert}.key")] if cert else []
    return run([require_tool("redis-cli"), "-p", str(server.tls_port), "--tls", "--cacert",
                str(server.certs / "ca.crt"), *certificate, "--user", user[0], "--pass",
                user[1], "--no-auth-warning", *command])


def test_redis_cli_over_tls_as_monitor_reads_and_cannot_publish(tls_server: TlsServer) -> None:
    info = _cli(tls_server, MONITOR, "CLUSTER", "INFO")
    assert info.stdout.startswith("cluster_state:"), info.stdout + info.stderr
    assert _cli(tls_server, MONITOR, "BUS", "PUBLISH", HELLO.decode()).stdout.strip() == NOPERM
    assert "applied" in _cli(tls_server, PUBLISHER, "BUS", "PUBLISH", HELLO.decode()).stdout
    denials = [(entry["username"], entry["object"]) for entry in tls_server.plain().acl_log()]
    assert ("monitor", "bus|publish") in denials


def test_config_get_shows_the_tls_settings_under_redis_names(tls_server: TlsServer) -> None:
    values = tls_server.plain().config_get("tls-*")
    assert values["tls-port"] == str(tls_server.tls_port)
    assert values["tls-cert-file"] == str(tls_server.certs / "server.crt")
    assert values["tls-ca-cert-file"] == str(tls_server.certs / "ca.crt")
    assert values["tls-auth-clients"] == "yes"
    assert values["tls-http"] == "yes"
    assert "tls-protocols" in values and "tls-key-file" in values


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sync_over_tls_with_acl_users(tls_server: TlsServer, protocol: int) -> None:
    monitor = tls_server.client(MONITOR, protocol=protocol)
    assert monitor.acl_whoami() in ("monitor", b"monitor")
    assert info_fields(monitor.execute_command("CLUSTER", "INFO"))["cluster_state"]
    with pytest.raises(redis.exceptions.NoPermissionError, match="bus\\|publish"):
        monitor.execute_command("BUS", "PUBLISH", HELLO)
    publisher = tls_server.client(PUBLISHER, protocol=protocol)
    assert publisher.execute_command("BUS", "PUBLISH", HELLO)
    with pytest.raises(redis.exceptions.NoPermissionError):
        publisher.execute_command("CLUSTER", "INFO")
    # The session sees the real peer, not the TLS layer: CLIENT INFO's addr is our socket.
    connection = monitor.connection_pool.get_connection()
    try:
        local = connection._sock.getsockname()  # type: ignore[union-attr]
        connection.send_command("CLIENT", "INFO")
        info = connection.read_response()
    finally:
        monitor.connection_pool.release(connection)
    text = info.decode() if isinstance(info, bytes) else str(info)
    assert f"addr=127.0.0.1:{local[1]} " in text
    monitor.close()
    publisher.close()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_py_asyncio_over_tls_with_acl_users(tls_server: TlsServer,
                                                        protocol: int) -> None:
    certs = tls_server.certs
    monitor = redis.asyncio.Redis(port=tls_server.tls_port, username=MONITOR[0],
                                  password=MONITOR[1], protocol=protocol, ssl=True,
                                  ssl_ca_certs=str(certs / "ca.crt"),
                                  ssl_certfile=str(certs / "client.crt"),
                                  ssl_keyfile=str(certs / "client.key"))
    await reads_but_may_not_publish(monitor)


def test_exporter_scrapes_over_tls_as_monitor(tls_server: TlsServer,
                                              exporter_factory: Callable[..., object]) -> None:
    certs = tls_server.certs
    exporter = exporter_factory(tls_server.process,
                                "-redis.addr", f"rediss://127.0.0.1:{tls_server.tls_port}",
                                "-tls-ca-cert-file", str(certs / "ca.crt"),
                                "-tls-client-cert-file", str(certs / "client.crt"),
                                "-tls-client-key-file", str(certs / "client.key"),
                                "-redis.user", MONITOR[0], "-redis.password", MONITOR[1])
    text = exporter.scrape()  # type: ignore[attr-defined]
    assert metric_value(text, "redis_up") == 1
    assert metric_value(text, "redis_cluster_state") in (0, 1)


def _tool(server: TlsServer, *args: str, user: tuple[str, str] = PUBLISHER
          ) -> subprocess.CompletedProcess[str]:
    certs = server.certs
    return subprocess.run(
        [sys.executable, "-m", "clusterwatch", *args, "--server", f"127.0.0.1:{server.tls_port}",
         "--tls", "--cacert", str(certs / "ca.crt"), "--cert", str(certs / "client.crt"),
         "--key", str(certs / "client.key"), "--user", user[0], "--password", user[1]],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_simulator_and_agent_publish_over_tls(tls_server: TlsServer) -> None:
    result = _tool(tls_server, "simulate", "--once", "--base-port", "31001")
    assert result.returncode == 0, result.stdout + result.stderr
    agent = _tool(tls_server, "agent", "--node-id", "c" * 40, "--addr", "10.0.0.3:7000",
                  "--count", "1", "--interval", "0.1")
    assert agent.returncode == 0, agent.stdout + agent.stderr
    nodes = tls_server.plain().execute_command("CLUSTER", "NODES")
    assert "c" * 40 in nodes and "10.0.0.3:7000" in nodes
    denied = _tool(tls_server, "simulate", "--once", user=MONITOR)
    assert denied.returncode != 0 and "NOPERM" in denied.stdout + denied.stderr


def _clients(server: TlsServer) -> int:
    return int(server.plain().info("clients")["connected_clients"])


# Fixed, not drawn per run: random bytes that happen to start like a TLS record header
# (0x16 0x03 ...) make the server wait for the rest of the record until its handshake
# timeout, longer than this client waits.
GARBAGE = b"\x01\x09" + random.Random(20261204).randbytes(2998)


def _raw(port: int, payload: bytes) -> bytes:
    """Send bytes to the TLS port without TLS; what comes back before the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def _handshake(server: TlsServer, cert: str | None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(server.certs / "ca.crt"))
    if cert:
        context.load_cert_chain(str(server.certs / f"{cert}.crt"),
                                str(server.certs / f"{cert}.key"))
    sock = socket.create_connection(("127.0.0.1", server.tls_port), timeout=5)
    tls = context.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"PING\r\n")  # TLS 1.3: the server's verdict on our certificate comes here
    data = tls.recv(64)
    if not data:
        tls.close()
        raise ConnectionResetError("closed by the server")
    return tls


@pytest.mark.parametrize(("case", "expected_log"), [
    ("garbage", "WRONG_VERSION_NUMBER"),
    ("plain_resp", "WRONG_VERSION_NUMBER"),
    ("expired", "certificate has expired"),
    ("other_ca", "unable to get local issuer certificate"),
    ("no_cert", "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
])
def test_bad_tls_input_is_refused_logged_and_not_leaked_while_a_client_goes_on(
        tls_server: TlsServer, case: str, expected_log: str) -> None:
    bystander = tls_server.client(MONITOR, single_connection_client=True)
    assert bystander.ping()
    before = _clients(tls_server)
    if case == "garbage":
        assert _raw(tls_server.tls_port, GARBAGE) == b""
    elif case == "plain_resp":
        assert _raw(tls_server.tls_port, b"*1\r\n$4\r\nPING\r\n") == b""
    else:
        cert = {"expired": "expired", "other_ca": "other", "no_cert": None}[case]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(tls_server, cert).close()
    assert bystander.ping()
    assert info_fields(bystander.execute_command("CLUSTER", "INFO"))["cluster_state"]
    assert wait_for(lambda: _clients(tls_server) == before, timeout=5)
    assert wait_for(lambda: expected_log in tls_server.process.logs(), timeout=5), (
        tls_server.process.logs()[-2000:])
    assert "TLS handshake failed" in tls_server.process.logs()
    assert tls_server.process.alive()
    bystander.close()


def test_a_good_handshake_after_the_failures_still_works(tls_server: TlsServer) -> None:
    sock = _handshake(tls_server, "client")
    sock.close()
    assert tls_server.client(MONITOR).ping()


def test_optional_client_certificates(certs: Path, tmp_path: Path) -> None:
    server = _start(tmp_path, certs, "--tls-auth-clients", "optional")
    try:
        assert server.client(MONITOR, cert=None).ping()
        assert server.client(MONITOR, cert="client").ping()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(server, "other").close()  # presented, so verified
        assert _cli(server, MONITOR, "PING", cert=None).stdout.strip() == "PONG"
    finally:
        server.process.stop()


def _https(server: TlsServer, path: str, user: tuple[str, str] | None = None) -> int:
    context = ssl.create_default_context(cafile=str(server.certs / "ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:{server.http_port}{path}")
    if user is not None:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_http_over_tls_probes_open_details_authenticated(tls_server: TlsServer) -> None:
    assert _https(tls_server, "/live") == 204  # Zeebe's liveness: no body
    assert _https(tls_server, "/clusterStatus") == 401
    assert _https(tls_server, "/clusterStatus", PUBLISHER) == 403
    assert _https(tls_server, "/clusterStatus", MONITOR) not in (401, 403)
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to HTTPS
        urllib.request.urlopen(f"http://127.0.0.1:{tls_server.http_port}/live", timeout=5)


def test_sighup_reloads_the_certificate_for_new_connections_only(
        certs: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for suffix in ("crt", "key"):
        shutil.copy(certs / f"server.{suffix}", live / f"server.{suffix}")
    shutil.copy(certs / "ca.crt", live / "ca.crt")
    server = _start(tmp_path, certs, files=live)
    process, tls_port, http_port = server.process, server.tls_port, server.http_port

    def subject(port: int) -> str:
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                 server_hostname="localhost") as tls:
            peer = tls.getpeercert()
        return str(dict(item[0] for item in peer["subject"])["commonName"])

    try:
        established = server.client(MONITOR, single_connection_client=True)
        assert established.ping()
        assert subject(tls_port) == subject(http_port) == "localhost"
        for suffix in ("crt", "key"):
            shutil.copy(certs / f"server2.{suffix}", live / f"server.{suffix}")
        process.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "TLS certificates reloaded" in process.logs(), timeout=5)
        assert subject(tls_port) == subject(http_port) == "reloaded"
        assert established.ping()  # not dropped
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(server, "other").close()
        (live / "ca.crt").write_bytes((certs / "ca.crt").read_bytes()
                                      + (certs / "other-ca.crt").read_bytes())
        process.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: process.logs().count("TLS certificates reloaded") == 2,
                        timeout=5)
        _handshake(server, "other").close()  # the new CA bundle trusts the other CA
        (live / "server.key").write_text("not a key\n")
        process.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "TLS reload failed" in process.logs(), timeout=5)
        assert subject(tls_port) == "reloaded" and process.alive()
        established.close()
    finally:
        process.stop()


@pytest.mark.parametrize(("flags", "named"), [
    (["--tls-port", "0", "--tls-http", "yes"], "tls-cert-file must be set"),
    (["--tls-cert-file", "{d}/server.crt", "--tls-key-file", "{d}/server.key"],
     "tls-ca-cert-file must be set"),
    (["--tls-cert-file", "{d}/missing.crt", "--tls-key-file", "{d}/server.key",
      "--tls-auth-clients", "no"], "tls-cert-file: {d}/missing.crt is not a readable file"),
    (["--tls-cert-file", "{d}/server.crt", "--tls-key-file", "{d}/client.key",
      "--tls-auth-clients", "no"], "tls-cert-file/tls-key-file: cannot load"),
    (["--tls-cert-file", "{d}/server.crt", "--tls-key-file", "{d}/server.key",
      "--tls-auth-clients", "no", "--tls-protocols", "TLSv1.2 SSLv3"],
     "tls-protocols: unknown protocol 'SSLv3'"),
    (["--tls-auth-clients", "maybe"], "tls-auth-clients: 'maybe' is not one of"),
])
def test_invalid_tls_settings_stop_the_start_naming_the_setting(
        certs: Path, flags: list[str], named: str) -> None:
    argv = [flag.replace("{d}", str(certs)) for flag in flags]
    if argv[0] != "--tls-port":
        argv = ["--tls-port", str(free_port()), *argv]
    result = subprocess.run([sys.executable, "-m", "clusterwatch", "serve", "--port", "0", *argv],
                            cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr
    assert named.replace("{d}", str(certs)) in result.stderr


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_handshakes_on_both_event_loops(certs: Path, tmp_path: Path, event_loop: str) -> None:
    """The hand-over from handshake to client on each loop: bytes the client sends right
    after (or before) the handshake are not lost, failures are refused."""
    server = _start(tmp_path, certs, "--event-loop", event_loop)
    try:
        bystander = server.client(MONITOR, single_connection_client=True)
        before = _clients(server)
        for _ in range(10):  # redis-cli sends its request the moment the handshake ends
            assert _cli(server, MONITOR, "PING").stdout.strip() == "PONG"
        assert _raw(server.tls_port, b"*1\r\n$4\r\nPING\r\n") == b""
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(server, "expired").close()
        assert bystander.ping()
        assert wait_for(lambda: _clients(server) == before, timeout=5)
        assert f"event_loop={event_loop}" in server.process.logs()
        bystander.close()
    finally:
        server.process.stop()


def _tls_from(source: str, port: int, certs: Path) -> tuple[bytes, bool]:
    """PING over TLS from a chosen loopback source address; the reply and whether the
    server closed."""
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    with context.wrap_socket(sock, server_hostname="localhost") as tls:
        tls.sendall(b"PING\r\n")
        data = b""
        try:
            while chunk := tls.recv(4096):
                data += chunk
        except (ssl.SSLError, ConnectionError):
            return data, True
        except TimeoutError:
            return data, False
        return data, True


def test_protected_mode_over_tls_sees_the_real_peer_like_redis(certs: Path,
                                                                tmp_path: Path) -> None:
    """No password: 127.0.0.2 is an outsider to Redis's test, over TLS as over TCP."""
    tls = ["--tls-cert-file", str(certs / "server.crt"), "--tls-key-file",
           str(certs / "server.key"), "--tls-auth-clients", "no"]
    ours_port, real_port = free_port(), free_port()
    ours = start_server(tmp_path, "--tls-port", str(ours_port), *tls)
    real = subprocess.Popen(
        [require_tool("redis-server"), "--port", "0", "--bind", "127.0.0.1", "--save", "",
         "--tls-port", str(real_port), *tls], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        assert wait_for(lambda: run([require_tool("redis-cli"), "-p", str(real_port),
                                     "--tls", "--cacert", str(certs / "ca.crt"),
                                     "PING"]).stdout.strip() == "PONG", timeout=10)
        real_reply = _tls_from("127.0.0.2", real_port, certs)
        our_reply = _tls_from("127.0.0.2", ours_port, certs)
        assert real_reply[0].startswith(b"-DENIED Redis is running in protected mode")
        assert our_reply == real_reply
        assert _tls_from("127.0.0.1", ours_port, certs)[0].startswith(b"+PONG")
        assert "protected mode" in ours.logs() and "127.0.0.2" in ours.logs()
    finally:
        real.terminate()
        real.wait(10)
        ours.stop()


def test_a_large_reply_over_tls_arrives_whole(tls_server: TlsServer) -> None:
    """Replies over 256 KiB leave in pieces; the TLS transport takes them as well."""
    client = tls_server.client()
    big = bytes(range(256)) * 3000
    pipe = client.pipeline(transaction=False)
    pipe.echo(big)
    pipe.ping()
    pipe.echo(b"after")
    assert pipe.execute() == [big, True, b"after"]
