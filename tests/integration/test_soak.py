"""Heavy runs in process: a flapping API, and scrapers that stop reading; memory, threads and
open files stay flat."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

from support.api import SEED_PROVIDERS, SEED_STATS, Reply, many_providers
from support.waits import eventually


def process_state() -> tuple[int, int, int]:
    """(resident KiB, threads, open file descriptors) of this process."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return (int(fields["VmRSS"].split()[0]), threading.active_count(), len(os.listdir("/proc/self/fd")))


@pytest.mark.slow
def test_a_flapping_api_leaves_memory_threads_and_files_flat(api, exporter_for):
    good, big = SEED_PROVIDERS, many_providers(3000)
    phases = [
        Reply(body=good),
        Reply(500, b"down"),
        Reply(200, b"<html>garbage</html>"),
        Reply(body=big),
        Reply(200, b'[{"slug": "trunc'),
        Reply(401, b"no"),
        Reply(body=good),
    ]
    exporter = exporter_for(api, METRICS_ADDR="127.0.0.1", SCRAPE_INTERVAL="0.05")
    exporter.start()
    base = f"http://127.0.0.1:{exporter.server.port}/metrics"

    def flap(rounds: int):
        for index in range(rounds):
            api.routes["/providers/"] = phases[index % len(phases)]
            api.routes["/providers/stats"] = Reply(body=SEED_STATS) if index % 3 else Reply(503, b"")
            polls = exporter.poller.polls
            assert eventually(lambda polls=polls: exporter.poller.polls >= polls + 2, timeout=10)
            assert requests.get(base, timeout=5).status_code == 200

    flap(len(phases) * 2)  # warm up: every phase seen, caches and pools at their size
    before = process_state()
    flap(len(phases) * 6)
    after = process_state()
    print(
        f"flapping soak: rss {before[0]}->{after[0]} KiB, threads {before[1]}->{after[1]}, "
        f"fds {before[2]}->{after[2]}"
    )
    # A request thread may still be finishing at the moment of counting; leaked ones never finish.
    assert eventually(lambda: threading.active_count() <= before[1] + 2, timeout=5), threading.enumerate()
    assert after[2] <= before[2] + 5
    assert after[0] - before[0] < 30 * 1024  # KiB: no growth with the number of polls


@pytest.mark.serial
def test_a_scraper_that_stops_reading_does_not_make_the_server_buffer_the_whole_body(api, serving):
    api.set_data([dict(SEED_PROVIDERS[0], slug=f"p{i}") for i in range(20000)], {"total": 20000})
    serving.poller.poll_once()
    body_size = len(requests.get(serving.base + "/metrics", timeout=10).content)
    assert body_size > 8 * 1024 * 1024
    with open("/proc/self/status") as status:
        rss_before = int(next(line for line in status if line.startswith("VmRSS")).split()[1])
    stalled = []
    for _ in range(20):  # each asks for the full body and never reads it
        sock = socket.create_connection(("127.0.0.1", serving.server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        stalled.append(sock)
    try:
        # Time passing is the behaviour: the server gets a second to buffer what it would.
        time.sleep(1.0)
        with open("/proc/self/status") as status:
            rss_after = int(next(line for line in status if line.startswith("VmRSS")).split()[1])
        # 20 full copies would be over 160 MiB; slices keep it to a few MiB.
        assert (rss_after - rss_before) * 1024 < 5 * body_size
        started = time.monotonic()
        assert requests.get(serving.base + "/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()
