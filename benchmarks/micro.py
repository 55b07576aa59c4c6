"""Sans-I/O micro-benchmark: the per-request CPU cost of clusterwatch's own code.

Drives the real connection object (``server.protocol.RespProtocol``) with a stand-in
transport, so the numbers are reader + dispatch + handler + encoder + the protocol
loop, without the kernel's socket work. Compare with the end-to-end ``bench.py``.

    .venv/bin/python -m benchmarks.micro [--profile NAME] [--quick] [--runs 3]

Prints one line per case to stdout (``acl_bench.py`` reads them); no result files.
"""

from __future__ import annotations

import cProfile
import pstats
import time

from benchmarks.harness.runner import add_common, parser
from clusterwatch.commands.connection import log_in
from clusterwatch.server import protocol as protocol_module
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from clusterwatch.server.protocol import RespProtocol


class NullTransport:
    """Accepts writes and discards them; enough of asyncio.Transport for RespProtocol."""

    def __init__(self) -> None:
        self.written = 0

    def get_extra_info(self, key: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 7379)}.get(key)

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def writelines(self, data: list[bytes]) -> None:
        self.written += len(data)

    def write(self, data: bytes) -> None:
        self.written += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


CASES = {
    "PING multibulk x16": (b"*1\r\n$4\r\nPING\r\n" * 16, 16, 40_000),
    "PING inline x16": (b"PING\r\n" * 16, 16, 40_000),
    # One request per read, as redis-cli, probes and unpipelined clients send them.
    "PING multibulk x1": (b"*1\r\n$4\r\nPING\r\n", 1, 200_000),
    "PING inline x1": (b"PING\r\n", 1, 200_000),
    "HEALTH READY x1": (b"*2\r\n$6\r\nHEALTH\r\n$5\r\nREADY\r\n", 1, 100_000),
    "CLUSTER INFO x1": (b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n", 1, 100_000),
    "INFO x1": (b"*1\r\n$4\r\nINFO\r\n", 1, 5_000),
    "CLUSTER INFO x16": (b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n" * 16, 16, 20_000),
    "HEALTH x16": (b"*1\r\n$6\r\nHEALTH\r\n" * 16, 16, 20_000),
    "HEALTH READY x16": (b"*2\r\n$6\r\nHEALTH\r\n$5\r\nREADY\r\n" * 16, 16, 20_000),
    "STATUS SIMPLE x16": (b"*2\r\n$6\r\nSTATUS\r\n$6\r\nSIMPLE\r\n" * 16, 16, 20_000),
}


def run(batch: bytes, per_batch: int, rounds: int, acl_rules: str = "",
        sweep_mb: int = 0) -> float:
    """Microseconds of CPU per request; with ``acl_rules``, as an ACL user with them. With
    ``sweep_mb``, that much memory is written between reads (not timed), so each read
    starts with cold caches, as a lone request does after the kernel's work for it."""
    server = Server(ServerConfig())
    # No event loop runs here to give a yielded connection its next turn: a turn must not
    # end on time (a descheduled process can pass the deadline in the middle of a read).
    server.turn.time_ns = 1 << 62
    # Nor on the bytes read in it: nothing here starts a new turn to reset the count.
    if hasattr(protocol_module, "_READ_BYTES_PER_TURN"):
        protocol_module._READ_BYTES_PER_TURN = 1 << 62  # type: ignore[attr-defined]
    connection = RespProtocol(server)
    connection.connection_made(NullTransport())  # type: ignore[arg-type]
    if acl_rules:
        user = server.acl.setuser("bench", ["on", "nopass", *acl_rules.split()])
        assert connection.session is not None
        log_in(connection.session, user)
    if sweep_mb:
        junk = bytearray(sweep_mb << 20)
        ones = b"\x01" * (len(junk) // 64)
        spent = 0
        for _ in range(rounds):
            junk[::64] = ones
            started_ns = time.thread_time_ns()
            connection.data_received(batch)
            spent += time.thread_time_ns() - started_ns
        return spent / (rounds * per_batch) / 1000
    started = time.process_time()
    for _ in range(rounds):
        connection.data_received(batch)
    return (time.process_time() - started) / (rounds * per_batch) * 1e6


def main() -> None:
    p = parser(__doc__)
    add_common(p, "micro", runs=3, quick="a tenth of the rounds", markdown=False, jsonl=False)
    p.add_argument("--profile", metavar="CASE", help="cProfile one case by name")
    p.add_argument("--cases", default="", help="only cases whose name contains this")
    p.add_argument("--acl-rules", default="",
                   help="run as an ACL user with these rules, e.g. '+@all -@admin'")
    p.add_argument("--sweep-mb", type=int, default=0,
                   help="write this many MB between reads: each read starts cold")
    args = p.parse_args()
    for name, (batch, per_batch, rounds) in CASES.items():
        if args.cases not in name:
            continue
        if args.quick:
            rounds = max(1, rounds // 10)
        if args.profile and args.profile == name:
            profiler = cProfile.Profile()
            profiler.enable()
            run(batch, per_batch, rounds, args.acl_rules)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        if args.sweep_mb:
            rounds = min(rounds, 2000)
        best = min(run(batch, per_batch, rounds, args.acl_rules, args.sweep_mb)
                   for _ in range(args.runs))
        print(f"{name:22s} {best:8.3f} us/request (best of {args.runs})")


if __name__ == "__main__":
    main()
