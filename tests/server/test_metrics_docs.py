"""The sample dashboard, the alert rules and the README name only metrics `/metrics`
exports, and the README's metric table lists every family."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig
from tests.conftest import ROOT
from tests.integration.cluster_helpers import three_masters

_NAME = re.compile(r"\bclusterwatch_[a-z0-9_]*[a-z0-9]")


def exported() -> tuple[set[str], set[str]]:
    """(family names, sample names) of one scrape of a server that knows a cluster and has
    run a command."""
    server = Server(ServerConfig(port=0))
    server.bus_publish(three_masters(replicas=True))
    server.stats.command("ping").record(1, 2_000)
    families = list(text_string_to_metric_families(server.metrics.scrape().decode()))
    return ({family.name for family in families},
            {sample.name for family in families for sample in family.samples})


def test_dashboard_and_alerts_use_exported_metrics() -> None:
    _, samples = exported()
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = (ROOT / "docs" / "prometheus-alerts.yml").read_text()
    exprs += re.findall(r"^\s*expr: (.*)$", alerts, flags=re.MULTILINE)
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    assert len(used) >= 10
    assert used <= samples, used - samples


def test_readme_lists_every_family() -> None:
    families, samples = exported()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(clusterwatch_[a-z0-9_]+)", section, flags=re.MULTILINE))
    shown = {name.removesuffix("_total") for name in listed}
    assert shown == {name for name in families if name.startswith("clusterwatch_")}
    assert set(_NAME.findall(section)) <= samples | families
