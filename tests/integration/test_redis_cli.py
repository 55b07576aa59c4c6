"""redis-cli 7.0 against a real server: one-shot commands, RESP3, piped stdin, --stat,
--latency, passwords and an interactive session under tmux (help, hints)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ServerProcess, require_tool

from .helpers import run, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"


@pytest.fixture
def cli() -> str:
    return require_tool("redis-cli")


def _commandstat_calls(cli: str, port: int, name: str, *auth: str) -> int:
    out = run([cli, "-p", str(port), *auth, "info", "commandstats"]).stdout
    match = re.search(rf"^cmdstat_{re.escape(name)}:calls=(\d+),", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def test_ping_resp2(cli: str, server: ServerProcess) -> None:
    result = run([cli, "-p", str(server.port), "ping"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PONG\n"
    assert result.stderr == ""


def test_info_server(cli: str, server: ServerProcess) -> None:
    result = subprocess.run([cli, "-p", str(server.port), "info", "server"],
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    # INFO is printed raw, CRLF line endings intact.
    assert result.stdout.startswith(b"# Server\r\n")
    assert b"\r\nredis_version:7.0.15\r\n" in result.stdout
    assert f"\r\ntcp_port:{server.port}\r\n".encode() in result.stdout
    # Only the section asked for.
    assert b"# Clients" not in result.stdout


def test_resp3_command(cli: str, server: ServerProcess) -> None:
    result = run([cli, "-3", "-p", str(server.port), "ping"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PONG\n"
    # redis-cli prints "HELLO 3 failed: ..." to stderr if HELLO is refused.
    assert result.stderr == ""


def test_resp3_hello_prints_a_map(cli: str, server: ServerProcess) -> None:
    raw = run([cli, "-3", "-p", str(server.port), "hello", "3"])
    assert raw.returncode == 0, raw.stderr
    assert raw.stderr == ""
    lines = raw.stdout.splitlines()
    # Raw mode prints a map as "key value" per line.
    assert "server redis" in lines
    assert "version 7.0.15" in lines
    assert "proto 3" in lines
    assert "mode standalone" in lines
    assert "role master" in lines
    # TTY formatting shows the map type markers ("N# key => value").
    pretty = run([cli, "--no-raw", "-3", "-p", str(server.port), "hello", "3"])
    assert pretty.returncode == 0, pretty.stderr
    assert re.search(r'^1# "server" => "redis"$', pretty.stdout, re.MULTILINE), pretty.stdout
    assert re.search(r'^\s*\d+# "proto" => \(integer\) 3$', pretty.stdout, re.MULTILINE)


def test_resp3_config_get_is_a_map(cli: str, server: ServerProcess) -> None:
    pretty = run([cli, "--no-raw", "-3", "-p", str(server.port), "config", "get", "maxclients"])
    assert pretty.returncode == 0, pretty.stderr
    assert pretty.stdout.strip() == '1# "maxclients" => "10000"'
    resp2 = run([cli, "--no-raw", "-p", str(server.port), "config", "get", "maxclients"])
    assert resp2.stdout.splitlines() == ['1) "maxclients"', '2) "10000"']


def test_piped_stdin(cli: str, server: ServerProcess) -> None:
    before = _commandstat_calls(cli, server.port, "command|docs")
    result = run([cli, "-p", str(server.port)],
                 stdin="ping\nclient setname x\nclient getname\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["PONG", "OK", "x"]
    assert "ERR" not in result.stdout + result.stderr
    # Piped mode (no command argument) asks for COMMAND DOCS first.
    assert _commandstat_calls(cli, server.port, "command|docs") == before + 1


def test_unknown_command_is_printed_not_fatal(cli: str, server: ServerProcess) -> None:
    result = run([cli, "-p", str(server.port)], stdin="nosuchcmd a b\nping\n")
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines == ["ERR unknown command 'nosuchcmd', with args beginning with: 'a' 'b' ",
                     "PONG"]


def test_stat_runs_without_aborting(cli: str, server: ServerProcess) -> None:
    # stdbuf: redis-cli's stdout is block-buffered on a pipe; line-buffer it so
    # what it printed survives the kill.
    stdbuf = require_tool("stdbuf")
    proc = subprocess.Popen([stdbuf, "-oL", cli, "-p", str(server.port), "--stat", "-i", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.2)
        still_running = proc.poll() is None
    finally:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    assert still_running, f"redis-cli --stat exited early rc={proc.returncode}: {out}{err}"
    lines = out.splitlines()
    assert lines[0].startswith("------- data ------ ---"), out
    assert lines[1].split()[:5] == ["keys", "mem", "clients", "blocked", "requests"], out
    rows = [line for line in lines if re.match(r"^\d+\s+[\d.]+[BKMGT]?\s+\d+\s+\d+\s+\d+ "
                                               r"\(\+\d+\)\s+\d+\s*$", line)]
    assert len(rows) >= 3, out
    assert "ERROR" not in out + err
    assert "Out of memory" not in err


def test_latency_mode(cli: str, server: ServerProcess) -> None:
    # Off a tty, --latency samples PINGs for one interval, prints one summary and exits.
    result = run([cli, "-p", str(server.port), "--latency", "-i", "1"], timeout=15)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"(\d+) (\d+) ([\d.]+) (\d+)\n", result.stdout)
    assert match, result.stdout
    assert int(match.group(4)) > 0  # samples taken


def test_password(cli: str, server_factory: object) -> None:
    server = server_factory("--requirepass", PASSWORD)  # type: ignore[operator]
    port = str(server.port)
    ok = run([cli, "--no-auth-warning", "-p", port, "-a", PASSWORD, "ping"])
    assert ok.returncode == 0
    assert ok.stdout == "PONG\n"
    assert ok.stderr == ""
    ok3 = run([cli, "--no-auth-warning", "-3", "-p", port, "-a", PASSWORD, "ping"])
    assert (ok3.stdout, ok3.stderr) == ("PONG\n", "")

    wrong = run([cli, "--no-auth-warning", "-p", port, "-a", "nope", "ping"])
    assert "AUTH failed: WRONGPASS invalid username-password pair" in wrong.stderr
    assert wrong.stdout.startswith("NOAUTH Authentication required.")
    assert "PONG" not in wrong.stdout

    missing = run([cli, "-p", port, "ping"])
    assert missing.stdout.startswith("NOAUTH Authentication required.")


# --- interactive, under tmux -----------------------------------------------------------


class Tmux:
    def __init__(self, tmux: str, name: str) -> None:
        self.tmux = tmux
        self.socket = name
        self.target = name

    def cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([self.tmux, "-L", self.socket, *args], timeout=10)

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", "-t", self.target).stdout

    def send(self, *keys: str) -> None:
        result = self.cmd("send-keys", "-t", self.target, *keys)
        assert result.returncode == 0, result.stderr

    def wait_screen(self, predicate: object, timeout: float = 5.0) -> str:
        holder = {"screen": ""}

        def check() -> bool:
            holder["screen"] = self.screen()
            return bool(predicate(holder["screen"]))  # type: ignore[operator]

        wait_for(check, timeout=timeout)
        return holder["screen"]


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    path = require_tool("tmux")
    session = Tmux(path, f"cw-it-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield session
    finally:
        # A private tmux server (-L): killing it ends only what this test started.
        session.cmd("kill-server")


def test_interactive_help_hints_and_ping(cli: str, server: ServerProcess, tmux: Tmux) -> None:
    prompt = f"127.0.0.1:{server.port}>"
    started = tmux.cmd("new-session", "-d", "-s", tmux.target, "-x", "200", "-y", "50",
                       f"{cli} -p {server.port}")
    assert started.returncode == 0, started.stderr
    screen = tmux.wait_screen(lambda s: prompt in s)
    assert prompt in screen, screen

    tmux.send("help ping", "Enter")
    screen = tmux.wait_screen(lambda s: "group: connection" in s)
    assert "PING [message]" in screen, screen
    assert "summary: Returns the server's liveliness response." in screen, screen
    assert "group: connection" in screen, screen

    tmux.send("client setname ")
    screen = tmux.wait_screen(lambda s: "client setname connection-name" in s)
    assert f"{prompt} client setname connection-name" in screen, screen

    tmux.send("C-u")
    tmux.send("ping", "Enter")
    screen = tmux.wait_screen(lambda s: "PONG" in s)
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    assert f"{prompt} ping" in lines, screen
    assert lines[lines.index(f"{prompt} ping") + 1] == "PONG", screen
    assert "ERR" not in screen

    # redis-cli handles quit locally; the session ends cleanly.
    tmux.send("quit", "Enter")
    assert wait_for(lambda: tmux.cmd("has-session", "-t", tmux.target).returncode != 0)
    assert server.alive()

