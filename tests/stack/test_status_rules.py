"""The status API in the stack: its alert rules, the availability recording rule, the runbook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from support import ROOT

PROMTOOL = shutil.which("promtool")
RUNBOOK = "https://github.com/Alpaca-Network/gatewayz-provider-metrics-exporter/blob/main/docs/runbook.md#"
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def status_rules() -> list[dict]:
    groups = yaml.safe_load((ROOT / "prometheus/status_alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_status_rules_and_their_unit_tests_pass():
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "prometheus/status_alerts_test.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_status_alert_names_provider_and_gateway_and_links_its_runbook_section():
    runbook = (ROOT / "docs/runbook.md").read_text()
    sections = set(re.findall(r"^## (\w+)$", runbook, re.MULTILINE))
    for rule in status_rules():
        name, labels, annotations = rule["alert"], rule["labels"], rule["annotations"]
        assert labels["severity"] in ("critical", "warning"), name
        summary = annotations["summary"]
        assert (
            ("$labels.provider" in summary and "$labels.gateway" in summary)
            or "every provider" in summary
            or ("no provider or gateway" in summary)
        ), name
        assert annotations["runbook_url"] == RUNBOOK + name.lower(), name
        assert name in sections, name
        section = runbook.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**What it means.**", "**First three commands.**", "**Escalate**"):
            assert part in section, (name, part)


def test_the_status_rules_are_loaded_by_prometheus_and_baked_into_its_image():
    config = yaml.safe_load((ROOT / "prometheus/prom.yml").read_text())
    assert "status_alerts.yml" in config["rule_files"]
    assert re.search(
        r"^COPY .*\bstatus_alerts\.yml\b", (ROOT / "prometheus/Dockerfile").read_text(), re.MULTILINE
    )


def test_the_measured_health_row_shows_status_uptime_models_incidents_checks_and_the_worst_models():
    dashboard = json.loads((ROOT / "grafana/dashboards/gatewayz-provider-management.json").read_text())
    row_at = next(i for i, p in enumerate(dashboard["panels"]) if p["title"] == "Measured health")
    row = dashboard["panels"][row_at + 1 :]
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in row}
    assert "gatewayz_status_provider_state" in exprs["Measured status by provider and gateway"]
    assert 'window="24h"' in exprs["Measured uptime"] and 'window="7d"' in exprs["Measured uptime"]
    assert "gatewayz_status_models_offline" in exprs["Models healthy and offline"]
    assert "gatewayz_status_oldest_incident_start_timestamp_seconds" in exprs["Active incidents"]
    assert "gatewayz_status_checks_success_ratio" in exprs["Health-check success (24 h)"]
    assert "bottomk" in exprs["Lowest-uptime models"]
    uptime = next(p for p in row if p["title"] == "Measured uptime")
    steps = uptime["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [("red", None), ("orange", 0.95), ("green", 0.99)]
