"""Each status route's failure holds only the alerts computed from that route (a real Alertmanager)."""

from __future__ import annotations

import pytest
import requests
import yaml

from support import ROOT
from support.receivers import SlackStandIn, SmtpStandIn
from support.stack import notification_env, post_alerts, start_alertmanager


def status_rule_labels() -> dict[str, dict[str, str]]:
    """Each status alert's labels as prometheus/status_alerts.yml gives them (first rule of a name)."""
    rules = yaml.safe_load((ROOT / "prometheus" / "status_alerts.yml").read_text())["groups"][0]["rules"]
    labels: dict[str, dict[str, str]] = {}
    for rule in rules:
        labels.setdefault(rule["alert"], rule.get("labels", {}))
    return labels


@pytest.mark.prometheus
def test_one_failing_status_route_holds_only_the_alerts_computed_from_that_route(tmp_path):
    slack, smtp = SlackStandIn(), SmtpStandIn()
    alertmanager = start_alertmanager(tmp_path, notification_env(slack, smtp))
    try:
        job = {"job": "provider_metrics"}
        rule = status_rule_labels()
        where = {"provider": "openai", "gateway": "openrouter", **job}
        post_alerts(
            alertmanager.url,
            # The model list fails (a 422 on its page size, say): only per-model data is unknown.
            {
                "alertname": "GatewayzProviderDataUnknown",
                "severity": "none",
                "endpoint": "status_models",
                **job,
            },
            {
                "alertname": "GatewayzStatusProviderMajorOutage",
                **rule["GatewayzStatusProviderMajorOutage"],
                **where,
            },
            {"alertname": "GatewayzStatusIncidentOpen", **rule["GatewayzStatusIncidentOpen"], **where},
            {
                "alertname": "GatewayzStatusMonitoringInactive",
                **rule["GatewayzStatusMonitoringInactive"],
                **job,
            },
        )

        def states():
            alerts = requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
            found = {a["labels"]["alertname"]: a["status"]["state"] for a in alerts}
            return found if len(found) == 4 and "unprocessed" not in found.values() else None

        assert alertmanager.wait(states, "processing the alerts") == {
            "GatewayzProviderDataUnknown": "active",
            "GatewayzStatusProviderMajorOutage": "active",  # /v1/status/providers still answers
            "GatewayzStatusIncidentOpen": "active",
            "GatewayzStatusMonitoringInactive": "active",
        }

        # The provider route itself failing holds the provider alerts, and only them.
        post_alerts(
            alertmanager.url,
            {
                "alertname": "GatewayzProviderDataUnknown",
                "severity": "none",
                "endpoint": "status_providers",
                **job,
            },
        )

        def held():
            alerts = requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
            found = {
                a["labels"]["alertname"]: a["status"]["state"] for a in alerts if "gateway" in a["labels"]
            }
            return found if found.get("GatewayzStatusProviderMajorOutage") == "suppressed" else None

        assert alertmanager.wait(held, "the provider route's inhibition") == {
            "GatewayzStatusProviderMajorOutage": "suppressed",
            "GatewayzStatusIncidentOpen": "active",
        }
    finally:
        alertmanager.stop()
        slack.close()
        smtp.close()
