"""`?maxage=<ms>` on the HTTP mirror: older data counts as unknown for the request; a bad
value is a 400 on every path, with the same words as the RESP error."""

from __future__ import annotations

import pytest

from clusterwatch.cluster.health import HTTP_PATHS
from tests.server.test_http import A, Mirror, cluster_messages, mirror

__all__ = ["mirror"]  # the fixture, imported for the tests below

PATHS = (*HTTP_PATHS, "/", "/serving", "/status/v1/services", f"/status/v1/services/{A}/api",
         "/status/v1/simple", f"/status/v1/simple/{A}/api", "/clusterStatus", "/metrics")
JUNK = [
    ("-1", "MAXAGE is negative"),
    ("abc", "value is not an integer or out of range"),
    ("", "value is not an integer or out of range"),
    ("1.0", "value is not an integer or out of range"),
    ("%20", "value is not an integer or out of range"),
    ("%00", "value is not an integer or out of range"),
    ("9" * 400, "value is not an integer or out of range"),
    ("9223372036854775808", "value is not an integer or out of range"),
]


@pytest.mark.parametrize(("value", "reason"), JUNK)
async def test_a_bad_maxage_is_a_400_on_every_path(mirror: Mirror, value: str,
                                                   reason: str) -> None:
    await mirror.settle(mirror.now)
    mirror.server.bus_publish(cluster_messages())
    for path in PATHS:
        code, body = await mirror.get(f"{path}?maxage={value}")
        assert (code, body) == (400, {"kind": "data-invalid", "msg": reason}), path


async def test_maxage_given_twice_is_a_400(mirror: Mirror) -> None:
    await mirror.settle(mirror.now)
    code, body = await mirror.get("/status/v1/services?maxage=1&maxage=1")
    assert (code, body) == (400, {"kind": "data-invalid", "msg": "Invalid maxage: given 2 times"})


async def test_maxage_makes_older_data_unknown_for_the_request(mirror: Mirror) -> None:
    await mirror.settle(mirror.now)
    mirror.server.bus_publish(cluster_messages())
    await mirror.settle(mirror.now + 2_000)
    code, doc = await mirror.get("/status/v1/services?maxage=1000")
    assert code == 503
    assert {entry["state"] for entry in doc.values()} == {"unknown"}
    assert doc[f"{A}/api"]["status"].startswith("Status older than MAXAGE 1000 ms")
    code, doc = await mirror.get("/status/v1/services?maxage=60000")
    assert doc[f"{A}/api"]["state"] == "running"
    assert await mirror.get(f"/status/v1/simple/{A}/api") == (200, "running")
    assert await mirror.get(f"/status/v1/simple/{A}/api?maxage=1000") == (503, "unknown")
    code, doc = await mirror.get(f"/?node={A}&maxage=1000")
    assert (code, doc["isReady"], doc["nodeState"]) == (503, False, "ERROR")
    assert (await mirror.get(f"/serving?node={A}"))[0] == 200
    assert (await mirror.get(f"/serving?node={A}&maxage=1000"))[0] == 503
    code, doc = await mirror.get(f"/health?node={A}&maxage=1000&verbose")
    assert (code, doc["status"]) == (503, "UNKNOWN")
    assert doc["components"]["maxAge"]["status"] == "UNKNOWN"
    assert (await mirror.get(f"/health?node={A}&maxage=5000"))[0] == 204
