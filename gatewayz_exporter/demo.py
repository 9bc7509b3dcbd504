"""A built-in stand-in for the GatewayZ API on loopback, for ``--demo``.

It behaves like the real backend where that matters (``/providers`` redirects
to ``/providers/``, inactive providers only with ``include_inactive=true``,
nullable fields, ``Z`` timestamps) and drifts over time, so a dashboard moves:
response times change on every poll, and each provider's health goes round
healthy, degraded and down every few minutes (``DEMO_PERIOD``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


def demo_providers(now: float) -> list[Record]:
    """The demo payload at time ``now``: health and latency follow waves per provider."""
    records = []
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for index, (slug, name, base, streaming, functions, vision, images, active) in enumerate(DEMO_PROVIDERS):
        wave = math.sin(2 * math.pi * now / DEMO_PERIOD + index * 1.7)
        health = "healthy" if wave < 0.55 else "degraded" if wave < 0.9 else "down"
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


class _DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        records = demo_providers(time.time())
        if parts.path == "/providers":
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


class DemoBackend:
    """Runs the demo API on 127.0.0.1 at a free port until ``stop()``."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _DemoHandler)
        self._server.daemon_threads = True
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
