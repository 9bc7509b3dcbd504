"""Alertmanager as code: amtool checks the configuration and routes every alert for every
combination of channels (CI runs these), and a real Alertmanager applies the grouping and the
inhibitions and delivers to stand-ins (the entrypoint's own tests: test_alertmanager_entrypoint.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from support import ROOT
from support.receivers import SlackStandIn, SmtpStandIn
from support.stack import CHANNELS, amtool, notification_env, post_alerts, run_entrypoint, start_alertmanager
from support.waits import free_port

pytestmark = pytest.mark.prometheus
CONFIG = "alertmanager/alertmanager.yml"


def test_amtool_checks_the_configuration_and_its_templates():
    result = amtool("check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 templates" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=GatewayzProviderDown", "provider=openai"], "slack-critical,email"),
        (["severity=critical", "alertname=GatewayzManyProvidersDown"], "slack-critical,email"),
        (["severity=critical", "alertname=GatewayzProviderExporterDown"], "slack-critical,email"),
        (
            ["severity=critical", "alertname=GatewayzProviderApiUnauthorized", "endpoint=stats"],
            "slack-critical,email",
        ),
        (
            ["severity=warning", "alertname=GatewayzProviderApiScrapeFailing", "endpoint=providers"],
            "email,slack-warning",
        ),
        (
            ["severity=warning", "alertname=GatewayzProviderDataStale", "endpoint=stats"],
            "email,slack-warning",
        ),
        (["severity=warning", "alertname=GatewayzProviderDegraded", "provider=google"], "slack-warning"),
        (["severity=warning", "alertname=GatewayzStackTargetDown", "job=loki"], "slack-warning"),
        (["severity=none", "alertname=Watchdog"], "heartbeat"),
        (["severity=none", "alertname=GatewayzProviderDataUnknown"], "blackhole"),
        (["alertname=SomethingElse"], "slack-warning"),
    ],
)
def test_amtool_routes_each_alert_by_severity(labels, receivers):
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def alert_rules() -> list[dict]:
    import yaml

    rules = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


# Where each kind of alert goes, for every combination of channels (the entrypoint leaves out
# the blocks of the channels that are off). Every combination pages somewhere.
ROUTES = {
    "slack": {"page": "slack-critical", "api": "slack-warning", "warning": "slack-warning"},
    "email": {"page": "email", "api": "email", "warning": "email"},
    "both": {"page": "slack-critical,email", "api": "email,slack-warning", "warning": "slack-warning"},
}


def kind_of(rule: dict) -> str:
    if rule["labels"]["severity"] == "critical":
        return "page"
    if rule["alert"] in ("GatewayzProviderApiScrapeFailing", "GatewayzProviderDataStale"):
        return "api"
    return "warning"


@pytest.mark.parametrize("heartbeat", ["on", "off"])
@pytest.mark.parametrize("channels", list(CHANNELS))
def test_every_shipped_alert_is_routed_for_every_combination_of_channels(tmp_path, channels, heartbeat):
    """Every rule of alerts.yml, not a hand-picked list, through the configuration the
    entrypoint renders: pages and API failures on every channel, other warnings on Slack (or
    email without Slack), Watchdog to the heartbeat when there is one, else nowhere."""
    env = dict(CHANNELS[channels])
    if heartbeat == "on":
        env["HEARTBEAT_URL"] = "https://hc-ping.example.com/5f1c2a"
    result = run_entrypoint(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "runtime" / "alertmanager.yml"
    check = amtool("check-config", str(rendered))
    assert check.returncode == 0, check.stdout + check.stderr
    for rule in alert_rules():
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
        routed = amtool("config", "routes", "test", f"--config.file={rendered}", *labels)
        assert routed.returncode == 0, routed.stdout + routed.stderr
        if rule["alert"] == "Watchdog":
            expected = "heartbeat" if heartbeat == "on" else "blackhole"
        elif rule["labels"]["severity"] == "none":
            expected = "blackhole"
        else:
            expected = ROUTES[channels][kind_of(rule)]
        assert routed.stdout.strip() == expected, (channels, heartbeat, rule["alert"])
    text = rendered.read_text()
    assert ("hc-ping.example.com/5f1c2a" in text) == (heartbeat == "on")
    assert ("slack_configs" in text) == (channels != "email")
    assert ("email_configs" in text) == (channels != "slack")
    assert "${" not in "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_every_alert_rule_reaches_a_receiver_that_sends_resolved_notices():
    import yaml

    config = yaml.safe_load((ROOT / CONFIG).read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"blackhole", "heartbeat", "slack-critical", "slack-warning", "email"}
    for receiver in receivers.values():
        for kind in ("slack_configs", "email_configs"):
            for entry in receiver.get(kind, []):
                assert entry["send_resolved"] is True, (receiver["name"], kind)
    # One Slack definition: the warning receiver is the critical one with another channel.
    critical = receivers["slack-critical"]["slack_configs"][0]
    warning = receivers["slack-warning"]["slack_configs"][0]
    assert {k: v for k, v in critical.items() if k != "channel"} == {
        k: v for k, v in warning.items() if k != "channel"
    }
    assert critical["api_url_file"] == "${SLACK_WEBHOOK_URL_FILE}"
    assert (critical["channel"], warning["channel"]) == (
        "${SLACK_CHANNEL_CRITICAL}",
        "${SLACK_CHANNEL_WARNING}",
    )
    assert (ROOT / CONFIG).read_text().count("api_url_file:") == 1
    assert receivers["email"]["email_configs"][0]["auth_password_file"] == "${SMTP_PASSWORD_FILE}"
    assert receivers["heartbeat"]["webhook_configs"][0]["send_resolved"] is False
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "none"), rule["alert"]
        assert {"summary", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
    text = (ROOT / CONFIG).read_text()
    assert "hooks.slack.com" not in text and "smtp_auth_password:" not in text and "api_url:" not in text


def test_the_message_templates_name_provider_summary_runbook_and_dashboard():
    for template in ("gatewayz.text", "gatewayz.email.html"):
        result = amtool(
            "template",
            "render",
            "--template.glob=alertmanager/templates/*.tmpl",
            '--template.text={{ template "' + template + '" . }}',
        )
        assert result.returncode == 0, result.stderr
        # amtool renders with its example alert, whose labels are not ours: check the structure.
        for word in ("Runbook", "Dashboard", "/d/gatewayz-provider-management/", "Silence", "silence"):
            assert word in result.stdout, (template, word)


# --- a real Alertmanager ----------------------------------------------------------------------


@pytest.fixture
def receivers():
    slack, smtp = SlackStandIn(), SmtpStandIn()
    yield slack, smtp
    slack.close()
    smtp.close()


@pytest.fixture
def alertmanager(tmp_path, receivers):
    """The stack's Alertmanager through its entrypoint, sending to the ``receivers``."""
    slack, smtp = receivers
    started = start_alertmanager(tmp_path, notification_env(slack, smtp))
    yield started
    started.stop()


def test_exporter_down_inhibits_the_per_provider_alerts_it_causes(alertmanager, receivers, tmp_path):
    slack, _ = receivers
    job = {"job": "provider_metrics"}
    post_alerts(
        alertmanager.url,
        {"alertname": "GatewayzProviderExporterDown", "severity": "critical", **job},
        {"alertname": "GatewayzProviderDown", "severity": "critical", "provider": "openai", **job},
        {
            "alertname": "GatewayzProviderApiScrapeFailing",
            "severity": "warning",
            "endpoint": "stats",
            **job,
        },
        {"alertname": "GatewayzProviderDown", "severity": "critical", "provider": "groq", "job": "other"},
    )

    found = alertmanager.alert_statuses(lambda labels: (labels["alertname"], labels["job"]), 4, suppressed=2)
    assert found[("GatewayzProviderExporterDown", "provider_metrics")]["state"] == "active"
    assert found[("GatewayzProviderDown", "provider_metrics")]["state"] == "suppressed"
    assert found[("GatewayzProviderDown", "provider_metrics")]["inhibitedBy"]
    assert found[("GatewayzProviderApiScrapeFailing", "provider_metrics")]["state"] == "suppressed"
    assert found[("GatewayzProviderDown", "other")]["state"] == "active"  # another job: not its effect
    # Only what is not inhibited is sent.
    slack.wait_for(lambda m: "GatewayzProviderExporterDown" in slack.text(m), "exporter-down message")
    slack.wait_for(lambda m: "groq" in slack.text(m), "groq message")
    assert not any("openai" in slack.text(m) for m in slack.messages)
    assert os.path.exists(tmp_path / "alertmanager-runtime" / "secrets" / "smtp_password")
    assert json.dumps(slack.messages).count("stand-in-smtp-password") == 0


def test_a_provider_down_silences_only_that_providers_warnings(alertmanager):
    job = {"job": "provider_metrics"}
    post_alerts(
        alertmanager.url,
        {"alertname": "GatewayzProviderDown", "severity": "critical", "provider": "openai", **job},
        {
            "alertname": "GatewayzProviderSlowResponses",
            "severity": "warning",
            "provider": "openai",
            **job,
        },
        {"alertname": "GatewayzProviderSlowResponses", "severity": "warning", "provider": "groq", **job},
        {
            "alertname": "GatewayzProviderApiScrapeFailing",
            "severity": "warning",
            "endpoint": "stats",
            **job,
        },
    )

    found = alertmanager.alert_statuses(
        lambda labels: (labels["alertname"], labels.get("provider", "")), 4, suppressed=1
    )
    assert {key: status["state"] for key, status in found.items()} == {
        ("GatewayzProviderDown", "openai"): "active",
        ("GatewayzProviderSlowResponses", "openai"): "suppressed",
        ("GatewayzProviderSlowResponses", "groq"): "active",  # another provider: not its effect
        ("GatewayzProviderApiScrapeFailing", ""): "active",  # no provider: not its effect
    }


def test_without_grafanas_address_alerts_still_reach_slack_and_email_without_broken_links(
    tmp_path, receivers
):
    """A fresh Railway deploy: Grafana has no public domain, GRAFANA_URL resolves to "https://"."""
    slack, smtp = receivers
    alertmanager = start_alertmanager(tmp_path, {**notification_env(slack, smtp), "GRAFANA_URL": "https://"})
    try:
        labels = {"alertname": "GatewayzProviderDown", "severity": "critical", "provider": "openai"}
        post_alerts(alertmanager.url, {**labels, "job": "provider_metrics", "environment": "staging"})
        message = slack.wait_for(lambda m: "openai" in slack.text(m), "Slack message for openai")
        mail = smtp.wait_for(lambda m: "openai" in m.text, "email for openai")
    finally:
        alertmanager.stop()
    (attachment,) = message["attachments"]
    assert attachment["title"].startswith(
        "[FIRING:1] [staging] GatewayzProviderDown (critical): provider openai"
    )
    assert not attachment.get("title_link")  # a plain title, not a link to "https:///d/…"
    assert "Dashboard: not linked: Grafana's address is not configured" in attachment["text"]
    assert "Dashboard: not linked: Grafana's address is not configured" in mail.text
    assert "not configured" in mail.html
    for text in (json.dumps(message), mail.text, mail.html):
        assert "/d/gatewayz-provider-management" not in text and 'href=""' not in text
    log = (tmp_path / "alertmanager.log").read_text()
    assert "dashboard links are off" in log


def test_data_unknown_holds_the_alerts_computed_from_that_data_and_nothing_else(alertmanager, receivers):
    slack, _ = receivers
    job = {"job": "provider_metrics"}
    post_alerts(
        alertmanager.url,
        {"alertname": "GatewayzProviderDataUnknown", "severity": "none", "endpoint": "providers", **job},
        {
            "alertname": "GatewayzProviderDown",
            "severity": "critical",
            "provider": "openai",
            "data": "providers",
            **job,
        },
        {"alertname": "GatewayzManyProvidersDown", "severity": "critical", "data": "providers", **job},
        {"alertname": "GatewayzNoActiveProviders", "severity": "critical", "data": "stats", **job},
        {
            "alertname": "GatewayzProviderApiScrapeFailing",
            "severity": "warning",
            "endpoint": "providers",
            **job,
        },
    )

    found = alertmanager.alert_statuses(lambda labels: labels["alertname"], 5, suppressed=2)
    assert {key: status["state"] for key, status in found.items()} == {
        "GatewayzProviderDataUnknown": "active",  # sent nowhere (blackhole)
        "GatewayzProviderDown": "suppressed",
        "GatewayzManyProvidersDown": "suppressed",
        "GatewayzNoActiveProviders": "active",  # /stats still answers: its data is good
        "GatewayzProviderApiScrapeFailing": "active",  # the cause: it pages
    }
    slack.wait_for(lambda m: "GatewayzProviderApiScrapeFailing" in slack.text(m), "the cause's message")
    assert not any("DataUnknown" in slack.text(m) for m in slack.messages)


def test_many_providers_down_is_one_message_per_receiver_listing_them_with_a_silence_link(
    tmp_path, receivers
):
    slack, smtp = receivers
    alertmanager = start_alertmanager(tmp_path, notification_env(slack, smtp))
    providers = [f"provider{n}" for n in range(8)]
    try:
        post_alerts(
            alertmanager.url,
            *(
                {
                    "alertname": "GatewayzProviderDown",
                    "severity": "critical",
                    "provider": p,
                    "data": "providers",
                    "job": "provider_metrics",
                    "environment": "production",
                }
                for p in providers
            ),
        )
        message = slack.wait_for(lambda m: "provider7" in slack.text(m), "the Slack message")
        mail = smtp.wait_for(lambda m: "provider7" in m.text, "the email")
        alertmanager.wait(lambda: len(slack.messages) >= 1 and len(smtp.messages) >= 1, "both")
    finally:
        alertmanager.stop()
    assert len(slack.messages) == 1 and len(smtp.messages) == 1, (slack.messages, smtp.messages)
    title = message["attachments"][0]["title"]
    assert title.startswith("[FIRING:8] [production] GatewayzProviderDown (critical): providers ")
    assert all(p in title for p in providers) and mail.subject == title
    silence = (
        "https://grafana.example.com/alerting/silence/new?alertmanager=Alertmanager"
        "&matcher=alertname%3DGatewayzProviderDown&matcher=environment%3Dproduction"
    )
    assert f"Silence: {silence}" in slack.text(message).replace("\\u0026", "&")
    assert "Silence this alert" in mail.html


def compose_defaults(service: str) -> dict[str, str]:
    """A compose service's environment as `docker compose up` gives it with no variable set."""
    import yaml

    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service][
        "environment"
    ]
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in environment.items()}


def test_compose_without_secrets_delivers_slack_email_and_heartbeat_to_the_catcher(tmp_path):
    """`docker compose up` with nothing set: Alertmanager starts on the compose defaults and the
    catcher (compose/catcher.py, run here on loopback) receives all three kinds of message."""
    smtp_port, http_port = free_port(), free_port()
    catcher = subprocess.Popen(
        [sys.executable, str(ROOT / "compose/catcher.py")],
        env={
            "CATCHER_SMTP_PORT": str(smtp_port),
            "CATCHER_HTTP_PORT": str(http_port),
            "PATH": "/usr/bin:/bin",
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    env = {
        k: v.replace("catcher:1025", f"127.0.0.1:{smtp_port}").replace(
            "catcher:8025", f"127.0.0.1:{http_port}"
        )
        for k, v in compose_defaults("alertmanager").items()
    }
    assert env["SMTP_PASSWORD"] == "" and env["SMTP_FROM"] == "GatewayZ Alerts <alerts@example.com>"
    try:
        alertmanager = start_alertmanager(tmp_path, env)
        try:
            post_alerts(
                alertmanager.url,
                {
                    "alertname": "GatewayzProviderDown",
                    "severity": "critical",
                    "provider": "openai",
                    "environment": "local",
                },
                {"alertname": "Watchdog", "severity": "none", "environment": "local"},
            )

            def caught() -> str | None:
                page = requests.get(f"http://127.0.0.1:{http_port}/", timeout=5).text
                wanted = ("slack: /slack: ", "email: to ", "webhook: /heartbeat: firing Watchdog")
                return page if all(w in page for w in wanted) else None

            page = alertmanager.wait(caught, "the catcher holding a Slack message, an email and a heartbeat")
        finally:
            alertmanager.stop()
    finally:
        catcher.terminate()
        log, _ = catcher.communicate(timeout=10)
    assert "[FIRING:1] [local] GatewayzProviderDown (critical): provider openai" in page
    assert (
        "catcher: slack: /slack: [FIRING:1] [local] GatewayzProviderDown (critical): provider openai" in log
    )
    assert "catcher: email: to <oncall@example.com>: [FIRING:1] [local] GatewayzProviderDown" in log
