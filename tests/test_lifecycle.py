"""Start and stop as an operator sees them: the daemon as a process, real signals, hanging peers."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from conftest import ROOT, TEST_KEY, Reply, eventually, free_port, make_config
from receivers import LokiReceiver, OtlpReceiver

from gatewayz_exporter.app import build
from gatewayz_exporter.server import MetricsServer

SCRIPT = str(ROOT / "provider_metrics_exporter.py")


def start_daemon(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ["PATH"], **env},
        text=True,
    )


def wait_for_metrics(port: int, process: subprocess.Popen) -> None:
    def up():
        assert process.poll() is None, process.communicate()
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    assert eventually(up, timeout=20)


def keep_alive_scrape(port: int) -> socket.socket:
    """A scrape on a connection that stays open, as Prometheus keeps one."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def trickle_head(api):
    def reply(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        for index in range(1000):
            if api.released.wait(0.2):
                return
            handler.wfile.write(b"X-Slow-%d: 1\r\n" % index)
            handler.wfile.flush()

    return Reply(raw=reply)


@pytest.mark.parametrize(
    "state,signum",
    [
        ("api_hangs", signal.SIGTERM),
        ("api_trickles_its_head", signal.SIGTERM),
        ("everything_hangs_and_scrapes_keep_alive", signal.SIGTERM),
        ("everything_hangs_and_scrapes_keep_alive", signal.SIGINT),
    ],
)
def test_a_signal_exits_0_within_3_seconds_whatever_hangs(api, state, signum):
    # REQUEST_TIMEOUT stays at its default of 10 s: longer than the exit may take.
    port = free_port()
    env = {"METRICS_PORT": str(port), "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY}
    receivers = []
    if state == "api_trickles_its_head":
        api.routes["/providers/"] = trickle_head(api)
        api.routes["/providers/stats"] = trickle_head(api)
    else:
        api.routes["/providers/"] = Reply(body=[], delay=60)
        api.routes["/providers/stats"] = Reply(body={}, delay=60)
    if state.startswith("everything"):
        loki, otlp = LokiReceiver(), OtlpReceiver()
        loki.hang = otlp.hang = True
        receivers = [loki, otlp]
        env.update(LOKI_URL=loki.url, OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url)
    process = start_daemon(env)
    sockets = []
    try:
        wait_for_metrics(port, process)
        assert eventually(lambda: api.count("/providers/stats") >= 1)  # the poll is in flight
        if state.startswith("everything"):
            sockets = [keep_alive_scrape(port) for _ in range(3)]
            assert eventually(lambda: all(r.bodies or r.hang for r in receivers))
        started = time.monotonic()
        process.send_signal(signum)
        code = process.wait(10)
        elapsed = time.monotonic() - started
        print(f"{state}, {signal.Signals(signum).name}: exit {code} after {elapsed:.2f}s")
        assert code == 0
        assert elapsed < 3.0
    finally:
        for sock in sockets:
            sock.close()
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
        for receiver in receivers:
            receiver.close()
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert "Stopping" in messages and messages[-1] == "Exporter stopped"
    assert err == ""
    assert TEST_KEY not in out


def test_no_thread_keeps_the_interpreter_alive_after_stop(api):
    api.routes["/providers/stats"] = Reply(body={}, delay=60)
    exporter = build(make_config(api.url, REQUEST_TIMEOUT="30", METRICS_ADDR="127.0.0.1"))
    before = set(threading.enumerate())
    exporter.start()
    assert eventually(lambda: api.count("/providers/stats") >= 1)
    keep_alive = keep_alive_scrape(exporter.server.port)
    try:
        started = time.monotonic()
        exporter.stop()
        assert time.monotonic() - started < 3.0
    finally:
        keep_alive.close()

    def lingering():
        return [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]

    assert eventually(lambda: not lingering(), timeout=3), lingering()
    assert not exporter.thread.is_alive()


def test_a_server_that_cannot_start_is_reported_as_not_started(api):
    exporter = build(make_config(api.url))
    # asyncio refuses a datagram socket when the server starts listening, in the server's own thread.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    server = MetricsServer(exporter.exposition, lambda: True, listen_socket=udp)
    with pytest.raises(OSError, match="did not start"):
        server.start()
    assert udp.fileno() == -1  # closed, not leaked


def test_start_up_names_the_url_to_open_and_warns_about_a_fast_interval(api):
    port = free_port()
    # TEST-NET-1: not loopback, and nothing answers there.
    process = start_daemon(
        {
            "METRICS_PORT": str(port),
            "METRICS_ADDR": "127.0.0.1",
            "GATEWAY_API_URL": "http://192.0.2.1",
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.25",
            "REQUEST_TIMEOUT": "0.2",
        }
    )
    try:
        wait_for_metrics(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    (started,) = [line for line in lines if line["message"] == "Exporter started"]
    assert started["url"] == f"http://127.0.0.1:{port}/"
    (warning,) = [
        line for line in lines if line["level"] == "warning" and "SCRAPE_INTERVAL" in line["message"]
    ]
    assert warning["requests_per_second"] == 12.0 and warning["scrape_interval"] == 0.25
    assert err == "" and process.returncode == 0


def test_a_fast_interval_against_a_loopback_api_is_not_warned_about(api):
    port = free_port()
    process = start_daemon(
        {
            "METRICS_PORT": str(port),
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.25",
        }
    )
    try:
        wait_for_metrics(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert not [line for line in lines if "SCRAPE_INTERVAL" in line["message"]]
    (started,) = [line for line in lines if line["message"] == "Exporter started"]
    assert started["url"] == f"http://localhost:{port}/"
