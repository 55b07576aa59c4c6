"""prometheus redis_exporter 1.45 (RESP2, redigo) scraping a real server."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import ServerProcess, require_tool

from .exporter import metric_value
from .helpers import pings, run

pytestmark = pytest.mark.integration

PASSWORD = "exp-s3cret"
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
    assert metric_value(text, "redis_up") == 1
    assert metric_value(text, "redis_exporter_last_scrape_error") == 0
    assert metric_value(text, "redis_connected_clients") >= 1
    assert metric_value(text, "redis_commands_processed_total") >= 3
    assert metric_value(text, "redis_uptime_in_seconds") >= 0
    assert metric_value(text, "redis_slowlog_length") >= 0
    assert metric_value(text, "redis_instance_info", r'redis_version="7\.0\.15"') == 1
    assert metric_value(text, "redis_instance_info", rf'tcp_port="{server.port}"') == 1
    assert metric_value(text, "redis_instance_info", r'role="master"') == 1
    assert metric_value(text, "redis_commands_total", r'cmd="ping"') >= 3
    assert metric_value(text, "redis_commands_duration_seconds_total", r'cmd="ping"') >= 0
    assert metric_value(text, "redis_config_maxclients") == 10000
    assert metric_value(text, "redis_loading_dump_file") == 0
    # CONFIG GET * reports databases=1: only db0 is zero-filled.
    assert metric_value(text, "redis_db_keys", r'db="db0"') == 0
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
    assert (metric_value(second, "redis_commands_processed_total")
            > metric_value(first, "redis_commands_processed_total"))
    assert metric_value(second, "redis_commands_total", r'cmd="client\|setname"') >= 1
    assert metric_value(second, "redis_commands_total", r'cmd="slowlog\|get"') >= 1
    uptime = "redis_uptime_in_seconds"
    assert metric_value(second, uptime) >= metric_value(first, uptime)
    assert metric_value(second, "redis_exporter_scrapes_total") == 2
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
    assert metric_value(text, "redis_up") == 0
    assert exporter.proc.poll() is None
    assert server.alive()
