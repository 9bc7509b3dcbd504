"""The exposition: our renderer equals prometheus_client's and the golden files; any payload renders; polls are atomic."""

import gzip
import os
import threading
from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from gatewayz_exporter.collector import SnapshotCollector
from gatewayz_exporter.exposition import Exposition
from gatewayz_exporter.model import EndpointStatus, Snapshot
from gatewayz_exporter.parse import parse_providers, parse_stats
from gatewayz_exporter.poller import SnapshotStore
from support import ROOT
from support.api import SEED_PROVIDERS, SEED_STATS
from support.oracle import oracle_text
from support.payloads import json_values, provider_payloads

NOW = 1000.0


def snapshot_of(providers_payload, stats_payload=SEED_STATS, generation=1) -> Snapshot:
    ok = EndpointStatus(True, True, 0.01, 1765944551.0, NOW)
    return Snapshot(
        generation,
        parse_providers(providers_payload).providers,
        parse_stats(stats_payload).stats,
        MappingProxyType({"providers": ok, "stats": ok}),
    )


def collector_for(snapshot) -> SnapshotCollector:
    return SnapshotCollector(
        SnapshotStore(snapshot), max_staleness=300, version="test", monotonic=lambda: NOW
    )


def reference(collector, openmetrics) -> str:
    return oracle_text(collector, openmetrics)


def direct(collector, openmetrics) -> str:
    """What the exporter serves for the collector's snapshot (no live families: OpenMetrics adds only ``# EOF``)."""
    exposition = Exposition(collector, collector.store)
    body, _ = exposition.body(openmetrics=openmetrics, gzip=False)
    return body.decode("utf-8")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider_payloads)
def test_any_provider_payload_renders_exactly_like_prometheus_client(payload):
    collector = collector_for(snapshot_of(payload))
    for openmetrics in (False, True):
        assert direct(collector, openmetrics) == reference(collector, openmetrics)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider_payloads)
def test_any_provider_payload_gives_an_exposition_prometheus_can_parse(payload):
    collector = collector_for(snapshot_of(payload))
    text = direct(collector, False)
    families = {f.name: f for f in parse_text(text)}
    assert "gatewayz_provider_scrape_errors" in families
    slugs = {p.slug for p in collector.store.current.providers}
    health = families.get("gatewayz_provider_health_status")
    assert {s.labels["provider"] for s in health.samples} == slugs if health else not slugs
    list(parse_openmetrics(direct(collector, True)))  # raises on any invalid line


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip()))
def test_label_values_of_any_unicode_or_punctuation_round_trip(slug):
    collector = collector_for(snapshot_of([{"slug": slug, "health_status": "down"}]))
    families = {f.name: f for f in parse_text(direct(collector, False))}
    (sample,) = families["gatewayz_provider_health_status"].samples
    expected = slug.encode("utf-8", "replace").decode("utf-8")
    assert sample.labels["provider"] == expected and sample.value == 3


@given(json_values)
@settings(max_examples=100, deadline=None)
def test_any_stats_payload_is_either_rejected_or_rendered(payload):
    try:
        snapshot = snapshot_of(SEED_PROVIDERS, payload)
    except ValueError:
        return
    collector = collector_for(snapshot)
    assert direct(collector, False) == reference(collector, False)


def test_gzip_body_decompresses_to_the_plain_body_in_both_formats():
    store = SnapshotStore(snapshot_of(SEED_PROVIDERS))
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: NOW)
    exposition = Exposition(collector, store)
    for openmetrics in (False, True):
        plain, plain_type = exposition.body(openmetrics=openmetrics, gzip=False)
        packed, packed_type = exposition.body(openmetrics=openmetrics, gzip=True)
        assert gzip.decompress(packed) == plain and plain_type == packed_type
    body, content_type = exposition.body(openmetrics=True, gzip=False)
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert body.count(b"# EOF") == 1
    body, content_type = exposition.body(openmetrics=False, gzip=False)
    assert content_type.startswith("text/plain; version=0.0.4") and b"# EOF" not in body


def test_concurrent_scrapes_during_polls_never_see_a_mix_of_two_polls():
    """Each poll sets every provider's response time to its generation; a scrape must see one value."""
    store = SnapshotStore(snapshot_of([{"slug": f"p{i}", "average_response_time_ms": 0} for i in range(200)]))
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: NOW)
    exposition = Exposition(collector, store)
    stop = threading.Event()
    problems = []

    def scrape():
        while not stop.is_set():
            body, _ = exposition.body(openmetrics=False, gzip=False)
            values = {
                s.value
                for f in parse_text(body.decode())
                if f.name == "gatewayz_provider_response_time_ms"
                for s in f.samples
            }
            if len(values) != 1:
                problems.append(values)

    scrapers = [threading.Thread(target=scrape) for _ in range(3)]
    for thread in scrapers:
        thread.start()
    for generation in range(2, 12):
        payload = [{"slug": f"p{i}", "average_response_time_ms": generation} for i in range(200)]
        snapshot = snapshot_of(payload, generation=generation)
        store.publish(snapshot)
        exposition.prerender(snapshot)
    stop.set()
    for thread in scrapers:
        thread.join()
    assert problems == []


def test_render_of_seed_matches_the_seed_lines():
    text = direct(collector_for(snapshot_of(SEED_PROVIDERS)), False)
    for line in [
        "gatewayz_providers_total 4.0",
        'gatewayz_provider_response_time_ms{provider="openai"} 245.0',
        'gatewayz_provider_is_active{provider="mistral"} 0.0',
        'gatewayz_provider_health_status{provider="google"} 2.0',
        'gatewayz_provider_supports_image_generation{provider="openai"} 0.0',
        "# TYPE gatewayz_providers_total gauge",
        "# TYPE gatewayz_provider_scrape_errors_total counter",
    ]:
        assert line in text.splitlines()


def test_cached_pieces_are_reused_only_while_they_still_match_the_snapshot():
    """Same providers, new counts, stale providers, new providers: every body equals prometheus_client's."""
    clock = [NOW]
    base = snapshot_of(SEED_PROVIDERS)
    store = SnapshotStore(base)
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: clock[0])
    exposition = Exposition(collector, store)
    ok = EndpointStatus(True, True, 0.02, 1765944600.0, NOW)
    failed = EndpointStatus(True, False, 0.5, 1765944551.0, NOW)
    other = snapshot_of([{"slug": "new", "health_status": "down"}])
    steps = [
        (base, NOW),
        (replace(base, generation=2, status=MappingProxyType({"providers": ok, "stats": ok})), NOW),
        (replace(base, generation=3, stats=parse_stats({**SEED_STATS, "down": 3}).stats), NOW),
        (replace(base, generation=4, status=MappingProxyType({"providers": failed, "stats": ok})), NOW + 301),
        (replace(other, generation=5), NOW + 301),
        (replace(other, generation=6), NOW),
    ]
    for snapshot, now in steps:
        clock[0] = now
        store.publish(snapshot)
        exposition.prerender(snapshot)
        for openmetrics in (False, True):
            plain, _ = exposition.body(openmetrics=openmetrics, gzip=False)
            packed, _ = exposition.body(openmetrics=openmetrics, gzip=True)
            assert plain.decode() == reference(collector, openmetrics), (snapshot.generation, openmetrics)
            assert gzip.decompress(packed) == plain
        assert exposition.snapshot_text().decode() == reference(collector, False)  # what --once prints
    assert 'provider="new"' in plain.decode() and 'provider="openai"' not in plain.decode()


GOLDEN = ROOT / "tests" / "golden"


def golden_collector() -> SnapshotCollector:
    """The seed fixture as polled once at a fixed time, by a fixed build."""
    ok = EndpointStatus(True, True, 0.25, 1765944551.0, NOW, status_code=200, attempted_monotonic=NOW)
    snapshot = snapshot_of(SEED_PROVIDERS)
    snapshot = replace(snapshot, status=MappingProxyType({"providers": ok, "stats": ok}))
    return SnapshotCollector(
        SnapshotStore(snapshot),
        max_staleness=300,
        version="golden",
        python_version="3.x",
        monotonic=lambda: NOW,
    )


@pytest.mark.parametrize("name,openmetrics", [("seed.prom", False), ("seed.openmetrics", True)])
def test_the_seed_exposition_is_the_golden_file_byte_for_byte(name, openmetrics):
    """Regenerate after a deliberate change: ``UPDATE_GOLDEN=1 pytest tests/unit/test_exposition.py -k golden``."""
    collector = golden_collector()
    body = direct(collector, openmetrics).encode("utf-8")
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(body)
    assert body == path.read_bytes()
    assert body.decode("utf-8") == reference(collector, openmetrics)


def test_an_equal_provider_list_from_a_new_poll_is_not_rendered_again_and_a_changed_one_is(monkeypatch):
    import gatewayz_exporter.exposition as exposition_module

    rendered = []
    render = exposition_module.render_providers

    def counting(providers, *, openmetrics):
        rendered.append(len(providers))
        return render(providers, openmetrics=openmetrics)

    monkeypatch.setattr(exposition_module, "render_providers", counting)
    changed = [{**SEED_PROVIDERS[0], "average_response_time_ms": 999}, *SEED_PROVIDERS[1:]]
    store = SnapshotStore(snapshot_of(SEED_PROVIDERS))
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: NOW)
    exposition = Exposition(collector, store)
    for generation, payload in enumerate([SEED_PROVIDERS, SEED_PROVIDERS, changed, changed], start=1):
        snapshot = snapshot_of(payload, generation=generation)  # a new tuple each time, as each poll makes
        store.publish(snapshot)
        rendered.clear()
        exposition.prerender(snapshot)
        assert exposition.body(openmetrics=False, gzip=False)[0].decode() == reference(collector, False)
        # Before the first scrape only the text format is rendered; after it, only the format scraped.
        assert len(rendered) == {1: 1, 2: 0, 3: 1, 4: 0}[generation], generation


def test_a_scrape_needs_no_rendering_once_the_snapshot_is_prepared_in_its_format_and_encoding():
    """``cached_parts`` answers only from what a poll prepared (None means: render in the pool)."""
    store = SnapshotStore(snapshot_of(SEED_PROVIDERS))
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: NOW)
    exposition = Exposition(collector, store)
    for openmetrics in (False, True):
        for packed in (False, True):
            assert exposition.cached_parts(openmetrics=openmetrics, gzip=packed) is None
    exposition.prerender(store.current)  # before any scrape: the text format, compressed too
    for packed in (False, True):
        parts, content_type = exposition.cached_parts(openmetrics=False, gzip=packed)
        body = b"".join(parts)
        assert (gzip.decompress(body) if packed else body).decode() == reference(collector, False)
        assert content_type == exposition.parts(openmetrics=False, gzip=packed)[1]
    assert exposition.cached_parts(openmetrics=True, gzip=False) is None  # never scraped: not rendered
    exposition.parts(openmetrics=True, gzip=False)
    parts, _ = exposition.cached_parts(openmetrics=True, gzip=False)
    assert b"".join(parts).decode() == reference(collector, True)


def test_a_poll_with_no_scrape_since_the_last_prepares_the_formats_last_scraped(monkeypatch):
    import gatewayz_exporter.exposition as exposition_module

    rendered = []
    render = exposition_module.render_providers

    def counting(providers, *, openmetrics):
        rendered.append(openmetrics)
        return render(providers, openmetrics=openmetrics)

    monkeypatch.setattr(exposition_module, "render_providers", counting)
    store = SnapshotStore(snapshot_of(SEED_PROVIDERS))
    collector = SnapshotCollector(store, max_staleness=300, version="t", monotonic=lambda: NOW)
    exposition = Exposition(collector, store)
    exposition.parts(openmetrics=True, gzip=True)  # as Prometheus asks
    for generation in range(2, 5):
        payload = [{**SEED_PROVIDERS[0], "average_response_time_ms": generation}, *SEED_PROVIDERS[1:]]
        snapshot = snapshot_of(payload, generation=generation)
        store.publish(snapshot)
        rendered.clear()
        exposition.prerender(snapshot)  # no scrape between these polls
        assert rendered == [True], generation
        assert exposition.cached_parts(openmetrics=True, gzip=True) is not None
