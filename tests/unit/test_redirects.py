"""Redirects: the admin key goes only to the API's own origin, whatever the Location spelling."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayz_exporter import redirects
from gatewayz_exporter.client import ApiClient
from support.api import TEST_KEY, FakeApi, Reply


@pytest.fixture(scope="module")
def two_hosts():
    api, other = FakeApi(), FakeApi()
    yield api, other
    api.close()
    other.close()


def _authority(fake: FakeApi) -> str:
    return fake.url.removeprefix("http://")


def _client(api: FakeApi, key: str | None = TEST_KEY) -> ApiClient:
    return ApiClient(api.url, key, timeout=2, max_bytes=1 << 20)


_PIECES = ["http:", "https:", "//", "/", "\\", "@", ":", "#", "?", "%5C", "%40", " ", "\t", "\n", "\x00", "\x7f",
           "u", "u:p", "[", "]", "127.0.0.1", "localhost", "providers/", ".", "..", ";", "%2F", "\u3002", "API", "OTHER"]  # fmt: skip
# Shaped like an authority with something in front of the API's host, as smuggling attempts are.
_SHAPED = st.tuples(
    st.sampled_from(["http://", "https://", "//", "http:/", "http:\\\\", "HTTP://", ""]),
    st.sampled_from(["OTHER", "API", "u", "", "OTHER:"]),
    st.sampled_from(["\\", "\\\\", "#", "?", "/", "%5C", " ", "\t", "", ";", "%40", "\\/", "\u3002"]),
    st.sampled_from(["@", "", "%40", "@@"]),
    st.sampled_from(["API", "OTHER", ""]),
    st.sampled_from(["/providers/", "", "\\providers", "?x", "#y"]),
).map(list)
_SPELLINGS = st.one_of(_SHAPED, st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=_SPELLINGS, status=st.sampled_from([301, 302, 303, 307, 308]))
def test_no_location_spelling_carries_the_key_to_another_host(two_hosts, pieces, status):
    api, other = two_hosts
    location = "".join(
        _authority(api) if p == "API" else _authority(other) if p == "OTHER" else p for p in pieces
    )
    api.routes["/providers/"] = Reply(status, b"", {"Location": location})
    other.requests.clear()
    result = _client(api).fetch("providers")
    assert all("Authorization" not in headers for _, headers in other.requests), location
    assert result.reason is not None


@pytest.mark.parametrize(
    "spelling",
    [
        "http://{other}\\@{api}/providers/",
        "//{other}\\@{api}/providers/",
        "http://{other}\\\\@{api}/providers/",
        "http://u@{api}/providers/",
        "http://u:p@{api}/providers/",
        "http://{api}/provi ders/",
        "http://{api}/providers/\t",
        "http://{api}/pro\x00viders/",
    ],
)
def test_a_location_the_parsers_could_read_differently_is_refused_as_bad_url(two_hosts, spelling):
    api, other = two_hosts
    api.routes["/providers/"] = Reply(
        302, b"", {"Location": spelling.format(other=_authority(other), api=_authority(api))}
    )
    other.requests.clear()
    result = _client(api).fetch("providers")
    assert (result.reason, result.cause) == ("redirect", "bad_url")
    assert other.requests == []


def test_an_https_to_http_redirect_on_the_same_host_is_refused_with_a_warning_for_the_operator(caplog):
    origin = redirects.origin_of("https://api.example.test/providers")
    with caplog.at_level(logging.WARNING), pytest.raises(redirects.RedirectRefused) as refused:
        redirects.follow(origin, "https://api.example.test/providers", "http://api.example.test/providers/")
    assert refused.value.cause == "scheme_downgrade"
    (line,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "--forwarded-allow-ips" in line.getMessage() and "--proxy-headers" in line.getMessage()
    assert line.cause == "scheme_downgrade"


def test_http_to_https_on_the_same_host_and_port_is_followed():
    origin = redirects.origin_of("http://api.example.test:8443/providers")
    target = redirects.follow(
        origin, "http://api.example.test:8443/providers", "https://API.example.test:8443/x"
    )
    assert target == "https://api.example.test:8443/x"


def test_a_public_request_carries_no_authorization_even_after_a_same_origin_redirect(api):
    api.routes["/status/"] = Reply(200, b"{}")
    api.routes["/status"] = Reply(307, b"", {"Location": "/status/"})
    result = _client(api).fetch("/status", authorized=False)
    assert result.ok, result
    paths = [path for path, _ in api.requests]
    assert paths == ["/status", "/status/"]
    assert all("Authorization" not in headers for _, headers in api.requests)


def test_an_admin_request_carries_the_key_after_a_same_origin_redirect(api):
    api.routes["/providers/list"] = api.routes["/providers/"]
    api.routes["/providers/"] = Reply(307, b"", {"Location": "/providers/list?include_inactive=true"})
    result = _client(api).fetch("providers")
    assert result.ok, result
    assert [headers.get("Authorization") for _, headers in api.requests] == [f"Bearer {TEST_KEY}"] * 2


class _Recorder(BaseHTTPRequestHandler):
    """Another host on the API's own port (127.0.0.2): records what reaches it."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.2:{port}/providers/",
        "//127.0.0.2:{port}/providers/",
        "http://127.0.0.1%2e2:{port}/",
        "http://127%2e0%2e0%2e2:{port}/",
        "http://0x7f000002:{port}/",
        "http://2130706434:{port}/",
        "http://127.2:{port}/",
        "http://[::ffff:127.0.0.2]:{port}/",
        "http://[127.0.0.2]:{port}/",
        "http://127.0.0.2%00.x:{port}/",
        "http://127.0.0.1:{port}%2540127.0.0.2:{port}/",
        "http://127.0.0.1:{port}@127.0.0.2:{port}/",
        "/\\127.0.0.2:{port}/",
        "../../..//127.0.0.2:{port}/",
        "http:127.0.0.2:{port}/",
        "http://127.0.0.2:{port};x/",
    ],
)
def test_no_spelling_of_another_host_on_the_api_s_own_port_gets_the_key(api, spelling):
    port = int(api.url.rsplit(":", 1)[1])
    try:
        other = ThreadingHTTPServer(("127.0.0.2", port), _Recorder)
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    threading.Thread(target=other.serve_forever, args=(0.02,), daemon=True).start()
    _Recorder.seen.clear()
    try:
        api.routes["/providers/"] = Reply(302, b"", {"Location": spelling.format(port=port)})
        result = _client(api).fetch("providers")
    finally:
        other.shutdown()
        other.server_close()
    assert not result.ok
    assert not any(_Recorder.seen), spelling
