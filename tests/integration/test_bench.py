"""The benchmark's machinery on tiny sizes, so it keeps working. No figure is asserted: timings are not tests."""

import gzip
import json
import sys
import urllib.request

import pytest

from gatewayz_exporter.parse import decode_json, parse_providers, parse_stats
from gatewayz_exporter.status import parse_models, parse_status_providers
from support import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import benchmark


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_the_stand_in_serves_valid_providers_and_churns_only_the_chosen_records():
    api = benchmark.StandIn(200, churn=0.25)
    try:
        bodies = [fetch(f"{api.url}/providers?include_inactive=true") for _ in range(4)]
        stats = json.loads(fetch(f"{api.url}/providers/stats"))
    finally:
        api.close()
    parsed = [parse_providers(decode_json(body)) for body in bodies]
    for result in parsed:  # every record is valid: the benchmark measures the full path
        assert len(result.providers) == 200 and result.invalid_records == 0
        assert all(
            None not in (p.response_time_ms, p.rate_limit, p.last_health_check_seconds)
            for p in result.providers
        )
    assert parse_stats(stats).stats.get("total") == 200
    first, second = (json.loads(body) for body in bodies[:2])
    changed = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    assert len(changed) == 50 and all(i % 100 < 25 for i in changed)
    assert bodies[3] == bodies[0]  # the variants are served in turn


def test_a_tiny_side_by_side_run_measures_both_exporters_on_the_same_series():
    results = benchmark.run(count=3, scrapes=2, intervals=1, interval=0.3, idle=False)
    for name in ("ours", "reference"):
        result = results[name]
        # Each provider's 12 series: info, active, health, latency, 4 capabilities, check time, 3 from metadata.
        assert result["provider_series"] == 12 * 3, name
        assert result["size_gzip"] < result["size_plain"]
        assert result["rss_mib"] > 0 and result["cpu_per_interval_s"] >= 0 and result["poll_s"] > 0


def fake_run(ours: float, reference: float) -> dict[str, dict]:
    figures = {key: 1.0 for _, key, _, _ in benchmark.ROWS if key != "idle_cpu_ms_per_s"}
    return {
        "ours": {**figures, "cpu_per_interval_s": ours},
        "reference": {**figures, "cpu_per_interval_s": reference},
    }


def test_the_table_shows_medians_and_the_spread_of_the_ratio():
    table = benchmark.format_table("10 providers", [fake_run(1, 10), fake_run(3, 10), fake_run(2, 4)])
    row = next(line for line in table.splitlines() if line.startswith("| CPU per interval"))
    # ours: median 2; reference: median 10; ratios 0.1, 0.3, 0.5
    assert row == "| CPU per interval (1 poll + 1 gzip scrape) (s) | 2 | 10 | 0.3\u00d7 (0.1\u20130.5) |"
    assert "| 10 providers | ours | reference | ours / reference (median, range of 3 runs) |" in table
    assert "idle CPU" not in table  # measured only for the smallest N


@pytest.mark.parametrize("churn", [0.0, 1.0])
def test_payload_variants_differ_exactly_when_records_churn(churn):
    base, other = benchmark.providers_payload(10), benchmark.providers_payload(10, variant=1, churn=churn)
    assert (base == other) is (churn == 0.0)


def test_the_fresh_connection_scrape_is_shown_against_the_cached_bytes_limit():
    runs = [
        {"ours": {"plain_p50": 0.006, "limit_plain_p50": 0.004}},
        {"ours": {"plain_p50": 0.009, "limit_plain_p50": 0.003}},
    ]
    line = benchmark.format_limit(runs)
    assert "7.5 ms" in line and "3.5 ms" in line and "2.25\u00d7 the limit (1.5\u20133)" in line


def test_the_cached_bytes_server_answers_with_exactly_the_bytes_it_holds():
    body = b"# TYPE x gauge\nx 1.0\n" * 1000
    assert benchmark.cached_bytes_limit(body, gzip.compress(body), 3) > 0


def test_the_stand_in_serves_the_status_routes_in_pages_as_the_backend_does():
    api = benchmark.StandIn(3, status_models=2500)
    try:
        pages = [
            json.loads(fetch(f"{api.url}/v1/status/models?limit=1000&offset={n}")) for n in (0, 1000, 2000)
        ]
        providers = json.loads(fetch(f"{api.url}/v1/status/providers"))
    finally:
        api.close()
    assert [len(page) for page in pages] == [1000, 1000, 500]
    assert parse_models(pages).invalid_records == 0
    assert len(parse_models(pages).value) == 2500
    assert parse_status_providers(providers).invalid_records == 0


def test_a_tiny_run_measures_ours_with_and_without_the_status_api():
    results = benchmark.run(
        count=3,
        scrapes=2,
        intervals=1,
        interval=0.3,
        idle=False,
        subjects=("ours", "ours+status"),
        status_models=20,
    )
    assert results["ours+status"]["size_plain"] > results["ours"]["size_plain"]  # the status series
    table = benchmark.format_status_table("3 providers, 20 status models", [results])
    assert "| resident memory (MiB) |" in table
