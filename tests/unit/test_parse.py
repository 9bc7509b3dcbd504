"""Validation: a bad record drops itself, a bad field drops its series, and each drop is counted."""

import math

import pytest

from gatewayz_exporter.fields import parse_timestamp
from gatewayz_exporter.parse import PayloadError, parse_providers, parse_stats
from support.api import SEED_PROVIDERS, SEED_STATS


def test_seed_payload_parses_into_every_field():
    parsed = parse_providers(SEED_PROVIDERS)
    assert parsed.invalid_records == 0 and parsed.dropped == {}
    openai = parsed.providers[0]
    assert openai.slug == "openai" and openai.name == "OpenAI"
    assert openai.is_active is True and openai.health_status == 1
    assert openai.response_time_ms == 245.0
    assert openai.supports == (True, True, True, False)
    assert openai.rate_limit == 3500 and openai.max_tokens == 128000 and openai.supported_models == 2
    assert openai.last_health_check_seconds == pytest.approx(1765944551.817)


def test_nulls_are_normal_and_drop_only_their_series_without_counting():
    google = parse_providers(SEED_PROVIDERS).providers[2]
    assert google.response_time_ms is None and google.last_health_check_seconds is None
    assert google.rate_limit is None and google.site_url == "" and google.health_status == 2


@pytest.mark.parametrize(
    "text,code",
    [("healthy", 1), ("HEALTHY", 1), (" Degraded ", 2), ("down", 3), ("unknown", 0), ("on fire", 0), ("", 0)],
)
def test_health_is_matched_case_insensitively_and_anything_else_is_unknown(text, code):
    provider = parse_providers([{"slug": "x", "health_status": text}]).providers[0]
    assert provider.health_status == code


def test_records_without_a_usable_slug_or_not_objects_are_dropped_and_counted():
    parsed = parse_providers(
        [
            {"slug": "ok"},
            {"slug": ""},
            {"slug": "   "},
            {"name": "no slug"},
            {"slug": 42},
            "text",
            None,
            [1],
            {"slug": "x" * 300},
        ]
    )
    assert [p.slug for p in parsed.providers] == ["ok"]
    assert parsed.invalid_records == 8
    assert parsed.dropped == {"record_without_slug": 5, "record_not_object": 3}


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "245", True, [245], {"ms": 1}, 10**400])
def test_a_bad_response_time_drops_only_that_series(value):
    parsed = parse_providers([{"slug": "a", "average_response_time_ms": value, "is_active": True}])
    provider = parsed.providers[0]
    assert provider.response_time_ms is None and provider.is_active is True
    assert parsed.invalid_records == 1 and parsed.dropped == {"average_response_time_ms": 1}


def test_wrong_types_in_flags_metadata_and_timestamps_are_dropped_and_counted():
    parsed = parse_providers(
        [
            {
                "slug": "a",
                "is_active": "true",
                "supports_vision": 1,
                "metadata": {"rate_limit": [1], "max_tokens": -5, "supported_models": "all"},
                "last_health_check_at": "yesterday",
                "name": 7,
                "health_status": 1,
            }
        ]
    )
    provider = parsed.providers[0]
    assert provider.is_active is None and provider.supports[2] is None
    assert provider.rate_limit is None and provider.max_tokens is None and provider.supported_models is None
    assert provider.last_health_check_seconds is None and provider.name == "" and provider.health_status == 0
    assert parsed.invalid_records == 1
    assert set(parsed.dropped) == {
        "is_active",
        "supports_vision",
        "rate_limit",
        "max_tokens",
        "supported_models",
        "last_health_check_at",
        "name",
        "health_status",
    }


def test_a_metadata_limit_given_as_text_leaves_its_gauge_out_without_counting():
    parsed = parse_providers([{"slug": "a", "metadata": {"rate_limit": "unlimited", "max_tokens": "n/a"}}])
    provider = parsed.providers[0]
    assert provider.rate_limit is None and provider.max_tokens is None
    assert parsed.invalid_records == 0 and parsed.dropped == {}
    assert parsed.quiet == {"rate_limit": 1, "max_tokens": 1}


def test_an_unrecognised_health_status_is_unknown_counted_and_kept_for_the_log():
    parsed = parse_providers(
        [{"slug": "a", "health_status": " Offline\n"}, {"slug": "b", "health_status": "down"}]
    )
    offline, down = parsed.providers
    assert offline.health_status == 0 and offline.unrecognised_health == "Offline"
    assert down.health_status == 3 and down.unrecognised_health == ""
    assert parsed.invalid_records == 1 and parsed.dropped == {"unrecognised_health_status": 1}
    assert parsed.slugs == ("a",)


def test_an_unrecognised_health_status_is_capped_and_printable():
    provider = parse_providers([{"slug": "a", "health_status": "x\x00y" + "z" * 500}]).providers[0]
    assert provider.unrecognised_health.startswith("x?y") and len(provider.unrecognised_health) == 64


def test_metadata_fields_are_read_from_metadata_only():
    provider = parse_providers([{"slug": "a", "rate_limit": 5, "max_tokens": 6, "metadata": {}}]).providers[0]
    assert provider.rate_limit is None and provider.max_tokens is None


def test_duplicate_slugs_keep_the_first_and_count_the_rest():
    parsed = parse_providers(
        [
            {"slug": "a", "average_response_time_ms": 1},
            {"slug": "a", "average_response_time_ms": 2},
            {"slug": "b"},
        ]
    )
    assert [(p.slug, p.response_time_ms) for p in parsed.providers] == [("a", 1.0), ("b", None)]
    assert parsed.dropped == {"duplicate_slug": 1}


def test_lone_surrogates_in_labels_are_replaced_so_output_can_be_encoded():
    provider = parse_providers([{"slug": "bad\ud800slug", "name": "n\udfff"}]).providers[0]
    provider.slug.encode("utf-8")
    provider.name.encode("utf-8")
    assert provider.slug.startswith("bad") and provider.slug.endswith("slug")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2025-12-17T04:09:11.817Z", 1765944551.817),
        ("2025-12-17T04:09:11.817+00:00", 1765944551.817),
        ("2025-12-17T06:09:11+02:00", 1765944551.0),
        ("2025-12-17T04:09:11", 1765944551.0),
    ],
)
def test_timestamps_accept_z_offsets_and_naive_utc(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "not a date", "2025-13-45T00:00:00Z", "1969-01-01T00:00:00Z"])
def test_bad_timestamps_are_none(text):
    assert parse_timestamp(text) is None


@pytest.mark.parametrize("payload", [{"providers": []}, "[]", 3, None])
def test_providers_payload_of_the_wrong_shape_is_an_error(payload):
    with pytest.raises(PayloadError):
        parse_providers(payload)


def test_stats_fields_are_validated_one_by_one():
    parsed = parse_stats({**SEED_STATS, "down": "one", "unknown": None})
    assert parsed.stats.get("total") == 4 and parsed.stats.get("down") is None
    assert parsed.stats.get("unknown") is None
    assert parsed.dropped == {"down": 1}


@pytest.mark.parametrize("payload", [[], [SEED_STATS], "stats", {"detail": "error"}, {"total": "x"}])
def test_stats_payload_without_any_count_is_an_error(payload):
    with pytest.raises(PayloadError):
        parse_stats(payload)


def test_stats_reject_non_finite_counts():
    parsed = parse_stats({"total": math.inf, "active": 1})
    assert parsed.stats.get("total") is None and parsed.stats.get("active") == 1
