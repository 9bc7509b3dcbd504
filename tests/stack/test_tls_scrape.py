"""A real Prometheus scrapes the exporter over TLS with basic auth, as the web config allows."""

from __future__ import annotations

import pytest

from support.wire import PASSWORD, tls_config


def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(certs, served, tmp_path):
    from support.stack import PROMETHEUS, Prometheus

    if PROMETHEUS is None:
        pytest.fail("Debian's prometheus package is needed (apt-get install prometheus)")
    exporter = served(tls_config(certs))
    (tmp_path / "password").write_text(PASSWORD)
    prometheus = Prometheus(
        tmp_path,
        {
            "job_name": "provider_metrics",
            "scheme": "https",
            "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")},
            "tls_config": {"ca_file": str(certs / "ca.crt"), "server_name": "provider-metrics-exporter"},
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.server.port}"]}],
        },
    )
    try:
        result = prometheus.wait_for("gatewayz_providers_total", "scraping over TLS")
        assert float(result[0]["value"][1]) == 4
        (target,) = prometheus.api("/api/v1/targets")["activeTargets"]
        assert target["health"] == "up" and target["scrapeUrl"].startswith("https://")
    finally:
        prometheus.stop()
