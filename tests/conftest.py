"""Shared fixtures: a real clusterwatch server process on a free loopback port."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

_LISTENING = re.compile(rb"msg=listening .*?port=(\d+)")


@dataclass
class ServerProcess:
    """A clusterwatch server started with ``python -m clusterwatch serve``."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    args: list[str] = field(default_factory=list)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 10.0,
                 preexec_fn: Callable[[], None] | None = None) -> ServerProcess:
    """Start a server on an ephemeral port and wait until it listens (``preexec_fn`` runs
    in the child before the server, e.g. to lower its resource limits)."""
    log_path = tmp_path / f"clusterwatch-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    command = [sys.executable, "-m", "clusterwatch", "serve", "--port", "0", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=full_env, preexec_fn=preexec_fn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_bytes())
        if match:
            return ServerProcess(proc, int(match.group(1)), log_path, args=list(args))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    started: list[ServerProcess] = []

    def factory(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = start_server(tmp_path, *args, env=env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: object) -> ServerProcess:
    return server_factory()  # type: ignore[operator, no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_tool(name: str) -> str:
    """The path of a real tool; the suite installs them (make test), so absence fails."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs it")
    return path


def raw_exchange(port: int, payload: bytes, *, read_until_close: bool = False,
                 timeout: float = 2.0, expect: int | None = None,
                 host: str = "127.0.0.1") -> bytes:
    """Send raw bytes and collect the reply bytes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expect is not None and len(data) >= expect:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if not read_until_close and expect is None and data.endswith(b"\r\n"):
                sock.settimeout(0.2)
        return data
