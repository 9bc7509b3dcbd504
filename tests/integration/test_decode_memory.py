"""Bodies of many megabytes are judged in memory proportional to the body, never to its elements,
and a body of as many records as the limit is still accepted."""

from __future__ import annotations

import json

import pytest

from gatewayz_exporter.parse import MAX_PROVIDER_RECORDS, PayloadError
from support.decoding import parse_body, peak_bytes_while

MiB = 1024 * 1024


HUGE_LIST = b"[" + b",".join([b'"m"'] * (4 * MiB)) + b"]"


@pytest.mark.parametrize(
    "record,expected",
    [
        (b'{"slug": "big", "metadata": {"supported_models": %s}}', (["big"], 0, 4 * MiB)),
        (b'{"slug": "big", "is_active": "yes", "metadata": {"supported_models": %s}}', (["big"], 1, 4 * MiB)),
        (b'{"slug": "big", "name": %s}', (["big"], 1, None)),
        (b'{"slug": "big", "metadata": %s}', (["big"], 1, None)),
        (b"%s", ([], 1, None)),
    ],
    ids=[
        "model list",
        "model list beside a wrong type",
        "list as a name",
        "list as metadata",
        "list as a record",
    ],
)
def test_a_huge_list_anywhere_in_a_record_is_judged_without_building_its_elements(record, expected):
    body = b"[" + record % HUGE_LIST + b"]"
    result = []
    peak = peak_bytes_while(lambda: result.append(parse_body(body)))
    parsed = result[0]
    models = parsed.providers[0].supported_models if parsed.providers else None
    assert ([p.slug for p in parsed.providers], parsed.invalid_records, models) == expected
    assert peak < len(body)


def test_millions_of_tiny_records_are_refused_as_too_large_in_memory_proportional_to_the_body():
    records = [b'{"slug":"p%d"}' % i for i in range(16 * MiB // 14)]
    body = b"[" + b",".join(records) + b"]"
    result = []
    peak = peak_bytes_while(lambda: result.append(parse_body(body)))
    assert isinstance(result[0], PayloadError) and result[0].reason == "too_large"
    assert str(MAX_PROVIDER_RECORDS) in str(result[0])
    assert peak < 17 * len(body)


def test_as_many_records_as_the_limit_are_accepted():
    body = json.dumps([{"slug": f"p{i}"} for i in range(MAX_PROVIDER_RECORDS)]).encode()
    assert len(parse_body(body).providers) == MAX_PROVIDER_RECORDS
    small_limit = json.dumps([{"slug": "a"}] * (MAX_PROVIDER_RECORDS + 1)).encode()
    assert parse_body(small_limit).reason == "too_large"
