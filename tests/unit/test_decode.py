"""The fast decoding path: it accepts what json.loads accepts and parses every record as the validator does."""

import json
import tracemalloc
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as om

from gatewayz_exporter.parse import (
    RAW_ARRAY_MIN_BYTES,
    PayloadError,
    RawArray,
    RecordMemo,
    parse_providers,
    parse_stats,
)
from gatewayz_exporter.parse import decode_json as decode_json_as_configured
from gatewayz_exporter.records import count_elements
from support.api import SEED_PROVIDERS, Reply, registry_of
from support.decoding import parse_body, peak_bytes_while
from support.payloads import json_values, provider_payloads

# The fast path whatever the body's size (by default only bodies of 64 KiB and more take it).
decode_json = partial(decode_json_as_configured, raw_array_min_bytes=0)


def json_outcome(body: bytes):
    try:
        return "ok", json.loads(body)
    except (ValueError, RecursionError):
        return "error", None


def decode_outcome(body: bytes):
    try:
        return "ok", decode_json(body)
    except (ValueError, RecursionError):
        return "error", None


def same_parse(decoded, loaded) -> None:
    fast, plain = parse_providers(decoded), parse_providers(loaded)
    assert fast.providers == plain.providers
    assert (fast.invalid_records, fast.dropped) == (plain.invalid_records, plain.dropped)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider_payloads, st.booleans())
def test_any_provider_payload_parses_the_same_through_the_fast_path(payload, ascii_only):
    body = json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    status, loaded = json_outcome(body)
    decoded_status, decoded = decode_outcome(body)
    assert decoded_status == status
    if status == "ok":
        same_parse(decoded, loaded)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider_payloads, st.data())
def test_a_damaged_body_is_rejected_exactly_when_json_loads_rejects_it(payload, data):
    body = bytearray(json.dumps(payload).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        junk = data.draw(
            st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3\xa9", b",", b"]", b'"', b"\\", b"{", b"1"])
        )
        cut = data.draw(st.integers(0, 2))
        body[at : at + cut] = junk
    status, loaded = json_outcome(bytes(body))
    decoded_status, decoded = decode_outcome(bytes(body))
    assert decoded_status == status
    if status == "ok" and isinstance(loaded, list):
        same_parse(decoded, loaded)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"slug": "a", "name": "\xff"}]',  # invalid UTF-8, even in a field the metrics do not use
        b'[{"slug": "a", "other": "\xff"}]',
        b'[{"slug": "a"}] trailing',
        b"[" * 2000 + b"]" * 2000,
        b"",
        b"[1,]",
        # An integer longer than int() converts (sys.get_int_max_str_digits), even in a field
        # the metrics do not use, which msgspec skips without reading it.
        b'[{"slug": "a", "other": 1' + b"0" * 5000 + b"}]",
        b'[{"slug": "a", "other": [-' + b"9" * 4301 + b"]}]",
    ],
)
def test_bodies_json_rejects_are_rejected(body):
    with pytest.raises((ValueError, RecursionError)):
        json.loads(body)
    with pytest.raises((ValueError, RecursionError)):
        decode_json(body)


@pytest.mark.parametrize(
    "body,slugs,invalid",
    [
        (b'[{"slug": "a", "average_response_time_ms": NaN}]', ["a"], 1),  # json's NaN literal
        (b'\xef\xbb\xbf[{"slug": "a"}]', ["a"], 0),  # a byte order mark
        ('[{"slug": "a"}]'.encode("utf-16"), ["a"], 0),
        (b'[{"slug": "a\\ud800b"}]', ["a?b"], 0),  # an escaped lone surrogate
        (b'[{"slug": "a\xed\xa0\x80b"}]', ["a?b"], 0),  # an encoded one, which json lets through
        (b'[{"slug": "a", "average_response_time_ms": 1e400}]', ["a"], 1),  # overflows to inf
        (b'[{"slug": "a", "metadata": {"rate_limit": 1' + b"0" * 400 + b"}}]", ["a"], 1),
        (b'[{"slug": "a", "slug": 5}, {"slug": 5, "slug": "b"}]', ["b"], 1),  # the last key wins
        (b'[{"sl\\u0075g": "\\u00e9"}]', ["\u00e9"], 0),
        (b'[{"slug": "a", "note": "' + b"1" * 5000 + b'"}]', ["a"], 0),  # digits in a string: no integer
        (b'[{"slug": "a", "other": ' + b"9" * 4300 + b"}]", ["a"], 0),  # as long as int() converts
        (b'[{"slug": "a", "other": 1.' + b"0" * 5000 + b"}]", ["a"], 0),  # a float: no digit limit
    ],
)
def test_unusual_but_valid_json_parses_as_json_loads_reads_it(body, slugs, invalid):
    decoded = decode_json(body)
    parsed = parse_providers(decoded)
    assert [p.slug for p in parsed.providers] == slugs and parsed.invalid_records == invalid
    same_parse(decoded, json.loads(body))


def test_only_a_big_array_comes_back_as_raw_records():
    small = json.dumps(SEED_PROVIDERS).encode()
    big = json.dumps(SEED_PROVIDERS * (RAW_ARRAY_MIN_BYTES // len(small) + 1)).encode()
    assert decode_json_as_configured(small) == SEED_PROVIDERS
    assert isinstance(decode_json_as_configured(big), RawArray)


def test_an_array_comes_back_as_raw_records_and_anything_else_as_json_loads_reads_it():
    assert isinstance(decode_json(json.dumps(SEED_PROVIDERS).encode()), RawArray)
    stats = decode_json(b'{"total": 4, "active": 3}')
    assert stats == {"total": 4, "active": 3} and parse_stats(stats).stats.get("total") == 4
    assert decode_json(b'"text"') == "text"


def test_stats_in_an_array_are_the_wrong_shape():
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_stats(decode_json(b'[{"total": 4}]'))


def test_negative_zero_is_zero():
    provider = parse_providers(decode_json(b'[{"slug": "a", "average_response_time_ms": -0.0}]')).providers[0]
    assert str(provider.response_time_ms) == "0.0"
    provider = parse_providers([{"slug": "a", "average_response_time_ms": -0.0}]).providers[0]
    assert str(provider.response_time_ms) == "0.0"


def body_of(records) -> bytes:
    return json.dumps(records).encode()


def test_records_unchanged_since_the_last_payload_are_reused_and_changed_ones_parsed_again():
    records = [{"slug": f"p{i}", "average_response_time_ms": i} for i in range(5)]
    memo = RecordMemo()
    first = parse_providers(decode_json(body_of(records)), memo)
    again = parse_providers(decode_json(body_of(records)), memo)
    assert again.providers is first.providers  # one comparison tells the exposition nothing changed

    records[2] = {"slug": "p2", "average_response_time_ms": 99}
    changed = parse_providers(decode_json(body_of(records)), memo)
    assert changed.providers[2].response_time_ms == 99
    assert all(changed.providers[i] is first.providers[i] for i in (0, 1, 3, 4))

    records.insert(0, records[4])  # the same bytes twice: the second is a duplicate
    shifted = parse_providers(decode_json(body_of(records)), memo)
    assert [p.slug for p in shifted.providers] == ["p4", "p0", "p1", "p2", "p3"]
    assert shifted.dropped == {"duplicate_slug": 1}


def test_parsing_depends_only_on_the_payload_and_its_own_memo():
    body = body_of([{"slug": f"p{i}"} for i in range(5)])
    mine, other = RecordMemo(), RecordMemo()
    first = parse_providers(decode_json(body), mine)
    assert parse_providers(decode_json(body), other).providers is not first.providers
    assert parse_providers(decode_json(body)).providers == first.providers
    assert parse_providers(decode_json(body), mine).providers is first.providers


def test_a_bad_record_is_counted_on_every_poll_even_when_unchanged():
    body = body_of([{"slug": "a", "is_active": "yes"}, {"slug": ""}, {"slug": "b"}])
    for _ in range(3):
        parsed = parse_providers(decode_json(body))
        assert [p.slug for p in parsed.providers] == ["a", "b"]
        assert parsed.invalid_records == 2
        assert parsed.dropped == {"is_active": 1, "record_without_slug": 1}


def exposition_of(exporter, openmetrics=False) -> str:
    body, _ = exporter.exposition.body(openmetrics=openmetrics, gzip=False)
    return body.decode()


def test_a_big_body_over_http_is_served_as_prometheus_client_renders_it_poll_after_poll(api, exporter_for):
    records = [{**SEED_PROVIDERS[i % 4], "slug": f"p{i}", "id": i} for i in range(600)]  # about 400 KB
    records[7] = {"slug": "p7", "average_response_time_ms": -1}  # one bad record among them
    stats = {"total": 600, "active": 600}
    api.set_data(records, stats)
    exporter = exporter_for(api)
    for poll in range(3):
        if poll == 2:  # one record changes: only it is parsed again, the exposition follows
            records[5] = {**records[5], "average_response_time_ms": 1234}
            api.set_data(records, stats)
        exporter.poller.poll_once()
        for openmetrics in (False, True):
            expected = (om.generate_latest if openmetrics else generate_latest)(
                registry_of(exporter)
            ).decode()
            # The cached snapshot part, then the live registry (process metrics) and "# EOF".
            assert exposition_of(exporter, openmetrics).startswith(expected.removesuffix("# EOF\n"))
    text = exposition_of(exporter)
    assert 'gatewayz_provider_response_time_ms{provider="p5"} 1234.0' in text
    assert "gatewayz_provider_invalid_records_total 3.0" in text  # p7, counted on each of the 3 polls
    assert text.count("gatewayz_provider_health_status{") == 600


@pytest.mark.parametrize("padding", [0, RAW_ARRAY_MIN_BYTES], ids=["small body", "big body"])
def test_a_body_json_loads_rejects_fails_the_poll_as_invalid_json_whatever_its_size(
    api, exporter_for, padding
):
    body = b'[{"slug": "a", "unused": 1' + b"0" * 5000 + b'}, {"slug": "b"}' + b" " * padding + b"]"
    api.routes["/providers/"] = Reply(body=body)
    exporter = exporter_for(api, MAX_RESPONSE_BYTES=str(2 * RAW_ARRAY_MIN_BYTES))
    snapshot = exporter.poller.poll_once()
    assert snapshot.errors[("providers", "invalid_json")] == 1
    assert 'provider="b"' not in exposition_of(exporter)


def test_checking_the_utf_8_of_a_big_body_holds_no_decoded_copy_of_it():
    """The API sends UTF-8 unescaped (FastAPI does): one emoji made the check hold a str of four times the body."""

    record = {"slug": "p", "name": "Zhipu \u667a\u8c31 \U0001f600", "note": "x" * 700}
    body = bytearray(
        json.dumps([{**record, "slug": f"p{i}"} for i in range(10_000)], ensure_ascii=False).encode()
    )
    tracemalloc.start()
    try:
        decoded = decode_json(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(decoded, RawArray) and len(decoded) == 10_000
    assert peak < len(body) // 2, (peak, len(body))


@pytest.mark.parametrize(
    "character", [b"\xc3\xa9", b"\xe6\x99\xba", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xed\xa0", b"\xff"]
)
def test_utf_8_is_checked_as_json_loads_checks_it_across_the_pieces_it_is_checked_in(character):
    for shift in range(4):  # the character straddles the 64 KiB mark at each of its bytes
        head = b'[{"slug": "a", "note": "'
        body = head + b"x" * (64 * 1024 - len(head) - shift) + character + b'"}, {"slug": "b"}]'
        assert decode_outcome(body)[0] == json_outcome(body)[0], shift


def test_a_deeply_nested_body_fails_or_passes_the_poll_whatever_its_size(api, exporter_for):
    """Nesting near Python's recursion limit: records are parsed deeper in the stack than the body is decoded."""
    exporter = exporter_for(api, MAX_RESPONSE_BYTES=str(2 * RAW_ARRAY_MIN_BYTES))
    outcomes = set()
    for depth in range(900, 1000, 4):
        succeeded = []
        for padding in (0, RAW_ARRAY_MIN_BYTES):
            nested = b"[" * depth + b"]" * depth
            body = b'[{"slug": "a", "unused": ' + nested + b"}" + b" " * padding + b"]"
            api.routes["/providers/"] = Reply(body=body)
            succeeded.append(exporter.poller.poll_once().status["providers"].success)
        assert succeeded[0] == succeeded[1], depth
        outcomes.add(succeeded[0])
    assert outcomes == {True, False}  # the range spans the limit


MiB = 1024 * 1024


DENSE = 4 * MiB


@pytest.mark.parametrize(
    "body",
    [
        b"[" + b"0," * (DENSE // 2) + b"0]",  # more records than the limit, two bytes each
        b"\xef\xbb\xbf[" + b"{}," * (DENSE // 3) + b"{}]",  # a byte order mark: json builds it
        b"[NaN," + b"[]," * (DENSE // 3) + b"[]]",  # a NaN literal: json builds it
        b'{"providers": [' + b"{}," * (DENSE // 3) + b"{}]}",  # not an array: json builds it
        b'[{"slug": "a", "x": NaN, "metadata": {"supported_models": [' + b"{}," * (DENSE // 3) + b"{}]}}]",
    ],
    ids=["tiny-records", "byte-order-mark", "nan", "object", "nan-in-a-record"],
)
def test_a_body_packed_with_values_is_refused_as_too_large_before_they_are_built(body):
    result = []
    peak = peak_bytes_while(lambda: result.append(parse_body(body)))
    assert isinstance(result[0], PayloadError) and result[0].reason == "too_large"
    assert peak < 4 * len(body)


@pytest.mark.parametrize("spelling", [b"0", b'{"slug": "p%d"}'], ids=["dense", "records"])
@pytest.mark.parametrize("limit", [20, 40_000], ids=["small-body", "big-body"])
def test_the_record_limit_holds_at_its_exact_boundary_on_both_sides_of_the_fast_path(
    monkeypatch, spelling, limit
):
    from gatewayz_exporter import parse

    monkeypatch.setattr(parse, "MAX_PROVIDER_RECORDS", limit)

    def body(count: int) -> bytes:
        return b"[" + b",".join(spelling.replace(b"%d", b"%d" % i) for i in range(count)) + b"]"

    assert (len(body(limit)) >= RAW_ARRAY_MIN_BYTES) == (limit > 20)
    accepted = parse_body(body(limit))
    assert not isinstance(accepted, PayloadError)
    assert len(accepted.providers) + accepted.invalid_records == limit
    refused = parse_body(body(limit + 1))
    assert isinstance(refused, PayloadError) and refused.reason == "too_large"
    assert f"{limit + 1} provider records, more than {limit}" in str(refused)


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=20))
def test_counting_an_array_agrees_with_json_loads(items):
    assert count_elements(json.dumps(items).encode()) == len(items)
    padded = [*items, "x" * 2000]  # past the size where a short array is split rather than scanned
    assert count_elements(json.dumps(padded).encode()) == len(padded)


@pytest.mark.parametrize("filler", ["\\", '"', ",", "[", "\\\\]", "é,"])
def test_counting_an_array_agrees_with_json_loads_across_chunk_boundaries(filler):
    items = [
        filler * (70_000 // len(filler) + shift) + tail for shift in range(4) for tail in ("", ",", "\\")
    ]
    items += [[filler, {"k": [filler] * 3}], 1, None]
    body = json.dumps(items).encode()
    assert count_elements(body) == len(items)
    assert count_elements(json.dumps({"a": items}).encode()) is None
