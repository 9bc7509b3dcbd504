"""Prometheus is the subject here: promtool on the shipped files, and a real Prometheus
scraping a live exporter with the project's rules and the dashboard's queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml

from support import ROOT
from support.stack import exporter_job, promtool, rule_files, run_prometheus_entrypoint

pytestmark = pytest.mark.prometheus


def test_promtool_checks_the_prometheus_config():
    result = promtool("check", "config", "prometheus/prom.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_every_rule_file():
    files = rule_files()
    assert {"alerts.yml", "recording_rules.yml"} <= {f.name for f in files}
    result = promtool("check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alert_rules_pass():
    result = promtool("test", "rules", "prometheus/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_recording_rules_and_their_unit_tests_pass():
    result = promtool("check", "rules", "prometheus/recording_rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("test", "rules", "prometheus/recording_rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def dashboard_queries() -> tuple[list[tuple[str, str]], str]:
    dashboard = json.loads((ROOT / "grafana/dashboards/gatewayz-provider-management.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == "prometheus":
                queries.append((panel["title"], target["expr"]))
    (provider,) = [v for v in dashboard["templating"]["list"] if v["name"] == "provider"]
    return queries, provider["query"]["query"]


def grafana_to_promql(expr: str) -> str:
    """Substitute what Grafana would: the provider variable (All) and the rate interval."""
    return expr.replace("$provider", ".*").replace("$__rate_interval", "1m")


def test_a_real_prometheus_runs_every_dashboard_query_and_rule_and_raises_provider_down(stack):
    prometheus, _exporter = stack
    prometheus.wait_for('gatewayz_provider_health_status{provider="google"} == 3', "scraping the exporter")
    # increase() over 1m needs two samples of each counter
    prometheus.wait_for("count_over_time(gatewayz_provider_scrape_errors_total[1m]) >= 2", "two scrapes deep")

    target = prometheus.api("/api/v1/targets")["activeTargets"][0]
    assert target["health"] == "up", target

    queries, _ = dashboard_queries()
    empty = [(title, expr) for title, expr in queries if not prometheus.query(grafana_to_promql(expr))]
    assert empty == [], f"dashboard queries without data: {empty}"

    def evaluated_rules():
        rules = [r for g in prometheus.api("/api/v1/rules")["groups"] for r in g["rules"]]
        return rules if rules and not any(r["lastEvaluation"].startswith("0001") for r in rules) else None

    rules = prometheus.wait(evaluated_rules, "evaluating every rule")
    shipped = sum(len(g["rules"]) for f in rule_files() for g in yaml.safe_load(f.read_text())["groups"])
    assert len(rules) == shipped
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []

    alerts = prometheus.wait(
        lambda: [
            a
            for a in prometheus.api("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == "GatewayzProviderDown"
        ],
        "alerting",
    )
    assert [a["labels"]["provider"] for a in alerts] == ["google"]  # mistral is down but inactive
    assert alerts[0]["state"] in ("pending", "firing")
    assert alerts[0]["annotations"]["summary"] == "GatewayZ provider google is down"


def test_prometheus_parses_the_openmetrics_exposition_too(stack):
    """Prometheus asks for OpenMetrics first; the suffix-breaking seed names must still ingest."""
    prometheus, _ = stack
    result = prometheus.wait_for("gatewayz_providers_total", "scraping")
    assert float(result[0]["value"][1]) == 4
    assert prometheus.query('gatewayz_provider_info{provider="openai",name="OpenAI"}')
    assert prometheus.query('gatewayz_provider_scrape_errors_total{endpoint="stats",reason="timeout"}')
    assert prometheus.query("gatewayz_exporter_build_info")


def test_the_provider_variable_query_lists_every_provider(stack):
    prometheus, _ = stack
    _, variable = dashboard_queries()
    assert variable == "label_values(gatewayz_provider_health_status, provider)"
    prometheus.wait_for("gatewayz_provider_health_status", "scraping")
    values = requests.get(
        prometheus.url + "/api/v1/label/provider/values",
        params={"match[]": "gatewayz_provider_health_status"},
        timeout=5,
    ).json()["data"]
    assert sorted(values) == ["anthropic", "google", "mistral", "openai"]


def test_the_compatibility_names_return_data_on_a_real_prometheus_and_add_up(stack):
    """Their dashboard's queries (the bare names) on a Prometheus scraping the exporter."""
    prometheus, _ = stack
    prometheus.wait_for('gatewayz_provider_health_status{provider="google"} == 3', "scraping the exporter")
    prometheus.wait_for("gatewayz_providers_with_image_generation", "recording")

    def values(expr: str) -> dict[str, float]:
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in prometheus.query(expr)}

    # The stack's data: openai, anthropic healthy; google and mistral down; mistral inactive.
    health = values("gatewayz_providers_by_health_status")
    assert health == {
        json.dumps({"__name__": "gatewayz_providers_by_health_status", "health_status": s}): n
        for s, n in (("healthy", 2), ("degraded", 0), ("down", 2), ("unknown", 0))
    }
    status = values("gatewayz_providers_by_status")
    assert sorted(status.values()) == [1, 3]
    assert values('gatewayz_providers_by_status{status="inactive"}') == {
        json.dumps({"__name__": "gatewayz_providers_by_status", "status": "inactive"}): 1
    }
    count = float(prometheus.query("count(gatewayz_provider_health_status)")[0]["value"][1])
    assert sum(health.values()) == sum(status.values()) == count == 4
    assert float(prometheus.query("gatewayz_providers_total")[0]["value"][1]) == count
    for capability, expected in (
        ("streaming", 4),
        ("function_calling", 3),
        ("vision", 3),
        ("image_generation", 1),
    ):
        (only,) = values(f"gatewayz_providers_with_{capability}").values()
        assert only == expected, capability


# --- the image's entrypoint --------------------------------------------------------------------


def rendered(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "prometheus-config" / "prom.rendered.yml").read_text())


def rendered_targets(tmp_path: Path) -> tuple[list[str], list[str]]:
    config = rendered(tmp_path)
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    return exporter_job(config)["static_configs"][0]["targets"], alertmanagers["static_configs"][0]["targets"]


def test_the_entrypoint_sets_the_environment_label_the_stack_targets_and_the_external_url(tmp_path):
    result = run_prometheus_entrypoint(
        tmp_path,
        ENVIRONMENT="staging",
        PROMETHEUS_EXTERNAL_URL="https://prometheus.example.com",
        PROMETHEUS_INTERNAL_URL="http://prometheus.railway.internal:9090",
        ALERTMANAGER_INTERNAL_URL="http://alertmanager.railway.internal:9093",
        LOKI_INTERNAL_URL="http://[fd12::2]:3100",
        TEMPO_INTERNAL_URL="http://tempo.railway.internal:3200",
        GRAFANA_INTERNAL_URL="http://grafana.railway.internal:3000",
    )
    assert result.returncode == 0, result.stderr
    assert "--web.external-url=https://prometheus.example.com" in result.stdout
    config = rendered(tmp_path)
    assert config["global"]["external_labels"] == {"environment": "staging"}
    assert {j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]} == {
        "provider_metrics": "provider-metrics-exporter:8001",
        "prometheus": "prometheus.railway.internal:9090",
        "alertmanager": "alertmanager.railway.internal:9093",
        "loki": "[fd12::2]:3100",
        "tempo": "tempo.railway.internal:3200",
        "grafana": "grafana.railway.internal:3000",
    }
    default = run_prometheus_entrypoint(tmp_path)
    assert default.returncode == 0 and "--web.external-url" not in default.stdout
    assert rendered(tmp_path)["global"]["external_labels"] == {"environment": "production"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENVIRONMENT", "prod'} x"),
        ("ENVIRONMENT", "staging\nproduction"),
        ("PROMETHEUS_EXTERNAL_URL", "javascript:alert(1)"),
        ("PROMETHEUS_EXTERNAL_URL", "https://p.example.com\n"),
        ("LOKI_INTERNAL_URL", "http://loki"),
        ("GRAFANA_INTERNAL_URL", "http://grafana:3000/'] }"),
    ],
)
def test_the_entrypoint_refuses_a_malformed_environment_or_url(tmp_path, name, value):
    result = run_prometheus_entrypoint(tmp_path, **{name: value})
    assert result.returncode == 2 and "args=" not in result.stdout and name in result.stderr


def test_the_entrypoint_takes_its_targets_from_the_environment_ipv6_literals_included(tmp_path):
    result = run_prometheus_entrypoint(
        tmp_path,
        EXPORTER_INTERNAL_URL="http://[fd12:3456::1]:8001/",
        ALERTMANAGER_INTERNAL_URL="http://alertmanager.railway.internal:9093",
    )
    assert result.returncode == 0, result.stderr
    assert rendered_targets(tmp_path) == (["[fd12:3456::1]:8001"], ["alertmanager.railway.internal:9093"])
    assert "args=--config.file=" in result.stdout
    unset = run_prometheus_entrypoint(tmp_path)
    assert unset.returncode == 0 and rendered_targets(tmp_path) == (
        ["provider-metrics-exporter:8001"],
        ["alertmanager:9093"],
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXPORTER_INTERNAL_URL", "http://user:s3cret@exporter:8001"),  # credentials: never echoed
        ("EXPORTER_INTERNAL_URL", "https://exporter:8001"),
        ("EXPORTER_INTERNAL_URL", "http://exporter"),
        ("EXPORTER_INTERNAL_URL", "http://exporter:8001'] }"),
        ("ALERTMANAGER_INTERNAL_URL", "http://alert manager:9093"),
        # A line break: one line matches the pattern, the others would reach sed as commands.
        ("EXPORTER_INTERNAL_URL", "http://exporter:8001\n"),
        (
            "EXPORTER_INTERNAL_URL",
            "http://exporter:8001/g\ns|job_name: .provider_metrics.|job_name: hijacked|\n9999a:1",
        ),
        (
            "ALERTMANAGER_INTERNAL_URL",
            "http://am:9093/g\ns|targets: .provider-metrics-exporter:8001.|targets: ['evil:80']|\n9999a:1",
        ),
    ],
)
def test_the_entrypoint_refuses_a_target_that_could_change_the_configuration(tmp_path, name, value):
    result = run_prometheus_entrypoint(tmp_path, **{name: value})
    assert result.returncode == 2 and "args=" not in result.stdout, result.stdout + result.stderr
    assert name in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
