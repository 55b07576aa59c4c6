"""The bus says why it cannot take a publish (``BusError``); BUS PUBLISH answers it as
Redis would: ``-TRYAGAIN`` when sending again may work, ``-ERR`` otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clusterwatch.commands import BusError, Deferred
from clusterwatch.resp import ErrorReply, Reply, encode
from tests.commands.test_handlers import make_ctx, run

HEARTBEAT = b'{"v":1,"type":"heartbeat","node":"a","epoch":1,"seq":1}'


@pytest.mark.parametrize(("error", "wire"), [
    (BusError("bus unavailable: redis-stream r:6379: down"),
     b"-TRYAGAIN bus unavailable: redis-stream r:6379: down\r\n"),
    (BusError("BUS PUBLISH cannot run inside MULTI on the redis-stream bus", retry=False),
     b"-ERR BUS PUBLISH cannot run inside MULTI on the redis-stream bus\r\n"),
])
def test_a_refused_publish_is_an_error_reply(monkeypatch: pytest.MonkeyPatch,
                                             error: BusError, wire: bytes) -> None:
    ctx = make_ctx()

    def refuse(messages: Sequence[bytes], **_: object) -> None:
        raise error

    monkeypatch.setattr(ctx.server, "bus_publish", refuse)
    reply = run(ctx, "BUS", "PUBLISH", HEARTBEAT)
    assert encode(reply, 2) == wire
    assert ctx.server.stats.commands["bus|publish"].failed_calls == 1


def test_a_publish_that_fails_later_answers_with_the_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx()
    pending: Deferred[object] = Deferred()
    monkeypatch.setattr(ctx.server, "bus_publish", lambda messages, **_: pending)
    reply = run(ctx, "BUS", "PUBLISH", HEARTBEAT)
    assert isinstance(reply, Deferred)
    answered: list[Reply] = []
    reply.add_callback(answered.append)
    pending.resolve(BusError("bus closed: the server is shutting down"))
    assert answered == [ErrorReply("TRYAGAIN", "bus closed: the server is shutting down")]
