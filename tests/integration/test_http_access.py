"""Who may read what on the HTTP port, as on RESP: protected mode refuses a remote peer's
detail requests with Redis's DENIED explanation (the probes stay open), and no answer given
before authentication tells whether a node or a service exists."""

from __future__ import annotations

import base64
import http.client
import json

import pytest

from tests.conftest import ServerProcess, free_port

from .helpers import read_until_closed

pytestmark = pytest.mark.integration

OUTSIDER = "127.0.0.2"  # not 127.0.0.1 or ::1: an outsider to Redis's protected mode


def get(port: int, path: str, *, source: str = "127.0.0.1",
        password: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    headers = {}
    if password is not None:
        token = base64.b64encode(f"default:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def test_protected_mode_refuses_a_remote_peer_s_details_but_not_its_probes(
        server_factory: object) -> None:
    http_port = free_port()
    server: ServerProcess = server_factory(  # type: ignore[operator]
        "--demo", "--http-port", str(http_port))
    for path in ("/clusterStatus", "/status/v1/services", "/metrics", "/",
                 "/health?verbose", "/ready?node=" + "a" * 40, "/status/v1/simple/x"):
        status, _headers, body = get(http_port, path, source=OUTSIDER)
        assert status == 403, (path, status, body)
        document = json.loads(body)
        assert document["kind"] == "denied"
        assert document["msg"].startswith("DENIED Redis is running in protected mode")
    for path in ("/startup", "/ready", "/live", "/health", "/status/v1/simple",
                 "/actuator/health"):
        status, _headers, _body = get(http_port, path, source=OUTSIDER)
        assert status in (200, 204, 503), (path, status)
    # From 127.0.0.1 every path answers, as RESP does.
    assert get(http_port, "/clusterStatus")[0] == 200
    # The RESP port says the same to the same peer.
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                  source_address=(OUTSIDER, 0)) as sock:
        sock.sendall(b"PING\r\n")
        data, _closed = read_until_closed(sock, timeout=5)
    text = json.loads(get(http_port, "/clusterStatus", source=OUTSIDER)[2])["msg"]
    assert data == b"-" + text.encode() + b"\r\n"


def test_no_answer_before_authentication_tells_which_nodes_exist(
        server_factory: object) -> None:
    http_port = free_port()
    server: ServerProcess = server_factory(  # type: ignore[operator]
        "--demo", "--http-port", str(http_port), "--requirepass", "pw")
    import redis

    admin = redis.Redis(port=server.port, password="pw")
    known = admin.execute_command("CLUSTER", "NODES").decode().splitlines()[1].split()[0]
    service = admin.execute_command("STATUS", "SERVICES", "FORMAT", "JSON")
    service_name = next(iter(json.loads(service)))
    unknown = "f" * 40
    pairs = [(f"/health?node={known}", f"/health?node={unknown}"),
             (f"/ready?node={known}", f"/ready?node={unknown}"),
             (f"/status/v1/simple/{service_name}", "/status/v1/simple/no-such/service"),
             (f"/?node={known}", f"/?node={unknown}")]
    for real, invented in pairs:
        first, second = get(http_port, real), get(http_port, invented)
        assert first[0] == second[0] == 401, (real, first[0], invented, second[0])
        assert first[2] == second[2]
        assert first[1]["WWW-Authenticate"].startswith("Basic")
    # With credentials the answers differ, as they should.
    assert get(http_port, f"/health?node={unknown}", password="pw")[0] == 404
    assert get(http_port, f"/health?node={known}", password="pw")[0] in (204, 503)
    assert get(http_port, "/status/v1/simple/no-such/service", password="pw")[0] == 404
    # The plain probes stay open without credentials.
    assert get(http_port, "/ready")[0] in (204, 503)
    assert get(http_port, "/status/v1/simple")[0] in (200, 503)
