"""Alertmanager's image entrypoint: it takes channels, settings and secrets from the environment
or files, keeps only the configured channels, and refuses what could change the configuration."""

from __future__ import annotations

import re
import stat

import pytest
import yaml

from support import ROOT
from support.stack import CHANNELS, EMAIL_ONLY, GOOD, SLACK_ONLY, amtool, run_entrypoint

pytestmark = pytest.mark.prometheus


def test_without_any_channel_the_entrypoint_stops_with_one_line_naming_both(tmp_path):
    result = run_entrypoint(tmp_path)
    assert result.returncode == 2 and "args=" not in result.stdout
    (line,) = result.stderr.splitlines()
    for name in ("SLACK_WEBHOOK_URL", "ALERT_EMAIL_TO", "SMTP_HOST", "SMTP_FROM"):
        assert name in line, name


def test_a_half_configured_email_channel_names_every_missing_setting(tmp_path):
    result = run_entrypoint(tmp_path, **SLACK_ONLY, ALERT_EMAIL_TO="oncall@example.com")
    assert result.returncode == 2 and "args=" not in result.stdout
    assert "SMTP_HOST" in result.stderr and "SMTP_FROM" in result.stderr
    result = run_entrypoint(tmp_path, **{k: v for k, v in GOOD.items() if k != "SMTP_PASSWORD"})
    assert result.returncode == 2 and "SMTP_PASSWORD" in result.stderr


def test_each_problem_is_one_line_of_its_own_naming_its_variable(tmp_path):
    """A log viewer filtered on one line, or showing the last one, still says what to fix."""
    result = run_entrypoint(
        tmp_path, **{**GOOD, "SMTP_PORT": "twenty-five", "SLACK_CHANNEL_WARNING": "#a b", "SMTP_PASSWORD": ""}
    )
    assert result.returncode == 2 and "args=" not in result.stdout
    lines = result.stderr.splitlines()
    names = ["SMTP_PORT", "SLACK_CHANNEL_WARNING", "SMTP_PASSWORD"]
    assert len(lines) == len(names), lines
    for line, name in zip(lines, names, strict=True):
        assert line.startswith("alertmanager entrypoint: cannot start: ") and name in line, line


@pytest.mark.parametrize("channels", ["slack", "email"])
def test_one_channel_alone_is_enough(tmp_path, channels):
    result = run_entrypoint(tmp_path, **CHANNELS[channels])
    assert result.returncode == 0 and "args=--config.file=" in result.stdout, result.stderr
    notice = result.stdout + result.stderr
    assert ("Slack" in notice) == (channels == "slack") and ("email to" in notice) == (channels == "email")


def test_address_lists_with_spaces_and_a_sender_with_a_display_name_are_accepted(tmp_path):
    result = run_entrypoint(
        tmp_path,
        **{
            **EMAIL_ONLY,
            "ALERT_EMAIL_TO": " a@example.com,  b@example.com ",
            "SMTP_FROM": "GatewayZ Alerts <alerts@example.com>",
        },
    )
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert "to: 'a@example.com,b@example.com'" in rendered
    assert "smtp_from: 'GatewayZ Alerts <alerts@example.com>'" in rendered
    assert amtool("check-config", str(tmp_path / "runtime" / "alertmanager.yml")).returncode == 0


# Odd but valid: each is rendered exactly as given and the result passes amtool check-config.
ODD_BUT_VALID = [
    # A ping URL with a query string: "&" means "the matched text" to sed, so it must arrive as "&".
    (
        {"HEARTBEAT_URL": "https://cronitor.example.com/p/key/job?state=complete&env=prod"},
        "url: 'https://cronitor.example.com/p/key/job?state=complete&env=prod'",
    ),
    ({"HEARTBEAT_URL": "http://[fd12::7]:8080/ping"}, "url: 'http://[fd12::7]:8080/ping'"),
    ({"SMTP_HOST": "[2001:db8::25]:2525"}, "smtp_smarthost: '[2001:db8::25]:2525'"),
    ({"SMTP_HOST": "[2001:db8::25]"}, "smtp_smarthost: '[2001:db8::25]:587'"),
    ({"SMTP_HOST": "2001:db8::25"}, "smtp_smarthost: '[2001:db8::25]:587'"),
    (
        {"ALERT_EMAIL_TO": "On-call Team <oncall@example.com>, b@example.com"},
        "to: 'On-call Team <oncall@example.com>,b@example.com'",
    ),
]


@pytest.mark.parametrize(("env", "rendered_line"), ODD_BUT_VALID)
def test_odd_but_valid_values_are_rendered_exactly_as_given(tmp_path, env, rendered_line):
    result = run_entrypoint(tmp_path, **{**GOOD, **env})
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "runtime" / "alertmanager.yml"
    assert rendered_line in rendered.read_text()
    assert amtool("check-config", str(rendered)).returncode == 0


def test_a_malformed_slack_webhook_url_is_named_but_never_printed(tmp_path):
    result = run_entrypoint(tmp_path, **{**GOOD, "SLACK_WEBHOOK_URL": "hooks.slack.com/services/T/B/s3cr3t"})
    assert result.returncode == 2 and "args=" not in result.stdout
    assert "SLACK_WEBHOOK_URL" in result.stderr and "s3cr3t" not in result.stderr + result.stdout


def test_alertmanagers_external_url_becomes_its_web_external_url(tmp_path):
    result = run_entrypoint(tmp_path, **SLACK_ONLY, ALERTMANAGER_EXTERNAL_URL="https://am.example.com")
    assert result.returncode == 0 and "--web.external-url=https://am.example.com" in result.stdout


def test_per_severity_slack_channels_are_optional(tmp_path):
    result = run_entrypoint(
        tmp_path, **SLACK_ONLY, SLACK_CHANNEL_CRITICAL="#pager", SLACK_CHANNEL_WARNING="alerts"
    )
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert "channel: '#pager'" in rendered and "channel: 'alerts'" in rendered
    default = run_entrypoint(tmp_path, **SLACK_ONLY)
    assert (
        default.returncode == 0 and "channel: ''" in (tmp_path / "runtime" / "alertmanager.yml").read_text()
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERT_EMAIL_TO", "oncall@example.com' }\nroute: {"),
        ("SMTP_HOST", "smtp.example.com|x"),
        ("SMTP_PORT", "25; rm"),
        ("SMTP_FROM", "not an address"),
        ("GRAFANA_URL", "javascript:alert(1)"),
        ("SMTP_REQUIRE_TLS", "maybe"),
        ("SMTP_FROM", "Alerts <a@example.com>|g"),
        ("SLACK_CHANNEL_CRITICAL", "#pager' }"),
        ("HEARTBEAT_URL", "https://hc-ping.example.com/x'y"),
        ("HEARTBEAT_URL", "https://user:secret@hc-ping.example.com/x"),
        ("SLACK_WEBHOOK_URL", "not a url"),
        ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x y"),
        ("HEARTBEAT_URL", "ftp://hc-ping.example.com/x"),
        ("ALERTMANAGER_EXTERNAL_URL", "alertmanager:9093"),
    ],
)
def test_the_entrypoint_rejects_values_that_could_change_the_configuration(tmp_path, name, value):
    result = run_entrypoint(tmp_path, **{**GOOD, name: value})
    assert result.returncode == 2 and name in result.stderr and "args=" not in result.stdout


# grep matches line by line: with a line break, one line can match the pattern while the others
# reach sed as commands of their own (here: the Slack webhook redirected, the recipients changed).
INJECTIONS = {
    "ALERT_EMAIL_TO": "oncall@example.com|g\ns|api_url_file: .*|api_url: https://evil.invalid/x|\n9999a@b.c",
    "SMTP_USERNAME": "apikey|g\ns|to: .*|to: 'thief@evil.invalid'|\n9999a@b.c",
    "SMTP_HOST": "smtp.example.com\n",
    "GRAFANA_URL": "https://grafana.example.com\nhttps://other.example.com",
    "SMTP_PORT": "587\n",
    "HEARTBEAT_URL": "https://hc.example.com/a\nhttps://evil.invalid/",
    "SLACK_CHANNEL_WARNING": "#alerts\n#other",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x\nhttps://evil.invalid/",
}


@pytest.mark.parametrize("name", INJECTIONS)
def test_the_entrypoint_refuses_values_with_a_line_break(tmp_path, name):
    result = run_entrypoint(tmp_path, **{**GOOD, name: INJECTIONS[name]})
    assert result.returncode == 2 and "args=" not in result.stdout, result.stdout + result.stderr
    assert name in result.stderr
    rendered = tmp_path / "runtime" / "alertmanager.yml"
    assert not rendered.exists() or "evil.invalid" not in rendered.read_text()


# Railway resolves "https://${{grafana.RAILWAY_PUBLIC_DOMAIN}}" to "https://" until Grafana has a
# public domain. Alerts come first: Alertmanager starts, and its messages carry no link.
NO_GRAFANA_HOST = ["", "https://", "https:///", "http://"]


@pytest.mark.parametrize("value", NO_GRAFANA_HOST)
def test_the_entrypoint_starts_without_dashboard_links_when_grafana_url_has_no_host(tmp_path, value):
    result = run_entrypoint(tmp_path, **{**GOOD, "GRAFANA_URL": value})
    assert result.returncode == 0 and "args=--config.file=" in result.stdout, result.stdout + result.stderr
    output = result.stdout + result.stderr
    (notice,) = [line for line in output.splitlines() if "dashboard links" in line]
    assert "dashboard links are off" in notice and "GRAFANA_URL" in notice
    runtime = tmp_path / "runtime"
    assert "${GRAFANA_URL}" not in (runtime / "templates" / "gatewayz.tmpl").read_text()
    for template in ("gatewayz.text", "gatewayz.email.html", "gatewayz.dashboard_url"):
        result = amtool(
            "template",
            "render",
            f"--template.glob={runtime / 'templates' / '*.tmpl'}",
            '--template.text={{ template "' + template + '" . }}',
        )
        assert result.returncode == 0, result.stderr
        if template == "gatewayz.dashboard_url":  # Slack's title_link: none rather than a broken one
            assert result.stdout == "", result.stdout
            continue
        lines = [line for line in result.stdout.splitlines() if "Dashboard" in line]
        assert lines, result.stdout  # amtool's example has two alerts: a dashboard line each
        for line in lines:
            assert "not configured" in line and "GRAFANA_URL" in line and "/d/" not in line, line
            assert "href" not in line and "://" not in line, line


@pytest.mark.parametrize(
    "value", ["https://:3000", "https:// grafana.example.com", "ftp://grafana.example.com", "https://\n", " "]
)
def test_the_entrypoint_still_refuses_a_grafana_url_that_is_malformed_rather_than_empty(tmp_path, value):
    result = run_entrypoint(tmp_path, **{**GOOD, "GRAFANA_URL": value})
    assert result.returncode == 2 and "GRAFANA_URL" in result.stderr and "args=" not in result.stdout


def test_railways_grafana_url_reference_starts_alertmanager_before_and_after_grafana_has_a_domain(tmp_path):
    """The value railway.py gives Alertmanager, resolved as Railway resolves it: "" for a
    public domain that does not exist yet, then the generated one."""
    from support.deploy import railway_services

    variables = railway_services()["alertmanager"]["variables"]
    reference = variables["GRAFANA_URL"]["value"]
    assert "${{grafana.RAILWAY_PUBLIC_DOMAIN}}" in reference
    before = run_entrypoint(
        tmp_path, **{**GOOD, "GRAFANA_URL": reference.replace("${{grafana.RAILWAY_PUBLIC_DOMAIN}}", "")}
    )
    assert before.returncode == 0, before.stderr
    assert "dashboard links are off" in before.stdout + before.stderr
    after = run_entrypoint(
        tmp_path,
        **{
            **GOOD,
            "GRAFANA_URL": reference.replace("${{grafana.RAILWAY_PUBLIC_DOMAIN}}", "gz.up.railway.app"),
        },
    )
    assert after.returncode == 0, after.stderr
    assert "dashboard links to https://gz.up.railway.app" in after.stdout
    templates = (tmp_path / "runtime" / "templates" / "gatewayz.tmpl").read_text()
    assert "https://gz.up.railway.app/d/gatewayz-provider-management/" in templates


def test_secrets_from_variables_land_in_private_files_and_leave_the_environment(tmp_path):
    result = run_entrypoint(tmp_path, **GOOD)
    assert result.returncode == 0, result.stderr
    runtime = tmp_path / "runtime"
    assert f"args=--config.file={runtime / 'alertmanager.yml'} --storage.path=/data" in result.stdout
    slack = runtime / "secrets" / "slack_webhook_url"
    password = runtime / "secrets" / "smtp_password"
    assert slack.read_text() == GOOD["SLACK_WEBHOOK_URL"] and password.read_text() == GOOD["SMTP_PASSWORD"]
    for path in (slack, password, runtime / "alertmanager.yml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    rendered = (runtime / "alertmanager.yml").read_text()
    assert f"api_url_file: '{slack}'" in rendered and f"auth_password_file: '{password}'" in rendered
    settings = "\n".join(line for line in rendered.splitlines() if not line.lstrip().startswith("#"))
    assert "smtp_smarthost: 'smtp.example.com:587'" in settings and "${" not in settings
    # No secret value in the configuration, on the console, or in Alertmanager's environment.
    for secret in (GOOD["SLACK_WEBHOOK_URL"], GOOD["SMTP_PASSWORD"]):
        assert secret not in rendered and secret not in result.stdout + result.stderr
    assert "SLACK_WEBHOOK_URL=" not in result.stdout and "SMTP_PASSWORD=" not in result.stdout
    templates = (runtime / "templates" / "gatewayz.tmpl").read_text()
    assert "http://localhost:3000" in templates and "${GRAFANA_URL}" not in templates


def test_secret_files_are_used_where_they_are(tmp_path):
    slack = tmp_path / "slack-secret"
    slack.write_text("https://hooks.example.invalid/x\n")
    password = tmp_path / "smtp-secret"
    password.write_text("pw")
    env = {k: v for k, v in GOOD.items() if k not in ("SLACK_WEBHOOK_URL", "SMTP_PASSWORD")}
    result = run_entrypoint(
        tmp_path, **env, SLACK_WEBHOOK_URL_FILE=str(slack), SMTP_PASSWORD_FILE=str(password)
    )
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert f"api_url_file: '{slack}'" in rendered and f"auth_password_file: '{password}'" in rendered
    assert not (tmp_path / "runtime" / "secrets" / "slack_webhook_url").exists()
    missing = run_entrypoint(
        tmp_path, **env, SLACK_WEBHOOK_URL_FILE=str(tmp_path / "nope"), SMTP_PASSWORD="x"
    )
    assert missing.returncode == 2 and "SLACK_WEBHOOK_URL_FILE" in missing.stderr


def test_the_entrypoint_understands_the_names_their_running_alertmanager_uses(tmp_path):
    """railway-grafana-stack's Alertmanager is set up with SMTP_HOST=host:port, SMTP_USER and
    ALERT_EMAIL_OPS; the same variables start this one."""
    result = run_entrypoint(
        tmp_path,
        SLACK_WEBHOOK_URL=GOOD["SLACK_WEBHOOK_URL"],
        SMTP_HOST="smtp.gmail.com:465",
        SMTP_USER="alerts@example.com",
        SMTP_PASSWORD="app-password",
        SMTP_FROM="alerts@example.com",
        ALERT_EMAIL_OPS="ops@example.com,oncall@example.com",
    )
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert "smtp_smarthost: 'smtp.gmail.com:465'" in rendered
    assert "smtp_auth_username: 'alerts@example.com'" in rendered
    assert "smtp_require_tls: false" in rendered  # 465 is TLS from the first byte
    assert "to: 'ops@example.com,oncall@example.com'" in rendered
    assert (tmp_path / "runtime" / "secrets" / "smtp_password").read_text() == "app-password"
    starttls = run_entrypoint(tmp_path, **GOOD, SMTP_PORT="587")
    assert "smtp_require_tls: true" in (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert starttls.returncode == 0


def compose_environment(service: str, caller: dict[str, str]) -> dict[str, str]:
    """A compose service's environment as docker compose interpolates it from the caller's."""
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service][
        "environment"
    ]

    def value(match: re.Match) -> str:
        return caller.get(match[1]) or match[2]

    return {k: re.sub(r"\$\{(\w+):-([^}]*)\}", value, str(v)) for k, v in environment.items()}


def test_compose_alertmanager_keeps_the_port_given_in_smtp_host(tmp_path):
    caller = {
        "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/x",
        "ALERT_EMAIL_TO": "oncall@example.com",
        "SMTP_HOST": "smtp.gmail.com:465",  # the form the GatewayZ team's Alertmanager uses
        "SMTP_FROM": "alerts@example.com",
        "SMTP_USERNAME": "alerts@example.com",
        "SMTP_PASSWORD": "app-password",
    }
    result = run_entrypoint(tmp_path, **compose_environment("alertmanager", caller))
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "runtime" / "alertmanager.yml").read_text()
    assert "smtp_smarthost: 'smtp.gmail.com:465'" in rendered
