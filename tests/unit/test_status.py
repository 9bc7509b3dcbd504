"""The public status API: validation, the model budget, polling without the key, the families."""

from __future__ import annotations

import json
import logging
import time

import pytest

from gatewayz_exporter.client import ApiClient
from gatewayz_exporter.config import Config, ConfigError
from gatewayz_exporter.demo import DEMO_PERIOD, DEMO_SLUGS, demo_providers, demo_status
from gatewayz_exporter.parse import PayloadError, decode_json
from gatewayz_exporter.status import (
    STATUS_ENDPOINTS,
    ModelHealth,
    parse_checks,
    parse_incidents,
    parse_models,
    parse_overall,
    parse_status_providers,
    within_budget,
)
from gatewayz_exporter.status_metrics import poll_rows, render_status
from gatewayz_exporter.status_poller import StatusPoller, StatusStore
from gatewayz_exporter.status_standin import (
    StatusData,
    answer,
    incident_row,
    iso,
    model_view_row,
    provider_view_row,
)
from support.api import TEST_KEY, FakeApi, FakeClock, Reply, every_status_series
from support.oracle import oracle_text

NOW = 1_800_000_000.0


def provider_json(**values: object) -> dict[str, object]:
    row = {
        "name": "openai",
        "gateway": "openrouter",
        "status": "operational",
        "uptime_24h": 99.5,
        "uptime_7d": 99.9,
        "total_models": 10,
        "healthy_models": 9,
        "offline_models": 1,
        "avg_response_time_ms": 250.0,
        "last_checked": "2026-11-30T10:00:00+00:00",
    }
    row.update(values)
    return row


def model_json(model: str = "gpt-4", **values: object) -> dict[str, object]:
    row = {
        "model_id": model,
        "provider": "openai",
        "gateway": "openrouter",
        "status": "operational",
        "tier": "standard",
        "uptime_24h": 100.0,
        "uptime_7d": 99.9,
        "uptime_30d": 99.0,
        "avg_response_time_ms": 300.0,
        "last_checked": None,
        "last_success": None,
        "last_failure": None,
        "circuit_breaker_state": "closed",
        "active_incidents": 0,
    }
    row.update(values)
    return row


# --- validation ---------------------------------------------------------------


def test_provider_rows_become_ratios_and_a_null_last_check_is_absent_not_counted():
    parsed = parse_status_providers([provider_json(), provider_json(gateway="portkey", last_checked=None)])
    first, second = parsed.value
    assert parsed.invalid_records == 0
    assert (first.provider, first.gateway, first.state) == ("openai", "openrouter", "operational")
    assert (first.uptime_24h, first.uptime_7d) == (0.995, 0.999)
    assert first.last_checked == pytest.approx(1_796_032_800.0)
    assert second.last_checked is None


@pytest.mark.parametrize(
    "bad",
    [
        {"uptime_24h": 100.5},
        {"uptime_7d": -1},
        {"total_models": "10"},
        {"healthy_models": None},
        {"name": None},
        {"avg_response_time_ms": float("nan")},
        {"last_checked": "yesterday"},
        {"uptime_24h": True},
    ],
)
def test_a_bad_provider_row_drops_only_itself_and_is_counted(bad):
    parsed = parse_status_providers([provider_json(**bad), provider_json(gateway="portkey")])
    assert [p.gateway for p in parsed.value] == ["portkey"]
    assert parsed.invalid_records == 1


def test_an_unrecognised_state_is_unknown_and_counted_but_the_row_is_kept():
    parsed = parse_status_providers([provider_json(status="melting")])
    assert [p.state for p in parsed.value] == ["unknown"]
    assert parsed.invalid_records == 1
    models = parse_models([[model_json(status="operational", circuit_breaker_state="ajar")]])
    assert [(m.state, m.breaker) for m in models.value] == [("operational", "unknown")]
    assert models.invalid_records == 1


def test_a_repeated_provider_and_gateway_keeps_the_first_and_counts_the_repeat():
    parsed = parse_status_providers([provider_json(), provider_json(uptime_24h=1.0)])
    assert [p.uptime_24h for p in parsed.value] == [0.995]
    assert parsed.invalid_records == 1


@pytest.mark.parametrize("payload", [{"detail": "x"}, "text", None, 3])
def test_a_non_array_is_a_bad_payload(payload):
    with pytest.raises(PayloadError):
        parse_status_providers(payload)
    with pytest.raises(PayloadError):
        parse_models([payload])


def test_big_bodies_are_judged_by_the_same_rules_as_small_ones():
    rows = [model_json(f"m{i}", uptime_24h=100.5 if i == 3 else 99.0) for i in range(400)]
    body = json.dumps(rows).encode()
    big = decode_json(body)  # a RawArray
    small = decode_json(body, raw_array_min_bytes=len(body) + 1)  # a list
    assert type(big) is not type(small)
    assert parse_models([big]) == parse_models([small])
    assert parse_models([big]).invalid_records == 1


def test_overall_without_data_is_unknown_with_no_counts():
    parsed = parse_overall(
        {"status": "unknown", "message": "Status data not available", "timestamp": iso(NOW)}
    )
    assert parsed.value.state == "unknown" and parsed.value.models is None
    assert parsed.invalid_records == 0


def test_checks_success_rate_null_is_absent_and_out_of_range_is_invalid():
    no_checks = {"total": 0, "successful": 0, "failed": 0, "success_rate": None, "monitoring_active": False}
    parsed = parse_checks({"checks_24h": no_checks})
    assert parsed.value.success_ratio is None and parsed.value.monitoring_active is False
    assert parsed.invalid_records == 0
    bad = parse_checks({"checks_24h": {**no_checks, "success_rate": 101}})
    assert bad.value.success_ratio is None and bad.invalid_records == 1
    with pytest.raises(PayloadError):
        parse_checks({"monitoring": {}})


def test_resolved_incidents_are_not_counted_and_repeats_across_pages_are_dropped():
    active = incident_row(1, "groq", NOW - 60)
    resolved = incident_row(2, "groq", NOW - 60, status="resolved")
    parsed = parse_incidents([[active, resolved], [active]])
    assert [i.id for i in parsed.value] == [1]
    assert parsed.invalid_records == 1  # the repeat; the resolved one is simply not active


def model(name: str, tier: str) -> ModelHealth:
    return ModelHealth("p", "g", name, tier, "operational", 1.0, 1.0, 1.0, "closed", 0.0)


def test_the_budget_fills_by_tier_then_in_api_order():
    listed = [model("a", "standard"), model("b", "on_demand"), model("c", "critical"), model("d", "popular")]
    listed += [model("e", "critical"), model("f", "")]
    chosen, left_out = within_budget(listed, 4)
    assert [m.model for m in chosen] == ["c", "e", "d", "a"]
    assert left_out == 2
    assert within_budget(listed, 0) == ((), 6)
    assert within_budget(listed, 100)[1] == 0


# --- config -------------------------------------------------------------------


def test_status_api_is_on_by_default_with_a_budget_of_500():
    config = Config.from_env({"ADMIN_KEY": "k"})
    assert config.status_api is True and config.status_models_max == 500
    config = Config.from_env({"ADMIN_KEY": "k", "STATUS_API": "OFF", "STATUS_MODELS_MAX": "0"})
    assert config.status_api is False and config.status_models_max == 0


@pytest.mark.parametrize(("name", "value"), [("STATUS_API", "maybe"), ("STATUS_MODELS_MAX", "-1")])
def test_bad_status_settings_are_named(name, value):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"ADMIN_KEY": "k", name: value})
    assert error.value.problems[0].startswith(f"{name}:")


# --- polling against the stand-in ---------------------------------------------


@pytest.fixture
def status_api():
    fake = FakeApi()
    yield fake
    fake.close()


def poller_for(api: FakeApi, clock: FakeClock | None = None, models_max: int = 500) -> StatusPoller:
    clock = clock or FakeClock()
    client = ApiClient(api.url, TEST_KEY, timeout=2, max_bytes=64 * 1024 * 1024)
    return StatusPoller(
        client,
        StatusStore(),
        interval=60,
        models_max=models_max,
        monotonic=clock.monotonic,
        wall_clock=clock.wall,
    )


def exposition(snapshot, fresh=STATUS_ENDPOINTS) -> str:
    return render_status(snapshot, frozenset(fresh), openmetrics=False).decode()


def sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_every_status_family_has_the_values_the_api_gave(status_api):
    now = time.time()
    status_api.status = StatusData(
        providers=[
            provider_view_row("openai", "openrouter"),
            provider_view_row(
                "groq", "openrouter", avg_uptime_24h=42.0, offline_models=4, last_checked_at=None
            ),
        ],
        models=[
            model_view_row(
                "groq", "openrouter", "llama", circuit_breaker_state="open", monitoring_tier="critical"
            ),
            model_view_row("openai", "openrouter", "gpt-4", usage_count_24h=50, uptime_percentage_24h=97.5),
        ],
        incidents=[
            incident_row(1, "groq", now - 900, severity="critical"),
            incident_row(2, "groq", now - 60),
            incident_row(3, "openai", now - 60, status="resolved", resolved_at=iso(now), duration_seconds=60),
        ],
        checks_total=200,
        checks_successful=150,
    )
    snapshot = poller_for(status_api).poll_once()
    text = exposition(snapshot)
    pg = 'gateway="openrouter",provider="groq"'
    assert sample(text, 'gatewayz_status_overall_state{state="major_outage"}') == 1.0
    assert sample(text, 'gatewayz_status_overall_state{state="operational"}') == 0.0
    assert sample(text, "gatewayz_status_models_monitored") == 20.0
    assert sample(text, "gatewayz_status_models_offline") == 4.0
    assert sample(text, "gatewayz_status_providers_monitored") == 2.0
    assert sample(text, "gatewayz_status_gateways_healthy") == 1.0
    assert sample(text, "gatewayz_status_incidents_active") == 2.0
    assert sample(text, f'gatewayz_status_provider_state{{{pg},state="major_outage"}}') == 1.0
    assert sample(text, f'gatewayz_status_provider_uptime_ratio{{{pg},window="24h"}}') == 0.42
    assert sample(text, f"gatewayz_status_provider_models_offline{{{pg}}}") == 4.0
    assert sample(text, f"gatewayz_status_provider_response_time_ms{{{pg}}}") == 250.0
    assert f"gatewayz_status_provider_last_check_timestamp_seconds{{{pg}}}" not in text
    assert (
        sample(
            text,
            'gatewayz_status_provider_last_check_timestamp_seconds{gateway="openrouter",provider="openai"}',
        )
        is not None
    )
    assert sample(text, f'gatewayz_status_incidents_open{{{pg},severity="critical"}}') == 1.0
    assert sample(text, f'gatewayz_status_incidents_open{{{pg},severity="high"}}') == 1.0
    assert sample(text, f'gatewayz_status_incidents_open{{{pg},severity="low"}}') == 0.0
    assert 'provider="openai",severity=' not in text  # its only incident is resolved
    oldest = sample(text, f"gatewayz_status_oldest_incident_start_timestamp_seconds{{{pg}}}")
    assert oldest == pytest.approx(now - 900, abs=1)
    assert sample(text, "gatewayz_status_checks_success_ratio") == 0.75
    assert sample(text, "gatewayz_status_checks_failed_24h") == 50.0
    assert sample(text, "gatewayz_status_monitoring_active") == 1.0
    llama = 'gateway="openrouter",model="llama",provider="groq"'
    assert sample(text, f'gatewayz_status_model_state{{{llama},state="offline"}}') == 1.0
    assert sample(text, f'gatewayz_status_model_circuit_breaker_state{{{llama},state="open"}}') == 1.0
    gpt = 'gateway="openrouter",model="gpt-4",provider="openai"'
    assert sample(text, f'gatewayz_status_model_state{{{gpt},state="degraded"}}') == 1.0
    assert sample(text, f'gatewayz_status_model_uptime_ratio{{{gpt},window="24h"}}') == 0.975
    assert sample(text, "gatewayz_status_models_left_out") == 0.0
    assert all(
        sample(text, f'gatewayz_status_invalid_records_total{{endpoint="{e}"}}') == 0
        for e in STATUS_ENDPOINTS
    )


def test_no_authorization_header_is_sent_to_the_status_routes(status_api):
    status_api.status = StatusData(providers=[provider_view_row("openai", "openrouter")])
    poller_for(status_api).poll_once()
    status_requests = [
        (path, headers) for path, headers in status_api.requests if path.startswith("/v1/status")
    ]
    assert len(status_requests) == 5
    assert not any(name.lower() == "authorization" for _, headers in status_requests for name in headers)
    assert not any(TEST_KEY in value for _, headers in status_requests for value in headers.values())


def test_5000_models_are_read_page_by_page_and_give_at_most_the_budget(status_api):
    models = [
        model_view_row(
            "p",
            "g",
            f"m{i}",
            usage_count_24h=5000 - i,
            monitoring_tier="critical" if i % 10 == 0 else "standard",
        )
        for i in range(5000)
    ]
    status_api.status = StatusData(models=models)
    snapshot = poller_for(status_api, models_max=300).poll_once()
    asked = [path for path, _ in status_api.requests if path.startswith("/v1/status/models")]
    assert asked == [f"/v1/status/models?limit=1000&offset={n}" for n in range(0, 6000, 1000)]
    assert snapshot.models is not None and len(snapshot.models) == 300
    assert snapshot.models_left_out == 4700
    assert {m.tier for m in snapshot.models} == {"critical"}
    assert [m.model for m in snapshot.models[:3]] == ["m0", "m10", "m20"]  # by use, as the API ordered them
    text = exposition(snapshot)
    assert text.count("gatewayz_status_model_incidents_active{") == 300
    assert sample(text, "gatewayz_status_models_left_out") == 4700.0


def test_a_budget_of_zero_turns_the_per_model_series_off(status_api):
    status_api.status = StatusData(models=[model_view_row("p", "g", "m")])
    text = exposition(poller_for(status_api, models_max=0).poll_once())
    assert "gatewayz_status_model_state{" not in text
    assert sample(text, "gatewayz_status_models_left_out") == 1.0


def test_the_stand_in_refuses_a_limit_over_the_routes_maximum(status_api):
    status_api.status = StatusData()
    client = ApiClient(status_api.url, None, timeout=2, max_bytes=1 << 20)
    over = client.fetch("/v1/status/models?limit=1001", authorized=False)
    assert (over.reason, over.status_code) == ("http_error", 422)
    assert client.fetch("/v1/status/incidents?limit=101", authorized=False).status_code == 422
    assert client.fetch("/v1/status/incidents?limit=100", authorized=False).ok


def test_an_empty_status_api_gives_unknown_and_no_rows(status_api):
    status_api.status = StatusData()
    snapshot = poller_for(status_api).poll_once()
    text = exposition(snapshot)
    assert sample(text, 'gatewayz_status_overall_state{state="unknown"}') == 1.0
    assert "gatewayz_status_models_monitored" not in text
    assert "gatewayz_status_provider_state{" not in text
    assert "gatewayz_status_checks_success_ratio" not in text  # no checks ran: absent, not 0
    assert sample(text, "gatewayz_status_monitoring_active") == 0.0
    assert all(s.success for s in snapshot.status.values())


def test_a_failing_route_keeps_its_last_data_until_max_staleness_and_counts_the_reason(status_api):
    clock = FakeClock()
    status_api.status = StatusData(providers=[provider_view_row("openai", "openrouter")])
    poller = poller_for(status_api, clock)
    poller.poll_once()
    status_api.routes["/v1/status/providers"] = Reply(500, b'{"detail":"Failed to retrieve provider status"}')
    clock.advance(60)
    snapshot = poller.poll_once()
    assert snapshot.providers is not None and len(snapshot.providers) == 1
    assert snapshot.errors[("status_providers", "http_error")] == 1
    assert not snapshot.status["status_providers"].success
    assert snapshot.fresh("status_providers", clock.monotonic(), 300)
    clock.advance(300)
    assert not snapshot.fresh("status_providers", clock.monotonic(), 300)
    stale = exposition(snapshot, fresh=[e for e in STATUS_ENDPOINTS if e != "status_providers"])
    assert "gatewayz_status_provider_state{" not in stale
    rows = poll_rows(snapshot)
    assert (("status_providers",), 0.0) in rows.success
    assert (("status_providers", "http_error"), 1.0) in rows.errors


def test_a_backend_without_the_status_routes_is_counted_every_poll_and_logged_once(status_api, caplog):
    status_api.status = None
    poller = poller_for(status_api)
    with caplog.at_level(logging.WARNING, logger="gatewayz_exporter.status"):
        for _ in range(3):
            snapshot = poller.poll_once()
    assert all(snapshot.errors[(e, "http_error")] == 3 for e in STATUS_ENDPOINTS)
    not_found = [r for r in caplog.records if "not found" in r.getMessage()]
    assert sorted(r.endpoint for r in not_found) == sorted(STATUS_ENDPOINTS)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "poll failed" in r.getMessage()]


def test_retry_after_holds_a_route_back(status_api):
    clock = FakeClock()
    status_api.status = StatusData()
    status_api.routes["/v1/status/stats"] = Reply(429, b"{}", {"Retry-After": "120"})
    poller = poller_for(status_api, clock)
    poller.poll_once()
    clock.advance(60)
    poller.poll_once()
    assert status_api.count("/v1/status/stats") == 1
    assert status_api.count("/v1/status/providers") == 2


# --- the demo -----------------------------------------------------------------


def demo_answer(now: float, path: str, query: str = "", down: frozenset[str] = frozenset()) -> object:
    answered = answer(demo_status(now, down, started=NOW - 3600), path, query, now)
    assert answered is not None and answered[0] == 200
    return answered[1]


def test_the_demo_outage_wave_moves_across_providers_gateways_and_models():
    seen: dict[tuple[str, str], set[str]] = {}
    models_seen: set[str] = set()
    incidents_seen: list[set[int]] = []
    for step in range(0, int(DEMO_PERIOD), 5):
        now = NOW + step
        providers = parse_status_providers(demo_answer(now, "/v1/status/providers"))
        models = parse_models([demo_answer(now, "/v1/status/models", "limit=1000")])
        incidents = parse_incidents([demo_answer(now, "/v1/status/incidents", "status=active&limit=100")])
        assert providers.invalid_records == models.invalid_records == incidents.invalid_records == 0
        for p in providers.value:
            seen.setdefault((p.provider, p.gateway), set()).add(p.state)
        models_seen.update(m.state for m in models.value)
        incidents_seen.append({i.id for i in incidents.value})
    assert len(seen) > len(DEMO_SLUGS)  # some providers sit behind two gateways
    assert all(states == {"operational", "degraded", "major_outage"} for states in seen.values()), seen
    assert {"operational", "degraded", "partial_outage", "major_outage", "offline"} <= models_seen
    opened = set().union(*incidents_seen)
    assert opened and all(
        any(i not in later for later in incidents_seen) for i in opened
    )  # each one resolves


def test_demo_down_keeps_a_provider_down_in_the_registry_and_in_major_outage():
    down = frozenset({"groq"})
    for step in range(0, int(DEMO_PERIOD), 10):
        now = NOW + step
        (groq,) = [r for r in demo_providers(now, down) if r["slug"] == "groq"]
        assert groq["health_status"] == "down"
        rows = parse_status_providers(demo_answer(now, "/v1/status/providers", down=down)).value
        assert {p.state for p in rows if p.provider == "groq"} == {"major_outage"}
        incidents = parse_incidents(
            [demo_answer(now, "/v1/status/incidents", "status=active", down=down)]
        ).value
        assert {i.severity for i in incidents if i.provider == "groq"} == {"critical"}
    assert Config.from_env({"DEMO_DOWN": "groq, openai"}, demo=True).demo_down == {"groq", "openai"}
    with pytest.raises(ConfigError) as error:
        Config.from_env({"DEMO_DOWN": "nosuch"}, demo=True)
    assert error.value.problems[0].startswith("DEMO_DOWN:")


# --- the whole exporter -------------------------------------------------------


def reference_exposition(exporter, openmetrics: bool) -> str:
    """What prometheus_client writes for the exporter's newest snapshot and status reading."""
    return oracle_text(exporter.collector, openmetrics)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_served_body_is_what_prometheus_client_writes_for_the_status_families(
    api, exporter_for, openmetrics
):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    body, _ = exporter.exposition.body(openmetrics=openmetrics, gzip=False)
    text = body.decode()
    # The served body is the cached part, then the live registry's (process) lines.
    assert text.startswith(reference_exposition(exporter, openmetrics).removesuffix("# EOF\n"))
    assert (
        'gatewayz_status_provider_state{gateway="openrouter",provider="groq",state="major_outage"} 1.0'
        in text
    )
    assert 'gatewayz_provider_scrape_success{endpoint="status_models"} 1.0' in text
    assert 'gatewayz_provider_scrape_success{endpoint="providers"} 1.0' in text
    assert text.count("# TYPE gatewayz_provider_scrape_success gauge") == 1  # one family for all endpoints


def test_a_status_poll_alone_updates_the_served_body(api, exporter_for):
    data = api.status = every_status_series()
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.exposition.body(openmetrics=False, gzip=False)  # cached before the status poll
    exporter.status_poller.poll_once()
    first, _ = exporter.exposition.body(openmetrics=False, gzip=False)
    assert b"gatewayz_status_checks_success_ratio 0.9\n" in first
    data.checks_successful = 45
    exporter.status_poller.poll_once()
    second, _ = exporter.exposition.body(openmetrics=False, gzip=False)
    assert b"gatewayz_status_checks_success_ratio 0.45\n" in second


def test_a_failing_status_api_changes_neither_the_admin_series_nor_readiness(api, exporter_for):
    clock = FakeClock()
    for path in (
        "/v1/status/",
        "/v1/status/providers",
        "/v1/status/stats",
        "/v1/status/models",
        "/v1/status/incidents",
    ):
        api.routes[path] = Reply(503, b'{"detail":"down"}')
    exporter = exporter_for(api, clock)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    assert exporter.is_ready()
    text = reference_exposition(exporter, False)
    assert 'gatewayz_provider_health_status{provider="openai"} 1.0' in text
    assert "gatewayz_providers_total 4.0" in text
    assert 'gatewayz_provider_scrape_success{endpoint="status"} 0.0' in text
    assert 'gatewayz_provider_scrape_errors_total{endpoint="status_stats",reason="http_error"} 1.0' in text
    assert "gatewayz_status_overall_state" not in text


def test_the_status_api_alone_does_not_make_the_exporter_ready(api, exporter_for):
    api.routes["/providers/"] = Reply(500, b"{}")
    api.routes["/providers/stats"] = Reply(500, b"{}")
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    assert not exporter.is_ready()
    assert "gatewayz_status_monitoring_active 1.0" in reference_exposition(exporter, False)


def test_the_exporter_sends_no_key_to_the_status_routes_and_asks_the_list_route_directly(api, exporter_for):
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    status = [headers for path, headers in api.requests if path.startswith("/v1/status")]
    admin = [headers for path, headers in api.requests if not path.startswith("/v1/status")]
    assert status and not any("Authorization" in headers for headers in status)
    assert all(headers["Authorization"] == f"Bearer {TEST_KEY}" for headers in admin)
    assert [path for path, _ in api.requests if path.startswith("/providers?")] == []
    assert api.count("/providers/?include_inactive=true") == 1


def test_status_api_off_asks_nothing_and_exports_no_status_series(api, exporter_for):
    exporter = exporter_for(api, STATUS_API="off")
    assert exporter.status_poller is None
    exporter.poller.poll_once()
    text = reference_exposition(exporter, False)
    assert api.count("/v1/status") == 0
    assert "gatewayz_status_" not in text and 'endpoint="status' not in text


def test_unchanged_model_rows_are_not_judged_again_but_still_count_and_changed_ones_are(status_api):
    rows = [model_view_row("p", "g", f"m{i}", usage_count_24h=1000 - i) for i in range(400)]
    rows[5]["uptime_percentage_24h"] = 250.0  # invalid on every poll
    status_api.status = StatusData(models=rows)
    poller = poller_for(status_api)
    first = poller.poll_once()
    assert first.invalid_records["status_models"] == 1 and first.models is not None
    rows[0]["uptime_percentage_24h"] = 42.0
    second = poller.poll_once()
    assert second.invalid_records["status_models"] == 2  # the bad row, counted again
    assert second.models is not None and second.models[0].uptime_24h == 0.42
    assert second.models[1] is first.models[1]  # the same bytes: the same judged value
    assert second.data_version == first.data_version + 1
    third = poller.poll_once()
    assert third.models is second.models and third.data_version == second.data_version  # nothing to render


@pytest.mark.parametrize("seed", range(5))
def test_big_bodies_polled_again_with_some_rows_changed_give_what_small_bodies_give(seed):
    import random

    from gatewayz_exporter.status import RowMemo

    chooser = random.Random(seed)
    odd_values: list[object] = [100.5, -1, "99", None, True, 99.999, 0, 1e308, 50, 12.34]
    states = ["operational", " Degraded", "OFFLINE", "sideways", None, 3]

    def poll_rows(count: int) -> list[dict[str, object]]:
        return [
            model_json(
                f"m{chooser.randrange(count)}",
                status=chooser.choice(states),
                circuit_breaker_state=chooser.choice(["closed", "open", None, "weird"]),
                tier=chooser.choice(["critical", "standard", "other", None]),
                uptime_24h=chooser.choice(odd_values),
                uptime_7d=round(chooser.uniform(0, 100), 2),
                active_incidents=chooser.choice([0, 2, -3, 1.5]),
            )
            for _ in range(count)
        ]

    memo = RowMemo()
    first = poll_rows(300)
    second = [row if chooser.random() < 0.5 else poll_rows(1)[0] for row in first]
    for rows in (first, second, first):
        body = json.dumps(rows).encode()
        big = [decode_json(body, raw_array_min_bytes=1)]
        small = [decode_json(body, raw_array_min_bytes=len(body) + 1)]
        assert type(big[0]) is not type(small[0])
        assert parse_models(big, memo) == parse_models(small) == parse_models(big)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_label_values_with_quotes_backslashes_and_newlines_are_written_as_prometheus_client_writes_them(
    api, exporter_for, openmetrics
):
    data = api.status = every_status_series()
    for name in ('say "hi"', "back\\slash", "two\nlines", "plain", "100% sure"):
        data.models.append(model_view_row("openai", "openrouter", name, monitoring_tier="critical"))
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    exporter.status_poller.poll_once()
    body, _ = exporter.exposition.body(openmetrics=openmetrics, gzip=False)
    assert body.decode().startswith(reference_exposition(exporter, openmetrics).removesuffix("# EOF\n"))
    assert 'model="say \\"hi\\""' in body.decode() and 'model="100% sure"' in body.decode()


def test_each_route_records_its_latest_reason_http_status_and_attempt_time(status_api):
    clock = FakeClock()
    status_api.status = StatusData(providers=[provider_view_row("openai", "openrouter")])
    poller = poller_for(status_api, clock)
    first = poller.poll_once().status["status_providers"]
    assert (first.reason, first.status_code, first.attempted_monotonic) == (None, 200, clock.monotonic())
    status_api.routes["/v1/status/providers"] = Reply(503, b'{"detail":"down"}')
    clock.advance(60)
    failed = poller.poll_once().status["status_providers"]
    assert (failed.reason, failed.status_code, failed.attempted_monotonic) == (
        "http_error",
        503,
        clock.monotonic(),
    )
    assert failed.last_success_monotonic == first.last_success_monotonic
