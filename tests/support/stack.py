"""The stack's own Alertmanager and Prometheus started through their images' entrypoints, on
loopback, and the tools that check their files (promtool, amtool)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from . import ROOT
from .receivers import SlackStandIn, SmtpStandIn
from .scripts import run_script, stub
from .waits import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING_PROMETHEUS = "Debian's prometheus package is needed (it brings promtool); .ci/run installs it"
MISSING_AM = "Debian's prometheus-alertmanager package is needed (it brings amtool); .ci/run installs it"


class Process:
    """A server started through one of the stack's entrypoints (or its binary), stopped at the end.

    "{port}" in ``command`` and in the values of ``env`` becomes a free loopback port; when another
    process takes that port first (the server exits with "address already in use"), it starts
    again on a new one."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        for _ in range(5):
            port = str(free_port())
            self.url = f"http://127.0.0.1:{port}"
            self.process = subprocess.Popen(
                [part.replace("{port}", port) for part in command],
                env={"PATH": "/usr/bin:/bin", **{k: v.replace("{port}", port) for k, v in env.items()}},
                stdout=open(log, "w"),
                stderr=subprocess.STDOUT,
            )
            try:
                self.wait(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200, "ready")
                return
            except AssertionError:
                self.stop()
                if "address already in use" not in log.read_text().lower():
                    raise
        raise AssertionError(f"{name}: five free ports were taken before it could bind one")

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except requests.RequestException:
                pass
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became {what}:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        return query(self, expr)

    def wait_for(self, expr: str, what: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The result of ``expr`` once it is not empty."""
        result: list[dict[str, Any]] = self.wait(lambda: self.query(expr), what, timeout)
        return result

    def alert_statuses(
        self, key: Callable[[dict[str, str]], Any], count: int, suppressed: int = 0
    ) -> dict[Any, dict[str, Any]]:
        """Alertmanager's status of each alert it holds, by ``key(labels)``, once it holds ``count``,
        has processed every one (no "unprocessed" state left) and ``suppressed`` of them are. The
        API judges inhibition when asked, by the source alerts its inhibitor has taken in so far,
        which can lag behind the alerts it lists."""

        def statuses() -> dict[Any, dict[str, Any]] | None:
            alerts = requests.get(self.url + "/api/v2/alerts", timeout=5).json()
            found = {key(a["labels"]): a["status"] for a in alerts}
            states = [s["state"] for s in found.values()]
            done = len(found) == count and "unprocessed" not in states
            return found if done and states.count("suppressed") == suppressed else None

        result: dict[Any, dict[str, Any]] = self.wait(statuses, "processing the alerts")
        return result

    def api(self, path: str) -> Any:
        return requests.get(self.url + path, timeout=5).json()["data"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def alertmanager_config_copy(tmp: Path, wait: str = "1s") -> Path:
    """alertmanager/ with group_wait and group_interval shortened (the test's copy only)."""
    directory = tmp / "alertmanager-config"
    shutil.copytree(ROOT / "alertmanager", directory)
    config = directory / "alertmanager.yml"
    config.write_text(re.sub(r"group_(wait|interval): \w+", rf"group_\1: {wait}", config.read_text()))
    return directory


def notification_env(slack: SlackStandIn, smtp: SmtpStandIn) -> dict[str, str]:
    return {
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "ALERT_EMAIL_TO": "oncall@example.com,providers@example.com",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_FROM": "alertmanager@example.com",
        "SMTP_USERNAME": "alertmanager",
        "SMTP_PASSWORD": "stand-in-smtp-password",
        "SMTP_REQUIRE_TLS": "false",
        "GRAFANA_URL": "https://grafana.example.com",
    }


def start_alertmanager(tmp: Path, env: dict[str, str], config_dir: Path | None = None) -> Process:
    assert ALERTMANAGER and AMTOOL, MISSING_AM
    config_dir = config_dir or alertmanager_config_copy(tmp)
    command = [
        "sh",
        str(ROOT / "alertmanager/entrypoint.sh"),
        f"--storage.path={tmp / 'alertmanager-data'}",
        "--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    full_env = {
        "ALERTMANAGER_CONFIG_DIR": str(config_dir),
        "ALERTMANAGER_RUNTIME_DIR": str(tmp / "alertmanager-runtime"),
        "ALERTMANAGER_BIN": ALERTMANAGER,
        "AMTOOL_BIN": AMTOOL,
        **env,
    }
    return Process("alertmanager", command, full_env, tmp / "alertmanager.log")


def prometheus_config_copy(tmp: Path) -> Path:
    """prometheus/ with every interval shortened to 1 s and every rule's `for:` and
    `keep_firing_for:` from minutes to as many seconds, so they keep their proportions: "exporter
    down" (2 m) still fires after a scrape and an evaluation, and the alerts it inhibits still
    keep firing (5 m) past it (the test's copy only)."""
    directory = tmp / "prometheus-config"
    shutil.copytree(ROOT / "prometheus", directory)
    prom = directory / "prom.yml"
    text = re.sub(r"(scrape_interval|evaluation_interval): \w+", r"\1: 1s", prom.read_text())
    prom.write_text(re.sub(r"scrape_timeout: \w+", "scrape_timeout: 1s", text))
    alerts = directory / "alerts.yml"
    durations = re.compile(r"^(\s+)(for|keep_firing_for): (\d+)m$", re.MULTILINE)
    text, count = durations.subn(r"\1\2: \3s", alerts.read_text())
    assert count and not re.search(r"^\s+(for|keep_firing_for): (?!\d+s$)", text, re.MULTILINE), text
    alerts.write_text(text)
    return directory


def start_prometheus(tmp: Path, exporter_url: str, alertmanager_url: str, stack_url: str = "") -> Process:
    """Prometheus through its entrypoint; ``stack_url`` stands in for Loki, Tempo and Grafana
    (unset: their compose names, which do not resolve here, so GatewayzStackTargetDown fires)."""
    assert PROMETHEUS and PROMTOOL, MISSING_PROMETHEUS
    command = [
        "sh",
        str(ROOT / "prometheus/entrypoint.sh"),
        f"--storage.tsdb.path={tmp / 'prometheus-data'}",
        "--web.listen-address=127.0.0.1:{port}",
        # Firing alerts are re-sent every minute; an alert that fired before Prometheus knew its
        # Alertmanager (Watchdog, at the first evaluation) would wait that long.
        "--rules.alert.resend-delay=1s",
    ]
    env = {
        "PROMETHEUS_CONFIG_DIR": str(prometheus_config_copy(tmp)),
        "PROMETHEUS_BIN": PROMETHEUS,
        "PROMTOOL_BIN": PROMTOOL,
        "EXPORTER_INTERNAL_URL": exporter_url,
        "ALERTMANAGER_INTERNAL_URL": alertmanager_url,
        "PROMETHEUS_INTERNAL_URL": "http://127.0.0.1:{port}",
        "PROMETHEUS_EXTERNAL_URL": "http://127.0.0.1:{port}",  # the "Source" links
    }
    if stack_url:
        env.update(LOKI_INTERNAL_URL=stack_url, TEMPO_INTERNAL_URL=stack_url, GRAFANA_INTERNAL_URL=stack_url)
    return Process("prometheus", command, env, tmp / "prometheus.log")


def query(prometheus: Process, expr: str) -> list[dict[str, Any]]:
    response = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert response["status"] == "success", (expr, response)
    result: list[dict[str, Any]] = response["data"]["result"]
    return result


def run_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Alertmanager's entrypoint with ``env``, the real binary replaced by a stub that prints its input."""
    binary = stub(tmp_path / "alertmanager-stub", 'echo "args=$*"', 'env | grep -E "^(SLACK|SMTP)" | sort')
    environment = {
        "ALERTMANAGER_CONFIG_DIR": str(ROOT / "alertmanager"),
        "ALERTMANAGER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "ALERTMANAGER_BIN": str(binary),
        "AMTOOL_BIN": AMTOOL or "amtool",
        **env,
    }
    return run_script("alertmanager/entrypoint.sh", "--storage.path=/data", env=environment)


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL, MISSING_AM
    return subprocess.run([AMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


# Alertmanager entrypoint environments: each channel alone, both, and a full email set-up.
SLACK_ONLY = {"SLACK_WEBHOOK_URL": "https://hooks.example.invalid/services/T/B/secret-part"}
EMAIL_ONLY = {
    "ALERT_EMAIL_TO": "oncall@example.com",
    "SMTP_HOST": "smtp.example.com",
    "SMTP_FROM": "alertmanager@example.com",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "smtp-secret-value",
}
CHANNELS = {"slack": SLACK_ONLY, "email": EMAIL_ONLY, "both": {**SLACK_ONLY, **EMAIL_ONLY}}
GOOD = {
    "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/services/T/B/secret-part",
    "ALERT_EMAIL_TO": "oncall@example.com",
    "SMTP_HOST": "smtp.example.com",
    "SMTP_FROM": "alertmanager@example.com",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "smtp-secret-value",
}


def rule_files() -> list[Path]:
    """Every rule file under prometheus/ (not the promtool unit tests of them)."""
    return sorted(p for p in (ROOT / "prometheus").glob("*.yml") if "groups" in load_yaml(p))


def load_yaml(path: Path) -> Any:
    """``path`` parsed as yaml.safe_load does, by libyaml where PyYAML has it (it is many times
    faster, and some test modules parse every rule file when they are collected)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, MISSING_PROMETHEUS
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


class Prometheus(Process):
    """A real Prometheus (the binary itself) on loopback with one scrape job and the project's rules."""

    def __init__(self, tmp: Path, scrape_config: dict[str, Any], rules: list[Path] | None = None) -> None:
        assert PROMETHEUS, MISSING_PROMETHEUS
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rules or rule_files()],
            "scrape_configs": [scrape_config],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            "--web.listen-address=127.0.0.1:{port}",
        ]
        super().__init__("prometheus", command, {}, tmp / "prometheus.log")


def run_prometheus_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """prometheus/entrypoint.sh on a copy of prometheus/, with a stub that prints what the real
    binary would get; the real promtool checks the rendered configuration."""
    assert PROMTOOL, MISSING_PROMETHEUS
    config = tmp_path / "prometheus-config"
    shutil.copytree(ROOT / "prometheus", config, dirs_exist_ok=True)
    binary = stub(tmp_path / "prometheus-stub", 'echo "args=$*"')
    environment = {
        "PROMETHEUS_CONFIG_DIR": str(config),
        "PROMETHEUS_BIN": str(binary),
        "PROMTOOL_BIN": PROMTOOL,
        **env,
    }
    return run_script("prometheus/entrypoint.sh", "--storage.tsdb.path=/prometheus", env=environment)


def exporter_job(config: dict[str, Any]) -> dict[str, Any]:
    """The exporter's scrape job in a Prometheus configuration."""
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "provider_metrics"]
    return job


def post_alerts(url: str, *alerts: dict[str, str]) -> None:
    """Post ``alerts`` (label sets) to an Alertmanager as firing for five minutes."""
    now = datetime.now(UTC)
    payload = [
        {
            "labels": alert,
            "annotations": {
                "summary": f"{alert['alertname']} stand-in",
                "description": "d",
                "runbook_url": "r",
            },
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        for alert in alerts
    ]
    response = requests.post(url + "/api/v2/alerts", json=payload, timeout=5)
    assert response.status_code == 200, response.text
