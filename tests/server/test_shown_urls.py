"""URLs as logs, errors, BUS INFO and statuses show them: no password, neither in
``user:password@`` nor in a query parameter that redis-py reads as one (``?password=``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clusterwatch.agent.sources import SourceError, source_kind
from clusterwatch.agent.sources._http import HttpReader
from clusterwatch.agent.sources.redis import RedisSource
from clusterwatch.server.bus.connect import display_url
from tests.conftest import ROOT

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(("url", "shown"), [
    (f"redis://10.0.0.5:6379/0?password={SECRET}", "redis://10.0.0.5:6379/0"),
    (f"redis://h:1/?db=2&password={SECRET}&socket_timeout=3",
     "redis://h:1/?db=2&socket_timeout=3"),
    (f"rediss://u:{SECRET}@h:1?ssl_password={SECRET}", "rediss://u@h:1"),
    (f"redis://h:1?Pass%77ord={SECRET}", "redis://h:1"),
])
def test_bus_address_drops_passwords_in_the_query(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_an_unsupported_source_is_named_without_its_password() -> None:
    with pytest.raises(SourceError) as caught:
        source_kind(f"ftp://ops:{SECRET}@node:21")
    assert SECRET not in str(caught.value) and "ftp://ops@node:21" in str(caught.value)
    for url in (f"zeebe+ftp://ops:{SECRET}@node", f"zeebe+http://ops:{SECRET}@node:port"):
        with pytest.raises(SourceError) as caught:
            HttpReader(url, timeout=1.0, default_port=9600)
        assert SECRET not in str(caught.value), caught.value


def test_source_names_carry_no_password() -> None:
    http = HttpReader(f"puppet+https://ops:{SECRET}@node:8140/status/v1/services"
                      f"?level=debug&password={SECRET}", timeout=1.0, default_port=8140)
    assert http.name == "puppet+https://node:8140/status/v1/services?level=debug"
    redis_source = RedisSource(f"redis://ops:{SECRET}@node:7000/0?password={SECRET}",
                               timeout=1.0)
    assert redis_source.name == "redis://node:7000/0"


def test_the_agent_command_line_does_not_print_a_source_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clusterwatch", "agent", "--server", "127.0.0.1:1",
         "--source", f"ftp://ops:{SECRET}@node:21"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unsupported source 'ftp://ops@node:21'" in result.stderr
    assert SECRET not in result.stdout + result.stderr
