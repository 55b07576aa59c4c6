"""The load generator for BUS PUBLISH and XADD: a child process (``python -m
benchmarks.harness.loadgen``, pinned to the client CPU) that gets its spec as a JSON line on
stdin, pre-encodes every request before the clock starts, answers ``ready``, runs on ``go``
over non-blocking sockets with one window of requests in flight per connection, and prints
its result (messages, wall and CPU seconds, error) as a JSON line. Every reply is checked:
all ``applied`` for BUS PUBLISH, an entry id for XADD."""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .nodes import heartbeat
from .procs import CLIENT_CPU, REPO, BenchError, Fleet, pin_prefix


@dataclass(slots=True)
class Worker:
    proc: subprocess.Popen[bytes]
    buf: bytes = b""

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def read_lines(workers: Sequence[Worker], timeout: float) -> list[str]:
    """One line from each worker, or BenchError on timeout or early exit."""
    lines: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(lines) < len(workers):
        pending = {w.fd: i for i, w in enumerate(workers) if i not in lines}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"load generator: no answer within {timeout:.0f}s")
        ready, _, _ = select.select(list(pending), [], [], remaining)
        for fd in ready:
            i = pending[fd]
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BenchError(f"load generator {i} exited: rc={workers[i].proc.poll()}")
            workers[i].buf += chunk
            if b"\n" in workers[i].buf:
                line, _, workers[i].buf = workers[i].buf.partition(b"\n")
                lines[i] = line.decode()
    return [lines[i] for i in range(len(workers))]


def spawn_workers(fleet: Fleet, python: str, pin: bool, count: int) -> list[Worker]:
    """`count` generators on the client CPU, waiting for their specs."""
    argv = [*pin_prefix(CLIENT_CPU, pin), python, "-m", "benchmarks.harness.loadgen"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return [Worker(fleet.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                               cwd=REPO)) for _ in range(count)]


def reap_workers(fleet: Fleet, workers: Sequence[Worker]) -> None:
    """Close each generator's stdin (its cue to finish), then stop it as any child."""
    for w in workers:
        with contextlib.suppress(OSError):
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=5.0)
        fleet.stop(w.proc)
        if w.proc.stdout is not None:
            w.proc.stdout.close()


def run_worker(fleet: Fleet, python: str, pin: bool, spec: dict[str, Any],
               run_timeout: float, ready_timeout: float = 120.0,
               on_go: Callable[[], None] | None = None) -> dict[str, Any]:
    """Spawn one generator on the client CPU, hand it `spec`, start it; its result."""
    [worker] = spawn_workers(fleet, python, pin, 1)
    try:
        worker.send(json.dumps(spec))
        ready = read_lines([worker], ready_timeout)[0]
        if ready != "ready":
            raise BenchError(f"load generator: {ready}")
        if on_go is not None:
            on_go()
        worker.send("go")
        result: dict[str, Any] = json.loads(read_lines([worker], run_timeout + 10)[0])
        return result
    finally:
        reap_workers(fleet, [worker])


class _Sending:
    """What a generator connection has in flight: `out`, sent as far as the socket takes it."""

    sock: socket.socket
    out: memoryview

    def flush(self) -> bool:
        """Send more of `out`; True once all of it went."""
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            sent = 0
        self.out = self.out[sent:]
        return not self.out


class GenConn(_Sending):
    """One connection: pre-encoded windows of `pipeline` BUS PUBLISH requests, one window in
    flight; each reply must equal the all-`applied` reply byte for byte."""

    def __init__(self, port: int, nodes: list[list[Any]], base_seq: int, messages: int,
                 batch: int, pipeline: int) -> None:
        n = len(nodes)
        window = batch * pipeline
        head = b"*%d\r\n$3\r\nBUS\r\n$7\r\nPUBLISH\r\n" % (batch + 2)
        self.windows: list[bytes] = []
        for w in range(messages // window):
            parts: list[bytes] = []
            for r in range(pipeline):
                parts.append(head)
                for m in range(batch):
                    k = w * window + r * batch + m
                    node, epoch = nodes[k % n]
                    data = heartbeat(node, epoch, base_seq + k // n)
                    parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            self.windows.append(b"".join(parts))
        self.expected = (b"*%d\r\n" % batch + b"+applied\r\n" * batch) * pipeline
        self.window_msgs = window
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.index = 0
        self.out = memoryview(b"")
        self.buf = bytearray()
        self.done = 0

    def start(self) -> bool:
        """Send the next window as far as the socket takes it; True if all of it went."""
        self.out = memoryview(self.windows[self.index])
        self.buf.clear()
        return self.flush()

    def feed(self, chunk: bytes) -> str | bool:
        self.buf += chunk
        expected = self.expected
        if len(self.buf) < len(expected):
            if memoryview(expected)[:len(self.buf)] != self.buf:
                return first_not_applied(bytes(self.buf))
            return False
        if self.buf != expected:
            return first_not_applied(bytes(self.buf))
        self.done += self.window_msgs
        return True


class Window(Protocol):
    """A generator connection that sends pre-encoded windows and checks their replies."""

    sock: socket.socket
    windows: list[bytes]
    index: int

    def start(self) -> bool: ...

    def flush(self) -> bool: ...

    def feed(self, chunk: bytes) -> str | bool:
        """Reply bytes in: an error text, True when the window's replies are complete."""
        ...


def drive(conns: Sequence[Window], timeout: float) -> str | None:
    """Send every connection's windows, one in flight each, until done or an error."""
    sel = selectors.DefaultSelector()
    live = 0
    for c in conns:
        if c.windows:
            sel.register(c.sock, selectors.EVENT_READ if c.start()
                         else selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            live += 1
    deadline = time.monotonic() + timeout
    while live:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"timeout after {timeout:.0f}s with {live} connections busy"
        for key, mask in sel.select(remaining):
            conn: Window = key.data
            if mask & selectors.EVENT_WRITE and conn.flush():
                sel.modify(conn.sock, selectors.EVENT_READ, conn)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                chunk = conn.sock.recv(1 << 18)
            except BlockingIOError:
                continue
            if not chunk:
                return "the server closed a connection"
            outcome = conn.feed(chunk)
            if isinstance(outcome, str):
                return outcome
            if not outcome:
                continue
            conn.index += 1
            if conn.index == len(conn.windows):
                sel.unregister(conn.sock)
                live -= 1
            elif not conn.start():
                sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
    return None


def first_not_applied(data: bytes) -> str:
    import hiredis

    reader = hiredis.Reader()
    reader.feed(data)
    while (reply := reader.gets()) is not False:
        items = reply if isinstance(reply, list) else [reply]
        for item in items:
            if item != b"applied":
                return f"not applied: {item!r:.200}"
    return f"unexpected reply bytes: {data[:200]!r}"


class XaddConn(_Sending):
    """One connection to redis-server: pre-encoded windows of `window` XADDs, one window in
    flight; every reply must be an entry id."""

    def __init__(self, port: int, key: str, nodes: list[list[Any]], base_seq: int,
                 messages: int, window: int) -> None:
        import hiredis

        n = len(nodes)
        raw_key = key.encode()
        head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\nm\r\n" % (len(raw_key),
                                                                            raw_key)
        self.windows: list[bytes] = []
        for w in range(messages // window):
            parts: list[bytes] = []
            for r in range(window):
                k = w * window + r
                node, epoch = nodes[k % n]
                data = heartbeat(node, epoch, base_seq + k // n)
                parts.append(head)
                parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            self.windows.append(b"".join(parts))
        self.window = window
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.reader: Any = hiredis.Reader()
        self.index = 0
        self.out = memoryview(b"")
        self.got = 0
        self.done = 0
        self.last_id = b""

    def start(self) -> bool:
        self.out = memoryview(self.windows[self.index])
        self.got = 0
        return self.flush()

    def feed(self, chunk: bytes) -> str | bool:
        self.reader.feed(chunk)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, Exception):
                return f"XADD failed: {reply}"
            self.got += 1
            self.last_id = reply
        if self.got < self.window:
            return False
        self.done += self.window
        return True


def worker_main() -> int:
    """The load generator (a child process): spec on stdin, `ready`, `go`, result JSON.
    mode `publish` (the default): BUS PUBLISH through GenConn (every reply must be all
    `applied`); mode `xadd`: raw XADD into redis-server. A connection's port is its own
    `port`, else the spec's."""
    line = sys.stdin.readline()
    if not line:
        return 0
    try:
        spec = json.loads(line)
        publish: list[GenConn] = []
        xadd: list[XaddConn] = []
        for c in spec["conns"]:
            port = c.get("port", spec.get("port"))
            if spec.get("mode", "publish") == "publish":
                publish.append(GenConn(port, c["nodes"], spec["base_seq"], c["messages"],
                                       spec["batch"], spec["pipeline"]))
            else:
                xadd.append(XaddConn(port, spec["key"], c["nodes"], spec["base_seq"],
                                     c["messages"], spec["batch"] * spec["pipeline"]))
    except Exception as exc:  # report anything: the driver prints it
        print(f"error: {exc!r}", flush=True)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 0
    cpu0, t0 = time.process_time(), time.monotonic()
    timeout = float(spec["timeout"])
    error = drive(publish or xadd, timeout)
    t1 = time.monotonic()
    cpu = time.process_time() - cpu0
    done = sum(c.done for c in publish) + sum(c.done for c in xadd)
    print(json.dumps({"messages": done, "t_start": t0, "t_end": t1, "wall_s": t1 - t0,
                      "cpu_s": cpu, "error": error}), flush=True)
    for sock in [c.sock for c in publish] + [c.sock for c in xadd]:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
