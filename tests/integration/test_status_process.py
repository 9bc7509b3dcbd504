"""Hanging status routes, the exporter as a process: the admin series, readiness and SIGTERM hold."""

from __future__ import annotations

import signal
import time

import requests

from support.api import TEST_KEY, Reply
from support.waits import eventually


def test_hanging_status_routes_leave_admin_series_readiness_and_a_prompt_exit_alone(api, exporter_process):
    # Every status route hangs (REQUEST_TIMEOUT at its default 10 s); the admin routes answer.
    for path in ("/v1/status/", "/v1/status/providers", "/v1/status/incidents", "/v1/status/stats"):
        api.routes[path] = Reply(body=[], delay=60)
    api.routes["/v1/status/models"] = Reply(307, b"", {"Location": "/v1/status/slow-models"})
    api.routes["/v1/status/slow-models"] = Reply(body=[], delay=60)  # hangs after a same-host redirect
    process = exporter_process()
    try:
        assert eventually(lambda: api.count("/v1/status/slow-models") == 1)  # every status request in flight
        url = process.url("").rstrip("/")
        assert eventually(
            lambda: "gatewayz_provider_health_status{" in requests.get(url + "/metrics", timeout=5).text
        )
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        status_requests = [headers for path, headers in api.requests if path.startswith("/v1/status")]
        assert len(status_requests) == 6
        assert not [h for h in status_requests if "authorization" in {name.lower() for name in h}]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.process.wait(10)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 3.0
    finally:
        out = process.stop()
    assert TEST_KEY not in out
