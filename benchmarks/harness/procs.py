"""Servers and other child processes: clusterwatch and redis-server on free loopback ports,
ready when they answer PING, pinned to the server CPU when the machine has one, and every
child stopped by PID whatever happens (error, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
SERVER_CPU = 1
CLIENT_CPU = 0
# redis-server variants; any other name starts clusterwatch.
BASELINE_KINDS = ("redis", "redis-cluster")
# The Python floor (harness/pong_floor.py): PONG to anything.
FLOOR = "floor"


class BenchError(RuntimeError):
    """A server could not be started, or the environment lacks a tool."""


def default_python() -> str:
    """The repo's .venv interpreter when there is one, else this one."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def pinning_available() -> bool:
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def pin_prefix(cpu: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if pin else []


def require_tools(*tools: str) -> str | None:
    """The first of `tools` not on PATH, as a message; None when all are there."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install redis-server redis-tools)"
    return None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(with_bus: bool = False) -> int:
    """A free loopback port. A cluster-enabled redis also binds port+10000 for its bus and
    refuses ports above 55535, so those get a port from 20000-55535 with both free."""
    if not with_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randint(20_000, 55_535)
        if port_free(port) and port_free(port + 10_000):
            return port
    raise BenchError("no free port pair for the cluster-enabled redis-server")


def ping(port: int, timeout: float = 0.5) -> bool:
    """The server answers: PONG, or NOAUTH from one that has a password."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def wait_until(check: Callable[[], object], timeout: float, what: str,
               interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass(slots=True)
class ServerProc:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    version: str = ""
    kind: str = ""  # what start_server started: redis, redis-cluster, floor, clusterwatch...

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class Fleet:
    """Every process a benchmark started, so each can be stopped by PID whatever happens."""

    servers: dict[str, ServerProc] = field(default_factory=dict)
    children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A new session keeps a terminal's Ctrl-C away from the children: the driver gets it
        # and stops them in order. `taskset` execs, so the PID is the program's own.
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.children[proc.pid] = proc
        return proc

    def spawn_python(self, argv: Sequence[str], log_path: Path, repo: Path = REPO,
                     cwd: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A Python program with `repo` on its path, its output in `log_path`."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
        with open(log_path, "wb") as log:
            return self.spawn(list(argv), stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=cwd or repo, **kwargs)

    def reaped(self, pid: int) -> None:
        self.children.pop(pid, None)

    def stop(self, server: ServerProc | subprocess.Popen[bytes], grace: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL after `grace` s; False when it had to be killed."""
        proc = server.proc if isinstance(server, ServerProc) else server
        clean = True
        if proc is None:
            return clean
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                clean = False
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5.0)
        self.reaped(proc.pid)
        if isinstance(server, ServerProc) and self.servers.get(server.name) is server:
            del self.servers[server.name]
        return clean

    def stop_all(self) -> None:
        procs = [p for p in self.children.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
            except ChildProcessError:
                pass
        self.children.clear()
        self.servers.clear()


def server_argv(name: str, port: int, workdir: Path, python: str) -> list[str]:
    if name in BASELINE_KINDS:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
        if name == "redis-cluster":
            argv += ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(workdir / f"nodes-{port}.conf")]
        else:
            argv += ["--cluster-enabled", "no"]
        return argv
    if name == FLOOR:
        return [python, "-m", "benchmarks.harness.pong_floor", str(port)]
    argv = [python, "-m", "clusterwatch", "serve", "--port", str(port), "--bind", "127.0.0.1"]
    if name == "clusterwatch-asyncio":
        argv += ["--event-loop", "asyncio"]
    return argv


def start_server(fleet: Fleet, name: str, workdir: Path, python: str | None = None,
                 pin: bool = False, timeout: float = 20.0, extra: Sequence[str] = (),
                 cpu: int = SERVER_CPU, repo: Path = REPO, port: int | None = None,
                 argv: Sequence[str] | None = None, label: str | None = None) -> ServerProc:
    """Start a server (``redis``/``redis-cluster``: redis-server; ``floor``; clusterwatch
    under any other name, with ``extra`` flags), pinned to `cpu` with `pin`, and wait until
    it answers PING. `repo` is the clusterwatch tree put on its PYTHONPATH; `argv` replaces
    the command line entirely (then `port` must be the one it listens on). `label` names
    its log and its entry in the fleet (default: `name`), for several of one kind."""
    python = python or default_python()
    port = port or free_port(with_bus=name == "redis-cluster" or (
        name in BASELINE_KINDS and "--cluster-enabled" in extra))
    label = label or name
    log_path = workdir / f"{label}.log"
    command = list(argv) if argv is not None else (
        server_argv(name, port, workdir, python) + list(extra))
    server = ServerProc(label, port, pin_prefix(cpu, pin) + command, log_path, kind=name)
    if name in BASELINE_KINDS:
        with open(log_path, "wb") as log:
            server.proc = fleet.spawn(server.argv, stdout=log, stderr=subprocess.STDOUT,
                                      cwd=workdir)
    else:
        server.proc = fleet.spawn_python(server.argv, log_path, repo=repo, cwd=workdir)
    fleet.servers[label] = server
    wait_ready(fleet, server, timeout)
    return server


def wait_ready(fleet: Fleet, server: ServerProc, timeout: float = 20.0) -> None:
    """Until `server` answers PING (its version then noted); stopped if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{server.name} exited at start-up:\n{server.log_tail()}")
        # clusterwatch logs `msg=listening ... port=N`, but a PING is the real test (and
        # survives a change of log format).
        if ping(server.port):
            server.version = server_version(server.kind or server.name, server.port)
            return
        time.sleep(0.05)
    # Stop it now: a wedged process on the server CPU would skew every other's numbers.
    fleet.stop(server, grace=0.0)
    raise BenchError(f"{server.name} not answering PING on port {server.port} after "
                     f"{timeout:.0f}s:\n{server.log_tail()}")


def redis_version() -> str:
    """redis-server's version (``--version``), or ``?``."""
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return "?"
    return out.split()[2].removeprefix("v=") if len(out.split()) > 2 else out.strip() or "?"


def server_version(name: str, port: int) -> str:
    """redis-server's from ``--version``; clusterwatch's from INFO (any log level)."""
    if name in BASELINE_KINDS:
        return redis_version()
    if name == FLOOR:
        return "-"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = b""
            while not reply.endswith(b"\r\n\r\n") and len(reply) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
                header, _, body = reply.partition(b"\r\n")
                if header.startswith(b"$") and len(body) >= int(header[1:]) + 2:
                    break
    except (OSError, ValueError):
        return "?"
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("clusterwatch_version:"):
            return line.split(":", 1)[1].strip()
    return "?"


@contextlib.contextmanager
def running(name: str, extra: Sequence[str] = (), python: str | None = None,
            pin: bool = False, repo: Path = REPO) -> Iterator[ServerProc]:
    """One server in its own temporary directory, for the length of a ``with``."""
    fleet = Fleet()
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        try:
            yield start_server(fleet, name, Path(tmp), python, pin, extra=extra, repo=repo)
        finally:
            fleet.stop_all()


@contextlib.contextmanager
def fleet_in_tempdir(prefix: str = "cw-bench-") -> Iterator[tuple[Fleet, Path]]:
    """A fleet and a scratch directory; every process stopped and the directory removed
    on the way out."""
    fleet = Fleet()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            yield fleet, Path(tmp)
        finally:
            fleet.stop_all()
