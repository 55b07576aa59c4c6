"""The README's commands cannot go stale. Every `console` block is run, in order, against
one demo server (`serve --demo`, its ports put where the README says 7379 and 7380), and
what each `$` command prints is compared with the lines under it (`...` alone stands for
any lines, inside a line for any text). redis-cli runs with `--no-raw`, so it prints what
a person sees in a terminal. Every other command the README shows is handed to the tool it
names without running it: `clusterwatch` commands to clusterwatch's own parser, redis-cli
commands to the command table, Python examples to Python's compiler; commands of other tools
(make, kubectl...) are listed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterwatch.commands import AccessControl, build_table
from clusterwatch.server.cli import build_parser
from tests.conftest import ROOT, ServerProcess, free_port, require_tool, start_server

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
# Tools whose commands the README shows but no test here can run on this machine.
OTHER_TOOLS = {"make", "python3", "redis-server", "podman", "docker", "systemctl", "kubectl",
               "curl", "/opt/clusterwatch/bin/pip", "for", "done", "redis-benchmark"}


@dataclass(frozen=True)
class Block:
    info: str
    line: int
    text: str


def blocks() -> list[Block]:
    found = []
    for match in re.finditer(r"(?ms)^```(\w*)\n(.*?)^```", README.read_text()):
        line = README.read_text().count("\n", 0, match.start()) + 1
        found.append(Block(match.group(1), line, match.group(2)))
    return found


@dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]
    line: int


def steps(block: Block) -> Iterator[Step]:
    lines = block.text.splitlines()
    index = 0
    while index < len(lines):
        assert lines[index].startswith("$ "), f"README.md:{block.line + index + 1}: no $"
        command = lines[index][2:]
        start = index
        while command.endswith("\\"):
            index += 1
            command = command[:-1] + " " + lines[index].strip()
        index += 1
        expected = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        yield Step(command, expected, block.line + start + 1)


def matches(expected: list[str], got: list[str]) -> bool:
    """Line by line; a line `...` takes any number of lines, `...` in a line any text."""
    if not expected:
        return not got
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, got[skip:]) for skip in range(len(got) + 1))
    if not got:
        return False
    pattern = ".*".join(map(re.escape, head.split("...")))
    return re.fullmatch(pattern, got[0]) is not None and matches(rest, got[1:])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    http = free_port()
    server = start_server(tmp_path_factory.mktemp("readme"), "--demo", "--http-port",
                          str(http))
    yield server, http
    server.stop()


def test_every_console_block_prints_what_the_readme_says(
        demo: tuple[ServerProcess, int]) -> None:
    server, http = demo
    redis_cli = require_tool("redis-cli")
    require_tool("curl")
    ran = 0
    for block in blocks():
        if block.info != "console":
            continue
        for step in steps(block):
            command = (step.command.replace("-p 7379", f"-p {server.port}")
                       .replace("localhost:7380", f"localhost:{http}"))
            command = re.sub(r"^redis-cli ", f"{redis_cli} --no-raw ", command)
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                  timeout=30, check=False)
            got = done.stdout.splitlines()
            assert done.returncode == 0, f"README.md:{step.line}: {done.stderr}"
            assert matches(step.expected, got), (
                f"README.md:{step.line}: {step.command}\nexpected:\n" +
                "\n".join(step.expected) + "\ngot:\n" + "\n".join(got))
            ran += 1
    assert ran >= 8


def _commands(text: str) -> Iterator[tuple[int, list[str]]]:
    """The shell commands of a block: continuation lines joined, comments dropped, each
    split into words (a trailing `&` and `VAR=value` prefixes removed)."""
    joined = text.replace("\\\n", " ")
    for offset, line in enumerate(joined.splitlines()):
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words and words[-1] == "&":
            words = words[:-1]
        if words:
            yield offset, words


def test_every_other_command_is_one_its_tool_accepts() -> None:
    parser, _ = build_parser()
    table = build_table(perf_ns=time.perf_counter_ns)
    checked = 0
    for block in blocks():
        if block.info == "acl":  # users.acl lines: our ACL file parser takes them
            acl = AccessControl(table.catalog)
            users = acl.parse_file(block.text.replace(">…", ">secret"), "README.md")
            assert users, f"README.md:{block.line}: no users"
            checked += 1
            continue
        if block.info == "python":  # a client example: Python's compiler takes it
            compile(block.text, f"README.md:{block.line}", "exec")
            checked += 1
            continue
        # `text`: a transcript of answers, not commands to run (the README says which
        # test checks the same answers).
        if (block.info in ("console", "yaml", "text")
                or block.text.startswith("clusterwatch serve:")):
            continue
        for offset, words in _commands(block.text):
            where = f"README.md:{block.line + offset + 1}: {' '.join(words)}"
            tool = words[0]
            if tool.endswith("clusterwatch"):
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        parser.parse_args(words[1:])
                except SystemExit as exc:  # --help and --version exit 0
                    assert exc.code == 0, f"{where}: clusterwatch refuses it"
            elif tool == "redis-cli":
                rest = _without_redis_cli_options(words[1:])
                if rest:
                    try:
                        table.resolve(rest)  # the command, its subcommand and its arity
                    except Exception as exc:
                        pytest.fail(f"{where}: {exc}")
            else:
                assert tool in OTHER_TOOLS, f"{where}: a tool this test does not know"
            checked += 1
    assert checked >= 10


def _without_redis_cli_options(words: list[str]) -> list[bytes]:
    taking_value = {"-p", "-h", "-a", "--user", "--pass", "-n", "-u", "--cacert", "--cert",
                    "--key", "-r", "-i"}
    index = 0
    while index < len(words) and words[index].startswith("-"):
        if words[index] == "--cluster":
            return []
        index += 2 if words[index] in taking_value else 1
    return [word.encode() for word in words[index:]]


def test_the_harness_sees_a_stale_line() -> None:
    assert matches(["a", "...", "c..."], ["a", "x", "y", "cat"])
    assert not matches(["a", "b"], ["a", "c"])
    assert not matches(["a"], ["a", "b"])
    assert sys.executable


def test_make_run_serves_and_its_three_commands_answer(tmp_path: Path) -> None:
    """A new user's path: `make run` prints its ports and three commands, serves the demo
    cluster, and each printed command answers."""
    require_tool("make")
    redis_cli = require_tool("redis-cli")
    port, http = free_port(), free_port()
    out = (tmp_path / "make-run.log").open("wb")
    run = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}",
                            f"HTTP_PORT={http}"], cwd=ROOT, stdout=out,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        printed = ""
        while "msg=listening" not in printed:
            assert run.poll() is None, printed
            assert time.monotonic() < deadline, printed
            time.sleep(0.1)
            printed = (tmp_path / "make-run.log").read_text()
        assert f"RESP on 127.0.0.1:{port}, HTTP on 127.0.0.1:{http}" in printed
        commands = [line.strip() for line in printed.splitlines()
                    if line.startswith("  ") and ("redis-cli" in line or "curl" in line)]
        assert len(commands) == 3, printed
        for command in commands:
            done = subprocess.run(["bash", "-c", command.replace("redis-cli", redis_cli, 1)],
                                  capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 0 and done.stdout.strip(), (command, done)
            if "cluster info" in command:
                assert "cluster_state:ok" in done.stdout
            if "clusterStatus" in command:
                assert done.stdout.startswith('{"clusterStatus":{')
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=15)
        out.close()
