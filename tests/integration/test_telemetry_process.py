"""SIGTERM stops the exporter process promptly whatever Loki and the OTLP receiver do."""

import signal
import time

import pytest

from support.api import TEST_KEY
from support.process import ExporterProcess


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_sigterm_exits_within_seconds_whatever_the_receivers_do(api, otlp, loki, mode):
    if mode == "refuse":
        otlp.close()
        loki.close()
    else:
        otlp.hang = loki.hang = True
    exporter = ExporterProcess.start(
        {
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            "SCRAPE_INTERVAL": "0.2",
            "LOKI_URL": loki.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans go out at once, not after 5 s
        }
    )
    process = exporter.process
    try:
        assert exporter.wait_for_log("Updated provider metrics", timeout=20)
        # Pushes and span exports are under way (and hang) once one of each was tried.
        if mode == "hang":
            assert loki.wait_until(lambda r: r.attempts) and otlp.wait_until(lambda r: r.attempts)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        elapsed = time.monotonic() - started
        print(f"SIGTERM to exit with receivers that {mode}: {elapsed:.2f}s")
        assert elapsed < 5
    finally:
        output = exporter.stop(signal.SIGKILL)
    assert TEST_KEY not in output
