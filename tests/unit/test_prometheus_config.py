"""Prometheus' files read as data: the scrape jobs, every alert documented in the runbook, the
inhibitions' timing, and the compatibility names the recording rules produce."""

from __future__ import annotations

import pytest
import yaml

from support import ROOT
from support.markdown import heading_anchors
from support.stack import exporter_job, load_yaml, rule_files

RUNBOOK_BASE = (
    "https://github.com/Alpaca-Network/gatewayz-provider-metrics-exporter/blob/main/docs/runbook.md#"
)


def every_alert() -> list[tuple[str, dict]]:
    return [
        (path.name, rule)
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@pytest.mark.parametrize(
    ("file", "rule"), every_alert(), ids=lambda x: x if isinstance(x, str) else x["alert"]
)
def test_every_alert_has_a_summary_a_severity_and_a_runbook_section(file, rule):
    assert rule["labels"]["severity"] in ("critical", "warning", "none"), (file, rule["alert"])
    assert rule["annotations"].get("summary"), (file, rule["alert"])
    url = rule["annotations"]["runbook_url"]
    assert url == RUNBOOK_BASE + rule["alert"].lower(), (file, url)
    anchors = heading_anchors((ROOT / "docs/runbook.md").read_text())
    assert url.removeprefix(RUNBOOK_BASE) in anchors, f"docs/runbook.md has no section for {rule['alert']}"


def seconds(duration: str) -> int:
    """A Prometheus duration of one unit ("30s", "2m", "1h") in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def test_every_alert_exporter_down_inhibits_keeps_firing_until_exporter_down_has_fired():
    """When the exporter dies its series go stale at once, but "exporter down" fires only after
    its `for:`. Every alert computed from the exporter's series (all the others; Alertmanager's
    inhibitions silence them under "exporter down") must keep firing past that, plus a scrape
    and an evaluation interval of skew, or its resolution escapes the inhibition as a false
    RESOLVED notice. alerts_test.yml shows the timeline; this covers every rule."""
    rules = {
        r["alert"]: r
        for g in yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())["groups"]
        if g["name"] in ("gatewayz-providers", "gatewayz-provider-exporter")
        for r in g["rules"]
    }
    exporter_down = rules.pop("GatewayzProviderExporterDown")
    # The inhibitor: it fires at once, and must stop as soon as the data is back.
    assert "for" not in rules.pop("GatewayzProviderDataUnknown")
    assert "keep_firing_for" not in exporter_down  # it must resolve as soon as the exporter is back
    config = yaml.safe_load((ROOT / "prometheus/prom.yml").read_text())
    skew = seconds(exporter_job(config)["scrape_interval"]) + seconds(config["global"]["evaluation_interval"])
    needed = seconds(exporter_down["for"]) + skew
    short = {
        name: rule.get("keep_firing_for")
        for name, rule in rules.items()
        if seconds(rule.get("keep_firing_for", "0s")) <= needed
    }
    assert short == {}, f"keep_firing_for must exceed {needed} s"


def test_the_recording_rules_produce_the_six_compatibility_names_with_status_labels():
    rules = yaml.safe_load((ROOT / "prometheus/recording_rules.yml").read_text())
    produced: dict[str, set] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            produced.setdefault(rule["record"], set()).add(tuple(sorted(rule.get("labels", {}).items())))
    assert produced.pop("gatewayz:providers_zero_when_data") == {()}  # the shared zero fallback
    assert produced == {
        "gatewayz_providers_by_health_status": {
            (("health_status", s),) for s in ("healthy", "degraded", "down", "unknown")
        },
        "gatewayz_providers_by_status": {(("status", "active"),), (("status", "inactive"),)},
        "gatewayz_providers_with_streaming": {()},
        "gatewayz_providers_with_function_calling": {()},
        "gatewayz_providers_with_vision": {()},
        "gatewayz_providers_with_image_generation": {()},
        "provider_availability": {()},
    }


def test_prom_yml_has_the_seeds_job_exactly_and_scrapes_the_stack_itself():
    config = yaml.safe_load((ROOT / "prometheus/prom.yml").read_text())
    job = exporter_job(config)
    stack = {
        j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"] if j is not job
    }
    assert stack == {
        "prometheus": ["localhost:9090"],
        "alertmanager": ["alertmanager:9093"],
        "loki": ["loki:3100"],
        "tempo": ["tempo:3200"],
        "grafana": ["grafana:3000"],
    }
    assert config["global"]["external_labels"] == {"environment": "production"}
    assert job == {
        "job_name": "provider_metrics",
        "scheme": "http",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": ["provider-metrics-exporter:8001"]}],
        "scrape_interval": "60s",
        "scrape_timeout": "10s",
    }
    assert config["rule_files"] == ["alerts.yml", "recording_rules.yml", "status_alerts.yml"]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert alertmanagers["api_version"] == "v2"
