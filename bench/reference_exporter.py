"""The straightforward design, as most exporters are written: the benchmark's reference.

Module-level labelled Gauges on the default registry, ``.labels(...).set(...)``
for every provider on every poll, and prometheus_client rendering the whole
registry on every scrape. Same endpoints and the same ~13 series per provider
as the real exporter. Prints one JSON line per poll so the benchmark can align
its measurements with polls. Not for production: see provider_metrics_exporter.py.
"""

import json
import os
import sys
import time
from datetime import datetime

import requests
from prometheus_client import Gauge, start_http_server

LABEL = ["provider"]
INFO = Gauge(
    "gatewayz_provider_info", "Provider info", ["provider", "name", "base_url", "site_url", "status_page_url"]
)
ACTIVE = Gauge("gatewayz_provider_is_active", "Active", LABEL)
HEALTH = Gauge("gatewayz_provider_health_status", "Health", LABEL)
RESPONSE = Gauge("gatewayz_provider_response_time_ms", "Response time", LABEL)
SUPPORTS = {
    c: Gauge(f"gatewayz_provider_supports_{c}", c, LABEL)
    for c in ("streaming", "function_calling", "vision", "image_generation")
}
CHECKED = Gauge("gatewayz_provider_last_health_check_timestamp_seconds", "Last check", LABEL)
RATE = Gauge("gatewayz_provider_rate_limit", "Rate limit", LABEL)
TOKENS = Gauge("gatewayz_provider_max_tokens", "Max tokens", LABEL)
MODELS = Gauge("gatewayz_provider_supported_models", "Models", LABEL)
STATS = {
    f: Gauge(f"gatewayz_providers_{f}", f)
    for f in ("total", "active", "inactive", "healthy", "degraded", "down", "unknown")
}
HEALTH_CODES = {"unknown": 0, "healthy": 1, "degraded": 2, "down": 3}


def poll(session: requests.Session, base: str, headers: dict) -> None:
    providers = session.get(f"{base}/providers?include_inactive=true", headers=headers, timeout=10).json()
    for p in providers:
        slug = p["slug"]
        INFO.labels(
            slug,
            p.get("name") or "",
            p.get("base_url") or "",
            p.get("site_url") or "",
            p.get("status_page_url") or "",
        ).set(1)
        ACTIVE.labels(slug).set(1 if p.get("is_active") else 0)
        HEALTH.labels(slug).set(HEALTH_CODES.get(str(p.get("health_status")).lower(), 0))
        if p.get("average_response_time_ms") is not None:
            RESPONSE.labels(slug).set(p["average_response_time_ms"])
        for capability, gauge in SUPPORTS.items():
            gauge.labels(slug).set(1 if p.get(f"supports_{capability}") else 0)
        if p.get("last_health_check_at"):
            CHECKED.labels(slug).set(datetime.fromisoformat(p["last_health_check_at"]).timestamp())
        metadata = p.get("metadata") or {}
        if "rate_limit" in metadata:
            RATE.labels(slug).set(metadata["rate_limit"])
        if "max_tokens" in metadata:
            TOKENS.labels(slug).set(metadata["max_tokens"])
        if isinstance(metadata.get("supported_models"), list):
            MODELS.labels(slug).set(len(metadata["supported_models"]))
    stats = session.get(f"{base}/providers/stats", headers=headers, timeout=10).json()
    for field, gauge in STATS.items():
        gauge.set(stats[field])


def main() -> None:
    base = os.environ["GATEWAY_API_URL"]
    interval = float(os.environ.get("SCRAPE_INTERVAL", "60"))
    headers = {"Authorization": f"Bearer {os.environ['ADMIN_KEY']}"}
    start_http_server(int(os.environ["METRICS_PORT"]), addr="127.0.0.1")
    session = requests.Session()
    while True:
        started = time.monotonic()
        poll(session, base, headers)
        duration = time.monotonic() - started
        print(
            json.dumps({"message": "Updated provider metrics", "poll_duration_ms": duration * 1000}),
            flush=True,
        )
        time.sleep(max(0.0, interval - duration))


if __name__ == "__main__":
    sys.exit(main())
