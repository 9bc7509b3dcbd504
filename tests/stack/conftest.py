"""Fixtures of the stack layer: a live exporter scraped by a real Prometheus."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatewayz_exporter.app import Exporter
from support.api import SEED_PROVIDERS, SEED_STATS, FakeApi
from support.stack import Prometheus


@pytest.fixture
def stack(
    tmp_path: Path, api: FakeApi, exporter_for: Callable[..., Exporter]
) -> Iterator[tuple[Prometheus, Exporter]]:
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
