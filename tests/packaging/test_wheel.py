"""What users run: the wheel, installed into a fresh virtualenv, used from outside the
checkout. `python -m build` makes the wheel and the sdist from this checkout; a new
virtualenv installs the wheel (its dependencies from the package index); then, from a
directory that holds nothing of the project and with no PYTHONPATH, the `clusterwatch`
script reports its version, serves, answers redis-cli, runs `agent --help` and `simulate`
against itself, and serves `/metrics`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, require_tool

pytestmark = pytest.mark.integration


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300.0,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv outside the checkout with the wheel installed; its bin/."""
    home = tmp_path_factory.mktemp("user")
    target = home / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    wheel = next(dist.glob("clusterwatch-*.whl"))
    done = _run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
                 str(wheel)], cwd=home, env=_clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield target / "bin"


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "CLUSTERWATCH_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in part)
    return env


def test_the_build_makes_a_wheel_and_an_sdist_of_one_namespace(dist: Path) -> None:
    wheel = next(dist.glob("clusterwatch-*-py3-none-any.whl"))
    sdist = next(dist.glob("clusterwatch-*.tar.gz"))
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                             capture_output=True, text=True, check=True).stdout
    tops = {line.split()[0].split("/")[0] for line in listing.splitlines()[1:] if line}
    assert tops == {"clusterwatch", f"{wheel.name.split('-py3')[0]}.dist-info"}, tops
    for layer in ("resp", "cluster", "commands", "server", "server/bus", "agent",
                  "agent/sources"):
        assert f"clusterwatch/{layer}/__init__.py" in listing, layer
    assert "clusterwatch/py.typed" in listing
    assert "licenses/LICENSE" in listing
    assert sdist.stat().st_size > 50_000


def test_the_installed_script_runs_from_outside_the_checkout(
        installed: Path, tmp_path: Path) -> None:
    redis_cli = require_tool("redis-cli")
    env = _clean_env()
    cwd = tmp_path  # nothing of the project here
    assert not any(cwd.iterdir())
    script = installed / "clusterwatch"

    version = _run([str(script), "--version"], cwd=cwd, env=env)
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"clusterwatch \d+\.\d+\.\d+\S*\n", version.stdout), version.stdout
    assert "0+unknown" not in version.stdout  # read from the installed metadata

    where = _run([str(installed / "python"), "-c",
                  "import clusterwatch.server.app as a; print(a.__file__)"], cwd=cwd, env=env)
    assert where.returncode == 0 and "site-packages" in where.stdout, where
    assert str(ROOT) not in where.stdout

    helped = _run([str(script), "agent", "--help"], cwd=cwd, env=env)
    assert helped.returncode == 0 and "--source URL" in helped.stdout, helped.stderr

    http = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([str(script), "serve", "--port", "0", "--http-port", str(http)],
                              cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _listening_port(tmp_path / "server.log", server)
        pong = _run([redis_cli, "-p", str(port), "PING"], cwd=cwd, env=env)
        assert pong.stdout == "PONG\n", pong
        simulated = _run([str(script), "simulate", "--server", f"127.0.0.1:{port}",
                          "--masters", "3", "--replicas", "1", "--duration", "2"],
                         cwd=cwd, env=env, timeout=60)
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        info = _run([redis_cli, "-p", str(port), "CLUSTER", "INFO"], cwd=cwd, env=env).stdout
        assert "cluster_known_nodes:6" in info and "cluster_state:ok" in info, info
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as page:
            text = page.read().decode()
        assert page.status == 200
        assert "clusterwatch_cluster_known_nodes 6.0" in text
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]


def _listening_port(log: Path, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"msg=listening .*?port=(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        assert server.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"never listening:\n{log.read_text()}")

