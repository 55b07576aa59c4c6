"""Deep and wide status documents against a real server process.

Found on main: a heartbeat whose service status nests ~1000 levels passes ingest, then
``STATUS SERVICE <node>/<svc> LEVEL debug`` answers ``-ERR internal error`` (a
RecursionError) on every call. The rule now (README, "Limits and bad input"): a status
nests at most 32 arrays/objects; a deeper one is refused at ingest naming the field and
counted as ``depth``, and every accepted one renders at every level in RESP2, RESP3, FORMAT
JSON and over HTTP. Breadth is bounded by ``--max-message-size``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import ServerProcess, free_port

from .conftest import BystanderFactory

pytestmark = pytest.mark.integration

NODE = "n1"


def nested(depth: int, inner: Any = "bottom") -> Any:
    value = inner
    for level in range(depth):
        value = [value] if level % 2 else {"down": value}
    return value


def deep_json(depth: int) -> str:
    """A status this deep as JSON text (the json module itself cannot write 5000 levels)."""
    return "[" * depth + '"bottom"' + "]" * depth


def heartbeat(seq: int, debug_json: str, *, versions: str = "") -> bytes:
    extra = f', "status_versions": {{"1": {{"debug": {versions}}}}}' if versions else ""
    return (f'{{"v":1,"type":"heartbeat","node":"{NODE}","epoch":1,"seq":{seq},'
            f'"services":{{"web":{{"state":"running","status":{{"critical":{{"up":true}},'
            f'"info":{{"load":1}},"debug":{debug_json}}}{extra}}}}}}}').encode()


def http_json(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def rejected_by_reason(client: redis.Redis) -> dict[bytes, int]:
    info = client.execute_command("BUS", "INFO")
    fields = dict(zip(info[::2], info[1::2], strict=True))
    reasons = fields[b"rejected_by_reason"]
    return dict(zip(reasons[::2], reasons[1::2], strict=True))


def test_a_too_deep_status_is_refused_and_what_is_accepted_renders_everywhere(
        server_factory: Callable[..., ServerProcess], bystander: BystanderFactory) -> None:
    http_port = free_port()
    server = server_factory("--http-port", str(http_port))
    client = redis.Redis(port=server.port, protocol=2, socket_timeout=30)
    hello = json.dumps({"v": 1, "type": "hello", "node": NODE, "epoch": 1, "seq": 1,
                        "addr": "10.0.0.1:7000"})
    assert client.execute_command("BUS", "PUBLISH", hello) == [b"applied"]

    # Accepted: 32 levels deep and about 60 KB wide, just under --max-message-size.
    accepted = {"deep": nested(31), "wide": [7] * 31_500}
    data = heartbeat(2, json.dumps(accepted, separators=(",", ":")))
    assert 60_000 < len(data) <= 65_536
    assert client.execute_command("BUS", "PUBLISH", data) == [b"applied"]

    # What a publisher of deeper ones sees: the field and the reason, nothing applied.
    replies = []
    for seq, depth in enumerate((33, 100, 400, 900, 5000), start=3):
        deeper = heartbeat(seq, deep_json(depth))
        replies.append(client.execute_command("BUS", "PUBLISH", deeper)[0])
    replies.append(client.execute_command(
        "BUS", "PUBLISH", heartbeat(9, '{"ok":1}', versions=deep_json(40)))[0])
    print(replies)
    assert all(isinstance(reply, redis.ResponseError) for reply in replies), replies
    field_error = ("invalid message: services[web].status.debug: nests more than 32 levels "
                   "of arrays and objects")
    assert [str(r) for r in replies[:3]] == [field_error] * 3
    assert str(replies[5]) == ("invalid message: services[web].status_versions[1].debug: "
                               "nests more than 32 levels of arrays and objects")
    assert rejected_by_reason(client)[b"depth"] == 6
    too_wide = heartbeat(10, json.dumps([7] * 40_000))
    assert str(client.execute_command("BUS", "PUBLISH", too_wide)[0]).startswith(
        f"invalid message: message is {len(too_wide)} bytes, limit is 65536")

    # The accepted document renders at every level, in every format, while a bystander
    # keeps being answered.
    expected = {"critical": {"up": True}, "info": {"up": True, "load": 1},
                "debug": {"up": True, "load": 1, **accepted}}
    with bystander(server) as watcher:
        for protocol in (2, 3):
            reader = redis.Redis(port=server.port, protocol=protocol, socket_timeout=30)
            for level in ("critical", "info", "debug"):
                assert reader.execute_command("STATUS", "SERVICE", f"{NODE}/web", "LEVEL",
                                              level)
                document = json.loads(reader.execute_command(
                    "STATUS", "SERVICE", f"{NODE}/web", "LEVEL", level, "FORMAT", "JSON"))
                assert document["status"] == expected[level]
                everything = json.loads(reader.execute_command(
                    "STATUS", "SERVICES", "LEVEL", level, "FORMAT", "JSON"))
                assert everything[f"{NODE}/web"]["status"] == expected[level]
                assert reader.execute_command("STATUS", "SERVICES", "LEVEL", level)
        for level in ("critical", "info", "debug"):
            code, body = http_json(http_port, f"/status/v1/services?level={level}")
            assert (code, body[f"{NODE}/web"]["status"]) == (200, expected[level])
            code, body = http_json(http_port, f"/status/v1/services/{NODE}%2Fweb?level={level}")
            assert (code, body["status"]) == (200, expected[level])
    watcher.check(worst_ms=1000)
    assert client.ping()
    assert "Traceback" not in server.logs() and "internal error" not in server.logs()
