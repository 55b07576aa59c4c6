"""Process lifecycle: signals, configuration sources and their precedence, invalid
settings, the unix socket and structured logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess, free_port, require_tool, start_server

from .helpers import PONG, connect, exchange_on, pings, read_until_closed, run, wait_for

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWATCH_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``serve`` expecting it to exit by itself (a valid config would hang: timeout)."""
    return subprocess.run([sys.executable, "-m", "clusterwatch", "serve", *args], cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=20,
                          check=False)


def _maxclients(server: ServerProcess) -> str:
    out = run([require_tool("redis-cli"), "-p", str(server.port), "config", "get",
               "maxclients"]).stdout
    return out.splitlines()[1]


# --- signals -----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully(tmp_path: Path, signum: signal.Signals) -> None:
    server = start_server(tmp_path, env=_env())
    try:
        client = connect(server.port)
        assert exchange_on(client, b"PING\r\n", PONG) == PONG
        server.proc.send_signal(signum)
        try:
            code = server.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server ignored {signum.name}:\n{server.logs()}")
        assert code == 0, server.logs()
        # The open connection was closed by the server, not left dangling.
        data, closed = read_until_closed(client, timeout=2)
        assert (data, closed) == (b"", True)
        client.close()
    finally:
        server.stop(signal.SIGKILL)
    logs = server.logs()
    assert f"signal={signum.name}" in logs
    assert "msg=stopped" in logs
    assert "Traceback" not in logs
    # Nothing listens any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


# --- configuration -----------------------------------------------------------------------


def test_config_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "clusterwatch.toml"
    toml.write_text('[server]\nmax_clients = 5\ntimeout = 300\n')
    started: list[ServerProcess] = []
    try:
        file_only = start_server(tmp_path, "--config", str(toml), env=_env())
        started.append(file_only)
        assert _maxclients(file_only) == "5"

        file_env = start_server(tmp_path, "--config", str(toml),
                                env=_env(CLUSTERWATCH_MAX_CLIENTS="6"))
        started.append(file_env)
        assert _maxclients(file_env) == "6"

        all_three = start_server(tmp_path, "--config", str(toml), "--max-clients", "7",
                                 env=_env(CLUSTERWATCH_MAX_CLIENTS="6"))
        started.append(all_three)
        assert _maxclients(all_three) == "7"
        # A setting only the file gives still comes from the file.
        out = run([require_tool("redis-cli"), "-p", str(all_three.port), "config", "get",
                   "timeout"]).stdout
        assert out.splitlines() == ["timeout", "300"]
        # The file named by the environment works as --config does.
        env_file = start_server(tmp_path, env=_env(CLUSTERWATCH_CONFIG_FILE=str(toml)))
        started.append(env_file)
        assert _maxclients(env_file) == "5"
        info = run([require_tool("redis-cli"), "-p", str(env_file.port), "info",
                    "server"]).stdout
        assert f"config_file:{toml.resolve()}" in info
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize(("args", "env", "names"), [
    (["--port", "abc"], {}, "--port: 'abc' is not a whole number"),
    (["--port", "70000"], {}, "--port: must be a port, 0 to 65535 (got 70000)"),
    (["--max-clients", "0"], {}, "--max-clients: must be at least 1 (got 0)"),
    (["--port", "0"], {"CLUSTERWATCH_MAX_CLIENTS": "x"},
     "--max-clients (from CLUSTERWATCH_MAX_CLIENTS in the environment): 'x' is not a whole "
     "number"),
    (["--port", "0"], {"CLUSTERWATCH_NO_SUCH_SETTING": "1"},
     "CLUSTERWATCH_NO_SUCH_SETTING in the environment: unknown setting"),
    (["--port", "0", "--log-format", "xml"], {},
     "--log-format: 'xml' is not one of text, json"),
    (["--port", "0", "--fail-rule", "vote"], {},
     "--fail-rule: 'vote' is not one of auto, redis, timer"),
])
def test_invalid_setting_exits_2(args: list[str], env: dict[str, str], names: str) -> None:
    result = _serve(*args, env=_env(**env))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: clusterwatch serve ")
    assert f"clusterwatch serve: error: {names}" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_config_file_exits_2(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[server]\nmax_clientz = 5\n")
    result = _serve("--port", "0", "--config", str(bad_key))
    assert result.returncode == 2
    assert "max_clientz" in result.stderr
    bad_value = tmp_path / "bad-value.toml"
    bad_value.write_text('[server]\nmax_clients = "many"\n')
    result = _serve("--port", "0", "--config", str(bad_value))
    assert result.returncode == 2
    assert "max_clients" in result.stderr
    result = _serve("--port", "0", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "missing.toml" in result.stderr


def test_port_in_use_exits_nonzero(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _serve("--port", str(port))
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


# --- unix socket -------------------------------------------------------------------------


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "cw.sock"
    server = start_server(tmp_path, "--unix-socket", str(path), env=_env())
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        cli = require_tool("redis-cli")
        result = run([cli, "-s", str(path), "ping"])
        assert (result.returncode, result.stdout) == (0, "PONG\n")
        result = run([cli, "-s", str(path), "-3", "hello", "3"])
        assert "proto 3" in result.stdout.splitlines()
        listed = run([cli, "-s", str(path), "client", "list"]).stdout
        assert "laddr=" in listed
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            assert exchange_on(sock, b"*1\r\n$4\r\nPING\r\n", PONG) == PONG
        # TCP keeps working alongside.
        assert pings(server.port)
        assert server.stop() == 0
        assert not path.exists(), "the socket file is removed on shutdown"
    finally:
        server.stop(signal.SIGKILL)


# --- structured logs ---------------------------------------------------------------------


def _start_logging(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / f"log-{port}.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "clusterwatch", "serve", "--port", str(port),
                                 *args], cwd=ROOT, env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            return pings(port)
        except OSError:
            return False

    assert wait_for(up, timeout=10), log.read_text()
    return proc, port, log


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -1


def test_json_logs(tmp_path: Path) -> None:
    proc, port, log = _start_logging(tmp_path, "--log-format", "json", "--max-clients", "1")
    try:
        # Events that log: a protocol error, a refused client, an idle close is not on.
        with connect(port) as sock:
            sock.sendall(b"*abc\r\n")
            read_until_closed(sock, timeout=2)
        with connect(port) as first:
            assert exchange_on(first, b"PING\r\n", PONG) == PONG
            with connect(port) as second:
                data, _ = read_until_closed(second, timeout=2)
                assert data == b"-ERR max number of clients reached\r\n"
    finally:
        assert _stop(proc) == 0
    lines = log.read_text().splitlines()
    assert len(lines) >= 4
    records = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict)
        assert record["level"] in ("debug", "info", "warning", "error")
        assert isinstance(record["msg"], str)
        assert record["ts"].endswith("Z")
        records.append(record)
    msgs = [r["msg"] for r in records]
    assert msgs[0] == "listening"
    assert records[0]["port"] == port
    assert msgs[-1] == "stopped"
    assert "protocol error, closing" in msgs
    refused = [r for r in records if r["msg"].startswith("max clients reached")]
    assert refused
    assert refused[0]["level"] == "warning"


def test_log_level_filters(tmp_path: Path) -> None:
    proc, port, log = _start_logging(tmp_path, "--log-level", "warning", "--max-clients", "1")
    try:
        with connect(port) as first:
            assert exchange_on(first, b"PING\r\n", PONG) == PONG
            with connect(port) as second:
                read_until_closed(second, timeout=2)
        time.sleep(0.1)
    finally:
        assert _stop(proc) == 0
    text = log.read_text()
    assert "level=warning" in text
    assert "max clients reached" in text
    assert "level=info" not in text
