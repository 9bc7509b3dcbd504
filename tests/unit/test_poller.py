"""Polling against a real HTTP server: the seed's metrics, failures by reason, staleness, recovery."""

import json
import math
import platform
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from gatewayz_exporter.model import REASONS
from support.api import (
    SEED_PROVIDERS,
    SEED_STATS,
    TEST_KEY,
    FakeApi,
    FakeClock,
    Reply,
    make_config,
    registry_of,
)
from support.payloads import json_values, provider_payloads
from support.waits import eventually


def value(exporter, metric, /, **labels):
    return registry_of(exporter).get_sample_value(metric, labels)


def errors(exporter, endpoint, reason):
    return value(exporter, "gatewayz_provider_scrape_errors_total", endpoint=endpoint, reason=reason)


def test_seed_payload_becomes_the_seed_metrics(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    expected_stats = {
        "total": 4,
        "active": 3,
        "inactive": 1,
        "healthy": 2,
        "degraded": 1,
        "down": 1,
        "unknown": 0,
    }
    for field, count in expected_stats.items():
        assert value(exporter, f"gatewayz_providers_{field}") == count
    assert value(exporter, "gatewayz_provider_response_time_ms", provider="openai") == 245
    assert value(exporter, "gatewayz_provider_response_time_ms", provider="anthropic") == 320
    assert value(exporter, "gatewayz_provider_is_active", provider="mistral") == 0
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1
    assert value(exporter, "gatewayz_provider_health_status", provider="google") == 2
    assert value(exporter, "gatewayz_provider_health_status", provider="mistral") == 3
    assert value(exporter, "gatewayz_provider_supports_streaming", provider="openai") == 1
    assert value(exporter, "gatewayz_provider_supports_function_calling", provider="openai") == 1
    assert value(exporter, "gatewayz_provider_supports_vision", provider="openai") == 1
    assert value(exporter, "gatewayz_provider_supports_image_generation", provider="openai") == 0
    assert (
        value(
            exporter,
            "gatewayz_provider_info",
            provider="openai",
            name="OpenAI",
            base_url="https://api.openai.com",
            site_url="https://openai.com",
            status_page_url="https://status.openai.com",
        )
        == 1
    )
    assert value(
        exporter, "gatewayz_provider_last_health_check_timestamp_seconds", provider="anthropic"
    ) == pytest.approx(1765944525.123)
    assert value(exporter, "gatewayz_provider_rate_limit", provider="openai") == 3500
    assert value(exporter, "gatewayz_provider_max_tokens", provider="anthropic") == 200000
    assert value(exporter, "gatewayz_provider_supported_models", provider="openai") == 2
    assert value(exporter, "gatewayz_provider_supported_models", provider="anthropic") is None
    assert value(exporter, "gatewayz_provider_response_time_ms", provider="google") is None
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(
        exporter, "gatewayz_provider_last_successful_scrape_timestamp_seconds", endpoint="stats"
    ) == pytest.approx(time.time(), abs=5)
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 0
    assert (
        value(
            exporter,
            "gatewayz_exporter_build_info",
            version="1.0.0",
            python_version=platform.python_version(),
        )
        == 1
    )


def test_requests_carry_the_bearer_key_and_ask_for_inactive_providers(api, exporter_for):
    exporter_for(api).poller.poll_once()
    paths = [path for path, _ in api.requests]
    assert "/providers/?include_inactive=true" in paths  # FastAPI's real list route, asked directly
    assert "/providers?include_inactive=true" not in paths  # its redirect may point at http:// behind a proxy
    assert "/providers/stats" in paths
    assert all(headers["Authorization"] == f"Bearer {TEST_KEY}" for _, headers in api.requests)


def test_every_error_counter_exists_at_zero_before_anything_fails(api, exporter_for):
    exporter = exporter_for(api)
    for endpoint in ("providers", "stats"):
        for reason in REASONS:
            assert errors(exporter, endpoint, reason) == 0


def test_a_provider_that_disappears_upstream_disappears_at_the_next_poll(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_health_status", provider="mistral") == 3
    api.set_data(SEED_PROVIDERS[:2], SEED_STATS)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_health_status", provider="mistral") is None
    assert (
        value(
            exporter,
            "gatewayz_provider_info",
            provider="mistral",
            name="Mistral",
            base_url="https://api.mistral.ai",
            site_url="",
            status_page_url="",
        )
        is None
    )
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1


def test_info_labels_do_not_change_when_health_changes(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    before = {
        s.labels["provider"]: s.labels
        for f in registry_of(exporter).collect()
        if f.name == "gatewayz_provider"
        for s in f.samples
    }
    changed = [dict(p, health_status="down", is_active=False) for p in SEED_PROVIDERS]
    api.set_data(changed, SEED_STATS)
    exporter.poller.poll_once()
    after = {
        s.labels["provider"]: s.labels
        for f in registry_of(exporter).collect()
        if f.name == "gatewayz_provider"
        for s in f.samples
    }
    assert before == after


def _hang_up_mid_body(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'[{"slug": "a"')
    handler.wfile.flush()
    handler.connection.shutdown(2)


@pytest.mark.parametrize(
    "reply,reason",
    [
        (Reply(401, b'{"detail":"Invalid admin key"}'), "unauthorized"),
        (Reply(403, b'{"detail":"Forbidden"}'), "unauthorized"),
        (Reply(429, b"slow down", {"Retry-After": "1"}), "rate_limited"),
        (Reply(500, b"oops"), "http_error"),
        (Reply(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}), "http_error"),
        (
            Reply(200, b"<html><body>Application error</body></html>", {"Content-Type": "text/html"}),
            "invalid_json",
        ),
        (Reply(200, b'[{"slug": "openai", "health_status": "heal'), "invalid_json"),
        (Reply(200, b"\xff\xfe not utf-8"), "invalid_json"),
        (Reply(200, b"[" * 2000 + b"]" * 2000), "invalid_json"),  # nested deeper than the parser goes
        (Reply(200, {"detail": "wrong shape"}), "invalid_payload"),
        (Reply(200, b"x" * 5000), "too_large"),
        (Reply(raw=_hang_up_mid_body), "truncated"),
        (Reply(302, b"", {"Location": "https://evil.example/providers/"}), "redirect"),
    ],
)
def test_each_failure_is_counted_by_reason_and_the_last_good_data_stays(api, exporter_for, reply, reason):
    exporter = exporter_for(api, MAX_RESPONSE_BYTES="4096")
    exporter.poller.poll_once()
    api.routes["/providers/"] = reply
    snapshot = exporter.poller.poll_once()
    assert errors(exporter, "providers", reason) == 1
    assert sum(snapshot.errors.values()) == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 0
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1


def test_timeouts_are_counted_and_bounded_by_request_timeout(api, exporter_for):
    exporter = exporter_for(api, REQUEST_TIMEOUT="0.3")
    api.routes["/providers/stats"] = Reply(body=SEED_STATS, delay=30)
    started = time.monotonic()
    exporter.poller.poll_once()
    assert time.monotonic() - started < 2
    assert errors(exporter, "stats", "timeout") == 1
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1  # providers unaffected


def test_a_body_that_trickles_in_is_cut_at_the_deadline(api, exporter_for):
    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            if api.released.wait(0.1):
                return

    exporter = exporter_for(api, REQUEST_TIMEOUT="0.5")
    api.routes["/providers/"] = Reply(raw=trickle)
    started = time.monotonic()
    exporter.poller.poll_once()
    assert time.monotonic() - started < 0.5 * 5  # the trickle alone lasts 10 s
    assert errors(exporter, "providers", "timeout") == 1


def test_connection_refused_is_counted(exporter_for):
    dead = FakeApi()
    dead.close()
    exporter = exporter_for(dead)
    exporter.poller.poll_once()
    assert errors(exporter, "providers", "connection") == 1
    assert errors(exporter, "stats", "connection") == 1
    assert not exporter.is_ready()


def test_retry_after_is_honoured_then_polling_resumes(api, exporter_for):
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock)  # SCRAPE_INTERVAL=60
    api.routes["/providers/stats"] = Reply(429, b"", {"Retry-After": "120"})
    exporter.poller.poll_once()
    asked = api.count("/providers/stats")
    api.routes["/providers/stats"] = Reply(body=SEED_STATS)
    clock.advance(60)
    exporter.poller.poll_once()
    assert api.count("/providers/stats") == asked  # still inside Retry-After: not asked again
    assert api.count("/providers/?") == 2  # the other endpoint keeps its interval
    assert errors(exporter, "stats", "rate_limited") == 1
    clock.advance(60)  # 120 s after the answer: due again
    exporter.poller.poll_once()
    assert api.count("/providers/stats") == asked + 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(exporter, "gatewayz_providers_total") == 4


def test_stale_data_is_dropped_after_max_staleness_and_comes_back_on_recovery(api, exporter_for):
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="1", MAX_STALENESS="5")
    exporter.poller.poll_once()
    api.routes["/providers/"] = Reply(500, b"down")
    clock.advance(4)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1  # kept: 4s < 5s
    clock.advance(2)
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") is None  # 6s: dropped
    assert value(exporter, "gatewayz_providers_total") == 4  # stats stayed fresh when last polled
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 0
    assert exporter.is_ready()  # stats are still within MAX_STALENESS
    api.set_data(SEED_PROVIDERS, SEED_STATS)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1


def test_the_two_endpoints_are_independent(api, exporter_for):
    exporter = exporter_for(api)
    api.routes["/providers/"] = Reply(503, b"unavailable")
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_providers_healthy") == 2
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") is None
    api.set_data(SEED_PROVIDERS, SEED_STATS)
    api.routes["/providers/stats"] = Reply(200, b"garbage")
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1
    assert value(exporter, "gatewayz_providers_healthy") == 2


def test_same_host_redirects_are_followed_with_the_key(api, exporter_for):
    api.routes["/providers/stats"] = Reply(308, b"", {"Location": f"{api.url}/v2/stats"})
    api.routes["/v2/stats"] = Reply(body=SEED_STATS)
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_providers_total") == 4
    ((_, headers),) = [r for r in api.requests if r[0] == "/v2/stats"]
    assert headers["Authorization"] == f"Bearer {TEST_KEY}"


def test_the_bearer_token_never_goes_to_another_host(api, exporter_for):
    other = FakeApi()
    try:
        api.routes["/providers/stats"] = Reply(302, b"", {"Location": f"{other.url}/providers/stats"})
        exporter = exporter_for(api)
        exporter.poller.poll_once()
        assert other.requests == []
        assert errors(exporter, "stats", "redirect") == 1
    finally:
        other.close()


def test_a_redirect_loop_is_a_redirect_failure(api, exporter_for):
    api.routes["/providers/stats"] = Reply(307, b"", {"Location": "/providers/stats"})
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert errors(exporter, "stats", "redirect") == 1


def test_bad_records_drop_only_themselves_and_are_counted(api, exporter_for, caplog):
    providers = [
        SEED_PROVIDERS[0],
        {"slug": None},
        "junk",
        dict(SEED_PROVIDERS[1], average_response_time_ms=-3),
        dict(SEED_PROVIDERS[0], name="dup"),
    ]
    api.set_data(providers, SEED_STATS)
    exporter = exporter_for(api)
    with caplog.at_level("WARNING"):
        exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 4
    assert value(exporter, "gatewayz_provider_response_time_ms", provider="openai") == 245
    assert value(exporter, "gatewayz_provider_response_time_ms", provider="anthropic") is None
    assert value(exporter, "gatewayz_provider_health_status", provider="anthropic") == 1
    dropped_lines = [r for r in caplog.records if r.getMessage() == "Dropped invalid provider data"]
    assert len(dropped_lines) == 1  # once per poll, not once per record
    assert dropped_lines[0].dropped == {
        "record_without_slug": 1,
        "record_not_object": 1,
        "average_response_time_ms": 1,
        "duplicate_slug": 1,
    }


def test_the_dropped_data_warning_names_the_providers(api, exporter_for, caplog):
    api.set_data([dict(SEED_PROVIDERS[1], average_response_time_ms=-3), SEED_PROVIDERS[0]], SEED_STATS)
    exporter = exporter_for(api)
    with caplog.at_level("WARNING"):
        exporter.poller.poll_once()
    (line,) = [r for r in caplog.records if r.getMessage() == "Dropped invalid provider data"]
    assert line.providers == ["anthropic"]


def test_an_unrecognised_health_status_is_counted_and_warned_once_per_change(api, exporter_for, caplog):
    exporter = exporter_for(api)

    def poll_with(status):
        api.set_data([dict(SEED_PROVIDERS[0], health_status=status), SEED_PROVIDERS[1]], SEED_STATS)
        caplog.clear()
        with caplog.at_level("WARNING"):
            exporter.poller.poll_once()
        return [
            (r.provider, r.health_status)
            for r in caplog.records
            if r.getMessage().startswith("Unrecognised provider health status")
        ]

    assert poll_with("offline") == [("openai", "offline")]
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 0
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 1
    assert poll_with("offline") == []  # the same status again: counted, not warned
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 2
    assert poll_with("on fire") == [("openai", "on fire")]
    assert poll_with("healthy") == []
    assert poll_with("on fire") == [("openai", "on fire")]  # a change back is news again


def test_a_non_numeric_metadata_limit_leaves_its_gauge_out_quietly(api, exporter_for, caplog):
    record = dict(SEED_PROVIDERS[0], metadata={"rate_limit": "unlimited", "max_tokens": 8})
    api.set_data([record], SEED_STATS)
    exporter = exporter_for(api)
    with caplog.at_level("DEBUG", logger="gatewayz_exporter.poller"):
        exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_rate_limit", provider="openai") is None
    assert value(exporter, "gatewayz_provider_max_tokens", provider="openai") == 8
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    (quiet,) = [r for r in caplog.records if r.getMessage().startswith("Left out provider fields")]
    assert quiet.levelname == "DEBUG" and quiet.fields == {"rate_limit": 1}


def test_more_provider_records_than_the_limit_are_refused_as_too_large(
    api, exporter_for, caplog, monkeypatch
):
    from gatewayz_exporter import parse

    monkeypatch.setattr(parse, "MAX_PROVIDER_RECORDS", 3)
    api.set_data([{"slug": f"p{i}"} for i in range(4)], SEED_STATS)
    exporter = exporter_for(api)
    with caplog.at_level("WARNING"):
        exporter.poller.poll_once()
    assert errors(exporter, "providers", "too_large") == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "Provider API poll failed"]
    assert line.reason == "too_large" and "more than 3" in line.cause
    status = exporter.store.current.status["providers"]
    assert (status.success, status.reason, status.status_code) == (False, "too_large", 200)


def test_an_endpoint_status_keeps_the_latest_failure_reason_and_http_status(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    ok = exporter.store.current.status["providers"]
    assert (ok.success, ok.reason, ok.status_code) == (True, None, 200)
    api.routes["/providers/"] = Reply(status=503, body={"detail": "down"})
    exporter.poller.poll_once()
    failed = exporter.store.current.status["providers"]
    assert (failed.success, failed.reason, failed.status_code) == (False, "http_error", 503)
    assert failed.last_success_monotonic == ok.last_success_monotonic


def test_a_bad_stats_field_drops_only_its_series_and_is_counted(api, exporter_for):
    api.routes["/providers/stats"] = Reply(body={**SEED_STATS, "down": "one", "unknown": -1})
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_providers_down") is None
    assert value(exporter, "gatewayz_providers_unknown") is None
    assert value(exporter, "gatewayz_providers_total") == 4
    assert value(exporter, "gatewayz_provider_invalid_records_total") == 1


def test_an_empty_list_that_the_stats_contradict_keeps_the_last_good_data(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    api.routes["/providers/"] = Reply(body=[])  # the backend's answer to a database error
    exporter.poller.poll_once()
    assert errors(exporter, "providers", "inconsistent") == 1
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1


def test_all_zero_stats_next_to_a_provider_list_are_inconsistent(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    api.routes["/providers/stats"] = Reply(body=dict.fromkeys(SEED_STATS, 0))
    exporter.poller.poll_once()
    assert errors(exporter, "stats", "inconsistent") == 1
    assert value(exporter, "gatewayz_providers_total") == 4


@pytest.mark.parametrize(
    "providers,stats,endpoint",
    [
        (Reply(body=[]), Reply(500, b"database down"), "providers"),
        (Reply(500, b"database down"), Reply(body=dict.fromkeys(SEED_STATS, 0)), "stats"),
    ],
)
def test_a_database_error_answer_is_inconsistent_even_when_the_other_endpoint_fails_too(
    api, exporter_for, providers, stats, endpoint
):
    # The cross-check once needed both endpoints to succeed in the same poll: with the
    # other one failing, the empty answer wiped the last good data.
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    api.routes["/providers/"], api.routes["/providers/stats"] = providers, stats
    exporter.poller.poll_once()
    assert errors(exporter, endpoint, "inconsistent") == 1
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1
    assert value(exporter, "gatewayz_providers_total") == 4


def test_a_truly_empty_backend_is_exported_as_zero(api, exporter_for):
    api.set_data([], dict.fromkeys(SEED_STATS, 0))
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_providers_total") == 0
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 1


class TracerThatBreaksOnce:
    """A tracer whose first span fails: an error the poll loop did not foresee."""

    def __init__(self):
        from opentelemetry.trace import NoOpTracer

        self.calls = 0
        self._tracer = NoOpTracer()

    def start_as_current_span(self, name, *args, **kwargs):
        if name == "poll":
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("boom")
        return self._tracer.start_as_current_span(name, *args, **kwargs)

    def inject(self, headers):
        pass


def test_the_loop_survives_an_unexpected_error_and_stops_on_the_event(api):
    from gatewayz_exporter.app import build
    from gatewayz_exporter.telemetry import Telemetry

    tracer = TracerThatBreaksOnce()
    exporter = build(make_config(api.url, SCRAPE_INTERVAL="0.05"), telemetry=Telemetry(tracer))
    stop = threading.Event()
    thread = threading.Thread(target=exporter.poller.run, args=(stop,))
    thread.start()
    try:
        assert eventually(lambda: tracer.calls >= 3 and exporter.store.current.generation >= 2)
    finally:
        stop.set()
        thread.join(2)
        exporter.stop(1.0)
    assert not thread.is_alive()
    assert value(exporter, "gatewayz_provider_health_status", provider="openai") == 1


def test_an_enormous_interval_waits_for_the_next_poll_instead_of_ending_the_loop(api):
    from gatewayz_exporter.app import build

    # Event.wait raises OverflowError past threading.TIMEOUT_MAX: the loop must still be waiting.
    exporter = build(make_config(api.url, SCRAPE_INTERVAL="99999999999"))
    stop = threading.Event()
    thread = threading.Thread(target=exporter.poller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert eventually(lambda: exporter.store.current.generation >= 1)
        thread.join(0.5)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(2)
        exporter.stop(1.0)
    assert not thread.is_alive()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(providers=provider_payloads | json_values, stats=json_values)
def test_any_api_payload_over_http_is_counted_or_exported_and_never_breaks_the_exposition(
    api, exporter_for, providers, stats
):
    # What the backend could send as JSON (Python's encoder writes NaN/Infinity, which real APIs do too).
    api.routes["/providers/"] = Reply(body=json.dumps(providers).encode())
    api.routes["/providers/stats"] = Reply(body=json.dumps(stats).encode())
    exporter = exporter_for(api)
    snapshot = exporter.poller.poll_once()
    for endpoint in ("providers", "stats"):
        status = snapshot.status[endpoint]
        failures = sum(count for (e, _), count in snapshot.errors.items() if e == endpoint)
        assert status.success != (failures == 1)  # either exported or counted, never neither
    body, _ = exporter.exposition.body(openmetrics=False, gzip=False)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert "gatewayz_provider_scrape_errors" in families
    assert all(
        not math.isnan(s.value) for f in families.values() for s in f.samples if f.name.startswith("gatewayz")
    )
