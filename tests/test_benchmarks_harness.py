"""The benchmarks share one harness (benchmarks/harness/): every script imports, exposes a
``main`` and takes its processes, RESP encoding and system stats from the harness instead
of writing them again; and the harness's pure parts are right (its RESP encoding against
redis-py's and hiredis's, its redis-benchmark CSV reading against the tool's real output)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import hiredis
import pytest
from redis.connection import Connection

from benchmarks.harness import redis_benchmark, runner, system
from benchmarks.harness.resp import command, info_fields, pairs

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "__init__.py")

# What a script must not define again: the harness has it.
HARNESS_NAMES = {
    # processes
    "free_port", "_free_port", "port_pair", "port_free", "ping", "_pings", "start_server",
    "_wait_listening", "wait_pid", "pinning_available", "pin_prefix",
    "signals_as_interrupt", "results_file",
    # system stats
    "cpu_seconds", "vm_rss_kib", "machine_busy_s", "describe_interpreter", "git_facts",
    "machine_facts", "redis_version",
    # RESP
    "command", "resp_command", "encode",
    # runner
    "log", "run_benchmark", "parse_csv",
}


def test_every_script_is_found() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"bench", "cluster_bench", "stream_bench", "status_bench", "hostile_bench",
            "fault_bench", "slot_move_bench", "publish_rights_bench"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_imports_and_has_main(script: Path) -> None:
    module = importlib.import_module(f"benchmarks.{script.stem}")
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_uses_the_harness(script: Path) -> None:
    tree = ast.parse(script.read_text(), filename=str(script))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert any(m.startswith("benchmarks.harness") for m in imported), (
        f"{script.name} does not use benchmarks.harness")
    # No script imports another's internals, nor puts benchmarks/ on sys.path for it.
    others = {f"benchmarks.{p.stem}" for p in SCRIPTS} | {p.stem for p in SCRIPTS}
    assert not imported & others, f"{script.name} imports {imported & others}"
    plain = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    assert not plain & others, f"{script.name} imports {plain & others}"
    defined = {node.name for node in tree.body
               if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    again = defined & HARNESS_NAMES
    assert not again, f"{script.name} defines {sorted(again)} again: use benchmarks.harness"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_starts_no_server_of_its_own(script: Path) -> None:
    """No argv for redis-server or `clusterwatch serve`, and no RESP array header built by
    hand, outside the harness."""
    tree = ast.parse(script.read_text(), filename=str(script))
    for node in ast.walk(tree):
        if isinstance(node, ast.List):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            assert words[:1] != ["redis-server"] or len(node.elts) == 1, (
                f"{script.name}:{node.lineno}")
            assert not ({"clusterwatch", "serve"} <= set(words)), f"{script.name}:{node.lineno}"
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            assert not node.value.startswith(b"*%d\r\n"), (
                f"{script.name}:{node.lineno}: a RESP encoder; use harness.resp.command")


# --------------------------------------------------------------------------- RESP


@pytest.mark.parametrize("args", [
    ("PING",),
    ("CLUSTER", "INFO"),
    ("BUS", "PUBLISH", b'{"v":1,"type":"heartbeat"}', b"\r\n\x00\xff"),
    ("SET", "k", b"x" * 70_000),
    ("XADD", "s", "*", "m", 12345),
    ("ECHO", ""),
])
def test_command_encodes_as_redis_py_does(args: tuple[bytes | str | int, ...]) -> None:
    assert command(*args) == b"".join(Connection().pack_command(*args))
    reader = hiredis.Reader()
    reader.feed(command(*args))
    assert reader.gets() == [a if isinstance(a, bytes) else str(a).encode() for a in args]


def test_reply_helpers() -> None:
    assert pairs([b"applied", 3, b"stale", 0]) == {"applied": 3, "stale": 0}
    info = b"# Server\r\nredis_version:7.0.15\r\nconnected_clients:1\r\n\r\n# Cluster\r\n"
    assert info_fields(info) == {"redis_version": "7.0.15", "connected_clients": "1"}


# --------------------------------------------------------------------------- redis-benchmark

# Captured from redis-benchmark 7.0.15 against redis-server 7.0.15 (`-t ping_inline,ping_mbulk
# --csv`, a custom `INFO`, and `CLUSTER INFO` on a server without cluster support).
CSV_PING = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"PING_INLINE","50000.00","0.066","0.024","0.063","0.095","0.135","0.615"\n'
    '"PING_MBULK","50000.00","0.065","0.024","0.063","0.095","0.127","0.759"\n')
CSV_INFO = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"INFO","11494.25","0.369","0.056","0.151","2.711","5.095","6.815"\n')
CSV_ERROR = (
    "Error from server: ERR This instance has cluster support disabled\n"
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n')


def test_parse_csv_reads_every_test() -> None:
    rows = redis_benchmark.parse_csv(CSV_PING)
    assert [r["test"] for r in rows] == ["PING_INLINE", "PING_MBULK"]
    assert redis_benchmark.csv_float(rows[1], "rps") == 50000.0
    assert redis_benchmark.csv_float(rows[1], "p99_latency_ms") == 0.127
    assert redis_benchmark.csv_float(rows[1], "nope") is None


def test_judge() -> None:
    row, error = redis_benchmark.judge(CSV_INFO, "", 0)
    assert error == "" and row["test"] == "INFO" and row["p50_latency_ms"] == "0.151"
    row, error = redis_benchmark.judge(CSV_ERROR, "", 0)
    assert error == "error: Error from server: ERR This instance has cluster support disabled"
    assert redis_benchmark.judge("", "Could not connect\n", 1)[1] == "error: Could not connect"
    assert redis_benchmark.judge(CSV_INFO, "", 0, "timeout after 5s")[1] == "timeout after 5s"


def test_calibrated_n() -> None:
    cell = redis_benchmark.Cell("PING P1", ("-t", "ping_mbulk"), 1, 50, "redis", 200_000)
    assert cell.is_ping
    assert redis_benchmark.calibrated_n(cell, 80_000.0, 2.0) == 160_000
    assert redis_benchmark.calibrated_n(cell, 1.0, 2.0) == 10_000  # at least n_full / 20
    assert redis_benchmark.calibrated_n(cell, 1e9, 2.0) == 600_000  # at most 3 x n_full


# --------------------------------------------------------------------------- the rest


def test_build_flags() -> None:
    assert system.build_flags("'--enable-optimizations' '--with-lto'") == "PGO+LTO"
    assert system.build_flags("'--enable-optimizations'") == "PGO"
    assert system.build_flags("'--prefix=/usr' '--with-lto'") == "LTO"
    assert system.build_flags("'--prefix=/usr'") == "no PGO/LTO flags"
    assert system.build_flags("") == "flags unknown"


def test_numbers() -> None:
    assert runner.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert runner.percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert runner.fmt_rps(1_234_567) == "1.23M"
    assert runner.fmt_rps(123_456) == "123k"
    assert runner.fmt_rps(12_345) == "12.3k"
    assert runner.fmt_us(3.14159) == "3.14" and runner.fmt_us(31.4159) == "31.4"


def test_own_process_stats() -> None:
    import os

    assert system.cpu_seconds(os.getpid()) > 0
    assert system.vm_rss_kib(os.getpid()) > 1000
