"""The server against hostile clients, from outside: each attack as a behaviour it must survive.

Raw sockets on loopback, trustme certificates, bcrypt hashes made here. The
exporter runs as its own process where memory, file descriptors, a password
flood or shutdown output are the subject, so the attackers share no
interpreter (and no GIL) with it, as in production.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import statistics
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayz_exporter.server import MetricsServer
from support.waits import eventually
from support.wire import client_context, exchange, statuses


def server_log_at_or_above(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= level]


# --- framing by h11; a refused request is a 4xx, a closed connection, no error line ---

REFUSED = [
    (
        "superscript two as Content-Length",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
        400,
    ),
    (
        "Content-Length of 5,000 digits",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        400,
    ),
    (
        "two different Content-Lengths",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
        400,
    ),
    ("header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400),
    ("obs-fold continuation line", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", 400),
    ("obs-fold with a tab", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", 400),
    ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    ("two Host headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("a Host with a space", b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (
        "Transfer-Encoding other than chunked",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    ),
    (
        "Transfer-Encoding and Content-Length",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("a body on a GET", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("HTTP/2.0 in a request line", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    ("NUL in the request line", b"GET /he\x00lthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("binary junk", bytes(range(256)), 400),
    (
        "TLS ClientHello on the plain port",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        400,
    ),
    (
        "a 20 KiB header in one packet",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        431,
    ),
    ("5,000 header lines", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: a\r\n" * 5000 + b"\r\n", 431),
    (
        "two Authorization headers",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
        400,
    ),
]


@pytest.mark.parametrize("name,request_bytes,status", REFUSED, ids=[case[0] for case in REFUSED])
def test_a_request_the_parser_refuses_gets_a_4xx_and_the_connection_closes(
    running, caplog, name, request_bytes, status
):
    with caplog.at_level(logging.DEBUG):
        received = exchange(running.server.port, request_bytes)  # returns once the server closes
    assert statuses(received) == [status], received[:200]
    assert b"connection: close" in received.lower()
    assert server_log_at_or_above(caplog, logging.INFO) == []


NEVER_A_REQUEST = [
    ("SSLv2-style ClientHello", b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"),
    ("SSH banner", b"SSH-2.0-OpenSSH_9.6\r"),
    ("control byte in the method", b"GET\x01"),
    ("DEL in the target", b"GET /a\x7f"),
    ("not HTTP after the target", b"GET / HTTQ"),
    ("a whole line that is not a request line", b"GET / HTTP/1.1 extra\r\nHost: x\r\n"),
]


@pytest.mark.parametrize("name,data", NEVER_A_REQUEST, ids=[case[0] for case in NEVER_A_REQUEST])
@pytest.mark.parametrize("later", [False, True], ids=["first request", "later request"])
def test_bytes_that_cannot_begin_a_request_are_refused_at_once_not_at_the_head_deadline(
    running, caplog, name, data, later
):
    """h11 reads the request line only once the head is complete; without a check of its own,
    these held the connection for the 10 s head deadline (the exchange gives up after 5)."""
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" if later else b""
    with caplog.at_level(logging.DEBUG):
        received = exchange(running.server.port, first + data, timeout=5)
    assert statuses(received) == ([200, 400] if later else [400]), received[-200:]
    assert server_log_at_or_above(caplog, logging.INFO) == []


@pytest.mark.parametrize(
    "target", [b"//[", b"/%zz", b"*", b"http://x/", b"/metrics/../../etc/passwd", b"?", b"/" + b"a" * 8000]
)
def test_odd_request_targets_are_a_404_or_a_page_never_a_500(running, caplog, target):
    with caplog.at_level(logging.DEBUG):
        received = exchange(
            running.server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    (status,) = statuses(received)
    assert status in (200, 404)
    assert server_log_at_or_above(caplog, logging.INFO) == []


REQUEST_LIKE = st.builds(
    lambda method, target, version, headers, tail: (
        method + b" " + target + b" " + version + b"\r\n" + headers + tail
    ),
    st.sampled_from([b"GET", b"HEAD", b"POST", b"get", b"G\xe9T", b""]),
    st.binary(max_size=40).map(lambda b: b"/" + b),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/9", b"http/1.1", b""]),
    st.lists(
        st.tuples(
            st.sampled_from(
                [b"Host", b"Content-Length", b"Transfer-Encoding", b"Authorization", b"Accept", b"X"]
            ),
            st.binary(max_size=30),
        ),
        max_size=5,
    ).map(lambda pairs: b"".join(name + b": " + value + b"\r\n" for name, value in pairs)),
    st.sampled_from([b"\r\n", b"\n", b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", b" x\r\n\r\n"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(REQUEST_LIKE, st.binary(min_size=1, max_size=300)))
def test_no_byte_sequence_gets_a_500_or_an_error_line(running, caplog, data):
    with caplog.at_level(logging.DEBUG):
        received = exchange(running.server.port, data, half_close=True)
    assert all(status < 500 for status in statuses(received)), received[:300]
    assert server_log_at_or_above(caplog, logging.INFO) == []


def test_a_flood_of_bad_requests_is_logged_at_debug_only_and_rate_limited(running, caplog):
    with caplog.at_level(logging.DEBUG, logger="gatewayz_exporter.server"):
        started = time.monotonic()
        for _ in range(200):
            received = exchange(running.server.port, b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n")
            assert statuses(received) == [400]
        elapsed = time.monotonic() - started
    from_server = [r for r in caplog.records if r.name == "gatewayz_exporter.server"]
    assert all(r.levelno == logging.DEBUG for r in from_server)
    assert 1 <= len(from_server) <= 5 + elapsed + 1  # a burst of 5, then one a second


def test_a_body_is_never_read_as_a_second_request(running):
    # A proxy that trusted the first Content-Length would see one request; this server must not see two.
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    received = exchange(
        running.server.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled,
    )
    assert statuses(received) == [400]


def test_pipelined_requests_are_answered_in_order_and_a_bad_one_ends_the_connection(running):
    good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    received = exchange(
        running.server.port,
        good
        + b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"  # no body: a 405, and the connection goes on
        + b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n"
        + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        + good
        + b"BAD\r\n\r\n"
        + good,
    )
    assert statuses(received) == [200, 405, 405, 404, 200, 400]


def test_http_1_0_and_a_client_that_half_closes_still_get_their_answer(running):
    assert statuses(exchange(running.server.port, b"GET /healthz HTTP/1.0\r\n\r\n")) == [200]
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert statuses(received) == [200]


# --- a later request on a keep-alive connection is as fast as the first ----------


def keep_alive_timings(port: int, context: ssl.SSLContext | None, headers: bytes = b"") -> list[float]:
    """Milliseconds for 21 GET /metrics on one connection, head to last body byte."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    timings, buffer = [], b""
    with sock:
        for _ in range(21):
            started = time.perf_counter()
            sock.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n" + headers + b"\r\n"
            )
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            while len(buffer) < length:
                buffer += sock.recv(65536)
            buffer = buffer[length:]
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def test_later_requests_on_a_keep_alive_connection_do_not_wait_for_delayed_acks(
    api, exporter_for, certs, tmp_path
):
    """Nagle's algorithm meeting a delayed ACK costs at least 40 ms a request on Linux.

    With TCP_NODELAY and the head written with the body, a later request takes
    about as long as the first (well under a millisecond here); the bound leaves
    room for a loaded machine yet stays under the 40 ms a stall costs.
    """
    (tmp_path / "web.yml").write_text(
        yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}})
    )
    from gatewayz_exporter.webconfig import load_web_config

    for web in (None, load_web_config(str(certs / "web.yml"))):
        exporter = exporter_for(api, METRICS_ADDR="127.0.0.1")
        server = MetricsServer(
            exporter.exposition, exporter.collector.ready, host="127.0.0.1", port=0, web=web
        )
        server.start()
        try:
            exporter.poller.poll_once()
            timings = keep_alive_timings(server.port, client_context(certs) if web else None)
        finally:
            server.stop()
        later = statistics.median(timings[1:])
        print(
            f"{'TLS' if web else 'plain'} keep-alive: first {timings[0]:.2f} ms, later median {later:.2f} ms"
        )
        assert later < 20


# --- the head deadline covers every request on a connection ---------------------


@pytest.fixture
def short_deadlines(running):
    server = MetricsServer(
        running.exposition,
        running.collector.ready,
        host="127.0.0.1",
        port=0,
        head_timeout=0.25,
        idle_timeout=30,
    )
    server.start()
    yield server
    server.stop()


def trickle_until_closed(sock: socket.socket, limit: float) -> float:
    """Send one byte every 0.05 s until the server closes; seconds it took (fails past ``limit``)."""
    started = time.monotonic()
    sock.settimeout(0.05)
    for byte in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000)[: int(limit / 0.05)]:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            break
    raise AssertionError(f"the connection was still open after {limit} s")


def test_the_head_deadline_applies_to_every_request_on_a_connection(short_deadlines):
    with socket.create_connection(("127.0.0.1", short_deadlines.port), timeout=5) as sock:
        assert trickle_until_closed(sock, limit=5) < 5  # the first request (idle timeout is 30 s)
    with socket.create_connection(("127.0.0.1", short_deadlines.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert trickle_until_closed(sock, limit=5) < 5  # the second request, too
    with socket.create_connection(("127.0.0.1", short_deadlines.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nG")  # the next head starts in the same packet
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert trickle_until_closed(sock, limit=5) < 5


def test_an_idle_keep_alive_connection_waits_for_the_idle_timeout_not_the_head_deadline(short_deadlines):
    with socket.create_connection(("127.0.0.1", short_deadlines.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.5)  # time passing is the behaviour: twice the head deadline, no byte of a next request
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_at_the_cap_the_connection_waiting_longest_without_a_request_yields_to_a_new_one(running):
    server = MetricsServer(
        running.exposition,
        running.collector.ready,
        host="127.0.0.1",
        port=0,
        max_connections=20,
        evict_grace=0.25,
    )
    server.start()
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    try:
        assert eventually(lambda: server.connections == 20)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as refused:
            with contextlib.suppress(ConnectionError):  # closed at once: nobody waited past the grace
                refused.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert refused.recv(100) == b""
        time.sleep(0.3)  # time passing is the behaviour: past the grace, the held connections sent nothing
        received = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(received) == [200]
        assert server.connections <= 20
        with contextlib.suppress(ConnectionError):
            assert held[0].recv(100) == b""  # the oldest made room
    finally:
        for sock in held:
            sock.close()
        server.stop()


class LargeExposition:
    """Stands in for the exposition: a 2 MiB body, so a reader that stops fills its buffers at once."""

    def parts(self, *, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str]:
        return (b"x" * (2 << 20),), "text/plain; version=0.0.4; charset=utf-8"

    def cached_parts(self, *, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str]:
        return self.parts(openmetrics=openmetrics, gzip=gzip)


def test_at_the_cap_a_client_that_stopped_reading_its_answers_yields_to_a_new_one():
    """Clients that pipeline requests and never read hold every connection with a request in
    progress; at the cap, the one stalled longest (over the grace) makes room for a new one."""
    server = MetricsServer(
        LargeExposition(),
        lambda: True,
        host="127.0.0.1",
        port=0,
        max_connections=10,
        evict_grace=0.25,
    )
    server.start()
    held = []
    try:
        for _ in range(10):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            held.append(sock)
        assert eventually(lambda: server.connections == 10)
        # Time passing is the behaviour: past the grace, every answer stuck in the held connections' buffers.
        time.sleep(0.4)
        received = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(received) == [200]
        assert server.connections <= 10
    finally:
        for sock in held:
            sock.close()
        server.stop()


@pytest.mark.parametrize("pipelined", [False, True], ids=["back to back", "pipelined"])
def test_at_the_cap_a_client_sending_request_after_request_yields_to_a_new_one(running, pipelined):
    """A scraper sends one request a scrape interval; clients that keep every connection busy
    with request after request (read or not) must not keep a new scraper out at the cap."""
    import threading

    server = MetricsServer(
        running.exposition,
        running.collector.ready,
        host="127.0.0.1",
        port=0,
        max_connections=8,
        evict_grace=0.25,
        back_to_back=0.125,
    )
    server.start()
    stop = threading.Event()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    def busy() -> None:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
        ):
            while not stop.is_set():
                sock.sendall(request * (20 if pipelined else 1))
                received = b""
                while received.count(b"ok\n") < (20 if pipelined else 1):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    received += chunk

    threads = [threading.Thread(target=busy, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        assert eventually(lambda: server.connections == 8)
        time.sleep(0.4)  # time passing is the behaviour: every connection busy for longer than the grace
        received = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(received) == [200]
        assert server.connections <= 8
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        server.stop()


def read_response(sock: socket.socket) -> int:
    """One whole response from a keep-alive connection; its status (0 if the connection ended)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return 0
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return 0
        body += chunk
    return int(head.split(b" ", 2)[1])


def test_one_address_holding_the_cap_cannot_keep_a_keep_alive_scraper_or_a_probe_from_another_out(running):
    """A flood of keep-alive connections from one address, each sending a request just often
    enough never to count as idle or busy, holds every connection; a scraper from another
    address on keep-alive, and a health probe on a fresh connection, are still answered."""
    import threading

    running.poller.poll_once()
    cap = 24
    server = MetricsServer(
        running.exposition,
        running.collector.ready,
        host="127.0.0.1",
        port=0,
        max_connections=cap,
        evict_grace=0.4,
        back_to_back=0.2,
    )
    server.start()
    stop = threading.Event()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    def flood() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                    while not stop.is_set():
                        sock.sendall(request)
                        if read_response(sock) != 200:
                            break
                        stop.wait(0.3)
            stop.wait(0.02)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(cap)]
    for thread in threads:
        thread.start()
    try:
        assert eventually(lambda: server.connections == cap)
        scrapes = []
        with socket.create_connection(
            ("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.2", 0)
        ) as scraper:
            for _ in range(3):
                scraper.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                scrapes.append(read_response(scraper))
                probe = exchange(
                    server.port,
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    source=("127.0.0.3", 0),
                )
                assert statuses(probe) == [200]
                # Time passing is the behaviour: the scraper's connection idles past the eviction grace.
                time.sleep(0.6)
        assert scrapes == [200, 200, 200]
        assert server.connections <= cap
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        server.stop()


def test_a_flood_spread_over_many_addresses_of_one_network_cannot_take_a_scraper_s_connection(running):
    """One connection from each of many addresses of one network (as a host with many IPv6
    /64s of its /48 can hold), a new address for every newcomer: a keep-alive scraper from
    another network keeps its connection and every scrape is answered."""
    running.poller.poll_once()
    cap = 16
    server = MetricsServer(
        running.exposition, running.collector.ready, host="127.0.0.1", port=0, max_connections=cap
    )
    server.start()
    flood: list[socket.socket] = []
    scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(
            ("127.0.0.1", server.port), timeout=5, source_address=("127.0.9.1", 0)
        ) as scraper:
            scraper.sendall(scrape)
            assert read_response(scraper) == 200
            for index in range(3 * cap):
                flood.append(
                    socket.create_connection(
                        ("127.0.0.1", server.port), timeout=5, source_address=(f"127.0.1.{index + 1}", 0)
                    )
                )
                expected = min(cap, index + 2)
                assert eventually(lambda expected=expected: server.connections >= expected)
            scraper.sendall(scrape)
            assert read_response(scraper) == 200
        assert server.connections <= cap
    finally:
        for sock in flood:
            sock.close()
        server.stop()
