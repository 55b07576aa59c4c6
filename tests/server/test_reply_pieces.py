"""A reply larger than the piece size leaves a piece per loop turn, so that writing it
to many clients does not hold the loop; replies behind it keep their order."""

from __future__ import annotations

import asyncio

from clusterwatch.resp._reader import encode_request
from clusterwatch.server.config import ServerConfig
from clusterwatch.server.protocol import _PIECE_BYTES
from tests.server.test_single_read import RecordingTransport, Side


class CountingTransport(RecordingTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data: bytes) -> None:
        self.sizes.append(len(data))
        super().write(data)


def test_a_large_reply_is_written_a_piece_per_loop_turn() -> None:
    big = b"x" * (2 * _PIECE_BYTES + 1000)

    async def run() -> tuple[list[int], bytes, list[int]]:
        side = Side(True, ServerConfig())
        transport = CountingTransport()
        side.connection.transport = transport  # type: ignore[assignment]
        side.connection.data_received(encode_request([b"ECHO", big]) + b"PING\r\n")
        turns = []
        while side.connection.pieces:
            turns.append(len(transport.sizes))
            await asyncio.sleep(0)
        return transport.sizes, bytes(transport.written), turns

    sizes, written, turns = asyncio.run(run())
    assert written == b"$%d\r\n%b\r\n+PONG\r\n" % (len(big), big)
    assert max(sizes) <= _PIECE_BYTES
    assert len(sizes) == 3
    assert turns == [0, 1, 2]  # nothing written at once, then one piece per turn
