"""End to end on loopback, the way the stack runs: the exporter polling a stand-in API; a real
Prometheus and a real Alertmanager started through their images' entrypoints with this
repository's configuration (only the test's copy has shorter intervals and `for:` durations);
a stand-in Slack webhook, a stand-in SMTP server and a stand-in heartbeat webhook. A provider
goes down: a Slack message and an email naming it arrive. It recovers: the resolved notices
arrive. While the exporter or the API is out, nothing reports it resolved; many providers down
is one message per receiver."""

from __future__ import annotations

import copy
import time

import pytest
import requests

from support.api import SEED_PROVIDERS, SEED_STATS, Reply
from support.receivers import Mail, MetricsStandIn, SlackStandIn, SmtpStandIn
from support.stack import notification_env, query, start_alertmanager, start_prometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def stack(tmp_path, api, exporter_for):
    slack, smtp, heartbeat, services = SlackStandIn(), SmtpStandIn(), SlackStandIn(), MetricsStandIn()
    # Provider data is dropped 2 s after the API stops answering (MAX_STALENESS).
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.5", MAX_STALENESS="2")
    exporter.start()
    started = []
    try:
        env = {**notification_env(slack, smtp), "HEARTBEAT_URL": heartbeat.webhook_url}
        alertmanager = start_alertmanager(tmp_path, env)
        started.append(alertmanager)
        prometheus = start_prometheus(
            tmp_path, f"http://127.0.0.1:{exporter.server.port}", alertmanager.url + "/", services.url
        )
        started.append(prometheus)
        yield api, prometheus, alertmanager, slack, smtp, exporter, heartbeat
    finally:
        for process in reversed(started):
            process.stop()
        for stand_in in (slack, smtp, heartbeat, services):
            stand_in.close()


def with_health(provider: str, health: str) -> list[dict]:
    providers = copy.deepcopy(SEED_PROVIDERS)
    for record in providers:
        if record["slug"] == provider:
            record["health_status"] = health
    return providers


def provider_down(message_text: str, provider: str) -> bool:
    return "GatewayzProviderDown" in message_text and f"Provider: {provider}" in message_text


def alerts_held(alertmanager, provider: str) -> list[dict]:
    return [
        a
        for a in requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
        if a["labels"].get("provider") == provider
    ]


def resolved_notices(slack: SlackStandIn, smtp: SmtpStandIn, provider: str) -> list[str]:
    notices = [slack.text(m) for m in slack.messages] + [m.subject + m.text for m in smtp.messages]
    return [n for n in notices if "RESOLVED" in n and provider in n]


def test_a_provider_going_down_and_recovering_reaches_slack_and_email(stack):
    api, prometheus, _alertmanager, slack, smtp, _exporter, heartbeat = stack
    prometheus.wait(lambda: query(prometheus, 'up{job="provider_metrics"} == 1'), "scraping the exporter")
    targets = query(prometheus, 'up{job="provider_metrics"}')
    assert targets[0]["metric"]["instance"].startswith("127.0.0.1:")  # EXPORTER_INTERNAL_URL was used

    api.set_data(with_health("openai", "down"), {**SEED_STATS, "healthy": 1, "down": 2})
    message = slack.wait_for(lambda m: provider_down(slack.text(m), "openai"), "Slack message for openai")
    (attachment,) = message["attachments"]
    assert attachment["title"].startswith(
        "[FIRING:1] [production] GatewayzProviderDown (critical): provider openai"
    )
    assert attachment["color"] == "danger"
    assert attachment["title_link"] == (
        "https://grafana.example.com/d/gatewayz-provider-management/gatewayz-provider-management?var-provider=openai"
    )
    text = attachment["text"]
    assert "GatewayZ provider openai is down" in text  # the summary
    assert (
        "Runbook: https://github.com/Alpaca-Network/gatewayz-provider-metrics-exporter/blob/main/docs/runbook.md#gatewayzproviderdown"
        in text
    )
    assert "Silence: https://grafana.example.com/alerting/silence/new?" in text
    assert f"Source: {prometheus.url}/graph?" in text
    assert "Dashboard: https://grafana.example.com/d/gatewayz-provider-management/" in text
    assert "var-provider=openai" in text
    assert message["path"] == "/services/T000/B000/stand-in"  # the webhook URL from the secret

    mail: Mail = smtp.wait_for(
        lambda m: provider_down(m.text, "openai") and "FIRING" in m.subject, "email for openai"
    )
    assert mail.subject.startswith("[FIRING:1] [production] GatewayzProviderDown (critical): provider openai")
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
    # The dead man's switch: Watchdog reaches the heartbeat webhook, labelled with the environment.
    beat = heartbeat.wait_for(lambda m: m.get("commonLabels", {}).get("alertname") == "Watchdog", "heartbeat")
    assert beat["commonLabels"]["environment"] == "production" and beat["status"] == "firing"
    # The stack watches itself: every target of every job is up.
    prometheus.wait(lambda: len(query(prometheus, "up == 1")) == 6, "every stack target up")


def test_the_six_compatibility_names_return_data_and_add_up_on_the_stacks_prometheus(stack):
    _api, prometheus, _alertmanager, _slack, _smtp, _exporter, _heartbeat = stack
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
    """The exporter's series vanish in the scrape that finds it gone; the provider alert stays
    firing while nobody knows its state, held in Alertmanager: no "RESOLVED" goes out."""
    api, prometheus, alertmanager, slack, smtp, exporter, _heartbeat = stack
    api.set_data(with_health("openai", "down"), {**SEED_STATS, "healthy": 1, "down": 2})
    slack.wait_for(lambda m: provider_down(slack.text(m), "openai"), "Slack message for openai")

    exporter.stop(1.0)
    slack.wait_for(lambda m: "GatewayzProviderExporterDown" in slack.text(m), "exporter-down message")
    held_past_keep_firing(prometheus, alertmanager, "openai")
    assert resolved_notices(slack, smtp, "openai") == []


def held_past_keep_firing(prometheus, alertmanager, provider: str) -> None:
    """Proof by waiting: keep_firing_for (5 s in the test's copy) and several group intervals
    (1 s) pass with the provider's data gone; its alert is still firing in Prometheus and held
    (suppressed) in Alertmanager."""
    prometheus.wait(
        lambda: not query(prometheus, f'gatewayz_provider_health_status{{provider="{provider}"}}'),
        "data gone",
    )
    gone = time.monotonic()
    prometheus.wait(lambda: time.monotonic() - gone > 8, "keep_firing_for and a few group intervals")
    assert query(
        prometheus, f'ALERTS{{alertname="GatewayzProviderDown", provider="{provider}", alertstate="firing"}}'
    )
    held = alerts_held(alertmanager, provider)
    assert held and all(a["status"]["state"] == "suppressed" for a in held), held


def test_an_api_outage_past_max_staleness_sends_no_resolved_notice_and_real_recovery_does(stack):
    api, prometheus, alertmanager, slack, smtp, _exporter, _heartbeat = stack
    api.set_data(with_health("openai", "down"), {**SEED_STATS, "healthy": 1, "down": 2})
    slack.wait_for(lambda m: provider_down(slack.text(m), "openai"), "Slack message for openai")
    smtp.wait_for(lambda m: provider_down(m.text, "openai"), "email for openai")

    for path in ("/providers/", "/providers/stats"):
        api.routes[path] = Reply(503, b'{"detail":"unavailable"}')
    held_past_keep_firing(prometheus, alertmanager, "openai")
    assert resolved_notices(slack, smtp, "openai") == []

    # The API is back and says openai is healthy: that real recovery is reported.
    api.set_data(SEED_PROVIDERS, SEED_STATS)
    slack.wait_for(
        lambda m: (
            provider_down(slack.text(m), "openai") and m["attachments"][0]["title"].startswith("[RESOLVED]")
        ),
        "resolved Slack message for openai",
    )


def test_eight_providers_down_is_one_message_per_receiver(stack):
    api, _prometheus, alertmanager, slack, smtp, _exporter, _heartbeat = stack
    template = next(p for p in SEED_PROVIDERS if p["slug"] == "openai")
    providers = [
        {**copy.deepcopy(template), "slug": f"p{n}", "name": f"P{n}", "health_status": "down"}
        for n in range(8)
    ]
    api.set_data(providers, {**SEED_STATS, "total": 8, "active": 8, "healthy": 0, "down": 8})
    fleet = slack.wait_for(lambda m: "GatewayzManyProvidersDown" in slack.text(m), "the fleet message")
    smtp.wait_for(lambda m: "GatewayzManyProvidersDown" in m.subject, "the fleet email")
    # Let the per-provider alerts fire too (2 s) and reach Alertmanager, held by the fleet alert.
    alertmanager.wait(
        lambda: (
            len(
                [
                    a
                    for a in requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
                    if a["labels"]["alertname"] == "GatewayzProviderDown"
                    and a["status"]["state"] == "suppressed"
                ]
            )
            == 8
        ),
        "eight provider alerts held",
    )
    since = time.monotonic()
    alertmanager.wait(lambda: time.monotonic() - since > 3, "a few group intervals")
    # Messages about providers; the exporter's own alert (its first scrape may fail while it
    # starts on a loaded machine) is another cause and has its own message.
    about_providers = [
        m for m in slack.messages if "Provider" in slack.text(m) and "ExporterDown" not in slack.text(m)
    ]
    assert about_providers == [fleet], [m["attachments"][0]["title"] for m in slack.messages]
    mails = [m for m in smtp.messages if "Provider" in m.subject and "ExporterDown" not in m.subject]
    assert len(mails) == 1, [m.subject for m in smtp.messages]
    assert fleet["attachments"][0]["title"].startswith(
        "[FIRING:1] [production] GatewayzManyProvidersDown (critical): the provider fleet"
    )
    text = slack.text(fleet)
    assert all(f"p{n}" in text for n in range(8)), text
