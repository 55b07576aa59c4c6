"""Sans-I/O micro-benchmark: the per-request cost of reader + dispatch + encoder, no sockets.

    python benchmarks/micro.py [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from commands import CommandContext, Session, build_table
from resp import NEED_DATA, RequestReader, write
from server.app import Server
from server.config import ServerConfig


def run(batch: bytes, rounds: int) -> float:
    server = Server(ServerConfig())
    table = server.table
    session = Session(id=1)
    ctx = CommandContext(session=session, server=server, table=table)
    reader = RequestReader()
    dispatch = table.dispatch
    started = time.perf_counter()
    count = 0
    for _ in range(rounds):
        reader.feed(batch)
        out: list[bytes] = []
        while (argv := reader.next_command()) is not NEED_DATA:
            write(out, dispatch(ctx, argv), session.protocol)
            count += 1
        b"".join(out)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cases = {
        "PING multibulk x16": b"*1\r\n$4\r\nPING\r\n" * 16,
        "PING inline x16": b"PING\r\n" * 16,
        "PING multibulk x1": b"*1\r\n$4\r\nPING\r\n",
        "INFO x1": b"*1\r\n$4\r\nINFO\r\n",
    }
    build_table()
    for name, batch in cases.items():
        rounds = 20000 if "x16" in name else (2000 if "INFO" in name else 100000)
        if args.profile and name == "PING multibulk x16":
            profiler = cProfile.Profile()
            profiler.enable()
            run(batch, rounds)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        print(f"{name:24s} {run(batch, rounds):7.3f} us/request")


if __name__ == "__main__":
    main()
