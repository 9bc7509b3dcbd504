"""The HTTP server: routes, readiness, negotiation, and never waiting on the API."""

import gzip
import socket
import threading
import time
from gzip import compress as gzip_compress  # the fakes' ``gzip`` flag hides the module

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families as parse_text

from support.api import Reply
from support.waits import eventually


def test_healthz_is_up_while_serving_and_readyz_waits_for_a_successful_poll(serving):
    assert requests.get(serving.base + "/healthz", timeout=5).status_code == 200
    assert requests.get(serving.base + "/readyz", timeout=5).status_code == 503
    serving.poller.poll_once()
    assert requests.get(serving.base + "/readyz", timeout=5).status_code == 200


def test_landing_page_links_the_endpoints(serving):
    response = requests.get(serving.base + "/", timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    for link in ("/metrics", "/healthz", "/readyz"):
        assert f'href="{link}"' in response.text


def test_unknown_paths_and_methods_get_404_and_405(serving):
    assert requests.get(serving.base + "/nope", timeout=5).status_code == 404
    response = requests.post(serving.base + "/metrics", data=b"x", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_metrics_are_prometheus_text_by_default_and_include_process_metrics(serving):
    serving.poller.poll_once()
    response = requests.get(serving.base + "/metrics", timeout=5, headers={"Accept-Encoding": "identity"})
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {f.name for f in parse_text(response.text)}
    assert {
        "gatewayz_providers_total",
        "gatewayz_provider_health_status",
        "process_resident_memory_bytes",
        "gatewayz_provider_scrape_errors",
    } <= names


def test_openmetrics_and_gzip_are_negotiated(serving):
    serving.poller.poll_once()
    response = requests.get(
        serving.base + "/metrics",
        timeout=5,
        stream=True,
        headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            "Accept-Encoding": "gzip",
        },
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    body = gzip.decompress(response.raw.read(decode_content=False))
    assert body.endswith(b"# EOF\n") and b"# TYPE gatewayz_provider info" in body


def test_head_returns_headers_without_a_body(serving):
    response = requests.head(serving.base + "/metrics", timeout=5)
    assert response.status_code == 200 and int(response.headers["Content-Length"]) > 0
    assert response.content == b""


def test_metrics_answer_at_once_while_the_api_hangs(api, serving):
    serving.poller.poll_once()
    api.routes["/providers/"] = Reply(body=[], delay=30)
    api.routes["/providers/stats"] = Reply(body={}, delay=30)
    poll = threading.Thread(target=serving.poller.poll_once, daemon=True)
    poll.start()
    assert eventually(lambda: api.count("/providers/stats") >= 2)  # the poll is blocked inside the API
    started = time.monotonic()
    response = requests.get(serving.base + "/metrics", timeout=5)
    assert time.monotonic() - started < 1.0
    assert 'gatewayz_provider_health_status{provider="openai"} 1.0' in response.text
    assert poll.is_alive()


def test_idle_and_half_sent_connections_do_not_block_a_scrape(serving):
    idle = []
    for index in range(200):
        sock = socket.create_connection(("127.0.0.1", serving.server.port))
        if index % 2:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
        idle.append(sock)
    try:
        started = time.monotonic()
        response = requests.get(serving.base + "/metrics", timeout=5)
        assert response.status_code == 200 and time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_keep_alive_connections_serve_several_requests(serving):
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(serving.base + "/metrics", timeout=5).status_code == 200


def test_oversized_or_malformed_request_heads_are_refused(serving):
    with socket.create_connection(("127.0.0.1", serving.server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", serving.server.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_stop_closes_the_listening_socket(serving):
    port = serving.server.port
    serving.server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


class FailingExposition:
    """The exporter's exposition, except that rendering raises while ``failing`` is set."""

    def __init__(self, real):
        self.real, self.failing = real, True

    def cached_parts(self, *, openmetrics: bool, gzip: bool):
        return None if self.failing else self.real.cached_parts(openmetrics=openmetrics, gzip=gzip)

    def parts(self, *, openmetrics: bool, gzip: bool):
        if self.failing:
            raise RuntimeError("render bug")
        return self.real.parts(openmetrics=openmetrics, gzip=gzip)


def test_an_unexpected_error_while_rendering_is_a_500_and_the_server_keeps_serving(api, exporter_for, caplog):
    from gatewayz_exporter.server import MetricsServer

    exporter = exporter_for(api)
    exposition = FailingExposition(exporter.exposition)
    server = MetricsServer(exposition, exporter.collector.ready, host="127.0.0.1", port=0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with caplog.at_level("ERROR"):
            assert requests.get(url, timeout=5).status_code == 500
        assert any(r.getMessage() == "Request failed" for r in caplog.records)
        exposition.failing = False
        response = requests.get(url, timeout=5)
        assert response.status_code == 200 and "gatewayz_provider_scrape_success" in response.text
    finally:
        server.stop()


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "[::ffff:127.0.0.1]"])
def test_an_ipv4_mapped_metrics_addr_serves_its_ipv4_address(api, exporter_for, address):
    exporter = exporter_for(api, METRICS_ADDR=address)
    port = exporter.server.start()
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


class PreparedExposition:
    """An exposition whose body is always prepared: rendering it again would be a defect."""

    def cached_parts(self, *, openmetrics: bool, gzip: bool):
        body = b"prepared 1.0\n"
        return (gzip_compress(body) if gzip else body,), "text/plain; version=0.0.4; charset=utf-8"

    def parts(self, *, openmetrics: bool, gzip: bool):
        raise AssertionError("a prepared body was rendered again")


def test_a_prepared_body_is_served_without_rendering():
    from gatewayz_exporter.server import MetricsServer

    server = MetricsServer(PreparedExposition(), lambda: True, host="127.0.0.1", port=0)
    server.start()
    try:
        for encoding in ("gzip", "identity"):
            response = requests.get(
                f"http://127.0.0.1:{server.port}/metrics", timeout=5, headers={"Accept-Encoding": encoding}
            )
            assert response.status_code == 200 and response.text == "prepared 1.0\n", encoding
    finally:
        server.stop()
