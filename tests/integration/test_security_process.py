"""The exporter process under load: concurrent scrapers, and a bcrypt check at exit."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

import pytest
import requests

from support import ROOT
from support.api import SEED_STATS, TEST_KEY, many_providers
from support.process import ExporterProcess
from support.waits import eventually

_EXIT_WHILE_CHECKING = """
import asyncio, base64, time
from gatewayz_exporter.auth import AuthGate
from gatewayz_exporter.credentials import CredentialVerifier

def endless(password, hashed):
    time.sleep(120)
    return False

verifier = CredentialVerifier({"prometheus": b"$2b$04$" + b"a" * 53}, checkpw=endless)
gate = AuthGate()

async def main():
    asyncio.ensure_future(gate.check(verifier, b"Basic " + base64.b64encode(b"prometheus:wrong"), "10.0.0.1"))
    await asyncio.sleep(0.2)

asyncio.new_event_loop().run_until_complete(main())
gate.close()
print("leaving", flush=True)
"""


def test_a_bcrypt_check_in_progress_does_not_keep_the_process_alive_at_exit():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _EXIT_WHILE_CHECKING], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "leaving\n", result.stderr
    assert time.monotonic() - started < 20  # the check alone would take 120 s


@pytest.mark.serial
def test_32_concurrent_scrapers_get_no_errors_and_polling_is_not_starved(api):
    """32 keep-alive scrapers hammer /metrics (1,000 providers) while the exporter polls every 0.5 s.

    What it proves: every scrape is a complete 200, and the poller keeps
    polling during the load; a poll that queued behind scrapes (a shared lock
    or pool) would stop or leave gaps of many intervals. The bounds leave room
    for a loaded 2-core machine: at least 4 polls while scraping, no gap over
    10 intervals (5 s), not the exact cadence. The scrapers run until 6 polls
    were seen or 20 s passed, not for a fixed time. The exporter runs as its
    own process, as in production; the scrapers share nothing with it.
    """
    api.set_data(many_providers(1000), {**SEED_STATS, "total": 1000})
    exporter = ExporterProcess.start(
        {
            "METRICS_ADDR": "127.0.0.1",
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.5",
        }
    )
    base = exporter.url("/metrics")

    def polls() -> list[float]:
        return exporter.logged_at("Updated provider metrics")

    stop, errors, counts = threading.Event(), [], []

    def scraper(gzip: bool):
        done = 0
        with requests.Session() as session:
            headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
            while not stop.is_set():
                try:
                    response = session.get(base, headers=headers, timeout=10)
                    if (
                        response.status_code != 200
                        or not response.text.endswith("\n")
                        or 'provider="provider-999"' not in response.text
                    ):
                        errors.append(response.status_code)
                    done += 1
                except requests.RequestException as error:
                    errors.append(type(error).__name__)
        counts.append(done)

    try:
        assert eventually(lambda: len(polls()) >= 2, timeout=20), "the exporter never polled twice"
        started = time.monotonic()
        threads = [threading.Thread(target=scraper, args=(i % 2 == 0,)) for i in range(32)]
        for thread in threads:
            thread.start()
        eventually(lambda: sum(1 for t in polls() if t >= started) >= 6, timeout=20, step=0.1)
        stop.set()
        for thread in threads:
            thread.join(15)
        ended = time.monotonic()
    finally:
        exporter.stop()
    during = [started, *(t for t in polls() if started <= t <= ended), ended]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(
        f"32 scrapers: {sum(counts)} scrapes in {ended - started:.1f}s, {len(during) - 2} polls, "
        f"largest gap without a poll {max(gaps):.2f}s"
    )
    assert errors == []
    assert len(counts) == 32 and min(counts) >= 1  # every scraper was answered
    assert len(during) - 2 >= 4, f"only {len(during) - 2} polls in {ended - started:.1f}s of scraping"
    assert max(gaps) < 5.0  # no poll waited behind the scrapes
