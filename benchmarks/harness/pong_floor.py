"""The floor under the PING benchmark: the least a Python server can do per request.

asyncio.Protocol on uvloop, hiredis to split multibulk requests (a line each when
inline), one ``+PONG`` per request and one write per read: no validation, no commands,
no accounting. ``bench.py --servers ...,floor`` runs it beside redis-server and
clusterwatch on the PING cells, so the report shows how much of clusterwatch's cost is
Python's floor and how much is its own.

    python -m benchmarks.harness.pong_floor PORT
"""

from __future__ import annotations

import asyncio
import sys

import hiredis
import uvloop

PONG = b"+PONG\r\n"


class Pong(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if data[:1] != b"*":  # inline (redis-benchmark's PING_INLINE): a request a line
            count = data.count(b"\n")
        else:
            self.reader.feed(data)
            count = 0
            while self.reader.gets() is not False:
                count += 1
        if count and self.transport is not None:
            self.transport.write(PONG * count)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Pong, "127.0.0.1", port)
    await server.serve_forever()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
