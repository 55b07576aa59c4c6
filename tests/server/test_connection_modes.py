"""A connection's mode (``protocol.Mode``) changes only as ``protocol.MODES`` allows."""

from __future__ import annotations

import asyncio

import pytest

from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from clusterwatch.server.protocol import MODES, Mode, RespProtocol
from tests.server.test_connection_turns import Client, turns_until


def test_every_mode_has_its_row_and_closing_is_the_end() -> None:
    assert set(MODES) == set(Mode)
    assert MODES[Mode.CLOSING] == {Mode.CLOSING}
    assert all(Mode.CLOSING in targets for targets in MODES.values())


def test_a_blocked_client_waits_for_its_turn_once_answered() -> None:
    async def run() -> None:
        server = Server(ServerConfig())
        client = Client(server)
        seen: list[Mode] = []
        set_mode = client.connection._set_mode

        def recording(new: Mode) -> None:
            set_mode(new)
            seen.append(new)

        client.connection._set_mode = recording  # type: ignore[method-assign]
        client.send([b"CLUSTER", b"WAIT", str(server.model.version).encode(), b"50"])
        client.send([b"PING"])
        assert client.connection.mode is Mode.BLOCKED
        await asyncio.sleep(0.1)  # the wait times out after 50 ms
        await turns_until(lambda: client.written.endswith(b"+PONG\r\n"))
        assert seen == [Mode.BLOCKED, Mode.YIELDED, Mode.SERVING]
        client.connection.close()
        client.connection.connection_lost(None)
        assert seen[3:] == [Mode.CLOSING, Mode.CLOSING]
        assert client.connection.closing

    asyncio.run(run())


def test_a_closed_connection_refuses_to_serve_again() -> None:
    connection = RespProtocol(Server(ServerConfig()))
    connection.connection_lost(None)
    with pytest.raises(RuntimeError, match="connection mode closing -> serving"):
        connection._set_mode(Mode.SERVING)
    assert connection.mode is Mode.CLOSING
