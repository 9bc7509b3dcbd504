"""Deployment files as code: Dockerfile, Railway (TOML and IaC), Grafana provisioning, compose."""

import io
import json
import logging
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from support import ROOT
from support.deploy import IMAGES, instructions, railway_graph, railway_services

DASHBOARD = ROOT / "grafana" / "dashboards" / "gatewayz-provider-management.json"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"


@pytest.mark.parametrize("name", [name for name in IMAGES if name != "provider-metrics-exporter"])
def test_stack_images_pin_their_base_by_version_and_digest_and_bake_their_config(name):
    dockerfile, context = IMAGES[name]
    steps = instructions(dockerfile)
    (base,) = [rest for keyword, rest in steps if keyword == "FROM"]
    assert re.fullmatch(r"[a-z/]+:v?\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base), base
    copies = [shlex.split(rest) for keyword, rest in steps if keyword == "COPY"]
    assert copies, "configuration is baked in, not mounted"
    for args in copies:
        for source in [a for a in args if not a.startswith("--")][:-1]:
            assert (ROOT / context / source).exists(), (dockerfile, source)
    (user,) = [rest for keyword, rest in steps if keyword == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, user
    assert any(keyword == "EXPOSE" for keyword, _ in steps)


def test_dockerfile_base_is_pinned_by_version_and_digest_within_the_supported_pythons():
    (base,) = [rest for keyword, rest in instructions("Dockerfile") if keyword == "FROM"]
    found = re.fullmatch(r"python:3\.(\d+)\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base)
    assert found, base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert int(found.group(1)) >= int(re.fullmatch(r">=3\.(\d+)", requires).group(1)), (base, requires)


def test_dockerfile_installs_pinned_requirements_before_copying_source_and_runs_as_non_root():
    steps = instructions("Dockerfile")
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
    assert ".venv" in ignored  # the README's first command makes one in the build context
    for keyword, rest in instructions("Dockerfile"):
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source


# --- Railway ------------------------------------------------------------------


def test_railway_toml_builds_the_dockerfile_with_health_check_restart_and_draining():
    config = tomllib.loads((ROOT / "railway.toml").read_text())
    build = dict(config["build"])
    assert build.pop("watchPatterns")  # the same as the IaC's, checked with them
    assert build == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    deploy = config["deploy"]
    assert deploy["healthcheckPath"] == "/healthz"
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert isinstance(deploy["drainingSeconds"], int) and deploy["drainingSeconds"] >= 5
    assert (ROOT / config["build"]["dockerfilePath"]).exists()


def literal_values(service: dict) -> dict[str, str]:
    return {k: v["value"] for k, v in service.get("variables", {}).items() if v["type"] == "literal"}


def test_railway_iac_describes_the_same_exporter_service_as_railway_toml():
    exporter = railway_services()["provider-metrics-exporter"]
    toml = tomllib.loads((ROOT / "railway.toml").read_text())
    assert exporter["build"] == toml["build"]
    assert "rootDirectory" not in exporter["source"]
    for key, value in toml["deploy"].items():
        assert exporter["deploy"][key] == value, key
    variables = exporter["variables"]
    assert variables["ADMIN_KEY"] == {"type": "sharedReference", "name": "ADMIN_KEY"}  # a reference, no value
    assert variables["PORT"]["value"] == "8001"


def test_railway_iac_builds_every_image_of_the_stack_with_a_health_check_on_its_port():
    services = railway_services()
    assert set(services) == set(IMAGES)
    expected_health = {
        "provider-metrics-exporter": "/healthz",
        "prometheus": "/-/ready",
        "alertmanager": "/-/ready",
        "grafana": "/api/health",
        "loki": "/ready",
        "tempo": "/ready",
    }
    for name, service in services.items():
        dockerfile, context = IMAGES[name]
        assert service["source"]["type"] == "github"
        assert service["source"].get("rootDirectory", ".") == context, name
        build = dict(service["build"])
        assert build.pop("watchPatterns"), name  # checked below
        assert build == {
            "builder": "DOCKERFILE",
            "dockerfilePath": str(Path(dockerfile).relative_to(context)),
        }
        assert service["deploy"]["healthcheckPath"] == expected_health[name]
        assert service["deploy"]["restartPolicyType"] == "ON_FAILURE"
        # Railway health-checks PORT: it must be the port the image exposes (and listens on).
        exposed = [rest.split()[0] for keyword, rest in instructions(dockerfile) if keyword == "EXPOSE"]
        assert literal_values(service)["PORT"] == exposed[0], name


def test_railway_iac_gives_each_stateful_service_a_volume_where_it_keeps_its_data():
    graph = railway_graph(repository="acme/gatewayz-fork")
    volumes = {r["address"] for r in graph["resources"] if r["type"] == "volume"}
    services = {r["name"]: r for r in graph["resources"] if r["type"] == "service"}
    expected = {
        "prometheus": "/prometheus",  # --storage.tsdb.path in prometheus/Dockerfile
        "alertmanager": "/alertmanager",  # --storage.path in alertmanager/Dockerfile
        "grafana": "/var/lib/grafana",
        "loki": "/loki",  # common.path_prefix in compose/loki.yaml
        "tempo": "/var/tempo",  # storage paths in compose/tempo.yaml
    }
    for name, path in expected.items():
        (attachment,) = services[name]["volumeAttachments"].values()
        assert attachment["mountPath"] == path and attachment["volume"] in volumes, name
        # Railway mounts volumes as root; the non-root images need Railway's switch to write there.
        assert literal_values(services[name])["RAILWAY_RUN_UID"] == "0"
    assert "volumeAttachments" not in services["provider-metrics-exporter"]
    assert "/prometheus" in (ROOT / "prometheus/Dockerfile").read_text()
    assert "--storage.path=/alertmanager" in (ROOT / "alertmanager/Dockerfile").read_text()
    assert "path_prefix: /loki" in (ROOT / "compose/loki.yaml").read_text()
    assert "path: /var/tempo/blocks" in (ROOT / "compose/tempo.yaml").read_text()
    # The dashboards are baked outside Grafana's data volume, which would hide them.
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())[
        "providers"
    ]
    assert not providers[0]["options"]["path"].startswith("/var/lib/grafana")


def test_railway_iac_services_reach_each_other_by_private_network_references():
    services = railway_services()
    wiring = {
        ("prometheus", "EXPORTER_INTERNAL_URL"): ("provider-metrics-exporter", 8001),
        ("prometheus", "ALERTMANAGER_INTERNAL_URL"): ("alertmanager", 9093),
        ("grafana", "PROMETHEUS_INTERNAL_URL"): ("prometheus", 9090),
        ("grafana", "LOKI_INTERNAL_URL"): ("loki", 3100),
        ("grafana", "TEMPO_INTERNAL_URL"): ("tempo", 3200),
        ("prometheus", "LOKI_INTERNAL_URL"): ("loki", 3100),
        ("prometheus", "TEMPO_INTERNAL_URL"): ("tempo", 3200),
        ("prometheus", "GRAFANA_INTERNAL_URL"): ("grafana", 3000),
        ("provider-metrics-exporter", "LOKI_URL"): ("loki", 3100),
        ("provider-metrics-exporter", "OTEL_EXPORTER_OTLP_ENDPOINT"): ("tempo", 4318),
    }
    for (name, variable), (target, port) in wiring.items():
        value = literal_values(services[name])[variable]
        assert value == f"http://${{{{{target}.RAILWAY_PRIVATE_DOMAIN}}}}:{port}", (name, variable)
    # Every reference in any value names a service of this graph and a variable Railway provides.
    for service in services.values():
        for value in literal_values(service).values():
            for target, output in re.findall(r"\$\{\{([^.}]+)\.([A-Z_]+)\}\}", value):
                assert target in services and output in ("RAILWAY_PRIVATE_DOMAIN", "RAILWAY_PUBLIC_DOMAIN"), (
                    value
                )
            assert ".railway.internal" not in value  # a reference, not a hard-coded host name


SECRET_NAME = re.compile(r"PASSWORD|KEY|WEBHOOK|TOKEN|SECRET")


def test_railway_iac_holds_no_secret_only_references_to_shared_variables():
    services = railway_services()
    secrets = {}
    for service in services.values():
        for name, variable in service.get("variables", {}).items():
            if SECRET_NAME.search(name):
                assert variable["type"] == "sharedReference", (service["name"], name)
                secrets[name] = variable["name"]
    assert secrets == {
        "ADMIN_KEY": "ADMIN_KEY",
        "SLACK_WEBHOOK_URL": "SLACK_WEBHOOK_URL",
        "SMTP_PASSWORD": "SMTP_PASSWORD",
        "GF_SECURITY_ADMIN_PASSWORD": "GRAFANA_ADMIN_PASSWORD",
        "REMOTE_WRITE_PASSWORD": "REMOTE_WRITE_PASSWORD",
    }
    text = (ROOT / ".railway" / "railway.py").read_text()
    assert "hooks.slack.com" not in text and not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
    for service in services.values():
        for value in literal_values(service).values():
            assert "://" not in value or "@" not in value.split("://", 1)[1], value  # no user:password@ URL


def test_railway_iac_builds_from_the_repository_it_is_given(monkeypatch):
    text = (ROOT / ".railway" / "railway.py").read_text()
    assert "gatewayz/provider-metrics-exporter" not in text
    for name in ("RAILWAY_SOURCE_REPO", "RAILWAY_SOURCE_BRANCH", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="RAILWAY_SOURCE_REPO"):
        railway_graph()
    monkeypatch.setenv("RAILWAY_SOURCE_REPO", "someone/their-fork")
    monkeypatch.setenv("RAILWAY_SOURCE_BRANCH", "production")
    sources = {
        r["source"]["repo"] + "@" + r["source"]["branch"]
        for r in railway_graph()["resources"]
        if r["type"] == "service"
    }
    assert sources == {"someone/their-fork@production"}
    monkeypatch.delenv("RAILWAY_SOURCE_REPO")
    monkeypatch.delenv("RAILWAY_SOURCE_BRANCH")
    monkeypatch.setenv("GITHUB_REPOSITORY", "ci/checkout")  # what GitHub Actions sets
    sources = {
        r["source"]["repo"] + "@" + r["source"]["branch"]
        for r in railway_graph()["resources"]
        if r["type"] == "service"
    }
    assert sources == {"ci/checkout@main"}


# --- Grafana provisioning and image --------------------------------------------------


def provisioned_sources() -> dict[str, dict]:
    return {s["uid"]: s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def test_data_sources_read_their_urls_from_the_environment_and_link_logs_and_traces():
    sources = provisioned_sources()
    assert {uid: s["type"] for uid, s in sources.items()} == {
        "gatewayz-prometheus": "prometheus",
        "gatewayz-loki": "loki",
        "gatewayz-tempo": "tempo",
        "gatewayz-alertmanager": "alertmanager",
    }
    assert sources["gatewayz-prometheus"]["url"] == "${PROMETHEUS_INTERNAL_URL}"
    assert sources["gatewayz-loki"]["url"] == "${LOKI_INTERNAL_URL}"
    assert sources["gatewayz-tempo"]["url"] == "${TEMPO_INTERNAL_URL}"
    (derived,) = sources["gatewayz-loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == "gatewayz-tempo"
    tempo = sources["gatewayz-tempo"]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "gatewayz-loki"
    assert tempo["serviceMap"]["datasourceUid"] == "gatewayz-prometheus"
    assert "$${__trace.traceId}" in tempo["tracesToLogsV2"]["query"]
    # Every uid a data source links to is provisioned here.
    linked = re.findall(r"datasourceUid: (\S+)", DATASOURCES.read_text())
    assert linked and set(linked) <= set(sources)


def grafana_interpolate(value: str, env: dict[str, str]) -> str:
    """Grafana's provisioning expansion (pkg/services/provisioning/values): split on "$$" (a
    literal "$"), then Go's os.ExpandEnv on each part: $NAME or ${...}, where everything between
    the braces is the name, so shell defaults such as ${NAME:-x} expand to nothing."""

    def variable(match: re.Match) -> str:
        return env.get(match[1] if match[1] is not None else match[2], "")

    parts = value.split("$$")
    return "$".join(re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", variable, part) for part in parts)


def interpolated(node: object, env: dict[str, str]) -> object:
    if isinstance(node, str):
        return grafana_interpolate(node, env)
    if isinstance(node, dict):
        return {k: interpolated(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolated(v, env) for v in node]
    return node


def test_grafana_expands_the_provisioning_files_to_working_urls_and_links():
    """What Grafana makes of the provisioning files with the image's environment: the compose
    URLs, and the Loki/Tempo links with their own ${__...} variables intact."""
    image_env = dict(re.findall(r"(\w+_INTERNAL_URL)=(\S+)", (ROOT / "grafana/Dockerfile").read_text()))
    assert len(image_env) == 4
    sources = {
        s["uid"]: s for s in interpolated(yaml.safe_load(DATASOURCES.read_text())["datasources"], image_env)
    }
    assert {uid: s["url"] for uid, s in sources.items()} == {
        "gatewayz-prometheus": "http://prometheus:9090",
        "gatewayz-loki": "http://loki:3100",
        "gatewayz-tempo": "http://tempo:3200",
        "gatewayz-alertmanager": "http://alertmanager:9093",
    }
    (derived,) = sources["gatewayz-loki"]["jsonData"]["derivedFields"]
    assert derived["url"] == "${__value.raw}"
    assert 'trace_id="${__trace.traceId}"' in sources["gatewayz-tempo"]["jsonData"]["tracesToLogsV2"]["query"]
    for path in (ROOT / "grafana/provisioning").rglob("*.yml"):
        # Shell-style defaults are not Grafana's: they would expand to an empty string.
        assert not re.search(r"\$\{\w+:?[-=?+]", path.read_text()), path


def test_the_data_source_urls_default_to_compose_names_in_image_compose_and_entrypoint():
    defaults = {
        "PROMETHEUS_INTERNAL_URL": "http://prometheus:9090",
        "LOKI_INTERNAL_URL": "http://loki:3100",
        "TEMPO_INTERNAL_URL": "http://tempo:3200",
        "ALERTMANAGER_INTERNAL_URL": "http://alertmanager:9093",
    }
    dockerfile = (ROOT / "grafana/Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]["environment"]
    entrypoint = (ROOT / "grafana/entrypoint.sh").read_text()
    for name, url in defaults.items():
        assert f"{name}={url}" in dockerfile
        assert compose[name] == url
        assert f'"${{{name}:-{url}}}"' in entrypoint


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
    regex = provisioned_sources()["gatewayz-loki"]["jsonData"]["derivedFields"][0]["matcherRegex"]
    match = re.search(regex, stream.getvalue())
    assert match and match.group(1) == format(span.get_span_context().trace_id, "032x")


def test_grafana_requires_sign_in_allows_no_sign_up_and_makes_new_users_viewers():
    import configparser

    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string((ROOT / "grafana/grafana.ini").read_text())
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["users"]["allow_org_create"] == "false"
    assert ini["users"]["auto_assign_org_role"] == "Viewer"
    assert ini["users"]["viewers_can_edit"] == "false"
    assert "admin_password" not in ini["security"]  # a secret, from the environment only
    # Nothing that deploys Grafana turns any of it back on through GF_* variables.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]["environment"]
    grafana_vars = set(compose) | set(railway_services()["grafana"]["variables"])
    assert not {v for v in grafana_vars if v.startswith(("GF_AUTH_", "GF_USERS_"))}
    assert (
        compose["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    )  # from the caller, no default
    assert "GF_" not in (ROOT / "grafana/Dockerfile").read_text()


def test_provisioned_dashboards_cannot_be_edited_or_deleted_in_place():
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())[
        "providers"
    ]
    (provider,) = providers
    assert provider["allowUiUpdates"] is False and provider["disableDeletion"] is True
    dockerfile = (ROOT / "grafana/Dockerfile").read_text()
    assert f"COPY dashboards/ {provider['options']['path']}/" in dockerfile
    assert json.loads(DASHBOARD.read_text())["editable"] is False


# --- docker compose -------------------------------------------------------------------------


def test_compose_builds_the_same_images_railway_deploys():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    # The catcher stands in for Slack and SMTP locally; Railway talks to the real ones.
    assert set(services) - {"catcher"} == set(IMAGES)
    assert services.pop("catcher")["build"] == {"context": "compose", "dockerfile": "catcher.Dockerfile"}
    for name, service in services.items():
        dockerfile, context = IMAGES[name]
        build = service["build"]
        if isinstance(build, str):
            build = {"context": build}
        assert "image" not in service
        assert Path(build["context"]) == Path(context), name
        assert Path(context, build.get("dockerfile", "Dockerfile")) == Path(dockerfile), name
        for mount in service.get("volumes", []):
            assert mount.split(":")[0] in compose["volumes"], (
                f"{name}: bind mount {mount}"
            )  # config is baked in
    assert "--demo" in services["provider-metrics-exporter"]["command"]
    prometheus = services["prometheus"]["environment"]
    assert prometheus["EXPORTER_INTERNAL_URL"] == "http://provider-metrics-exporter:8001"
    assert prometheus["ALERTMANAGER_INTERNAL_URL"] == "http://alertmanager:9093"
    alertmanager = services["alertmanager"]["environment"]
    assert alertmanager["SMTP_PASSWORD"] == "${SMTP_PASSWORD:-}"  # from the caller's environment only
    assert alertmanager["SLACK_WEBHOOK_URL"] == "${SLACK_WEBHOOK_URL:-http://catcher:8025/slack}"


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "docker-compose.yml",
        "railway.toml",
        ".railway/railway.py",
        "prometheus/prom.yml",
        ".env.example",
        "alertmanager/alertmanager.yml",
        "grafana/provisioning/datasources/datasources.yml",
    ],
)
def test_no_admin_key_example_in_the_repository(path):
    text = (ROOT / path).read_text()
    assert not re.search(r"gw_live_[A-Za-z0-9]{8,}", text)


def test_the_readme_metric_table_names_every_exported_metric_and_nothing_else(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    body, _ = exporter.exposition.body(openmetrics=False, gzip=False)
    exported = set(re.findall(r"^# TYPE (gatewayz_\w+)", body.decode(), re.MULTILINE))
    section = (ROOT / "docs/reference.md").read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(gatewayz_\w+)`", section))
    assert exported - documented == set()
    assert documented - exported == set()
    # Each row's type and labels are what the exposition says.
    text = body.decode()
    types = dict(re.findall(r"^# TYPE (gatewayz_\w+) (\w+)", text, re.MULTILINE))
    checked = 0
    for line in section.splitlines():
        if not line.startswith("| `gatewayz_"):
            continue
        names_cell, type_cell, labels_cell = (cell.strip() for cell in line.split("|")[1:4])
        for name in re.findall(r"`(gatewayz_\w+)`", names_cell):
            assert types[name] == type_cell.split()[0], name  # "gauge (info)" is a gauge
            samples = re.findall(rf"^{name}(?:\{{(.*?)\}})? ", text, re.MULTILINE)
            assert samples, name
            labels = {label for sample in samples for label in re.findall(r'(\w+)="', sample)}
            assert labels == set(re.findall(r"\w+", labels_cell)), name
            checked += 1
    assert checked == len(documented)


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def readme_configuration_rows() -> dict[str, str]:
    """Variable name -> its default cell, from the configuration table in docs/reference.md."""
    section = (
        (ROOT / "docs/reference.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    )
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.split("|")[1:-1]]
            for name in re.findall(r"`([A-Z][A-Z_]*[A-Z])(?=[`=])", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_readme_configuration_table_names_exactly_the_variables_the_exporter_reads():
    from gatewayz_exporter.config import Config
    from gatewayz_exporter.telemetry import SDK_NUMBERS, tracing_settings

    documented = set(readme_configuration_rows())
    env = RecordingEnv(ADMIN_KEY="k")
    Config.from_env(env)
    assert len(env.read) >= 10, env.read  # the recording saw config.py's reads
    # Tracing reads its switches and protocol itself; the numbers it checks and every other
    # OTEL_* variable are the SDK's own ("other `OTEL_*`").
    tracing = RecordingEnv(OTEL_EXPORTER_OTLP_ENDPOINT="http://t:4318")
    tracing_settings(tracing)
    read = env.read | (tracing.read - set(SDK_NUMBERS))
    assert read - documented == set()
    assert documented - read == set()


def test_the_readme_configuration_defaults_are_the_configs_defaults():
    from gatewayz_exporter.config import Config, ConfigError

    rows = readme_configuration_rows()
    config, demo = Config.from_env({"ADMIN_KEY": "k"}), Config.from_env({}, demo=True)
    assert f"`{config.gateway_api_url}`" in rows["GATEWAY_API_URL"]
    with pytest.raises(ConfigError, match="ADMIN_KEY"):
        Config.from_env({})
    assert rows["ADMIN_KEY"].startswith("none, required") and demo.admin_key is None
    assert (
        rows["SCRAPE_INTERVAL"] == f"`{config.scrape_interval:g}` (`{demo.scrape_interval:g}` with `--demo`)"
    )
    assert rows["METRICS_PORT"].startswith(f"`{config.metrics_port}`")
    assert Config.from_env({"ADMIN_KEY": "k", "PORT": "9999"}).metrics_port == 9999
    assert config.metrics_addr is None and rows["METRICS_ADDR"].startswith("all interfaces")
    assert rows["REQUEST_TIMEOUT"] == f"`{config.request_timeout:g}`"
    assert rows["MAX_STALENESS"] == "5 \N{MULTIPLICATION SIGN} `SCRAPE_INTERVAL`"
    assert (
        config.max_staleness == 5 * config.scrape_interval and demo.max_staleness == 5 * demo.scrape_interval
    )
    assert rows["MAX_RESPONSE_BYTES"].startswith(f"`{config.max_response_bytes}`")
    assert rows["LOG_LEVEL"] == f"`{config.log_level}`"
    for name, value in [
        ("LOKI_URL", config.loki_url),
        ("LOKI_USERNAME", config.loki_username),
        ("LOKI_PASSWORD", config.loki_password),
        ("LOKI_TENANT_ID", config.loki_tenant_id),
        ("WEB_CONFIG_FILE", config.web_config_file),
    ]:
        assert rows[name] == "off" and value is None, name


def test_pip_install_dot_declares_every_package_the_exporter_imports():
    """`pip install .` installs [project] dependencies only: an import missing there is an ImportError."""
    import ast
    import importlib.metadata

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normal(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    pinned = {
        normal(line.split("==", 1)[0])
        for line in (ROOT / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert pinned - declared == set(), "pinned for the container but not declared for pip install ."
    imported = set()
    for path in [*(ROOT / "gatewayz_exporter").glob("*.py"), ROOT / "config.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "config", "gatewayz_exporter"}
    assert {"h11", "urllib3", "opentelemetry"} <= third_party  # the walk saw the imports
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module
        for module in third_party
        if not {normal(d) for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == set()


# --- .env.example ----------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    """Variable name -> its one-line comment, from .env.example (set or commented out)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    variables: dict[str, str] = {}
    for number, line in enumerate(lines):
        match = re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            comment = lines[number - 1]
            assert comment.startswith("# ") and not re.fullmatch(r"# [A-Z][A-Z0-9_]*=.*", comment), line
            assert match[1] not in variables, match[1]
            variables[match[1]] = comment
            if not line.startswith("#"):
                assert match[2] == "", line  # a name to fill in, never a value
    return variables


def readme_railway_variables() -> set[str]:
    """The names in the README's table of Railway shared variables."""
    section = (ROOT / "README.md").read_text().split("\n### Railway from zero\n", 1)[1].split("\n##", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.strip().startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.strip().split("|")[1]))
    return names


def iac_environment_reads() -> set[str]:
    """What .railway/railway.py reads from the shell it is planned and applied in."""
    reads = re.findall(r'os\.environ\.get\("(\w+)"\)', (ROOT / ".railway" / "railway.py").read_text())
    return set(reads) - {"GITHUB_REPOSITORY"}  # GitHub Actions' own


def test_env_example_lists_every_documented_variable_and_nothing_else():
    documented = set(readme_configuration_rows()) | readme_railway_variables() | iac_environment_reads()
    assert {
        "ADMIN_KEY",
        "GRAFANA_ADMIN_PASSWORD",
        "RAILWAY_SOURCE_REPO",
    } <= documented  # the tables were read
    listed = set(env_example())
    assert documented - listed == set(), "documented but missing from .env.example"
    assert listed - documented == set(), "in .env.example but documented nowhere"


def test_the_readme_railway_table_names_exactly_the_shared_variables_the_iac_references():
    referenced = {
        variable["name"]
        for service in railway_services().values()
        for variable in service.get("variables", {}).values()
        if variable["type"] == "sharedReference"
    }
    assert referenced == readme_railway_variables()


def test_compose_takes_its_settings_from_env_example_names_only():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    values = [str(v) for service in compose.values() for v in service.get("environment", {}).values()]
    interpolated = {name for value in values for name in re.findall(r"\$\{(\w+)", value)}
    assert {"ADMIN_KEY", "GRAFANA_ADMIN_PASSWORD", "REMOTE_WRITE_URL"} <= interpolated
    assert interpolated - set(env_example()) == set()
    # Every shared variable Railway gives a service, compose gives the same service from .env.
    for name, service in railway_services().items():
        shared = {
            key: variable["name"]
            for key, variable in service.get("variables", {}).items()
            if variable["type"] == "sharedReference"
        }
        for key, variable in shared.items():
            # Compose may give a local default (the catcher, ENVIRONMENT=local); .env still wins.
            value = compose[name]["environment"][key]
            assert re.fullmatch(rf"\$\{{{variable}:-[^}}$]*\}}", value), (name, key, value)
