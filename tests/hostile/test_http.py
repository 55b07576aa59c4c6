"""The HTTP mirror under attack, on a real server process with a PINGing bystander:
abandoned long polls, more HTTP connections than the limit, a file-descriptor limit
lower than max-clients, and malformed query values on every path.

Each test shows what the attacker got, that the server and its model are intact, and
the bystander's latency (printed; asserted only against the suite's generous bound).
"""

from __future__ import annotations

import json
import re
import resource
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.conftest import ServerProcess, free_port, start_server

from .bystander import process_usage
from .conftest import BystanderFactory
from .http_attack import (
    RawAnswer,
    close_all,
    heartbeats,
    hello,
    open_idle,
    open_polls,
    raw_get,
    read_answer,
)

pytestmark = pytest.mark.integration

Factory = Callable[..., ServerProcess]
MB = 2**20


def client(server: ServerProcess) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=30)


def index_of(r: redis.Redis) -> int:
    info = r.execute_command("BUS", "INFO")
    fields = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2], strict=True))
    return int(fields[b"model_version"])


def blocked(r: redis.Redis) -> int:
    return int(r.info("clients")["blocked_clients"])


def http_limit(r: redis.Redis) -> int:
    """The HTTP connection limit in force (the default's value where CONFIG has none)."""
    return int(r.config_get("http-max-clients").get("http-max-clients", 1000))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def model_intact(r: redis.Redis, index: int) -> None:
    assert r.ping() is True
    assert index_of(r) == index
    assert b"cluster_known_nodes:1" in r.execute_command("CLUSTER", "INFO")


# --- abandoned long polls --------------------------------------------------------------


WAVES = 5


def test_abandoned_long_polls_are_freed_and_changes_stay_cheap(
        server_factory: Factory, bystander: BystanderFactory) -> None:
    """Five waves of long polls, each at its own index, each dropped by its client: every
    wave is counted while it waits and freed as soon as its clients are gone; then model
    changes wake the one poll left, and the bystander does not notice any of it."""
    http_port = free_port()
    server = server_factory("--http-port", str(http_port))
    r = client(server)
    r.execute_command("BUS", "PUBLISH", hello())
    per_wave = http_limit(r) - 100
    base = index_of(r)
    before = process_usage(server.proc.pid)
    with bystander(server) as watcher:
        for wave in range(WAVES):
            first = base + 1000 + wave * per_wave
            socks = open_polls(http_port, [f"/ready?index={first + i}&wait=10m"
                                           for i in range(per_wave)])
            try:
                wait_for(lambda: blocked(r) == per_wave,
                         f"{per_wave} polls counted in INFO blocked_clients")
            finally:
                close_all(socks)
            wait_for(lambda: blocked(r) == 0, "the abandoned polls to be freed", timeout=5)
        during = process_usage(server.proc.pid)
        [live] = open_polls(http_port, [f"/clusterStatus?index={base + 5}&wait=10m"])
        wait_for(lambda: blocked(r) == 1, "the live poll to wait")
        for seq in range(2, 22):
            r.execute_command("BUS", "PUBLISH", *heartbeats(seq))
            time.sleep(0.02)
        answer = read_answer(live)
        live.close()
        after = process_usage(server.proc.pid)
    latency = watcher.check()
    polls = WAVES * per_wave
    print(f"{polls} abandoned polls in {WAVES} waves; RSS {before.rss_bytes / MB:.0f} MB "
          f"before, peak {after.peak_rss_bytes / MB:.0f} MB; server CPU "
          f"{during.cpu_seconds - before.cpu_seconds:.2f} s for the waves, "
          f"{after.cpu_seconds - during.cpu_seconds:.2f} s for 20 changes; {latency}")
    assert answer.status == 200 and int(answer.headers["x-clusterwatch-index"]) > base + 5
    assert blocked(r) == 0
    model_intact(r, base + 20)
    # One wave's connections at a time, never all the waves' (the waits are freed).
    assert after.peak_rss_bytes - before.rss_bytes < 48 * MB


# --- the HTTP connection limit ---------------------------------------------------------


def fetch(port: int, path: str) -> RawAnswer:
    """What urllib.request, a real client, gets: 4xx and 5xx are answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return RawAnswer(response.status, {k.lower(): v for k, v in response.headers.items()},
                             response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return RawAnswer(exc.code, {k.lower(): v for k, v in exc.headers.items()},
                             exc.read())


def refused_answer(port: int) -> RawAnswer:
    """Ask until the server has taken the connections already made and says no."""
    deadline = time.monotonic() + 15
    while True:
        answer = fetch(port, "/live")
        if answer.status == 503 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_http_connections_past_the_limit_get_a_503_and_resp_is_still_served(
        server_factory: Factory, bystander: BystanderFactory) -> None:
    """Idle HTTP connections and long polls up to the default limit: one more gets a 503
    that says why and when to come back, counted in INFO; RESP clients are served
    throughout, and HTTP answers again once connections go."""
    http_port = free_port()
    server = server_factory("--http-port", str(http_port))
    r = client(server)
    r.execute_command("BUS", "PUBLISH", hello())
    limit = http_limit(r)
    index = index_of(r)
    with bystander(server) as watcher:
        polls = open_polls(http_port, [f"/live?index={index + 100}&wait=10m"] * 10)
        idle = open_idle(http_port, limit - 10)
        try:
            answer = refused_answer(http_port)
            resp_clients = [client(server) for _ in range(100)]
            assert all(other.ping() for other in resp_clients)
            stats = r.info("stats")
        finally:
            close_all(idle)
            close_all(polls)
        wait_for(lambda: fetch(http_port, "/live").status == 204, "HTTP to answer again")
        metrics = fetch(http_port, "/metrics").body.decode()
    latency = watcher.check()
    print(f"past {limit} HTTP connections: {answer.status} {answer.headers.get('retry-after')} "
          f"{answer.body!r}; {latency}")
    assert answer.status == 503
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["connection"] == "close"
    body = json.loads(answer.body)
    assert body["kind"] == "unavailable" and f"http-max-clients is {limit}" in body["msg"]
    assert stats["rejected_connections"] >= 1
    refused = re.search(r"^clusterwatch_http_rejected_connections_total (\S+)$", metrics, re.M)
    assert refused is not None and float(refused[1]) >= 1
    assert "http max clients reached" in server.logs()
    model_intact(r, index)


# --- the file-descriptor limit ---------------------------------------------------------


NOFILE = 256


def low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def resp_round_trip(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"PING\r\n")
    return sock, sock.recv(1024)


def test_max_clients_is_lowered_to_what_the_fd_limit_allows_and_http_cannot_starve_resp(
        tmp_path: Path, bystander: BystanderFactory) -> None:
    """Under a 256-descriptor limit the server lowers maxclients and http-max-clients and
    says so as redis-server does; then 300 idle HTTP sockets take only HTTP's share, and
    every RESP client up to maxclients is still served."""
    http_port = free_port()
    server = start_server(tmp_path, "--http-port", str(http_port), preexec_fn=low_nofile)
    resp_socks: list[socket.socket] = []
    http_socks: list[socket.socket] = []
    try:
        log = server.logs()
        r = client(server)
        maxclients = int(r.config_get("maxclients")["maxclients"])
        http_max = http_limit(r)
        print(f"RLIMIT_NOFILE {NOFILE}: maxclients {maxclients}, http-max-clients {http_max}")
        print("\n".join(line for line in log.splitlines() if "file" in line))
        assert (maxclients, http_max) == (190, 18)
        assert int(r.info("clients")["maxclients"]) == maxclients
        expected = (
            "You requested maxclients of 10000 and http-max-clients of 1000 requiring at "
            "least 11048 max file descriptors.",
            "Server can't set maximum open files to 11048 because of OS error: Operation "
            "not permitted.",
            f"Current maximum open files is {NOFILE}. maxclients has been reduced to 190 and "
            "http-max-clients has been reduced to 18 to compensate for low ulimit. If you "
            "need higher maxclients increase 'ulimit -n'.",
        )
        for text in expected:
            [line] = [line for line in log.splitlines() if text in line]
            assert "level=warning" in line
        with bystander(server) as watcher:
            http_socks = open_idle(http_port, 300)
            assert refused_answer(http_port).status == 503
            # r and the bystander are two of the RESP clients.
            for _ in range(maxclients - 2):
                sock, reply = resp_round_trip(server.port)
                resp_socks.append(sock)
                assert reply == b"+PONG\r\n"
            sock, reply = resp_round_trip(server.port)
            resp_socks.append(sock)
            fds = len(list(Path(f"/proc/{server.proc.pid}/fd").iterdir()))
        latency = watcher.check()
        print(f"{maxclients} RESP clients served, one more refused; server fds {fds}; {latency}")
        assert reply == b"-ERR max number of clients reached\r\n"
        assert fds < NOFILE
        close_all(resp_socks)
        close_all(http_socks)
        wait_for(lambda: fetch(http_port, "/live").status == 204, "HTTP to answer again")
        assert r.ping() is True
        assert "Too many open files" not in server.logs()
    finally:
        close_all(resp_socks)
        close_all(http_socks)
        server.stop()


# --- malformed query values ------------------------------------------------------------


PATHS = ("/startup", "/ready", "/health", "/live", "/actuator/health",
         "/actuator/health/readiness", "/", "/serving", "/status/v1/services",
         "/status/v1/services/node/svc", "/status/v1/simple", "/status/v1/simple/svc",
         "/clusterStatus", "/metrics")
PARAMS = ("index", "wait", "level", "timeout", "service_status_version", "node", "exclude",
          "verbose")
# Percent-encoded, as a client sends them: what the server's query parsing must survive.
ENCODED = ("", "-1", "18446744073709551616", "9" * 5000, "%C2%B2", "%D9%A1", "%EF%BC%95",
           "%00", "1%00", "%", "%zz", "%G1", "%FF", "%C0%80", "%ED%A0%80", "%0D%0A", "+5",
           "%205", "0x10", "1e3", "1.5", "x" * 3000, "1s%00", "%C2%B2s", "99999999999999m",
           "-5s", "10h", "%E2%80%8F")
# Raw bytes in the request target, which no HTTP client sends: the parser refuses them.
RAW = (b"\xc2\xb2", b"\xff", b"\x00", b"\x7f", b"a b", b"x" * 9000)
SIMPLE = "/status/v1/simple"


def bad_request(answer: RawAnswer, path: str) -> bool:
    """A 400 that says what is wrong: JSON ``{"kind", "msg"}``, or Puppet's text on the
    simple routes."""
    if answer.status != 400:
        return False
    content_type = answer.headers.get("content-type", "")
    if path.startswith(SIMPLE) and content_type.startswith("text/plain"):
        return bool(answer.body.strip())
    return content_type == "application/json" and bool(json.loads(answer.body)["msg"])


def acceptable(answer: RawAnswer, path: str, *, refused: bool) -> bool:
    """Never a server error; a 400 (required when ``refused``) that says what is wrong."""
    if answer.status == 500:
        return False
    if answer.status == 400 or refused:
        return bad_request(answer, path)
    return True


def test_every_malformed_query_value_is_a_400_with_a_message(
        server_factory: Factory, bystander: BystanderFactory) -> None:
    """Every parameter of every path with hostile values, given once and twice: never a
    500, a 400 says why; index and wait values are all refused; nothing is logged at
    error level."""
    http_port = free_port()
    server = server_factory("--http-port", str(http_port))
    r = client(server)
    r.execute_command("BUS", "PUBLISH", hello())
    index = index_of(r)
    failures: list[str] = []
    answers = 0
    with bystander(server) as watcher:
        for path in PATHS:
            for param in PARAMS:
                # wait is read with an index only; index with a short wait never blocks.
                prefix = "index=0&" if param == "wait" else ""
                suffix = "&wait=1ms" if param == "index" else ""
                cases = [f"{prefix}{param}={value}{suffix}" for value in ENCODED]
                cases.append(f"{prefix}{param}=1&{param}=1{suffix}")
                for query in cases:
                    answer = raw_get(http_port, f"{path}?{query}".encode())
                    answers += 1
                    if not acceptable(answer, path, refused=param in ("index", "wait")):
                        failures.append(f"{path}?{query[:60]} -> {answer.status} "
                                        f"{answer.body[:80]!r}")
                for raw in RAW:
                    answer = raw_get(http_port, b"%b?%b=%b" % (path.encode(), param.encode(),
                                                               raw))
                    answers += 1
                    if not bad_request(answer, ""):
                        failures.append(f"{path}?{param}={raw[:20]!r} -> {answer.status} "
                                        f"{answer.body[:80]!r}")
    latency = watcher.check()
    example = raw_get(http_port, b"/ready?index=%C2%B2")
    print(f"{answers} requests; e.g. /ready?index=%C2%B2 -> {example.status} "
          f"{example.body!r}; {latency}")
    assert not failures, f"{len(failures)} bad answers, e.g.:\n" + "\n".join(failures[:20])
    assert example.json() == {"kind": "data-invalid", "msg": "Invalid index: \u00b2 (an "
                              "integer from 0 to 18446744073709551615)"}
    logs = server.logs()
    assert "level=error" not in logs and "Traceback" not in logs
    model_intact(r, index)


def test_cluster_wait_refuses_the_same_index_values_with_redis_errors(
        server: ServerProcess, bystander: BystanderFactory) -> None:
    """The RESP side of the blocking query: CLUSTER WAIT's index, given the values that
    broke the HTTP one, is refused in Redis's words, and nothing is logged as an error."""
    r = client(server)
    replies = []
    with bystander(server) as watcher:
        for index in ("9" * 5000, "--5", "\u00b2", "\uff15", "18446744073709551616", ""):
            with pytest.raises(redis.ResponseError) as refused:
                r.execute_command("CLUSTER", "WAIT", index, "10")
            replies.append(str(refused.value))
    latency = watcher.check()
    print(f"{replies[0]!r}; {latency}")
    assert set(replies) == {"index is not an integer or out of range"}
    assert r.execute_command("CLUSTER", "WAIT", "0", "10") == 0
    logs = server.logs()
    assert "level=error" not in logs and "Traceback" not in logs
