"""Fixtures of the stack layer: a live exporter scraped by a real Prometheus, shared by the tests
that only read from it (starting one takes seconds)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewayz_exporter.app import Exporter, build
from support.api import SEED_PROVIDERS, SEED_STATS, FakeApi, make_config
from support.stack import Prometheus


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Exporter]]:
    """Exporter (polling a fake API every 0.5 s) scraped every second by a real Prometheus with the
    project's rules. Google is active and down, Mistral down and inactive. Tests only read it."""
    api = FakeApi()
    providers = copy.deepcopy(SEED_PROVIDERS)
    providers[2]["health_status"] = "down"  # google: active and down
    api.set_data(providers, {**SEED_STATS, "down": 2, "degraded": 0})
    exporter = build(make_config(api.url, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.5"))
    exporter.start()
    prometheus = Prometheus(
        Path(tmp_path_factory.mktemp("stack")),
        {
            "job_name": "provider_metrics",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.server.port}"]}],
        },
    )
    yield prometheus, exporter
    prometheus.stop()
    exporter.stop(1.0)
    api.close()
