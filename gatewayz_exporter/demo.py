"""A built-in stand-in for the GatewayZ API on loopback, for ``--demo``.

It behaves like the real backend where that matters (``/providers`` redirects
to ``/providers/``, inactive providers only with ``include_inactive=true``,
nullable fields, ``Z`` timestamps) and drifts over time, so a dashboard moves:
response times change on every poll, and each provider's health goes round
healthy, degraded and down every few minutes (``DEMO_PERIOD``). The public
status routes (``/v1/status/...``) follow the same waves: an outage moves
across providers, gateways and models, and incidents open and resolve with it.
``DEMO_DOWN`` keeps the named providers down in both.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .status_standin import StatusData, answer, incident_row, iso, model_view_row, provider_view_row

DEMO_PROVIDERS = (
    # slug, name, base response time (ms), streaming, functions, vision, images, active
    ("openai", "OpenAI", 245, True, True, True, True, True),
    ("anthropic", "Anthropic", 320, True, True, True, False, True),
    ("google", "Google", 280, True, True, True, True, True),
    ("mistral", "Mistral", 190, True, True, False, False, True),
    ("groq", "Groq", 90, True, True, False, False, True),
    ("cohere", "Cohere", 410, True, True, False, False, False),
)


# Seconds per full wave of a provider's health: short enough that someone trying the demo sees
# a provider degrade within a minute or two, long enough that a health state lasts a few polls.
DEMO_PERIOD = 240.0

Record = dict[str, Any]


DEMO_SLUGS = tuple(p[0] for p in DEMO_PROVIDERS)


def _wave(now: float, index: int, phase: float = 0.0) -> float:
    return math.sin(2 * math.pi * now / DEMO_PERIOD + index * 1.7 + phase)


def demo_providers(now: float, down: frozenset[str] = frozenset()) -> list[Record]:
    """The demo payload at time ``now``: health and latency follow waves per provider; ``down`` stays down."""
    records = []
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for index, (slug, name, base, streaming, functions, vision, images, active) in enumerate(DEMO_PROVIDERS):
        wave = _wave(now, index)
        health = "healthy" if wave < 0.55 else "degraded" if wave < 0.9 else "down"
        if slug in down:
            health = "down"
        if not active:
            health = "unknown"
        records.append(
            {
                "id": index + 1,
                "name": name,
                "slug": slug,
                "description": f"{name} demo provider",
                "base_url": f"https://api.{slug}.example",
                "api_key_env_var": f"{slug.upper()}_API_KEY",
                "logo_url": None,
                "site_url": f"https://{slug}.example",
                "privacy_policy_url": None,
                "terms_of_service_url": None,
                "status_page_url": f"https://status.{slug}.example" if index % 2 == 0 else None,
                "is_active": active,
                "supports_streaming": streaming,
                "supports_function_calling": functions,
                "supports_vision": vision,
                "supports_image_generation": images,
                "metadata": {
                    "rate_limit": 1000 * (index + 1),
                    "max_tokens": 32000 * (index + 1),
                    "supported_models": [f"{slug}-model-{n}" for n in range(index + 1)],
                }
                if index != 4
                else None,
                "average_response_time_ms": None if not active else round(base * (1 + 0.35 * wave), 1),
                "health_status": health,
                "last_health_check_at": stamp if active else None,
                "created_at": "2025-12-17T04:09:11.817Z",
                "updated_at": stamp,
            }
        )
    return records


def demo_stats(records: list[Record]) -> dict[str, int]:
    counts = {"total": len(records), "active": sum(r["is_active"] for r in records)}
    counts["inactive"] = counts["total"] - counts["active"]
    for status in ("healthy", "degraded", "down", "unknown"):
        counts[status] = sum(r["health_status"] == status for r in records)
    return counts


TIERS = ("critical", "popular", "standard", "on_demand")
MODELS_PER_GATEWAY = 3


def _gateways(index: int) -> tuple[str, ...]:
    return ("openrouter", "portkey") if index % 2 == 0 else ("openrouter",)


def _model_uptime(now: float, index: int, gateway: int, model: int, down: bool) -> tuple[float, bool]:
    """A demo model's 24 h uptime (percent) and whether its circuit breaker is open."""
    if down:
        return 12.5, True
    wave = _wave(now, index, 0.6 * gateway + 0.25 * model)
    if wave < 0.55:
        return 99.95, False
    if wave < 0.8:
        return 97.5, False
    if wave < 0.9:
        return 72.0, False
    return 35.0, model == 0


def _outage_since(
    now: float, index: int, gateway: int, model: int, down: bool, started: float
) -> float | None:
    """When the model's current outage began (the incident's start), or None if it is not out."""
    if down:
        return started
    uptime, _ = _model_uptime(now, index, gateway, model, False)
    if uptime >= 50:
        return None
    since = now
    for _ in range(int(DEMO_PERIOD // 5)):  # an outage lasts well under one period
        if _model_uptime(since - 5, index, gateway, model, False)[0] >= 50:
            break
        since -= 5
    return since


def demo_status(now: float, down: frozenset[str] = frozenset(), started: float = 0.0) -> StatusData:
    """The status routes' data at ``now``, as the backend's views would hold it."""
    data = StatusData()
    stamp = iso(now - now % 30)  # the monitor checks every 30 s here
    successes = failures = 0
    for index, (slug, _name, base, *_flags, active) in enumerate(DEMO_PROVIDERS):
        if not active:
            continue  # the health monitor only watches enabled models
        for g, gateway in enumerate(_gateways(index)):
            uptimes, open_breakers, healthy = [], 0, 0
            for m in range(MODELS_PER_GATEWAY):
                model = f"{slug}-model-{m}"
                uptime, open_breaker = _model_uptime(now, index, g, m, slug in down)
                since = _outage_since(now, index, g, m, slug in down, started)
                uptimes.append(uptime)
                open_breakers += open_breaker
                healthy += uptime >= 95
                tier = TIERS[(index + m) % len(TIERS)]
                data.models.append(
                    model_view_row(
                        slug,
                        gateway,
                        model,
                        monitoring_tier=tier,
                        last_status="success" if uptime >= 95 else "error",
                        uptime_percentage_24h=uptime,
                        uptime_percentage_7d=round(99.9 - (100 - uptime) / 7, 2),
                        uptime_percentage_30d=round(99.95 - (100 - uptime) / 30, 2),
                        average_response_time_ms=round(base * (1.2 + 0.2 * m), 1),
                        last_called_at=stamp,
                        circuit_breaker_state="open" if open_breaker else "closed",
                        usage_count_24h=1000 // (index + m + 1),
                        active_incidents_count=0 if since is None else 1,
                    )
                )
                if since is not None:
                    # One incident per outage: its id names the model and when the outage began.
                    number = int(since) * 100 + index * 10 + g * MODELS_PER_GATEWAY + m
                    severity = "critical" if tier == "critical" or slug in down else "high"
                    data.incidents.append(
                        incident_row(number, slug, since, model=model, gateway=gateway, severity=severity)
                    )
                successes += round(288 * uptime / 100)
                failures += 288 - round(288 * uptime / 100)
            data.providers.append(
                provider_view_row(
                    slug,
                    gateway,
                    total_models=MODELS_PER_GATEWAY,
                    healthy_models=healthy,
                    offline_models=open_breakers,
                    avg_uptime_24h=round(sum(uptimes) / len(uptimes), 2),
                    avg_uptime_7d=round(99.9 - (100 - sum(uptimes) / len(uptimes)) / 7, 2),
                    avg_response_time_ms=round(base * 1.4, 2),
                    last_checked_at=stamp,
                )
            )
    data.checks_total, data.checks_successful = successes + failures, successes
    for row in data.models:
        data.tier_counts[row["monitoring_tier"]] = data.tier_counts.get(row["monitoring_tier"], 0) + 1
    return data


class _DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    down: frozenset[str] = frozenset()
    started = 0.0

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        now = time.time()
        records = demo_providers(now, self.down)
        if parts.path.startswith("/v1/status"):
            answered = answer(demo_status(now, self.down, self.started), parts.path, parts.query, now)
            status, body = answered if answered is not None else (404, {"detail": "Not Found"})
            self._send(status, json.dumps(body).encode())
        elif parts.path == "/providers":
            self._send(307, b"", location="/providers/" + (f"?{parts.query}" if parts.query else ""))
        elif parts.path == "/providers/":
            if parse_qs(parts.query).get("include_inactive") != ["true"]:
                records = [r for r in records if r["is_active"]]
            self._send(200, json.dumps(records).encode())
        elif parts.path == "/providers/stats":
            self._send(200, json.dumps(demo_stats(records)).encode())
        else:
            self._send(404, b'{"detail":"Not Found"}')

    def _send(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:  # keep stdout for the JSON log lines
        pass


class _DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The exporter hangs up on the requests it abandons (a deadline, stopping): no traceback
        # on stderr for that, only for a fault of the demo itself.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class DemoBackend:
    """Runs the demo API on 127.0.0.1 at a free port until ``stop()``; ``down`` providers stay down."""

    def __init__(self, down: frozenset[str] = frozenset()) -> None:
        handler = type("DemoHandler", (_DemoHandler,), {"down": down, "started": time.time()})
        self._server = _DemoServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-api", daemon=True
        )

    def start(self) -> DemoBackend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
