"""A flapping API soaked in process: memory, threads and open files stay flat."""

from __future__ import annotations

import os
import threading

import requests

from support.api import SEED_PROVIDERS, SEED_STATS, Reply, many_providers
from support.waits import eventually


def process_state() -> tuple[int, int, int]:
    """(resident KiB, threads, open file descriptors) of this process."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return (int(fields["VmRSS"].split()[0]), threading.active_count(), len(os.listdir("/proc/self/fd")))


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
    assert after[1] <= before[1] + 2
    assert after[2] <= before[2] + 5
    assert after[0] - before[0] < 30 * 1024  # KiB: no growth with the number of polls
