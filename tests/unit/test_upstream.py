"""The poll path against an API that misbehaves: trickles, hangs, odd headers, odd redirects, garbage.

Whatever the API does, ``fetch`` returns a counted reason, the other endpoint keeps its
poll, and REQUEST_TIMEOUT bounds the whole request.
"""

import email.utils
import gzip
import logging
import socket
import ssl
import struct
import threading
import time

import pytest

from gatewayz_exporter.app import build
from gatewayz_exporter.client import ApiClient, content_length, parse_retry_after
from support.api import SEED_STATS, TEST_KEY, FakeApi, FakeClock, Reply, make_config, registry_of


def value(exporter, metric, /, **labels):
    return registry_of(exporter).get_sample_value(metric, labels)


def errors(exporter, endpoint, reason):
    return value(exporter, "gatewayz_provider_scrape_errors_total", endpoint=endpoint, reason=reason)


def failure_lines(caplog):
    return [r for r in caplog.records if r.getMessage() == "Provider API poll failed"]


def _raw(data: bytes, close: bool = True):
    """A reply written byte for byte, then (by default) the connection closed."""

    def reply(handler):
        handler.wfile.write(data)
        handler.wfile.flush()
        if close:
            handler.close_connection = True

    return Reply(raw=reply)


def _trickle_head(api: FakeApi, every: float = 0.2):
    """A status line, then one header line every ``every`` seconds, forever."""

    def reply(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for index in range(1000):
            if api.released.wait(every):
                return
            try:
                handler.wfile.write(b"X-Slow-%d: 1\r\n" % index)
                handler.wfile.flush()
            except OSError:
                return

    return Reply(raw=reply)


# --- REQUEST_TIMEOUT is a deadline for the whole request ---------------------------------


def test_a_trickled_head_fails_as_timeout_at_the_deadline_and_stats_keep_their_poll(
    api, exporter_for, caplog
):
    exporter = exporter_for(api, REQUEST_TIMEOUT="0.5")
    api.routes["/providers/"] = _trickle_head(api)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        exporter.poller.poll_once()
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 * 5  # the deadline holds: the trickle alone would last minutes
    assert errors(exporter, "providers", "timeout") == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    (line,) = failure_lines(caplog)
    assert line.reason == "timeout" and line.cause == "head"


def test_each_endpoint_has_its_own_deadline(api, exporter_for):
    # Both hang: the poll takes one REQUEST_TIMEOUT, not two.
    exporter = exporter_for(api, REQUEST_TIMEOUT="0.5")
    api.routes["/providers/"] = _trickle_head(api)
    api.routes["/providers/stats"] = Reply(body=SEED_STATS, delay=30)
    started = time.monotonic()
    exporter.poller.poll_once()
    assert time.monotonic() - started < 0.5 + 0.5
    assert errors(exporter, "providers", "timeout") == 1
    assert errors(exporter, "stats", "timeout") == 1


@pytest.mark.parametrize("seconds", ["99999999999", "999999999999999999"])
def test_an_enormous_request_timeout_still_polls(api, exporter_for, seconds):
    # Sockets and Event.wait raise OverflowError past threading.TIMEOUT_MAX.
    exporter = exporter_for(api, REQUEST_TIMEOUT=seconds)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 1


def test_a_resolver_that_hangs_costs_at_most_request_timeout():
    release = threading.Event()

    def hanging_resolver(*args, **kwargs):
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    client = ApiClient(
        "http://api.gatewayz.example", TEST_KEY, timeout=0.5, max_bytes=1024, resolve=hanging_resolver
    )
    try:
        started = time.monotonic()
        result = client.fetch("stats")
        assert time.monotonic() - started < 0.5 * 5  # the resolver alone would hang 30 s
        assert (result.reason, result.cause) == ("timeout", "dns")
        # The abandoned request's thread is a daemon: it cannot keep the process alive.
        stuck = [t for t in threading.enumerate() if t.name == "fetch-stats"]
        assert stuck and all(t.daemon for t in stuck)
    finally:
        release.set()
        client.close()


def test_requests_stuck_in_the_resolver_are_not_piled_up():
    release = threading.Event()
    calls = []

    def hanging_resolver(*args, **kwargs):
        calls.append(1)
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    client = ApiClient(
        "http://api.gatewayz.example", TEST_KEY, timeout=0.05, max_bytes=1024, resolve=hanging_resolver
    )
    try:
        results = [client.fetch("stats") for _ in range(10)]
        assert all(r.reason == "timeout" for r in results)
        assert len(calls) <= 5  # at most MAX_ABANDONED threads wait on the resolver
        assert {r.cause for r in results} == {"dns", "stuck"}
    finally:
        release.set()
        client.close()


def test_a_failure_no_cause_names_logs_its_exception_class_at_debug(caplog):
    def odd_resolver(*args, **kwargs):
        raise RuntimeError("not a resolver error the client knows")

    client = ApiClient(
        "http://api.gatewayz.example", TEST_KEY, timeout=2, max_bytes=1024, resolve=odd_resolver
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="gatewayz_exporter.client"):
            result = client.fetch("stats")
    finally:
        client.close()
    assert (result.reason, result.cause) == ("connection", "other")
    (line,) = [r for r in caplog.records if r.getMessage() == "API request failed unexpectedly"]
    assert (line.endpoint, line.error, line.cause) == ("stats", "RuntimeError", "other")


# --- odd answers never raise and never cost the other endpoint its poll --------------------

_GZIP_BOMB = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
_GARBAGE_GZIP = b"\x1f\x8b\x08\x00" + b"\xff" * 64


@pytest.mark.parametrize(
    "reply,reason,cause",
    [
        (Reply(302, b"", {"Location": "http://127.0.0.1:99999/providers/"}), "redirect", "bad_url"),
        (Reply(302, b"", {"Location": "http://[::1/providers/"}), "redirect", "bad_url"),
        (Reply(302, b"", {"Location": "http://exämple.test/providers/"}), "redirect", "cross_origin"),
        (Reply(302, b"", {"Location": "ftp://127.0.0.1/providers/"}), "redirect", "cross_origin"),
        (Reply(429, b"", {"Retry-After": "\u00b2"}), "rate_limited", None),
        (Reply(429, b"", {"Retry-After": "9" * 5000}), "rate_limited", None),
        (Reply(503, b"", {"Retry-After": "Fri, 31 Dec 99999 23:59:59 GMT"}), "http_error", None),
        (_raw(b"HTTP/1.1 \xb200 OK\r\nContent-Length: 2\r\n\r\n[]"), "connection", "bad_response"),
        (_raw(b"garbage, not HTTP\r\n\r\n"), "connection", "bad_response"),
        (_raw(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n[]"), "connection", "bad_response"),
        (_raw(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n[]"), "connection", "bad_response"),
        (_raw(b""), "connection", "reset"),
        (
            _raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n"),
            "truncated",
            "bad_response",
        ),
        (Reply(200, _GARBAGE_GZIP, {"Content-Encoding": "gzip"}), "truncated", "decoding"),
        (Reply(200, _GZIP_BOMB, {"Content-Encoding": "gzip"}), "too_large", "read"),
        (Reply(200, b"[" + b"1" * 5000 + b"]"), "invalid_json", None),
        (Reply(200, b"\xed\xa0\x80 lone surrogate"), "invalid_json", None),
        (Reply(200, b""), "invalid_json", None),
        (Reply(200, b"[]", {"Content-Length": "99999999999999999999999999"}), "too_large", "declared"),
    ],
)
def test_odd_answers_are_counted_and_the_other_endpoint_keeps_its_poll(
    api, exporter_for, caplog, reply, reason, cause
):
    exporter = exporter_for(api, REQUEST_TIMEOUT="2", MAX_RESPONSE_BYTES="65536")
    api.routes["/providers/"] = reply
    with caplog.at_level(logging.WARNING):
        snapshot = exporter.poller.poll_once()
    assert errors(exporter, "providers", reason) == 1
    assert sum(snapshot.errors.values()) == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(exporter, "gatewayz_providers_total") == 4
    (line,) = failure_lines(caplog)
    assert line.reason == reason and line.cause == cause
    assert TEST_KEY not in caplog.text


@pytest.mark.parametrize(
    "body,cause",
    [
        (b'{"providers": [' + b"{}," * 100_000 + b"{}]}", "brackets"),
        (b"[" + b"0," * 100_001 + b"0]", "provider records, more than 100000"),
    ],
)
def test_a_body_packed_with_values_is_refused_as_too_large_before_it_is_built(
    api, exporter_for, caplog, body, cause
):
    exporter = exporter_for(api)
    api.routes["/providers/"] = Reply(200, body)
    with caplog.at_level(logging.WARNING):
        exporter.poller.poll_once()
    assert errors(exporter, "providers", "too_large") == 1
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    (line,) = failure_lines(caplog)
    assert line.reason == "too_large" and cause in line.cause
    status = exporter.store.current.status["providers"]
    assert (status.reason, status.status_code) == ("too_large", 200)


@pytest.mark.parametrize("interim", [b"102 Processing", b"103 Early Hints"])
def test_interim_answers_before_the_real_one_are_skipped(api, exporter_for, interim):
    # http.client skips only 100 Continue; a 102 or 103 was taken for the final answer.
    body = b'{"total": 4, "active": 3, "inactive": 1, "healthy": 2, "degraded": 1, "down": 1, "unknown": 0}'
    api.routes["/providers/stats"] = _raw(
        b"HTTP/1.1 " + interim + b"\r\nLink: </x>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="stats") == 1
    assert value(exporter, "gatewayz_providers_total") == 4


@pytest.mark.parametrize("length", ["\u00b2", "1" * 5000, "-1", "0x10", " 2 "])
def test_an_odd_content_length_is_not_trusted_and_never_raises(api, exporter_for, length):
    body = b'{"total": 4, "active": 3, "inactive": 1, "healthy": 2, "degraded": 1, "down": 1, "unknown": 0}'
    api.routes["/providers/stats"] = _raw(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
        + length.encode("latin-1", "replace")
        + b"\r\n\r\n"
        + body
    )
    exporter = exporter_for(api)
    exporter.poller.poll_once()
    assert value(exporter, "gatewayz_provider_scrape_success", endpoint="providers") == 1
    success = value(exporter, "gatewayz_provider_scrape_success", endpoint="stats")
    failures = sum(c for (e, _), c in exporter.store.current.errors.items() if e == "stats")
    assert success == 1 or failures == 1


def test_a_key_that_cannot_go_into_a_header_fails_the_poll_without_raising(api):
    client = ApiClient(api.url, "key\u200bwith-zero-width-space", timeout=1, max_bytes=1024)
    try:
        result = client.fetch("stats")
    finally:
        client.close()
    assert result.reason == "connection"
    assert "\u200b" not in repr(result)


def test_the_number_parsers_take_ascii_only():
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after("0") == 0
    assert parse_retry_after("99999999") == 600  # capped
    for bad in ("\u00b2", "\u0661\u0662", "-1", "1.5", "soon", "9" * 5000, "", None):
        assert parse_retry_after(bad) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past: now
    assert content_length("12") == 12
    assert content_length("1" * 5000) > 2**62  # too large for int(), still too large
    for bad in ("\u00b2", "\u0661", "-1", "", None, "1,1"):
        assert content_length(bad) is None


# --- Retry-After, from when it was received ------------------------------------------------


def _stats_requests(api):
    return api.count("/providers/stats")


def test_retry_after_one_second_with_half_second_polls_asks_every_second(api, exporter_for):
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="0.5")
    api.routes["/providers/stats"] = Reply(429, b"", {"Retry-After": "1"})
    asked_at = []
    for step in range(8):  # polls at 0, 0.5, ... 3.5 s
        before = _stats_requests(api)
        exporter.poller.poll_once()
        if _stats_requests(api) > before:
            asked_at.append(step * 0.5)
        clock.advance(0.5)
    assert asked_at == [0.0, 1.0, 2.0, 3.0]


def test_retry_after_zero_means_the_next_poll(api, exporter_for):
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="0.5")
    api.routes["/providers/stats"] = Reply(503, b"", {"Retry-After": "0"})
    for _ in range(4):
        exporter.poller.poll_once()
        clock.advance(0.5)
    assert _stats_requests(api) == 4
    assert errors(exporter, "stats", "http_error") == 4


def test_429_without_retry_after_backs_off_exactly_one_interval(api, exporter_for):
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="0.5")
    api.routes["/providers/stats"] = Reply(429, b"")
    asked = []
    for _ in range(8):
        before = _stats_requests(api)
        exporter.poller.poll_once()
        asked.append(_stats_requests(api) > before)
        clock.advance(0.5)
    assert asked == [True, False] * 4
    assert api.count("/providers/?") == 8  # the other endpoint is asked at every poll


def test_retry_after_is_counted_from_when_the_answer_arrived(api, exporter_for):
    # The 429 arrives 0.7 s into the poll; Retry-After: 1 then ends 1.7 s after the poll
    # started, so with a one-second interval the poll at 1 s (0.3 s after the answer) is
    # skipped and the one at 2 s asks. Counted from the poll's start, 1 s would have asked.
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="1")
    api.routes["/providers/stats"] = Reply(429, b"", {"Retry-After": "1"}, delay=0.7)
    exporter.poller.poll_once()
    for expected in (1, 2):
        clock.advance(1)
        before = _stats_requests(api)
        exporter.poller.poll_once()
        assert _stats_requests(api) - before == expected - 1


def test_a_retry_after_date_is_counted_from_the_injected_wall_clock(api, exporter_for):
    # The fake wall clock is not the machine's: a date two minutes after it means two
    # minutes, not "whatever is left until then by time.time()".
    clock = FakeClock()
    exporter = exporter_for(api, clock=clock, SCRAPE_INTERVAL="60")
    date = email.utils.formatdate(clock.wall() + 120, usegmt=True)
    api.routes["/providers/stats"] = Reply(429, b"", {"Retry-After": date})
    asked = []
    for _ in range(4):  # polls at 0, 60, 120, 180 s
        before = _stats_requests(api)
        exporter.poller.poll_once()
        asked.append(_stats_requests(api) > before)
        clock.advance(60)
    # At 120 s the same date has come: Retry-After is 0 from then on, the next poll asks.
    assert asked == [True, False, True, True]
    assert parse_retry_after(date, now=clock.wall()) == 0


# --- the cause of a failure, in the log line ---------------------------------------------------


def test_refused_dns_tls_and_reset_are_told_apart_in_the_log(api, exporter_for, caplog):
    dead = FakeApi()
    dead.close()

    def reset(handler):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    api.routes["/providers/stats"] = Reply(raw=reset)
    causes = {}
    for name, url in (
        ("refused", dead.url),
        ("dns", "http://gatewayz-exporter-test.invalid"),
        ("tls", api.url.replace("http://", "https://")),
        ("reset", api.url),
    ):
        exporter = build(make_config(url, REQUEST_TIMEOUT="3"))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            exporter.poller.poll_once()
        exporter.stop(1.0)
        causes[name] = {(line.endpoint, line.reason, line.cause) for line in failure_lines(caplog)}
    assert causes["refused"] == {("providers", "connection", "refused"), ("stats", "connection", "refused")}
    assert causes["dns"] == {("providers", "connection", "dns"), ("stats", "connection", "dns")}
    assert causes["tls"] == {("providers", "connection", "tls"), ("stats", "connection", "tls")}
    assert causes["reset"] == {("stats", "connection", "reset")}


def test_debug_level_adds_the_exporters_own_lines(api, exporter_for, caplog):
    api.routes["/providers/list"] = api.routes["/providers/"]  # a same-origin redirect to follow
    api.routes["/providers/"] = Reply(307, b"", {"Location": "/providers/list?include_inactive=true"})
    exporter = exporter_for(api)
    with caplog.at_level(logging.DEBUG, logger="gatewayz_exporter"):
        exporter.poller.poll_once()
    ours = {r.getMessage() for r in caplog.records if r.name.startswith("gatewayz_exporter")}
    assert {"Poll started", "API request finished", "API redirect followed"} <= ours
    finished = [r for r in caplog.records if r.getMessage() == "API request finished"]
    assert {r.endpoint for r in finished} == {"providers", "stats"}
    assert TEST_KEY not in caplog.text


# --- what the client trusts: the system's CAs, nothing else from the environment ---------------


def _served_over_tls(api, ca):
    """``api``'s URL over TLS, with a certificate for 127.0.0.1 issued by ``ca``."""
    api.server.shutdown()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    api.server.socket = context.wrap_socket(api.server.socket, server_side=True)
    threading.Thread(target=api.server.serve_forever, args=(0.02,), daemon=True).start()
    return api.url.replace("http://", "https://")


def test_the_apis_certificate_is_verified_against_the_system_cas(api, ca, monkeypatch, tmp_path):
    url = _served_over_tls(api, ca)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    client = ApiClient(url, TEST_KEY, timeout=3, max_bytes=1 << 20)
    try:
        refused = client.fetch("stats")
    finally:
        client.close()
    assert (refused.reason, refused.cause) == ("connection", "tls")
    assert api.requests == []  # the key never went out
    # OpenSSL's own variable names another CA file: the same server is trusted.
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    client = ApiClient(url, TEST_KEY, timeout=3, max_bytes=1 << 20)
    try:
        trusted = client.fetch("stats")
    finally:
        client.close()
    assert trusted.ok, trusted
    assert [h.get("Authorization") for _, h in api.requests] == [f"Bearer {TEST_KEY}"]


def test_no_proxy_is_taken_from_the_environment(api, monkeypatch):
    proxy = FakeApi()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    client = ApiClient(api.url, TEST_KEY, timeout=3, max_bytes=1 << 20)
    try:
        result = client.fetch("stats")
    finally:
        client.close()
        proxy.close()
    assert result.ok, result
    assert proxy.requests == []
    assert api.count("/providers/stats") == 1
