"""The deployments in deploy/ run: the systemd unit passes `systemd-analyze verify` and is
hardened; the Kubernetes manifests validate against the Kubernetes schemas, their TOML
and ACL file start a real server, and every probe they configure answers on it; the
Containerfile copies files that exist, runs the installed script and checks a real path."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from clusterwatch.server.config import load_config
from tests.conftest import ROOT, ServerProcess, free_port, start_server

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def _yaml(path: Path) -> Any:
    import yaml  # kubernetes-validate's own dependency

    return yaml.safe_load(path.read_text())


def test_the_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed: run `make test`, which installs it")
    unit = (DEPLOY / "systemd" / "clusterwatch.service").read_text()
    start = re.search(r"^ExecStart=(\S+) serve --config (\S+)$", unit, re.M)
    assert start is not None
    # verify checks that ExecStart's program exists: point it at this checkout's script.
    script = Path(sys.executable).parent / "clusterwatch"
    assert script.exists()
    copy = tmp_path / "clusterwatch.service"
    copy.write_text(unit.replace(start.group(1), str(script)))
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr.strip() == "", verified.stderr
    for line in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "Restart=on-failure", "PrivateTmp=yes",
                 "SystemCallFilter=@system-service"):
        assert line in unit, line
    assert start.group(2) == "/etc/clusterwatch/clusterwatch.toml"


def test_the_kubernetes_manifests_validate_against_the_schemas() -> None:
    assert {path.name for path in MANIFESTS} >= {
        "configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml",
        "agent-sidecar.yaml"}
    tool = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run([str(tool), "--strict", *map(str, MANIFESTS)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(MANIFESTS), done.stdout


@pytest.fixture(scope="module")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server started from the ConfigMap's TOML and the Secret's ACL file, on free ports."""
    tmp = tmp_path_factory.mktemp("kube")
    config = _yaml(DEPLOY / "kubernetes" / "configmap.yaml")["data"]["clusterwatch.toml"]
    acl = _yaml(DEPLOY / "kubernetes" / "secret.yaml")["stringData"]["users.acl"]
    (tmp / "users.acl").write_text(acl)
    settings = tomllib.loads(config)["server"]
    assert settings["aclfile"] == "/etc/clusterwatch/acl/users.acl"
    (tmp / "clusterwatch.toml").write_text(config.replace(settings["aclfile"],
                                                          str(tmp / "users.acl")))
    http = free_port()
    # On loopback, on free ports, and logging in text: start_server reads the log line.
    server = start_server(tmp, "--config", str(tmp / "clusterwatch.toml"), "--bind",
                          "127.0.0.1", "--http-port", str(http), "--log-format", "text")
    yield server, http
    server.stop()


def _probes(document: dict[str, Any]) -> dict[str, str]:
    container = document["spec"]["template"]["spec"]["containers"][0]
    return {name: container[name]["httpGet"]["path"]
            for name in ("startupProbe", "readinessProbe", "livenessProbe")}


def test_every_probe_of_the_deployment_answers_on_a_real_server(
        kube_server: tuple[ServerProcess, int]) -> None:
    _, http = kube_server
    deployment = _yaml(DEPLOY / "kubernetes" / "deployment.yaml")
    probes = _probes(deployment)
    # No node has published yet: the probes must pass anyway (liveness and readiness do
    # not wait for the watched cluster, whose agents reach clusterwatch through the
    # Service that readiness gates).
    for name, path in probes.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5) as answer:
            assert answer.status in (200, 204), (name, path, answer.status)
    assert "clusterAwareness" in probes["readinessProbe"]
    # Without the exclusions the same paths would depend on the watched cluster.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", timeout=5)
    assert refused.value.code == 503
    ports = {port["name"]: port["containerPort"]
             for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    settings = tomllib.loads(_yaml(DEPLOY / "kubernetes" / "configmap.yaml")["data"][
        "clusterwatch.toml"])["server"]
    assert ports == {"resp": settings["port"], "http": settings["http_port"]}


def test_the_secret_s_users_are_the_documented_roles(
        kube_server: tuple[ServerProcess, int]) -> None:
    server, _ = kube_server
    import redis

    admin = redis.Redis(port=server.port, password="change-me-admin")
    monitor = redis.Redis(port=server.port, username="monitor", password="change-me-monitor")
    publisher = redis.Redis(port=server.port, username="publisher",
                            password="change-me-publisher")
    assert admin.ping() and monitor.ping() and publisher.ping()
    assert b"cluster_state" in monitor.execute_command("CLUSTER", "INFO")
    with pytest.raises(redis.exceptions.NoPermissionError):
        monitor.execute_command("BUS", "PUBLISH", "{}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        publisher.execute_command("CLUSTER", "INFO")


def test_the_sidecar_runs_the_agent_against_the_service() -> None:
    sidecar = _yaml(DEPLOY / "kubernetes" / "agent-sidecar.yaml")
    containers = {c["name"]: c for c in sidecar["spec"]["template"]["spec"]["containers"]}
    agent = containers["clusterwatch-agent"]
    args = agent["args"]
    assert args[0] == "agent"
    assert args[args.index("--server") + 1] == "clusterwatch:7379"
    assert args[args.index("--source") + 1] == "redis://127.0.0.1:6379"
    assert "--password" not in args  # from CLUSTERWATCH_PASSWORD, out of the process list
    assert {env["name"] for env in agent["env"]} == {"CLUSTERWATCH_PASSWORD"}
    from clusterwatch.server.cli import build_parser

    _, commands = build_parser()
    parsed = commands["agent"].parse_args(args[1:])
    assert parsed.source == ["redis://127.0.0.1:6379"] and parsed.user == "publisher"


def test_the_containerfile_builds_from_files_that_exist(
        kube_server: tuple[ServerProcess, int]) -> None:
    recipe = (DEPLOY / "Containerfile").read_text()
    logical = re.sub(r"\\\n\s*", " ", recipe)
    for line in logical.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            *sources, _target = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
    assert re.search(r"^FROM \S*python:3\.11-slim", recipe, re.M)
    assert re.search(r"^USER 10001", recipe, re.M)
    entry = re.search(r'^ENTRYPOINT \["(\S+)"\]', recipe, re.M)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry is not None and entry.group(1) in scripts
    cmd = re.search(r"^CMD (\[.*\])$", recipe, re.M)
    assert cmd is not None
    assert "/etc/clusterwatch/clusterwatch.toml" in cmd.group(1)
    assert "COPY deploy/clusterwatch.toml /etc/clusterwatch/clusterwatch.toml" in recipe
    exposed = re.search(r"^EXPOSE (.*)$", recipe, re.M)
    assert exposed is not None and exposed.group(1).split() == ["7379", "7380"]
    # The health check calls a real path of a real server and passes on it.
    check = re.search(r"urlopen\('http://127\.0\.0\.1:7380(/[^']+)'", logical)
    assert check is not None
    _, http = kube_server
    with urllib.request.urlopen(f"http://127.0.0.1:{http}{check.group(1)}", timeout=5) as got:
        assert got.status == 204
    env = re.search(r"^ENV (.*)$", recipe, re.M)
    assert env is not None
    values = dict(item.split("=", 1) for item in env.group(1).split())
    loaded = load_config(environ=values, config_file=str(DEPLOY / "clusterwatch.toml"))
    assert (loaded.bind, loaded.http_port) == ("0.0.0.0", 7380)
