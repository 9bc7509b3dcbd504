"""Prometheus is the subject here: promtool on the shipped files, and a real Prometheus
scraping a live exporter with the project's rules and the dashboard's queries."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from conftest import ROOT, SEED_PROVIDERS, SEED_STATS, free_port

pytestmark = pytest.mark.prometheus
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
MISSING = "Debian's prometheus package is needed (apt-get install prometheus); .ci/run installs it"


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, MISSING
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_prometheus_config():
    result = promtool("check", "config", "prometheus/prom.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def rule_files() -> list[Path]:
    """Every rule file under prometheus/ (not the promtool unit tests of them)."""
    return sorted(p for p in (ROOT / "prometheus").glob("*.yml") if "groups" in yaml.safe_load(p.read_text()))


def test_promtool_checks_every_rule_file():
    files = rule_files()
    assert {"alerts.yml", "recording_rules.yml"} <= {f.name for f in files}
    result = promtool("check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


RUNBOOK_BASE = (
    "https://github.com/Alpaca-Network/gatewayz-provider-metrics-exporter/blob/main/docs/runbook.md#"
)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def every_alert() -> list[tuple[str, dict]]:
    return [
        (path.name, rule)
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
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
    anchors = github_anchors((ROOT / "docs/runbook.md").read_text())
    assert url.removeprefix(RUNBOOK_BASE) in anchors, f"docs/runbook.md has no section for {rule['alert']}"


def test_the_runbook_anchors_follow_githubs_rules():
    assert github_anchors("## GatewayzProviderDown\n### What it means: `x`") == {
        "gatewayzproviderdown",
        "what-it-means-x",
    }


def test_promtool_unit_tests_of_the_alert_rules_pass():
    result = promtool("test", "rules", "prometheus/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


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


def test_promtool_checks_the_recording_rules_and_their_unit_tests_pass():
    result = promtool("check", "rules", "prometheus/recording_rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("test", "rules", "prometheus/recording_rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


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


def exporter_job(config: dict) -> dict:
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "provider_metrics"]
    return job


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


RULE_FILES = rule_files()


class Prometheus:
    """A real Prometheus on loopback with the given scrape targets and the project's rules."""

    def __init__(self, tmp: Path, scrape_config: dict, rule_files: list[Path] | None = None):
        assert PROMETHEUS, MISSING
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files or RULE_FILES],
            "scrape_configs": [scrape_config],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "prometheus.log", "w"),
        )
        self.log = tmp / "prometheus.log"
        self._wait(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200, "ready")

    def _wait(self, predicate, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except requests.RequestException:
                pass
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"Prometheus never became {what}:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list:
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
        assert response["status"] == "success", (expr, response)
        return response["data"]["result"]

    def wait_for(self, expr: str, what: str, timeout: float = 30.0):
        return self._wait(lambda: self.query(expr), what, timeout)

    def api(self, path: str) -> dict:
        return requests.get(self.url + path, timeout=5).json()["data"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def stack(tmp_path, api, exporter_for):
    """Exporter (polling a fake API every 0.5 s) scraped every second by a real Prometheus."""
    providers = copy.deepcopy(SEED_PROVIDERS)
    providers[2]["health_status"] = "down"  # google: active and down
    api.set_data(providers, {**SEED_STATS, "down": 2, "degraded": 0})
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.5")
    exporter.start()
    prometheus = Prometheus(
        tmp_path,
        {
            "job_name": "provider_metrics",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.server.port}"]}],
        },
    )
    yield prometheus, exporter
    prometheus.stop()


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

    rules = prometheus._wait(evaluated_rules, "evaluating every rule")
    shipped = sum(len(g["rules"]) for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"])
    assert len(rules) == shipped
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []

    alerts = prometheus._wait(
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


def run_prometheus_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """prometheus/entrypoint.sh on a copy of prometheus/, with a stub that prints what the real
    binary would get; the real promtool checks the rendered configuration."""
    assert PROMTOOL, MISSING
    config = tmp_path / "prometheus-config"
    shutil.copytree(ROOT / "prometheus", config, dirs_exist_ok=True)
    stub = tmp_path / "prometheus-stub"
    stub.write_text('#!/bin/sh\necho "args=$*"\n')
    stub.chmod(0o755)
    return subprocess.run(
        ["sh", str(ROOT / "prometheus/entrypoint.sh"), "--storage.tsdb.path=/prometheus"],
        env={
            "PATH": "/usr/bin:/bin",
            "PROMETHEUS_CONFIG_DIR": str(config),
            "PROMETHEUS_BIN": str(stub),
            "PROMTOOL_BIN": PROMTOOL,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


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
