"""The command line as a user meets it: every `serve` flag explained with its default and
unit, errors that name the flag, environment variable or TOML key a value came from (with
the subcommand's own usage, exit 2, never a traceback), `--print-config` with passwords
masked, and help for `agent` and `simulate` written for people. The settings' other
renderings (the README's table, deploy/clusterwatch.toml) are checked against the same
table, so none can drift from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clusterwatch.server.config import (
    SETTINGS,
    ConfigError,
    ServerConfig,
    effective_toml,
    example_toml,
    load_config,
    settings_table,
)
from tests.conftest import ROOT


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items()
            if not key.startswith("CLUSTERWATCH_")}
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "clusterwatch", *argv], capture_output=True,
                          text=True, timeout=60, check=False, env={**full, **(env or {})},
                          cwd=ROOT)


def test_serve_help_explains_every_flag_with_its_default() -> None:
    shown = cli("serve", "--help")
    assert shown.returncode == 0, shown.stderr
    text = re.sub(r"\s+", " ", shown.stdout)
    for setting in SETTINGS:
        value = f"[{setting.value_name}]" if setting.kind == "bool" else setting.value_name
        assert f"{setting.flag} {value}" in text, setting.flag
        # argparse wraps at spaces and after hyphens: compare without any whitespace.
        assert re.sub(r"\s+", "", setting.help_line()) in re.sub(r"\s+", "", text), setting.flag
    assert "--tls-protocols 'TLSv1.2 TLSv1.3'" in text and "(default: TLSv1.2 TLSv1.3)" in text
    assert "--protected-mode [yes|no]" in text and "(default: yes)" in text
    assert "(default: True)" not in text and "(default: '')" not in text
    assert "--node-timeout MS" in text and "(default: 15000 ms)" in text


@pytest.mark.parametrize(("argv", "env", "said"), [
    (("--node-timeout", "0"), {}, "--node-timeout: must be at least 1 (got 0)"),
    ((), {"CLUSTERWATCH_NODE_TIMEOUT": "-3"},
     "--node-timeout (from CLUSTERWATCH_NODE_TIMEOUT in the environment): must be at "
     "least 1 (got -3)"),
    (("--require-full-coverage", "maybe"), {},
     "--require-full-coverage: 'maybe' is not yes or no"),
    (("--fail-rule", "never"), {}, "--fail-rule: 'never' is not one of auto, redis, timer"),
    (("--port", "99999"), {}, "--port: must be a port, 0 to 65535 (got 99999)"),
    (("--bus", "redis://u:pw@h:notaport"), {},
     "--bus: 'notaport' in redis://u@h:notaport is not a port"),
    (("--max-clients", "lots"), {}, "--max-clients: 'lots' is not a whole number"),
    (("--bogus", "1"), {}, "unrecognized arguments: --bogus 1"),
    ((), {"CLUSTERWATCH_NODE_TIMOUT": "5"},
     "CLUSTERWATCH_NODE_TIMOUT in the environment: unknown setting (did you mean "
     "--node-timeout?)"),
])
def test_a_bad_value_names_where_it_came_from(argv: tuple[str, ...], env: dict[str, str],
                                               said: str) -> None:
    done = cli("serve", *argv, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("usage: clusterwatch serve "), done.stderr
    assert done.stderr.rstrip().endswith(f"clusterwatch serve: error: {said}"), done.stderr
    assert "Traceback" not in done.stderr and "pw" not in done.stderr


def test_a_bad_value_in_the_toml_file_is_named_by_its_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nnode_timeout = "abc"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config_file=str(path), environ={})
    assert str(caught.value) == (f"--node-timeout (from node_timeout in {path}): 'abc' is not "
                                 "a whole number")
    path.write_text("[server]\nnode_timout = 5\n")
    with pytest.raises(ConfigError, match=r"node_timout in .*c.toml: unknown setting \(did "
                                          r"you mean --node-timeout\?\)"):
        load_config(config_file=str(path), environ={})


def test_the_client_commands_say_which_command_they_refused() -> None:
    for command in ("agent", "simulate"):
        done = cli(command, "--bogus")
        assert done.returncode == 2
        assert done.stderr.startswith(f"usage: clusterwatch {command} "), done.stderr
        assert "unrecognized arguments: --bogus" in done.stderr


def test_print_config_shows_what_would_run_with_secrets_masked(tmp_path: Path) -> None:
    done = cli("serve", "--requirepass", "s3cret", "--bus", "redis://bob:pw@cache:6379/1",
               "--node-timeout", "5000", "--print-config",
               env={"CLUSTERWATCH_HTTP_PORT": "7380"})
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout and ":pw@" not in done.stdout
    document = tomllib.loads(done.stdout)["server"]
    assert document["requirepass"] == "****"
    assert document["bus"] == "redis://bob:****@cache:6379/1"
    assert (document["node_timeout"], document["http_port"]) == (5000, 7380)
    assert set(document) == {s.name for s in SETTINGS} - {"config_file"}
    # What it prints starts a server with the same settings (the masked ones aside).
    path = tmp_path / "printed.toml"
    path.write_text(done.stdout.replace('"****"', '"other"').replace(":****@", ":x@"))
    again = load_config(config_file=str(path), environ={})
    assert (again.node_timeout, again.http_port) == (5000, 7380)


def test_the_example_toml_file_is_the_settings_table(tmp_path: Path) -> None:
    committed = (ROOT / "deploy" / "clusterwatch.toml").read_text()
    assert committed == example_toml(), (
        "deploy/clusterwatch.toml is stale: regenerate it with\n  python -c 'from "
        "clusterwatch.server.config import example_toml; print(example_toml(), end=\"\")' "
        "> deploy/clusterwatch.toml")
    assert load_config(config_file=str(ROOT / "deploy" / "clusterwatch.toml"),
                       environ={}) == ServerConfig(config_file=str(
                           (ROOT / "deploy" / "clusterwatch.toml").resolve()))
    for setting in SETTINGS:
        if setting.name != "config_file":
            assert f"\n{setting.name} = " in committed, setting.name
            assert f"flag {setting.flag}, environment {setting.env}" in committed


def test_the_readme_table_is_the_settings_table() -> None:
    readme = (ROOT / "README.md").read_text()
    begin, end = "<!-- settings: begin -->\n", "\n<!-- settings: end -->"
    table = readme[readme.index(begin) + len(begin):readme.index(end)]
    assert table == settings_table(), (
        "README.md's settings table is stale: paste the output of\n  python -c 'from "
        "clusterwatch.server.config import settings_table; print(settings_table())'")


def test_effective_toml_round_trips_every_setting() -> None:
    config = ServerConfig(node_timeout=1234, tls_http=False, unix_socket_perm=0o750,
                          shutdown_timeout=2.5, bus_stream='with "quotes"')
    path_text = effective_toml(config)
    values = tomllib.loads(path_text)["server"]
    assert values["unix_socket_perm"] == 0o750 and values["bus_stream"] == 'with "quotes"'
    assert ServerConfig(**values) == config


@pytest.mark.parametrize("command", ["agent", "simulate"])
def test_client_help_is_written_for_users(command: str) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0
    text = done.stdout
    assert "examples:" in text and f"clusterwatch {command} " in text
    for internal in ("``", "status_file", "run_local", "Simulation", "run_remote"):
        assert internal not in text, internal


def test_version_and_top_level_help() -> None:
    version = cli("--version")
    assert re.fullmatch(r"clusterwatch \S+\n", version.stdout)
    helped = cli("--help")
    assert helped.returncode == 0 and "examples:" in helped.stdout
    for command in ("serve", "agent", "simulate"):
        assert command in helped.stdout
