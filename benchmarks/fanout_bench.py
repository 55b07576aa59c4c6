"""Fan-out and wake-up: one change delivered to N subscribers, and N blocked waiters woken,
clusterwatch and redis-server side by side in one run.

    .venv/bin/python -m benchmarks.fanout_bench [--sizes 10,1000,10000]
        [--changes 20] [--waiters 5000] [--quick]

* Fan-out: N connections subscribe to one channel. On redis-server a ``PUBLISH`` is the
  change; on clusterwatch a ``BUS PUBLISH`` of one node's ``hello`` and ``leave`` in turn
  (one ``+node`` or ``-node`` message on ``__cluster__:node``). Each change is timed from
  sending the trigger until the last subscriber has received its message; the server's CPU
  (utime + stime from /proc) over all changes is divided by the messages delivered.
* Wake-up: N clients send ``CLUSTER WAIT <index> 60000``; one change wakes them all. Timed
  from the trigger to the last answer; a bystander's PING is timed while they wait and
  right after the trigger. redis-server has no broadcast wake-up (``BLPOP`` wakes one
  client per pushed element), so this part runs on clusterwatch only.

The subscribers are non-blocking sockets on one epoll loop in this process, so the time
until the last has it includes this process reading N sockets (it runs on the other core).
Results go to stdout and ``benchmarks/results/fanout-latest.md`` (``--quick``:
``fanout-quick.md``), JSON lines to ``results/fanout.jsonl``.
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import sys
import time
from contextlib import AbstractContextManager

from benchmarks.harness.nodes import NODE_CHANNEL, node_change
from benchmarks.harness.procs import ServerProc, running
from benchmarks.harness.resp import Client, command
from benchmarks.harness.runner import add_common, finish, parser
from benchmarks.harness.system import cpu_seconds


def info_field(port: int, section: str, field: str) -> int:
    with Client(port) as client:
        return int(client.info(section)[field])


def open_many(port: int, count: int, payload: bytes, expect: bytes) -> list[socket.socket]:
    """``count`` connections that each sent ``payload`` and got a reply containing
    ``expect``; returned non-blocking."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(payload)
        socks.append(sock)
    for sock in socks:
        data = b""
        while expect not in data:
            data += sock.recv(4096)
        sock.setblocking(False)
    return socks


def wait_all(socks: list[socket.socket], started: float) -> float:
    """Seconds from ``started`` until every socket has received something."""
    poller = select.epoll()
    pending = {sock.fileno(): sock for sock in socks}
    for fd in pending:
        poller.register(fd, select.EPOLLIN)
    last = started
    try:
        while pending:
            events = poller.poll(30)
            if not events:
                raise RuntimeError(f"{len(pending)} subscribers got nothing in 30 s")
            now = time.perf_counter()
            for fd, _ in events:
                sock = pending.pop(fd, None)
                if sock is None:
                    continue
                while True:
                    try:
                        if not sock.recv(65536):
                            raise RuntimeError("a subscriber was disconnected")
                    except BlockingIOError:
                        break
                poller.unregister(fd)
                last = now
    finally:
        poller.close()
    return last - started


class Trigger:
    """One change on ``server``: a PUBLISH, or a new node's hello."""

    def __init__(self, server: ServerProc) -> None:
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.count = 0

    def fire(self) -> None:
        self.count += 1
        self.sock.sendall(node_change(self.server.name == "redis", self.count))

    def reply(self) -> None:
        data = b""
        while not data.endswith(b"\r\n"):
            data += self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


def fanout(server: ServerProc, size: int, changes: int) -> dict[str, float]:
    changes = max(changes, min(2000, 200_000 // size))  # enough messages for 10 ms CPU ticks
    socks = open_many(server.port, size, command("SUBSCRIBE", NODE_CHANNEL), NODE_CHANNEL)
    trigger = Trigger(server)
    try:
        trigger.fire()  # warm-up (the first change also moves the epoch)
        trigger.reply()
        wait_all(socks, time.perf_counter())
        times = []
        cpu_before = cpu_seconds(server.pid)
        for _ in range(changes):
            started = time.perf_counter()
            trigger.fire()
            times.append(wait_all(socks, started))
            trigger.reply()
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        trigger.close()
        for sock in socks:
            sock.close()
    return {"last_ms_median": statistics.median(times) * 1000,
            "last_ms_max": max(times) * 1000,
            "cpu_us_per_message": cpu / (changes * size) * 1e6,
            "cpu_us_per_change": cpu / changes * 1e6, "changes": changes}


def ping_ms(sock: socket.socket) -> float:
    """A bystander's PING on its open connection."""
    started = time.perf_counter()
    sock.sendall(b"PING\r\n")
    data = b""
    while not data.endswith(b"\r\n"):
        data += sock.recv(64)
    return (time.perf_counter() - started) * 1000


def wakeup(server: ServerProc, waiters: int) -> dict[str, float]:
    index = info_field(server.port, "cluster", "clusterwatch_model_version")
    socks = []
    for _ in range(waiters):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"CLUSTER WAIT %d 60000\r\n" % index)
        socks.append(sock)
    deadline = time.monotonic() + 60
    while info_field(server.port, "clients", "blocked_clients") < waiters:
        if time.monotonic() > deadline:
            raise RuntimeError("the waiters never all blocked")
    for sock in socks:
        sock.setblocking(False)
    bystander = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    waiting_ping = statistics.median(ping_ms(bystander) for _ in range(20))
    cpu_before = cpu_seconds(server.pid)
    trigger = Trigger(server)
    try:
        started = time.perf_counter()
        trigger.fire()
        after_ping = ping_ms(bystander)
        last = wait_all(socks, started)
        trigger.reply()
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        trigger.close()
        bystander.close()
        for sock in socks:
            sock.close()
    return {"last_ms": last * 1000, "ping_while_waiting_ms": waiting_ping,
            "ping_after_change_ms": after_ping, "cpu_us_per_waiter": cpu / waiters * 1e6}


def started(name: str, python: str | None,
            max_clients: int) -> AbstractContextManager[ServerProc]:
    """redis-server or clusterwatch, room for `max_clients` connections."""
    if name == "redis":
        return running("redis", ["--maxclients", str(max_clients)])
    return running("clusterwatch", ["--max-clients", str(max_clients), "--log-level",
                                    "warning"], python)


def main() -> None:
    p = parser(__doc__)
    add_common(p, "fanout", with_runs=False,
               quick="sizes 10,100, 5 changes, 200 waiters")
    p.add_argument("--sizes", default=None, help="subscribers (default 10,1000,10000)")
    p.add_argument("--changes", type=int, default=None, help="changes per size (default 20)")
    p.add_argument("--waiters", type=int, default=None, help="CLUSTER WAIT clients (5000)")
    p.add_argument("--python", default=None)
    args = p.parse_args()
    args.sizes = args.sizes or ("10,100" if args.quick else "10,1000,10000")
    args.changes = args.changes or (5 if args.quick else 20)
    args.waiters = args.waiters or (200 if args.quick else 5000)
    sizes = [int(size) for size in args.sizes.split(",")]
    max_clients = max([*sizes, args.waiters]) + 100
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for name in ("redis", "clusterwatch"):
        for size in sizes:
            with started(name, args.python, max_clients) as server:
                rows[name, size] = fanout(server, size, args.changes)
                print(name, size, rows[name, size], file=sys.stderr)
    with started("clusterwatch", args.python, max_clients) as server:
        wake = wakeup(server, args.waiters)
    print("wake-up", wake, file=sys.stderr)
    lines = [f"# Fan-out and wake-up ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
             f"{args.changes} changes per size)", "",
             "One change to N subscribers: ms until the last subscriber has it (median and "
             "worst of the changes) and server CPU µs per delivered message.", "",
             "| N | redis-server last (ms) | clusterwatch last (ms) | ratio | redis-server "
             "CPU µs/msg | clusterwatch CPU µs/msg | ratio |", "|---|---|---|---|---|---|---|"]
    for size in sizes:
        redis_row, ours = rows["redis", size], rows["clusterwatch", size]
        lines.append(
            f"| {size} | {redis_row['last_ms_median']:.2f} (max {redis_row['last_ms_max']:.2f})"
            f" | {ours['last_ms_median']:.2f} (max {ours['last_ms_max']:.2f}) | "
            f"{ours['last_ms_median'] / redis_row['last_ms_median']:.2f}x | "
            f"{redis_row['cpu_us_per_message']:.2f} | {ours['cpu_us_per_message']:.2f} | "
            f"{ours['cpu_us_per_message'] / max(redis_row['cpu_us_per_message'], 1e-9):.2f}x |")
    lines += ["", f"{args.waiters} clients blocked in `CLUSTER WAIT`, woken by one change "
              "(clusterwatch only):", "",
              "| last answer (ms) | server CPU µs per waiter | bystander PING while waiting "
              "(ms, median) | bystander PING sent right after the change (ms) |",
              "|---|---|---|---|",
              f"| {wake['last_ms']:.1f} | {wake['cpu_us_per_waiter']:.1f} | "
              f"{wake['ping_while_waiting_ms']:.2f} | {wake['ping_after_change_ms']:.2f} |", ""]
    records = [{"bench": "fanout", "server": name, "size": size, **row}
               for (name, size), row in rows.items()]
    records.append({"bench": "fanout", "server": "clusterwatch", "waiters": args.waiters,
                    **wake})
    finish(args, "\n".join(lines), records)


if __name__ == "__main__":
    main()
