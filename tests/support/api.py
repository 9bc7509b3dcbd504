"""A real HTTP server on loopback standing in for the GatewayZ API, its seed data, and the
pieces a test builds an in-process exporter from (config, injected clock, oracle registry)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.registry import CollectorRegistry

from gatewayz_exporter.config import Config
from gatewayz_exporter.status_standin import (
    StatusData,
    answer,
    incident_row,
    model_view_row,
    provider_view_row,
)

from .oracle import oracle_registry
from .waits import free_port

TEST_KEY = "test-admin-key-not-a-secret"

SEED_PROVIDERS = [
    {
        "id": 1,
        "name": "OpenAI",
        "slug": "openai",
        "description": "OpenAI API provider for GPT models",
        "base_url": "https://api.openai.com",
        "api_key_env_var": "OPENAI_API_KEY",
        "logo_url": "https://example.com/openai-logo.png",
        "site_url": "https://openai.com",
        "privacy_policy_url": "https://openai.com/privacy",
        "terms_of_service_url": "https://openai.com/terms",
        "status_page_url": "https://status.openai.com",
        "is_active": True,
        "supports_streaming": True,
        "supports_function_calling": True,
        "supports_vision": True,
        "supports_image_generation": False,
        "metadata": {
            "rate_limit": 3500,
            "max_tokens": 128000,
            "supported_models": ["gpt-4", "gpt-3.5-turbo"],
        },
        "average_response_time_ms": 245,
        "health_status": "healthy",
        "last_health_check_at": "2025-12-17T04:09:11.817Z",
        "created_at": "2025-12-17T04:09:11.817Z",
        "updated_at": "2025-12-17T04:09:11.817Z",
    },
    {
        "id": 2,
        "name": "Anthropic",
        "slug": "anthropic",
        "description": "Anthropic Claude API provider",
        "base_url": "https://api.anthropic.com",
        "api_key_env_var": "ANTHROPIC_API_KEY",
        "logo_url": "https://example.com/anthropic-logo.png",
        "site_url": "https://anthropic.com",
        "privacy_policy_url": "https://anthropic.com/privacy",
        "terms_of_service_url": "https://anthropic.com/terms",
        "status_page_url": "https://status.anthropic.com",
        "is_active": True,
        "supports_streaming": True,
        "supports_function_calling": True,
        "supports_vision": True,
        "supports_image_generation": False,
        "metadata": {"rate_limit": 50000, "max_tokens": 200000},
        "average_response_time_ms": 320,
        "health_status": "healthy",
        "last_health_check_at": "2025-12-17T04:08:45.123+00:00",
        "created_at": "2025-12-17T04:09:11.817Z",
        "updated_at": "2025-12-17T04:09:11.817Z",
    },
    {
        "id": 3,
        "name": "Google",
        "slug": "google",
        "base_url": "https://generativelanguage.googleapis.com",
        "site_url": None,
        "status_page_url": None,
        "is_active": True,
        "supports_streaming": True,
        "supports_function_calling": True,
        "supports_vision": True,
        "supports_image_generation": True,
        "metadata": None,
        "average_response_time_ms": None,
        "health_status": "Degraded",
        "last_health_check_at": None,
    },
    {
        "id": 4,
        "name": "Mistral",
        "slug": "mistral",
        "base_url": "https://api.mistral.ai",
        "is_active": False,
        "supports_streaming": True,
        "supports_function_calling": False,
        "supports_vision": False,
        "supports_image_generation": False,
        "metadata": {},
        "average_response_time_ms": 410.5,
        "health_status": "down",
    },
]
SEED_STATS = {"total": 4, "active": 3, "inactive": 1, "healthy": 2, "degraded": 1, "down": 1, "unknown": 0}


def every_status_series(now: float | None = None) -> StatusData:
    """Status data that makes every status family export at least one series."""
    now = time.time() if now is None else now
    return StatusData(
        providers=[
            provider_view_row("openai", "openrouter"),
            provider_view_row("groq", "openrouter", avg_uptime_24h=90.0, offline_models=3),
        ],
        models=[
            model_view_row("openai", "openrouter", "gpt-4", monitoring_tier="critical"),
            model_view_row(
                "groq", "openrouter", "llama", circuit_breaker_state="open", active_incidents_count=1
            ),
        ],
        incidents=[incident_row(1, "groq", now - 600, model="llama", severity="critical")],
        checks_total=100,
        checks_successful=90,
    )


@dataclass
class Reply:
    """What the fake API answers on one path."""

    status: int = 200
    body: bytes | object = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (interrupted at teardown)
    raw: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control of the socket


class FakeApi:
    """A real HTTP server on 127.0.0.1:0. Set ``routes[path] = Reply(...)``; ``requests`` records calls.

    ``/providers`` redirects to ``/providers/`` like the real FastAPI backend,
    unless a test sets a route for ``/providers`` itself. The public status
    routes answer from ``status`` (see ``gatewayz_exporter.status_standin``).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        # The public status routes (/v1/status/...), answered as the backend's status_page.py
        # does from this data unless a route is set for the path; None: a backend without them.
        self.status: StatusData | None = every_status_series()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.released = threading.Event()
        self.set_data(SEED_PROVIDERS, SEED_STATS)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                api.requests.append((self.path, dict(self.headers)))
                reply = api.routes.get(path)
                if reply is None and api.status is not None:
                    answered = answer(api.status, path, query, time.time())
                    reply = None if answered is None else Reply(answered[0], json.dumps(answered[1]).encode())
                if reply is None and path == "/providers":
                    reply = Reply(307, b"", {"Location": "/providers/" + (f"?{query}" if query else "")})
                if reply is None:
                    reply = Reply(404, b'{"detail":"Not Found"}')
                if reply.delay and api.released.wait(reply.delay):
                    return
                if reply.raw is not None:
                    reply.raw(self)
                    return
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {
                    "Content-Type": "application/json",
                    "Content-Length": str(len(body)),
                    **reply.headers,
                }
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # clients that hang up early are part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def set_data(self, providers: object, stats: object) -> None:
        self.routes["/providers/"] = Reply(body=copy.deepcopy(providers))
        self.routes["/providers/stats"] = Reply(body=copy.deepcopy(stats))

    def count(self, path_prefix: str) -> int:
        return sum(1 for path, _ in self.requests if path.startswith(path_prefix))

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def make_config(api_url: str, **env: str) -> Config:
    values = {
        "GATEWAY_API_URL": api_url,
        "ADMIN_KEY": TEST_KEY,
        "SCRAPE_INTERVAL": "60",
        "REQUEST_TIMEOUT": "2",
        "METRICS_PORT": str(free_port()),
    }
    values.update(env)
    return Config.from_env(values)


class FakeClock:
    """Injected time: ``monotonic()`` and ``wall()`` move only when a test calls ``advance``."""

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_800_000_000.0):
        self.now, self.wall_now = monotonic, wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_now += seconds


def registry_of(exporter) -> CollectorRegistry:
    """The exporter's newest snapshot in prometheus_client's registry (the test oracle)."""
    return oracle_registry(exporter.collector)


def many_providers(count: int) -> list[dict[str, object]]:
    """``count`` distinct providers shaped like the first seed record."""
    template = SEED_PROVIDERS[0]
    return [
        dict(template, slug=f"provider-{i}", name=f"Provider {i}", average_response_time_ms=i % 900)
        for i in range(count)
    ]
