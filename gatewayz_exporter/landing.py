"""The landing page at ``/``: what this exporter is doing, at a glance.

It shows the version, the mode (demo, or the API's host name only: never a
key, a path or credentials), each API endpoint's latest poll (result,
failure reason, age), the provider count and links. ``PollHistory`` learns
the latest attempt of each endpoint by watching the snapshots the poller
publishes (``store.subscribe``); it only reads them. Every value is
HTML-escaped.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .model import ENDPOINTS, Snapshot


@dataclass(frozen=True, slots=True)
class LastPoll:
    """One endpoint's most recent attempt."""

    success: bool
    reason: str | None  # from model.REASONS when the attempt failed
    at_monotonic: float


def describe_api(url: str, *, demo: bool) -> str:
    """The mode shown on the page: 'demo', or the API's host (and port) with nothing else."""
    if demo:
        return "demo (built-in sample API on loopback)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "API host unknown"
    if ":" in host:
        host = f"[{host}]"
    return f"API host {host}" + (f":{port}" if port else "")


class PollHistory:
    """Remembers each endpoint's latest attempt from the published snapshots."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic):
        self._monotonic = monotonic
        self._previous: Snapshot | None = None
        self._last: dict[str, LastPoll] = {}
        self._lock = threading.Lock()

    def observe(self, snapshot: Snapshot) -> None:
        """Subscribed to the SnapshotStore: called in the poller thread after each publish."""
        now = self._monotonic()
        with self._lock:
            previous = self._previous
            for endpoint in ENDPOINTS:
                status = snapshot.status[endpoint]
                if not status.attempted:
                    continue
                # The poller makes a new status object for each endpoint it fetched; an endpoint
                # waiting out a Retry-After keeps the old one, and so keeps its age.
                if previous is not None and previous.status[endpoint] is status:
                    continue
                reason = None
                if not status.success:
                    old_errors: Mapping[tuple[str, str], int] = previous.errors if previous else {}
                    grown = [
                        r
                        for (e, r), count in snapshot.errors.items()
                        if e == endpoint and count > old_errors.get((e, r), 0)
                    ]
                    reason = grown[0] if grown else None
                self._last[endpoint] = LastPoll(status.success, reason, now)
            self._previous = snapshot

    def last(self) -> dict[str, LastPoll]:
        with self._lock:
            return dict(self._last)


class LandingPage:
    """Renders ``/`` from the newest snapshot and the poll history."""

    def __init__(
        self,
        current: Callable[[], Snapshot],
        history: PollHistory,
        *,
        version: str,
        mode: str,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._current = current
        self._history = history
        self._version = version
        self._mode = mode
        self._monotonic = monotonic

    def render(self) -> bytes:
        snapshot = self._current()
        now = self._monotonic()
        last = self._history.last()
        e = html.escape
        rows = []
        for endpoint in ENDPOINTS:
            poll = last.get(endpoint)
            if poll is None:
                result, reason, age = "not yet polled", "", ""
            else:
                result = "ok" if poll.success else "failed"
                reason = poll.reason or ""
                age = f"{max(0.0, now - poll.at_monotonic):.0f} s ago"
            rows.append(
                f"<tr><td>{e(endpoint)}</td><td>{e(result)}</td><td>{e(reason)}</td><td>{e(age)}</td></tr>"
            )
        count = "none yet" if snapshot.providers is None else str(len(snapshot.providers))
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>GatewayZ provider metrics exporter</title></head>
<body><h1>GatewayZ provider metrics exporter</h1>
<p>Version {e(self._version)}; {e(self._mode)}.</p>
<p>Providers: {e(count)}</p>
<table><tr><th>endpoint</th><th>latest poll</th><th>reason</th><th>when</th></tr>
{chr(10).join(rows)}
</table>
<ul><li><a href="/metrics">/metrics</a> (Prometheus metrics)</li>
<li><a href="/healthz">/healthz</a> (liveness)</li>
<li><a href="/readyz">/readyz</a> (readiness: a recent successful poll)</li></ul>
</body></html>
"""
        return page.encode("utf-8")
