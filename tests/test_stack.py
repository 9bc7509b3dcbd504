"""End to end on loopback, the way the stack runs: the exporter polling a stand-in API; a real
Prometheus and a real Alertmanager started through their images' entrypoints with this
repository's configuration (only the test's copy has shorter intervals and `for:` durations);
a stand-in Slack webhook and a stand-in SMTP server. A provider goes down: a Slack message and
an email naming it arrive. It recovers: the resolved notices arrive."""

from __future__ import annotations

import copy
import time

import pytest
import requests
from conftest import SEED_PROVIDERS, SEED_STATS
from stack_support import (
    Mail,
    SlackStandIn,
    SmtpStandIn,
    notification_env,
    query,
    start_alertmanager,
    start_prometheus,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]


@pytest.fixture
def stack(tmp_path, api, exporter_for):
    slack, smtp = SlackStandIn(), SmtpStandIn()
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.5")
    exporter.start()
    started = []
    try:
        alertmanager = start_alertmanager(tmp_path, notification_env(slack, smtp))
        started.append(alertmanager)
        prometheus = start_prometheus(
            tmp_path, f"http://127.0.0.1:{exporter.server.port}", alertmanager.url + "/"
        )
        started.append(prometheus)
        yield api, prometheus, alertmanager, slack, smtp, exporter
    finally:
        for process in reversed(started):
            process.stop()
        slack.close()
        smtp.close()


def with_health(provider: str, health: str) -> list[dict]:
    providers = copy.deepcopy(SEED_PROVIDERS)
    for record in providers:
        if record["slug"] == provider:
            record["health_status"] = health
    return providers


def provider_down(message_text: str, provider: str) -> bool:
    return "GatewayzProviderDown" in message_text and f"Provider: {provider}" in message_text


def test_a_provider_going_down_and_recovering_reaches_slack_and_email(stack):
    api, prometheus, _alertmanager, slack, smtp, _exporter = stack
    prometheus.wait(lambda: query(prometheus, 'up{job="provider_metrics"} == 1'), "scraping the exporter")
    targets = query(prometheus, 'up{job="provider_metrics"}')
    assert targets[0]["metric"]["instance"].startswith("127.0.0.1:")  # EXPORTER_INTERNAL_URL was used

    api.set_data(with_health("openai", "down"), {**SEED_STATS, "healthy": 1, "down": 2})
    message = slack.wait_for(lambda m: provider_down(slack.text(m), "openai"), "Slack message for openai")
    (attachment,) = message["attachments"]
    assert attachment["title"].startswith("[FIRING:1] GatewayzProviderDown (critical): provider openai")
    assert attachment["color"] == "danger"
    assert attachment["title_link"] == (
        "https://grafana.example.com/d/gatewayz-provider-management/gatewayz-provider-management?var-provider=openai"
    )
    text = attachment["text"]
    assert "GatewayZ provider openai is down" in text  # the summary
    assert "Runbook: Check the provider's status page" in text
    assert "Dashboard: https://grafana.example.com/d/gatewayz-provider-management/" in text
    assert "var-provider=openai" in text
    assert message["path"] == "/services/T000/B000/stand-in"  # the webhook URL from the secret

    mail: Mail = smtp.wait_for(
        lambda m: provider_down(m.text, "openai") and "FIRING" in m.subject, "email for openai"
    )
    assert mail.subject.startswith("[FIRING:1] GatewayzProviderDown (critical): provider openai")
    assert mail.sender == "alertmanager@example.com"
    assert sorted(mail.recipients) == ["oncall@example.com", "providers@example.com"]
    assert mail.login == ("alertmanager", "stand-in-smtp-password")  # the password file was used
    assert "GatewayZ provider openai is down" in mail.text and "Runbook:" in mail.text
    assert "var-provider=openai" in mail.html and "GatewayZ provider openai is down" in mail.html

    api.set_data(SEED_PROVIDERS, SEED_STATS)
    resolved = slack.wait_for(
        lambda m: (
            provider_down(slack.text(m), "openai") and m["attachments"][0]["title"].startswith("[RESOLVED]")
        ),
        "resolved Slack message for openai",
    )
    assert resolved["attachments"][0][
        "color"
    ] == "good" and "RESOLVED: GatewayZ provider openai" in slack.text(resolved)
    resolved_mail = smtp.wait_for(
        lambda m: provider_down(m.text, "openai") and m.subject.startswith("[RESOLVED]"),
        "resolved email for openai",
    )
    assert "resolved:" in resolved_mail.text
    # Degraded google is a warning: Slack, never email.
    assert not any("GatewayzProviderDegraded" in m.subject for m in smtp.messages)


def test_the_six_compatibility_names_return_data_and_add_up_on_the_stacks_prometheus(stack):
    _api, prometheus, _alertmanager, _slack, _smtp, _exporter = stack
    prometheus.wait(lambda: query(prometheus, "gatewayz_providers_with_image_generation"), "recording")

    def by(expr: str, label: str) -> dict[str, float]:
        return {r["metric"][label]: float(r["value"][1]) for r in query(prometheus, expr)}

    # Seed: openai, anthropic healthy; google degraded; mistral down and inactive.
    health = by("gatewayz_providers_by_health_status", "health_status")
    assert health == {"healthy": 2, "degraded": 1, "down": 1, "unknown": 0}
    status = by("gatewayz_providers_by_status", "status")
    assert status == {"active": 3, "inactive": 1}
    total = float(query(prometheus, "gatewayz_providers_total")[0]["value"][1])
    assert sum(health.values()) == sum(status.values()) == total == 4
    for capability, expected in (
        ("streaming", 4),
        ("function_calling", 3),
        ("vision", 3),
        ("image_generation", 1),
    ):
        (result,) = query(prometheus, f"gatewayz_providers_with_{capability}")
        assert set(result["metric"]) == {"__name__"} and float(result["value"][1]) == expected, capability
    # Every rule file loaded and evaluated without error.
    rules = prometheus.wait(
        lambda: [
            r
            for g in requests.get(prometheus.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
            for r in g["rules"]
            if not r["lastEvaluation"].startswith("0001")
        ],
        "evaluating",
    )
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    assert {r["name"] for r in rules} >= {"GatewayzProviderDown", "gatewayz_providers_by_health_status"}


def test_the_exporter_dying_sends_exporter_down_and_no_false_resolved_notice_for_a_provider(stack):
    """The exporter's series vanish in the scrape that finds it gone; the provider alert keeps
    firing until "exporter down" fires and inhibits it, so it resolves unseen."""
    api, prometheus, alertmanager, slack, smtp, exporter = stack
    api.set_data(with_health("openai", "down"), {**SEED_STATS, "healthy": 1, "down": 2})
    slack.wait_for(lambda m: provider_down(slack.text(m), "openai"), "Slack message for openai")

    exporter.stop(1.0)
    slack.wait_for(lambda m: "GatewayzProviderExporterDown" in slack.text(m), "exporter-down message")
    # keep_firing_for over: Prometheus resolves the provider alert (and sends that at once)...
    prometheus.wait(
        lambda: not query(prometheus, 'ALERTS{alertname="GatewayzProviderDown", provider="openai"}'),
        "resolving the provider alert",
    )
    # ...and Alertmanager takes it: no longer an alert it holds as unresolved.
    alertmanager.wait(
        lambda: (
            not [
                a
                for a in requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
                if a["labels"].get("provider") == "openai"
            ]
        ),
        "taking the resolution",
    )
    # A resolved notice would go out at the group's next flush (group_interval: 1 s here): wait two.
    time.sleep(2)
    notices = [slack.text(m) for m in slack.messages] + [m.subject + m.text for m in smtp.messages]
    assert not [n for n in notices if "RESOLVED" in n and "openai" in n], notices
