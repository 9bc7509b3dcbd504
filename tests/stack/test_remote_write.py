"""Prometheus' remote_write from REMOTE_WRITE_*: the block the image's entrypoint renders, the
values it refuses, and samples arriving in a real remote-write receiver (VictoriaMetrics, which
accepts Prometheus' protocol) on loopback."""

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from support import ROOT
from support.stack import PROMETHEUS, PROMTOOL, Process, prometheus_config_copy, run_prometheus_entrypoint
from support.waits import eventually, free_port

pytestmark = pytest.mark.prometheus

VICTORIA_METRICS = shutil.which("victoria-metrics")
PASSWORD = "rw-s3cret-never-shown"


def rendered(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "prometheus-config" / "prom.rendered.yml").read_text())


def password_file(tmp_path: Path) -> Path:
    return tmp_path / "prometheus-config" / "remote-write-password"


def test_without_a_remote_write_url_prometheus_writes_nowhere(tmp_path):
    result = run_prometheus_entrypoint(
        tmp_path, REMOTE_WRITE_URL="", REMOTE_WRITE_USERNAME="ignored", REMOTE_WRITE_PASSWORD=PASSWORD
    )
    assert result.returncode == 0, result.stderr
    assert "remote_write" not in rendered(tmp_path)
    assert not password_file(tmp_path).exists()


def test_remote_write_sends_everything_with_basic_auth_from_a_private_file_and_the_tenant(tmp_path):
    result = run_prometheus_entrypoint(
        tmp_path,
        REMOTE_WRITE_URL="http://mimir:9009/api/v1/push",
        REMOTE_WRITE_USERNAME="gatewayz",
        REMOTE_WRITE_PASSWORD=PASSWORD,
        REMOTE_WRITE_TENANT="gatewayz-prod",
    )
    assert result.returncode == 0, result.stderr  # promtool accepted the rendered file
    config = rendered(tmp_path)
    assert config["remote_write"] == [
        {
            "url": "http://mimir:9009/api/v1/push",
            "headers": {"X-Scope-OrgID": "gatewayz-prod"},
            "basic_auth": {"username": "gatewayz", "password_file": str(password_file(tmp_path))},
        }
    ]
    secret = password_file(tmp_path)
    assert secret.read_text() == PASSWORD
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert PASSWORD not in (tmp_path / "prometheus-config" / "prom.rendered.yml").read_text()
    assert PASSWORD not in result.stdout + result.stderr
    assert "remote_write to http://mimir:9009/api/v1/push" in result.stdout
    # The scrape and alerting parts are the ones rendered without it.
    assert config["scrape_configs"][0]["job_name"] == "provider_metrics"


def test_remote_write_without_credentials_or_tenant_has_neither(tmp_path):
    result = run_prometheus_entrypoint(tmp_path, REMOTE_WRITE_URL="https://metrics.example.com/api/v1/push")
    assert result.returncode == 0, result.stderr
    assert rendered(tmp_path)["remote_write"] == [{"url": "https://metrics.example.com/api/v1/push"}]
    assert not password_file(tmp_path).exists()


def test_credentials_in_the_remote_write_url_are_refused_pointing_at_the_variables_for_them(tmp_path):
    result = run_prometheus_entrypoint(tmp_path, REMOTE_WRITE_URL=f"https://user:{PASSWORD}@mimir:9009/push")
    assert result.returncode == 2 and "args=" not in result.stdout
    (line,) = result.stderr.splitlines()
    assert "REMOTE_WRITE_URL" in line and "REMOTE_WRITE_USERNAME" in line and PASSWORD not in line


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REMOTE_WRITE_URL": "mimir:9009/api/v1/push"}, "REMOTE_WRITE_URL"),
        ({"REMOTE_WRITE_URL": "http://mimir:9009/push'\nglobal: {}"}, "REMOTE_WRITE_URL"),
        ({"REMOTE_WRITE_URL": "http://mimir:9009/a b"}, "REMOTE_WRITE_URL"),
        ({"REMOTE_WRITE_URL": f"http://user:{PASSWORD}@mimir:9009/push"}, "REMOTE_WRITE_URL"),
        ({"REMOTE_WRITE_URL": "http://m:9/p", "REMOTE_WRITE_TENANT": "a b"}, "REMOTE_WRITE_TENANT"),
        ({"REMOTE_WRITE_URL": "http://m:9/p", "REMOTE_WRITE_PASSWORD": PASSWORD}, "REMOTE_WRITE_USERNAME"),
        ({"REMOTE_WRITE_URL": "http://m:9/p", "REMOTE_WRITE_USERNAME": "u"}, "REMOTE_WRITE_PASSWORD"),
        (
            {"REMOTE_WRITE_URL": "http://m:9/p", "REMOTE_WRITE_USERNAME": "u'", "REMOTE_WRITE_PASSWORD": "p"},
            "REMOTE_WRITE_USERNAME",
        ),
    ],
)
def test_an_unusable_remote_write_value_stops_start_up_naming_it(tmp_path, env, named):
    result = run_prometheus_entrypoint(tmp_path, **env)
    assert result.returncode == 2 and "args=" not in result.stdout
    assert named in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.fixture
def receiver(tmp_path):
    """VictoriaMetrics on loopback, accepting remote writes only with basic auth."""
    if not VICTORIA_METRICS:
        pytest.fail("Debian's victoria-metrics package is needed; .ci/run installs it")
    port = free_port()
    process = subprocess.Popen(
        [
            VICTORIA_METRICS,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={tmp_path / 'vm-data'}",
            "-httpAuth.username=gatewayz",
            f"-httpAuth.password={PASSWORD}",
            "-search.latencyOffset=0s",  # answer with samples as soon as they arrive
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, "victoria-metrics exited"
            try:
                return requests.get(url + "/health", timeout=1).ok
            except requests.ConnectionError:
                return False

        assert eventually(healthy, timeout=30, step=0.1), "victoria-metrics never answered"
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_exporters_series_arrive_in_the_remote_store_and_can_be_queried_there(
    tmp_path, receiver, api, exporter_for
):
    assert PROMETHEUS and PROMTOOL, "Debian's prometheus package is needed; .ci/run installs it"
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.5")
    exporter.start()
    prometheus = Process(
        "prometheus",
        [
            "sh",
            str(ROOT / "prometheus/entrypoint.sh"),
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            "--web.listen-address=127.0.0.1:{port}",
        ],
        {
            "PROMETHEUS_CONFIG_DIR": str(prometheus_config_copy(tmp_path)),
            "PROMETHEUS_BIN": PROMETHEUS,
            "PROMTOOL_BIN": PROMTOOL,
            "EXPORTER_INTERNAL_URL": f"http://127.0.0.1:{exporter.server.port}",
            "ALERTMANAGER_INTERNAL_URL": f"http://127.0.0.1:{free_port()}",  # nothing there, on loopback
            "REMOTE_WRITE_URL": receiver + "/api/v1/write",
            "REMOTE_WRITE_USERNAME": "gatewayz",
            "REMOTE_WRITE_PASSWORD": PASSWORD,
            "REMOTE_WRITE_TENANT": "gatewayz-prod",
        },
        tmp_path / "prometheus.log",
    )
    try:

        def remote(expr: str) -> list:
            response = requests.get(
                receiver + "/api/v1/query", params={"query": expr}, auth=("gatewayz", PASSWORD), timeout=5
            )
            response.raise_for_status()
            result: list = response.json()["data"]["result"]
            return result

        arrived = prometheus.wait(
            lambda: remote('gatewayz_provider_scrape_success{job="provider_metrics"}'),
            "remote-writing the exporter's series",
            timeout=120,  # Prometheus sends what its WAL watcher has read, in batches: about 20 s
        )
        assert arrived[0]["value"][1] == "1"
        providers = remote('count(gatewayz_provider_health_status{job="provider_metrics"})')
        assert int(providers[0]["value"][1]) > 0
        # Without the credentials the store refuses: what arrived came through the basic auth.
        assert requests.get(receiver + "/api/v1/query", params={"query": "up"}, timeout=5).status_code == 401
    finally:
        prometheus.stop()
