"""prometheus redis_exporter 1.45 (RESP2, redigo) scraping a real server."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port, require_tool

from .helpers import pings, run, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "exp-s3cret"
EXPORTER = "/usr/bin/prometheus-redis-exporter"


class Exporter:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=20) as response:
            assert response.status == 200
            return str(response.read().decode())

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def exporter_factory(tmp_path: Path) -> Iterator[object]:
    path = require_tool(EXPORTER)
    started: list[Exporter] = []

    def start(server: ServerProcess, *extra: str) -> Exporter:
        port = free_port()
        log = tmp_path / f"exporter-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [path, "-redis.addr", f"redis://127.0.0.1:{server.port}",
                 "-web.listen-address", f"127.0.0.1:{port}", *extra],
                stdout=out, stderr=subprocess.STDOUT)
        exporter = Exporter(proc, port, log)
        started.append(exporter)
        assert wait_for(lambda: "Providing metrics at" in exporter.logs()
                        or proc.poll() is not None, timeout=10), exporter.logs()
        assert proc.poll() is None, exporter.logs()
        return exporter

    yield start
    for exporter in started:
        if exporter.proc.poll() is None:
            exporter.proc.terminate()
            try:
                exporter.proc.wait(5)
            except subprocess.TimeoutExpired:
                exporter.proc.kill()
                exporter.proc.wait()


def _metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample; ``labels`` is a regex the label set must contain."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and re.search(labels, match.group(1) or ""):
            return float(match.group(2))
    raise AssertionError(f"no sample {name}{{{labels}}} in scrape:\n{text[:3000]}")


def _error_lines(log: str) -> list[str]:
    # The exporter logs with logrus: time="..." level=error msg="..." (also fatal/panic).
    return [line for line in log.splitlines()
            if re.search(r"\blevel=(error|fatal|panic)\b", line) or "panic:" in line]


def _generate_traffic(server: ServerProcess, *auth: str) -> None:
    cli = require_tool("redis-cli")
    for _ in range(3):
        result = run([cli, "--no-auth-warning", "-p", str(server.port), *auth, "ping"])
        assert result.stdout == "PONG\n"


def _check_scrape(text: str, server: ServerProcess) -> None:
    assert _metric(text, "redis_up") == 1
    assert _metric(text, "redis_exporter_last_scrape_error") == 0
    assert _metric(text, "redis_connected_clients") >= 1
    assert _metric(text, "redis_commands_processed_total") >= 3
    assert _metric(text, "redis_uptime_in_seconds") >= 0
    assert _metric(text, "redis_slowlog_length") >= 0
    assert _metric(text, "redis_instance_info", r'redis_version="7\.0\.15"') == 1
    assert _metric(text, "redis_instance_info", rf'tcp_port="{server.port}"') == 1
    assert _metric(text, "redis_instance_info", r'role="master"') == 1
    assert _metric(text, "redis_commands_total", r'cmd="ping"') >= 3
    assert _metric(text, "redis_commands_duration_seconds_total", r'cmd="ping"') >= 0
    assert _metric(text, "redis_config_maxclients") == 10000
    assert _metric(text, "redis_loading_dump_file") == 0
    # CONFIG GET * reports databases=1: only db0 is zero-filled.
    assert _metric(text, "redis_db_keys", r'db="db0"') == 0
    assert 'db="db1"' not in text


def test_scrape(server: ServerProcess, exporter_factory: object) -> None:
    exporter = exporter_factory(server)  # type: ignore[operator]
    _generate_traffic(server)
    first = exporter.scrape()
    _check_scrape(first, server)
    time.sleep(1.1)
    second = exporter.scrape()
    _check_scrape(second, server)
    # The exporter's own commands (CLIENT SETNAME, CONFIG GET, INFO ALL, ...) of the
    # first scrape show up in the second.
    assert (_metric(second, "redis_commands_processed_total")
            > _metric(first, "redis_commands_processed_total"))
    assert _metric(second, "redis_commands_total", r'cmd="client\|setname"') >= 1
    assert _metric(second, "redis_commands_total", r'cmd="slowlog\|get"') >= 1
    assert _metric(second, "redis_uptime_in_seconds") >= _metric(first, "redis_uptime_in_seconds")
    assert _metric(second, "redis_exporter_scrapes_total") == 2
    assert exporter.proc.poll() is None, exporter.logs()
    assert _error_lines(exporter.logs()) == [], exporter.logs()
    assert server.alive()
    assert pings(server.port)


def test_scrape_with_password(server_factory: object, exporter_factory: object) -> None:
    server = server_factory("--requirepass", PASSWORD)  # type: ignore[operator]
    exporter = exporter_factory(server, "-redis.password", PASSWORD)  # type: ignore[operator]
    _generate_traffic(server, "-a", PASSWORD)
    for _ in range(2):
        _check_scrape(exporter.scrape(), server)
    assert exporter.proc.poll() is None, exporter.logs()
    assert _error_lines(exporter.logs()) == [], exporter.logs()


def test_scrape_with_wrong_password_reports_down(server_factory: object,
                                                exporter_factory: object) -> None:
    server = server_factory("--requirepass", PASSWORD)  # type: ignore[operator]
    exporter = exporter_factory(server, "-redis.password", "wrong")  # type: ignore[operator]
    text = exporter.scrape()
    assert _metric(text, "redis_up") == 0
    assert exporter.proc.poll() is None
    assert server.alive()
