"""The real redis_exporter binary, started against a server (fixture ``exporter_factory``
in tests/integration/conftest.py), and reading its scrape."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port, require_tool

from .helpers import wait_for

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


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample; ``labels`` is a regex the label set must contain."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and re.search(labels, match.group(1) or ""):
            return float(match.group(2))
    raise AssertionError(f"no sample {name}{{{labels}}} in scrape:\n{text[:3000]}")
