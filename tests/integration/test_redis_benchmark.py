"""redis-benchmark 7.0: inline and multibulk PING, pipelining, RESP3, AUTH and a custom
command. Only the exit code and the output's content are checked, never the numbers."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ServerProcess, require_tool

from .helpers import pings, run

pytestmark = pytest.mark.integration

PASSWORD = "bench-pw"
_RESULT = re.compile(r"^\s*([A-Z_]+): ([\d.]+) requests per second, p50=[\d.]+ msec$")


@pytest.fixture
def bench() -> str:
    return require_tool("redis-benchmark")


def _results(output: str) -> dict[str, float]:
    """The final ``NAME: N requests per second`` line of each test (progress lines are
    separated by carriage returns)."""
    found: dict[str, float] = {}
    for segment in re.split(r"[\r\n]+", output):
        match = _RESULT.match(segment)
        if match:
            assert match.group(1) not in found, output
            found[match.group(1)] = float(match.group(2))
    return found


def _check(result: object, tests: list[str]) -> None:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 0, out  # type: ignore[attr-defined]
    assert "Error" not in out
    assert "WARNING" not in out  # e.g. "Could not fetch server CONFIG"
    results = _results(result.stdout)  # type: ignore[attr-defined]
    assert sorted(results) == sorted(tests), out
    assert all(rps > 0 for rps in results.values()), out


def _calls(server: ServerProcess, command: str, *auth: str) -> int:
    out = run([require_tool("redis-cli"), "--no-auth-warning", "-p", str(server.port), *auth,
               "info", "commandstats"]).stdout
    match = re.search(rf"^cmdstat_{re.escape(command)}:calls=(\d+),", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def test_ping_inline_and_mbulk(bench: str, server: ServerProcess) -> None:
    before = _calls(server, "ping")
    result = run([bench, "-p", str(server.port), "-t", "ping", "-n", "20000", "-c", "10",
                  "-q"], timeout=60)
    _check(result, ["PING_INLINE", "PING_MBULK"])
    # Every request was really executed: 20000 inline + 20000 multibulk.
    assert _calls(server, "ping") == before + 40000
    assert pings(server.port)


def test_pipelined(bench: str, server: ServerProcess) -> None:
    result = run([bench, "-p", str(server.port), "-t", "ping", "-n", "20000", "-c", "10",
                  "-P", "16", "-q"], timeout=60)
    _check(result, ["PING_INLINE", "PING_MBULK"])
    assert pings(server.port)


def test_resp3(bench: str, server: ServerProcess) -> None:
    hello = _calls(server, "hello")
    result = run([bench, "-3", "-p", str(server.port), "-t", "ping", "-n", "5000", "-c", "4",
                  "-q"], timeout=60)
    _check(result, ["PING_INLINE", "PING_MBULK"])
    # One HELLO 3 per benchmark connection (4 clients x 2 tests).
    assert _calls(server, "hello") == hello + 8


def test_password(bench: str, server_factory: object) -> None:
    server = server_factory("--requirepass", PASSWORD)  # type: ignore[operator]
    result = run([bench, "-p", str(server.port), "-a", PASSWORD, "-t", "ping", "-n", "5000",
                  "-c", "4", "-q"], timeout=60)
    _check(result, ["PING_INLINE", "PING_MBULK"])
    assert _calls(server, "ping", "-a", PASSWORD) == 10000


def test_password_missing_is_an_error(bench: str, server_factory: object) -> None:
    server = server_factory("--requirepass", PASSWORD)  # type: ignore[operator]
    result = run([bench, "-p", str(server.port), "-t", "ping", "-n", "100", "-q"], timeout=60)
    assert result.returncode != 0
    assert "NOAUTH Authentication required." in result.stdout + result.stderr
    assert server.alive()


def test_custom_command(bench: str, server: ServerProcess) -> None:
    before = _calls(server, "info")
    result = run([bench, "-p", str(server.port), "-n", "5000", "-c", "10", "-q", "INFO"],
                 timeout=60)
    _check(result, ["INFO"])
    assert _calls(server, "info") == before + 5000 + 1  # +1: this INFO commandstats
