"""The status API as a hostile upstream: pages that never end, slow pages, labels, no key anywhere."""

from __future__ import annotations

import json
import signal
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests
import yaml
from conftest import ROOT, TEST_KEY, FakeApi, FakeClock, Reply, eventually, free_port
from stack_support import SlackStandIn, SmtpStandIn, notification_env, start_alertmanager
from test_alertmanager import post_alerts
from test_lifecycle import start_daemon, wait_for_metrics

from gatewayz_exporter.client import ApiClient
from gatewayz_exporter.status_poller import StatusPoller, StatusStore
from gatewayz_exporter.status_standin import StatusData, incident_row, model_view_row, provider_view_row


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


def status_rule_labels() -> dict[str, dict[str, str]]:
    """Each status alert's labels as prometheus/status_alerts.yml gives them (first rule of a name)."""
    rules = yaml.safe_load((ROOT / "prometheus" / "status_alerts.yml").read_text())["groups"][0]["rules"]
    labels: dict[str, dict[str, str]] = {}
    for rule in rules:
        labels.setdefault(rule["alert"], rule.get("labels", {}))
    return labels


@pytest.mark.prometheus
def test_one_failing_status_route_holds_only_the_alerts_computed_from_that_route(tmp_path):
    slack, smtp = SlackStandIn(), SmtpStandIn()
    alertmanager = start_alertmanager(tmp_path, notification_env(slack, smtp))
    try:
        job = {"job": "provider_metrics"}
        rule = status_rule_labels()
        where = {"provider": "openai", "gateway": "openrouter", **job}
        post_alerts(
            alertmanager.url,
            # The model list fails (a 422 on its page size, say): only per-model data is unknown.
            {
                "alertname": "GatewayzProviderDataUnknown",
                "severity": "none",
                "endpoint": "status_models",
                **job,
            },
            {
                "alertname": "GatewayzStatusProviderMajorOutage",
                **rule["GatewayzStatusProviderMajorOutage"],
                **where,
            },
            {"alertname": "GatewayzStatusIncidentOpen", **rule["GatewayzStatusIncidentOpen"], **where},
            {
                "alertname": "GatewayzStatusMonitoringInactive",
                **rule["GatewayzStatusMonitoringInactive"],
                **job,
            },
        )

        def states():
            alerts = requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
            found = {a["labels"]["alertname"]: a["status"]["state"] for a in alerts}
            return found if len(found) == 4 and "unprocessed" not in found.values() else None

        assert alertmanager.wait(states, "processing the alerts") == {
            "GatewayzProviderDataUnknown": "active",
            "GatewayzStatusProviderMajorOutage": "active",  # /v1/status/providers still answers
            "GatewayzStatusIncidentOpen": "active",
            "GatewayzStatusMonitoringInactive": "active",
        }

        # The provider route itself failing holds the provider alerts, and only them.
        post_alerts(
            alertmanager.url,
            {
                "alertname": "GatewayzProviderDataUnknown",
                "severity": "none",
                "endpoint": "status_providers",
                **job,
            },
        )

        def held():
            alerts = requests.get(alertmanager.url + "/api/v2/alerts", timeout=5).json()
            found = {
                a["labels"]["alertname"]: a["status"]["state"] for a in alerts if "gateway" in a["labels"]
            }
            return found if found.get("GatewayzStatusProviderMajorOutage") == "suppressed" else None

        assert alertmanager.wait(held, "the provider route's inhibition") == {
            "GatewayzStatusProviderMajorOutage": "suppressed",
            "GatewayzStatusIncidentOpen": "active",
        }
    finally:
        alertmanager.stop()
        slack.close()
        smtp.close()


def test_hanging_status_routes_leave_admin_series_readiness_and_a_prompt_exit_alone(api):
    # Every status route hangs (REQUEST_TIMEOUT at its default 10 s); the admin routes answer.
    for path in ("/v1/status/", "/v1/status/providers", "/v1/status/incidents", "/v1/status/stats"):
        api.routes[path] = Reply(body=[], delay=60)
    api.routes["/v1/status/models"] = Reply(307, b"", {"Location": "/v1/status/slow-models"})
    api.routes["/v1/status/slow-models"] = Reply(body=[], delay=60)  # hangs after a same-host redirect
    port = free_port()
    env = {"METRICS_PORT": str(port), "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY}
    process = start_daemon(env)
    try:
        wait_for_metrics(port, process)
        assert eventually(lambda: api.count("/v1/status/slow-models") == 1)  # every status request in flight
        url = f"http://127.0.0.1:{port}"
        assert eventually(
            lambda: "gatewayz_provider_health_status{" in requests.get(url + "/metrics", timeout=5).text
        )
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        status_requests = [headers for path, headers in api.requests if path.startswith("/v1/status")]
        assert len(status_requests) == 6
        assert not [h for h in status_requests if "authorization" in {name.lower() for name in h}]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 3.0
    finally:
        if process.poll() is None:
            process.kill()
        out, _ = process.communicate()
    assert TEST_KEY not in out


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
