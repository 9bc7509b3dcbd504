"""The landing page at ``/``: what this exporter is doing, at a glance.

The version, the mode (demo, or the API's host name only) and, per polled endpoint, the latest
poll, the last success and whether its data is still served; every value HTML-escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .model import ENDPOINTS, EndpointStatus, Snapshot
from .pages import page

if TYPE_CHECKING:
    from .status import StatusSnapshot


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


def _escape(text: str) -> str:
    """``text`` as HTML; the html module (and its large entity table) loads with the first page view."""
    from html import escape

    return escape(text)


def _ago(then: float | None, now: float) -> str:
    return "never" if then is None else f"{max(0.0, now - then):.0f} s ago"


class LandingPage:
    """Renders ``/`` from the newest snapshot."""

    def __init__(
        self,
        current: Callable[[], Snapshot],
        *,
        version: str,
        mode: str,
        max_staleness: float,
        status: Callable[[], StatusSnapshot] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._current = current
        self._status = status  # the status API's snapshot; None when STATUS_API=off
        self._version = version
        self._mode = mode
        self._max_staleness = max_staleness
        self._monotonic = monotonic

    def _data(self, status: EndpointStatus, fresh: bool) -> str:
        """Whether the endpoint's data is exported: until MAX_STALENESS after its last success."""
        if fresh:
            return "served"
        if status.last_success_monotonic is None:
            return "none yet"
        return f"stale: not served (older than MAX_STALENESS, {self._max_staleness:g} s)"

    def _row(self, endpoint: str, status: EndpointStatus, fresh: bool, now: float) -> str:
        if not status.attempted:
            cells = [endpoint, "not yet polled", "", "", "never", "none yet"]
        else:
            result = "ok" if status.success else "failed"
            cells = [
                endpoint,
                f"{result}, {_ago(status.attempted_monotonic, now)}",
                status.reason or "",
                "" if status.status_code is None else str(status.status_code),
                _ago(status.last_success_monotonic, now),
                self._data(status, fresh),
            ]
        return "<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in cells) + "</tr>"

    def _rows(
        self,
        endpoints: tuple[str, ...],
        status: Mapping[str, EndpointStatus],
        fresh: Mapping[str, bool],
        now: float,
    ) -> list[str]:
        return [self._row(e, status[e], fresh[e], now) for e in endpoints]

    def render(self) -> bytes:
        snapshot = self._current()
        now = self._monotonic()
        fresh = {e: snapshot.fresh(e, now, self._max_staleness) for e in ENDPOINTS}
        rows = self._rows(ENDPOINTS, snapshot.status, fresh, now)
        if self._status is not None:
            from .status import STATUS_ENDPOINTS  # loaded already: the status API is on

            status = self._status()
            rows += self._rows(
                STATUS_ENDPOINTS,
                status.status,
                {e: status.fresh(e, now, self._max_staleness) for e in STATUS_ENDPOINTS},
                now,
            )
        if snapshot.providers is None:
            count = "none yet"
        elif fresh["providers"]:
            count = str(len(snapshot.providers))
        else:
            count = "not served: the last successful poll is older than MAX_STALENESS"
        e = _escape
        return page(
            f"""<p>Version {e(self._version)}; {e(self._mode)}.</p>
<p>Providers: {e(count)}</p>
<table><tr><th>endpoint</th><th>latest poll</th><th>reason</th><th>HTTP status</th>\
<th>last success</th><th>data</th></tr>
{chr(10).join(rows)}
</table>
"""
        )
