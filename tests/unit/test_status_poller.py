"""The status poller against hostile upstreams: slow endless pages, the size cap over a route's
pages, and label values built to break the exposition."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from gatewayz_exporter.client import ApiClient
from gatewayz_exporter.status_poller import StatusPoller, StatusStore
from gatewayz_exporter.status_standin import StatusData, incident_row, model_view_row, provider_view_row
from support.api import TEST_KEY, FakeApi, FakeClock, Reply


@pytest.fixture
def status_api():
    fake = FakeApi()
    yield fake
    fake.close()


def poller_for(api: FakeApi, clock: FakeClock, interval: float = 60) -> StatusPoller:
    client = ApiClient(api.url, TEST_KEY, timeout=2, max_bytes=64 * 1024 * 1024)
    return StatusPoller(
        client,
        StatusStore(),
        interval=interval,
        models_max=500,
        monotonic=clock.monotonic,
        wall_clock=clock.wall,
    )


def slow_page(clock: FakeClock, body: bytes, seconds: float):
    """A raw reply that answers ``body`` after ``seconds`` of the injected clock have passed."""

    def send(handler: BaseHTTPRequestHandler) -> None:
        clock.advance(seconds)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return send


def test_pages_that_never_end_slowly_fail_the_route_within_the_interval_and_keep_its_last_data(
    status_api,
):
    clock = FakeClock()
    status_api.status = StatusData(
        providers=[provider_view_row("openai", "openrouter")],
        incidents=[incident_row(1, "openai", clock.wall() - 600)],
        models=[model_view_row("openai", "openrouter", "gpt-4")],
    )
    poller = poller_for(status_api, clock)
    first = poller.poll_once()
    assert first.incidents is not None and len(first.incidents) == 1

    # Every page full (the route's own limit) and each taking 10 s: the list never ends.
    incidents = [
        {"id": n, "provider": "p", "gateway": "g", "severity": "high", "status": "active",
         "started_at": "2026-01-01T00:00:00+00:00"}
        for n in range(100)
    ]  # fmt: skip
    models = [
        {"model_id": f"m{n}", "provider": "p", "gateway": "g", "status": "operational", "tier": "standard",
         "uptime_24h": 100, "uptime_7d": 100, "uptime_30d": 100, "circuit_breaker_state": "closed",
         "active_incidents": 0}
        for n in range(1000)
    ]  # fmt: skip
    status_api.routes["/v1/status/incidents"] = Reply(
        raw=slow_page(clock, json.dumps(incidents).encode(), 10)
    )
    status_api.routes["/v1/status/models"] = Reply(raw=slow_page(clock, json.dumps(models).encode(), 10))
    status_api.requests.clear()
    clock.advance(60)
    started = clock.monotonic()
    snapshot = poller.poll_once()

    # The pages of a poll share its interval: no more are asked once it has passed.
    asked = status_api.count("/v1/status/incidents") + status_api.count("/v1/status/models")
    assert asked <= 60 / 10 + 2
    assert clock.monotonic() - started <= 60 + 2 * 10
    assert snapshot.errors[("status_incidents", "timeout")] == 1
    assert snapshot.errors[("status_models", "timeout")] == 1
    assert snapshot.incidents == first.incidents  # the last good data is kept, not a partial list
    assert snapshot.models == first.models
    assert snapshot.status["status_providers"].success


def test_a_short_interval_still_lets_a_slow_paged_route_finish_within_request_timeout(status_api):
    clock = FakeClock()
    rows = [
        {"model_id": f"m{n}", "provider": "p", "gateway": "g", "status": "operational", "tier": "standard",
         "uptime_24h": 100, "uptime_7d": 100, "uptime_30d": 100, "circuit_breaker_state": "closed",
         "active_incidents": 0}
        for n in range(2500)
    ]  # fmt: skip

    def page(handler: BaseHTTPRequestHandler) -> None:  # 3 pages, 4 s each: longer than the interval
        offset = int(handler.path.rsplit("offset=", 1)[1])
        slow_page(clock, json.dumps(rows[offset : offset + 1000]).encode(), 4)(handler)

    status_api.status = StatusData()
    status_api.routes["/v1/status/models"] = Reply(raw=page)
    client = ApiClient(status_api.url, None, timeout=30, max_bytes=64 * 1024 * 1024)
    poller = StatusPoller(
        client, StatusStore(), interval=5, models_max=5000, monotonic=clock.monotonic, wall_clock=clock.wall
    )
    snapshot = poller.poll_once()
    assert snapshot.status["status_models"].success
    assert snapshot.models is not None and len(snapshot.models) == 2500


def test_the_size_cap_holds_a_routes_pages_together_not_each_page_alone(status_api):
    clock = FakeClock()
    # Full pages of 1,000 models, each page about 0.6 MiB: under a 1 MiB cap one by one, forever.
    models = [
        {"model_id": f"m{n}-" + "x" * 500, "provider": "p", "gateway": "g", "status": "operational",
         "tier": "standard", "uptime_24h": 100, "uptime_7d": 100, "uptime_30d": 100,
         "circuit_breaker_state": "closed", "active_incidents": 0}
        for n in range(1000)
    ]  # fmt: skip
    body = json.dumps(models).encode()
    assert 512 * 1024 < len(body) < 1024 * 1024
    status_api.status = StatusData()
    status_api.routes["/v1/status/models"] = Reply(body=body)
    client = ApiClient(status_api.url, None, timeout=2, max_bytes=1024 * 1024)
    poller = StatusPoller(
        client, StatusStore(), interval=60, models_max=500, monotonic=clock.monotonic, wall_clock=clock.wall
    )
    snapshot = poller.poll_once()
    assert status_api.count("/v1/status/models") == 2
    assert snapshot.errors[("status_models", "too_large")] == 1
    assert snapshot.models is None


def test_hostile_label_values_are_escaped_bounded_and_parse_back(status_api):
    from prometheus_client.parser import text_string_to_metric_families

    from gatewayz_exporter.fields import MAX_LABEL_LENGTH
    from gatewayz_exporter.status import STATUS_ENDPOINTS
    from gatewayz_exporter.status_metrics import render_status

    clock = FakeClock()
    nasty = (
        'a"b\\c\nd\u2028\U0001f600\ud800'  # quote, backslash, newline, line separator, emoji, lone surrogate
    )
    huge = "x" * 100_000
    status_api.status = StatusData(
        providers=[provider_view_row(nasty, nasty), provider_view_row(huge, huge)],
        models=[model_view_row(nasty, nasty, nasty), model_view_row(huge, huge, huge)],
        incidents=[
            incident_row(1, nasty, clock.wall() - 60, gateway=nasty),
            incident_row(2, huge, clock.wall() - 60),
        ],
    )
    snapshot = poller_for(status_api, clock).poll_once()
    assert not any(snapshot.invalid_records.values())
    text = render_status(snapshot, frozenset(STATUS_ENDPOINTS), openmetrics=False).decode()
    values = [
        value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for name, value in sample.labels.items()
        if name in ("provider", "gateway", "model")
    ]
    assert values and max(map(len, values)) <= MAX_LABEL_LENGTH
    assert any(
        v.startswith('a"b\\c\nd\u2028\U0001f600') for v in values
    )  # kept as given, escaped on the wire
    assert all(line.startswith(("#", "gatewayz_")) for line in text.split("\n") if line)
