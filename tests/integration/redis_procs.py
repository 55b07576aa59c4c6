"""Real redis-server processes for the Redis-stream bus tests: a plain Redis (optionally
with an append-only file), a replica, and Sentinel; and clusterwatch instances on them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess, free_port, raw_exchange, require_tool


class RedisProcess:
    """``redis-server`` on a free loopback port, in its own directory; or on a loopback
    address of its own (``host``, in a network namespace: tests/integration/netns.py), where
    it also sends from that address, as its peers see it."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None,
                 sentinel: bool = False, host: str = "127.0.0.1") -> None:
        self.binary = require_tool("redis-server")
        self.host = host
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        if self.sentinel:
            conf = self.workdir / "sentinel.conf"
            if not conf.exists():
                conf.write_text("\n".join([f"port {self.port}", "bind 127.0.0.1",
                                           f"dir {self.workdir}", *self.args]) + "\n")
            argv = [self.binary, str(conf), "--sentinel"]
        else:
            argv = [self.binary, "--port", str(self.port), "--bind", self.host,
                    "--dir", str(self.workdir), "--save", "", *self.args]
            if self.host != "127.0.0.1":
                argv += ["--bind-source-addr", self.host, "--protected-mode", "no"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # A raw PING: redis-py would retry a NOAUTH answer as a connection error.
            with contextlib.suppress(OSError):
                reply = raw_exchange(self.port, b"PING\r\n", expect=7, timeout=1.0,
                                     host=self.host)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.logs()}")
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"redis-server did not start:\n{self.logs()}")

    def logs(self) -> str:
        return (self.workdir / "redis.log").read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5, **options)

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def factory(*args: str, name: str = "redis", **options: Any) -> RedisProcess:
        process = RedisProcess(tmp_path / f"{name}-{len(started)}", *args, **options)
        started.append(process)
        return process

    yield factory
    for process in reversed(started):
        process.stop(signal.SIGKILL)


@pytest.fixture
def bus_redis(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


def connect(server: ServerProcess, protocol: int = 2) -> redis.Redis:
    return redis.Redis(port=server.port, protocol=protocol, socket_timeout=20)


def bus_info(server: ServerProcess) -> dict[str, Any]:
    flat = connect(server).execute_command("BUS", "INFO")
    return {key.decode(): value for key, value in zip(flat[::2], flat[1::2], strict=True)}


def model_views(server: ServerProcess) -> tuple[bytes, ...]:
    """What must be identical across instances that read the same entries: every view,
    message counters and the observer's own ``myself`` line aside."""
    r = connect(server)
    info = r.execute_command("CLUSTER", "INFO").split(b"cluster_stats_messages")[0]
    nodes = b"\n".join(sorted(line for line in r.execute_command("CLUSTER", "NODES")
                              .splitlines() if b"myself" not in line))
    return (info, nodes, repr(r.execute_command("CLUSTER", "SHARDS")).encode(),
            r.execute_command("STATUS", "SERVICES", "FORMAT", "JSON"),
            r.execute_command("CLUSTER", "STATUS", "FORMAT", "JSON"))


def agreed_views(servers: Sequence[ServerProcess], *, timeout: float = 20.0
                 ) -> tuple[bytes, ...]:
    """The views of instances caught up to the same stream entry, sampled between ticks.

    Instances keep appending ticks, so the sample is taken again until every instance
    read the same last id both before and after its views were read."""
    deadline = time.monotonic() + timeout
    last: list[Any] = []
    while time.monotonic() < deadline:
        ids = {bus_info(s)["bus_last_id"] for s in servers}
        views = [model_views(s) for s in servers]
        after = {bus_info(s)["bus_last_id"] for s in servers}
        if len(ids) == 1 and ids == after:
            assert all(v == views[0] for v in views), _diff(views)
            return views[0]
        last = [ids, after]
        time.sleep(0.02)
    raise AssertionError(f"instances never read the same entries: {last}")


def _diff(views: list[tuple[bytes, ...]]) -> str:
    out = []
    for index, (mine, theirs) in enumerate(zip(views[0], views[-1], strict=True)):
        if mine != theirs:
            out.append(f"view {index} differs:\n{mine!r}\n{theirs!r}")
    return "\n".join(out)


def info_cluster(server: ServerProcess) -> dict[str, Any]:
    """INFO cluster as redis-py parses it."""
    return dict(connect(server).info("cluster"))


def published_ids(client: redis.Redis, stream: str = "clusterwatch:bus") -> list[bytes]:
    """The node messages (field ``m``) the stream holds, in order."""
    return [fields[b"m"] for _, fields in client.xrange(stream) if b"m" in fields]
