"""Grafana's entrypoint run as the image runs it (with a stand-in for Grafana's server): the
admin password rules and what it logs."""

from __future__ import annotations

import re
import stat

import pytest

from support.deploy import run_grafana_entrypoint


@pytest.mark.parametrize("unset", [{}, {"GF_SECURITY_ADMIN_PASSWORD": ""}])
def test_without_an_admin_password_grafana_generates_one_prints_it_once_and_keeps_it(tmp_path, unset):
    first = run_grafana_entrypoint(tmp_path, show_password=True, **unset)
    assert first.returncode == 0, first.stderr
    (password,) = re.findall(r"^password=(\S+)$", first.stdout, re.MULTILINE)
    assert len(password) >= 32 and password != "admin"
    assert [line for line in first.stdout.splitlines() if "entrypoint" in line and password in line]
    stored = tmp_path / "data" / "generated-admin-password"
    assert stored.read_text().strip() == password and stat.S_IMODE(stored.stat().st_mode) == 0o600
    again = run_grafana_entrypoint(tmp_path, show_password=True, **unset)
    assert again.returncode == 0 and f"password={password}" in again.stdout  # the same one
    logged = [line for line in again.stdout.splitlines() if "entrypoint" in line]
    assert logged and not [line for line in logged if password in line]  # printed only once
    own = run_grafana_entrypoint(
        tmp_path, show_password=True, GF_SECURITY_ADMIN_PASSWORD="a-long-enough-secret"
    )
    assert "password=a-long-enough-secret" in own.stdout and "generated" not in own.stdout


@pytest.mark.parametrize("password", ["admin", "short-pw"])
def test_grafana_does_not_start_with_a_weak_admin_password(tmp_path, password):
    env = {"GF_SECURITY_ADMIN_PASSWORD": password}
    result = run_grafana_entrypoint(tmp_path, **env)
    assert result.returncode == 2 and "args=" not in result.stdout
    assert "GF_SECURITY_ADMIN_PASSWORD" in result.stderr or "at least 12 characters" in result.stderr
    if password == "short-pw":
        assert password not in result.stderr  # the value is never echoed


def test_grafana_starts_with_a_password_from_a_variable_or_a_file(tmp_path):
    started = run_grafana_entrypoint(tmp_path, GF_SECURITY_ADMIN_PASSWORD="a-long-enough-secret")
    assert started.returncode == 0 and "args=web" in started.stdout
    assert "prometheus=http://prometheus:9090" in started.stdout  # the compose default
    assert "a-long-enough-secret" not in started.stdout + started.stderr
    secret = tmp_path / "password"
    secret.write_text("another-long-secret\n")
    started = run_grafana_entrypoint(
        tmp_path,
        GF_SECURITY_ADMIN_PASSWORD__FILE=str(secret),
        PROMETHEUS_INTERNAL_URL="http://[fd00::1]:9090",
    )
    assert started.returncode == 0 and "prometheus=http://[fd00::1]:9090" in started.stdout
    missing = run_grafana_entrypoint(tmp_path, GF_SECURITY_ADMIN_PASSWORD__FILE=str(tmp_path / "nope"))
    assert missing.returncode == 2


def test_grafana_entrypoint_never_logs_credentials_in_a_data_source_url(tmp_path):
    url = "https://grafana:pr0m-s3cret@prometheus.example.com/prometheus"
    started = run_grafana_entrypoint(
        tmp_path, GF_SECURITY_ADMIN_PASSWORD="a-long-enough-secret", PROMETHEUS_INTERNAL_URL=url
    )
    assert started.returncode == 0 and f"prometheus={url}" in started.stdout  # Grafana gets it whole
    logged = [line for line in (started.stdout + started.stderr).splitlines() if "entrypoint" in line]
    assert logged and "prometheus.example.com/prometheus" in logged[0]
    assert "pr0m-s3cret" not in "\n".join(logged)
