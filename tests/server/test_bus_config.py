"""Bus settings: flags, TOML and environment, validated like every other setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterwatch.server.bus.connect import display_url, validate_url
from clusterwatch.server.config import ConfigError, load_config


def test_bus_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "cw.toml"
    toml.write_text('[server]\nbus = "redis://10.0.0.5:6379/2"\nbus_stream = "a:b"\n'
                    "bus_maxlen = 5000\n")
    config = load_config(config_file=str(toml),
                         environ={"CLUSTERWATCH_BUS_PUBLISH_TIMEOUT": "500"},
                         flags={"bus_snapshot_interval": 2000})
    assert (config.bus, config.bus_stream, config.bus_maxlen) == (
        "redis://10.0.0.5:6379/2", "a:b", 5000)
    assert (config.bus_publish_timeout, config.bus_snapshot_interval) == (500, 2000)
    assert load_config(environ={}).bus == "memory"


@pytest.mark.parametrize(("settings", "message"), [
    ({"bus": "http://x:1"}, "--bus: must be 'memory' or a redis://"),
    ({"bus": "redis://"}, "--bus: the URL needs a host"),
    ({"bus": "redis+sentinel://127.0.0.1:26379"}, "needs the master name"),
    ({"bus_maxlen": "50"}, "--bus-maxlen: must be at least 100"),
    ({"bus_maxlen": "500", "bus_retention_ms": "60000"}, "not both"),
    ({"bus_retention_ms": "1000"},
     "--bus-retention-ms: must be at least twice --bus-snapshot-interval"),
    ({"bus_wait_replicas": "-1"}, r"--bus-wait-replicas: must be at least 0 \(got -1\)"),
    ({"bus_stream": ""}, "--bus-stream: must not be empty"),
])
def test_bad_bus_settings_are_refused_by_name(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ={}, flags=settings)


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379", "rediss://user:pw@cache:6380/1",
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/3"])
def test_supported_urls(url: str) -> None:
    validate_url(url)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ("redis://:pw@h:1/0", "redis://h:1/0"),
    ("rediss://bob:s%40cret@h:1", "rediss://bob@h:1"),
    ("redis+sentinel://u:p@a:26379,b:26379/m", "redis+sentinel://u@a:26379,b:26379/m"),
])
def test_display_url_hides_the_password(url: str, shown: str) -> None:
    assert display_url(url) == shown
