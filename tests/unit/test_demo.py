"""The built-in demo backend: someone trying ``--demo`` sees the exporter's numbers move within seconds."""

from __future__ import annotations

from gatewayz_exporter.config import Config
from gatewayz_exporter.demo import DEMO_PERIOD, demo_providers, demo_stats


def test_the_demo_polls_every_few_seconds_unless_told_otherwise():
    assert Config.from_env({}, demo=True).scrape_interval <= 5
    assert Config.from_env({"SCRAPE_INTERVAL": "30"}, demo=True).scrape_interval == 30
    assert Config.from_env({"ADMIN_KEY": "k"}).scrape_interval == 60


def test_response_times_change_between_two_demo_polls_ten_seconds_apart():
    start = 1_800_000_000.0
    for offset in range(0, 600, 7):  # wherever the waves are
        before = {r["slug"]: r["average_response_time_ms"] for r in demo_providers(start + offset)}
        after = {r["slug"]: r["average_response_time_ms"] for r in demo_providers(start + offset + 5)}
        changed = [slug for slug in before if before[slug] is not None and before[slug] != after[slug]]
        assert changed, f"no response time moved between t+{offset}s and t+{offset + 5}s"


def test_every_active_demo_provider_goes_through_healthy_degraded_and_down_within_one_period():
    start = 1_800_000_000.0
    seen: dict[str, set[str]] = {}
    for step in range(int(DEMO_PERIOD)):
        for record in demo_providers(start + step):
            seen.setdefault(record["slug"], set()).add(record["health_status"])
    active = {r["slug"] for r in demo_providers(start) if r["is_active"]}
    assert active and len(active) < len(seen)  # an inactive provider exists too
    for slug in active:
        assert seen[slug] == {"healthy", "degraded", "down"}, slug
    for slug in seen.keys() - active:
        assert seen[slug] == {"unknown"}, slug


def test_demo_stats_count_what_the_demo_list_holds():
    records = demo_providers(1_800_000_000.0)
    stats = demo_stats(records)
    assert stats["total"] == len(records) == stats["active"] + stats["inactive"]
    assert sum(stats[s] for s in ("healthy", "degraded", "down", "unknown")) == stats["total"]
