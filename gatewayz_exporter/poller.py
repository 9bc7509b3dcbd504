"""The poll loop: fetch both endpoints, validate, publish one new Snapshot.

``poll_once`` is the unit tests drive; ``run`` repeats it every interval until
the stop Event is set. Nothing in here can end the loop: an unexpected error is
logged and the next poll happens on time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Generic, TypeVar

from .client import MAX_RETRY_AFTER_SECONDS, ApiClient, FetchResult
from .model import ENDPOINTS, Snapshot
from .parse import ParsedProviders, ParsedStats, PayloadError, RecordMemo, parse_providers, parse_stats
from .spans import LocalTracer, Tracer

log = logging.getLogger("gatewayz_exporter.poller")

T = TypeVar("T")


def retry_not_before(result: FetchResult, started: float, interval: float, slack: float) -> float | None:
    """When an endpoint may be asked again after ``result`` (monotonic), or None: at the next poll.

    Retry-After counts from when the answer arrived; a 429 without it skips one poll.
    """
    if result.retry_after_seconds is not None:
        received = started + result.duration_seconds
        return received + min(result.retry_after_seconds, MAX_RETRY_AFTER_SECONDS)
    if result.reason == "rate_limited":
        # The next poll on the grid is skipped, the one after it asks again.
        return started + interval + interval / 2 + slack
    return None


def run_polls(
    poll_once: Callable[[], object],
    interval: float,
    stop: threading.Event,
    monotonic: Callable[[], float],
    closed: Callable[[], bool],
    kind: str,
) -> None:
    """Call ``poll_once`` now, then every ``interval`` seconds (from the start of each) until
    ``stop`` is set or ``closed()``; an exception is logged and the loop goes on."""
    while not stop.is_set() and not closed():
        started = monotonic()
        try:
            poll_once()
        except Exception:  # the loop never dies; the next poll may succeed
            log.exception("Poll failed unexpectedly", extra={"poll": kind})
        # Capped: Event.wait raises OverflowError past TIMEOUT_MAX (SCRAPE_INTERVAL=99999999999).
        stop.wait(min(max(0.0, interval - (monotonic() - started)), threading.TIMEOUT_MAX))


class Store(Generic[T]):
    """Holds the newest snapshot. Publishing is one reference swap, so readers never lock."""

    def __init__(self, snapshot: T):
        self._snapshot = snapshot
        self._listeners: list[Callable[[T], None]] = []

    @property
    def current(self) -> T:
        return self._snapshot

    def subscribe(self, listener: Callable[[T], None]) -> None:
        """Call ``listener(snapshot)`` in the poller thread after each publish (e.g. to pre-render)."""
        self._listeners.append(listener)

    def publish(self, snapshot: T) -> None:
        self._snapshot = snapshot
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # a listener must not stop polling
                log.exception("Snapshot listener failed", extra={"snapshot": type(snapshot).__name__})


class SnapshotStore(Store[Snapshot]):
    """Holds the newest provider Snapshot."""

    def __init__(self, snapshot: Snapshot | None = None):
        super().__init__(snapshot or Snapshot())


class Poller:
    """Polls the API into ``store``. Owns the error counts, which only grow.

    Time comes from ``monotonic`` (scheduling, staleness) and ``wall_clock``
    (the last-success timestamp); tests pass fake clocks.
    """

    def __init__(
        self,
        client: ApiClient,
        store: SnapshotStore,
        *,
        interval: float,
        tracer: Tracer | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self._client = client
        self._store = store
        self._interval = interval
        self._tracer = tracer or LocalTracer(ids=False)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._not_before = dict.fromkeys(ENDPOINTS, -math.inf)
        # Polls run on a grid of ``interval``; an endpoint backed off until ``not_before``
        # is asked at the first poll no more than this much earlier (Retry-After counts
        # whole seconds, and the poll after it must not be lost to a few milliseconds).
        self._slack = min(0.5, interval / 2)
        self._closed = False
        self.polls = 0
        self._memo = RecordMemo()  # the previous big payload's judged records
        self._unrecognised_health: dict[str, str] = {}  # slug -> the status text last warned about

    def close(self) -> None:
        """Abandon requests in flight; a poll under way returns at once and publishes nothing."""
        self._closed = True
        self._client.close()

    def run(self, stop: threading.Event) -> None:
        """Poll now, then every ``interval`` seconds (from the start of each poll) until ``stop``."""
        run_polls(self.poll_once, self._interval, stop, self._monotonic, lambda: self._closed, "poll")

    def due(self, endpoint: str, now: float) -> bool:
        """True when ``endpoint`` is not backed off (Retry-After, 429) at monotonic time ``now``."""
        return now >= self._not_before[endpoint] - self._slack

    def poll_once(self) -> Snapshot:
        """Fetch due endpoints concurrently, validate, publish and return the new Snapshot.

        Each endpoint is fetched, bounded by REQUEST_TIMEOUT and validated on its
        own: whatever one endpoint does, the other's result is published.
        """
        self.polls += 1
        with self._tracer.start_as_current_span("poll") as span:
            started = self._monotonic()
            due = [e for e in ENDPOINTS if self.due(e, started)]
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "Poll started",
                    extra={
                        "endpoints": due,
                        "backed_off": {
                            e: round(self._not_before[e] - started, 3) for e in ENDPOINTS if e not in due
                        },
                    },
                )
            pending = {e: self._client.begin(e) for e in due}
            results = {e: p.result() for e, p in pending.items()}  # never raises; each by its deadline
            del pending
            if self._closed:  # stopping: a poll cut short is not news
                return self._store.current
            with self._tracer.start_as_current_span("convert") as convert_span:
                snapshot, parsed, reasons, causes = self._build(self._store.current, results, started)
                # The decoded JSON can be large; let it go before the new snapshot is rendered.
                results = {e: replace(r, payload=None) for e, r in results.items()}
                self._store.publish(snapshot)
                count = len(snapshot.providers) if snapshot.providers is not None else 0
                convert_span.set_attribute("provider_count", count)
            duration = self._monotonic() - started
            span.set_attribute("provider_count", count)
            span.set_attribute("duration_ms", round(duration * 1000, 3))
            self._log(snapshot, results, parsed, reasons, causes, duration)
        return snapshot

    def _back_off(self, endpoint: str, result: FetchResult, started: float) -> None:
        """Honour Retry-After from when the answer arrived; a 429 without it skips one poll."""
        not_before = retry_not_before(result, started, self._interval, self._slack)
        if not_before is None:
            return
        self._not_before[endpoint] = not_before
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "Endpoint backed off",
                extra={
                    "endpoint": endpoint,
                    "reason": result.reason,
                    "retry_after_seconds": result.retry_after_seconds,
                    "seconds": round(self._not_before[endpoint] - started, 3),
                },
            )

    def _parse(self, endpoint: str, result: FetchResult) -> ParsedProviders | ParsedStats:
        if endpoint == "providers":
            return parse_providers(result.payload, self._memo)
        return parse_stats(result.payload)

    def _build(
        self, previous: Snapshot, results: dict[str, FetchResult], started: float
    ) -> tuple[Snapshot, dict[str, ParsedProviders | ParsedStats], dict[str, str | None], dict[str, str]]:
        now_mono, now_wall = self._monotonic(), self._wall_clock()
        parsed: dict[str, ParsedProviders | ParsedStats] = {}
        reasons: dict[str, str | None] = {}
        causes: dict[str, str] = {}  # why a payload was refused, for the log line
        for endpoint, result in results.items():
            reasons[endpoint] = result.reason
            if result.ok:
                try:
                    parsed[endpoint] = self._parse(endpoint, result)
                except PayloadError as error:
                    reasons[endpoint] = error.reason
                    causes[endpoint] = str(error)
                except Exception:  # a payload the validator did not foresee is still just a bad payload
                    log.exception("Unexpected payload", extra={"endpoint": endpoint})
                    reasons[endpoint] = "invalid_payload"
            else:
                self._back_off(endpoint, result, started)
        self._cross_check(parsed, reasons, previous)

        errors = dict(previous.errors)
        status = dict(previous.status)
        providers, stats = previous.providers, previous.stats
        invalid = previous.invalid_records
        for endpoint, result in results.items():
            reason = reasons[endpoint]
            status[endpoint] = previous.status[endpoint].after(
                reason, result.duration_seconds, result.status_code, now_wall, now_mono
            )
            if reason is None:
                accepted = parsed[endpoint]
                invalid += accepted.invalid_records
                if isinstance(accepted, ParsedProviders):
                    providers = accepted.providers
                else:
                    stats = accepted.stats
            else:
                errors[(endpoint, reason)] += 1
        snapshot = Snapshot(
            previous.generation + 1,
            providers,
            stats,
            MappingProxyType(status),
            MappingProxyType(errors),
            invalid,
        )
        return snapshot, {e: p for e, p in parsed.items() if reasons[e] is None}, reasons, causes

    @staticmethod
    def _cross_check(
        parsed: dict[str, ParsedProviders | ParsedStats], reasons: dict[str, str | None], previous: Snapshot
    ) -> None:
        """The backend answers a database error with 200 and an empty list or all-zero stats.

        When one endpoint reports providers the other's emptiness denies, the empty one
        is treated as a failure, so the last good data stays instead of every series
        dropping to zero. The other endpoint's answer is this poll's when it succeeded,
        else the last good one (it failed, or Retry-After held it back).
        """
        polled_providers = parsed.get("providers") if reasons.get("providers") is None else None
        polled_stats = parsed.get("stats") if reasons.get("stats") is None else None
        if not isinstance(polled_providers, ParsedProviders):
            polled_providers = None
        if not isinstance(polled_stats, ParsedStats):
            polled_stats = None
        providers = polled_providers.providers if polled_providers is not None else previous.providers
        stats = polled_stats.stats if polled_stats is not None else previous.stats
        if providers is None or stats is None or (polled_providers is None and polled_stats is None):
            return
        if polled_providers is not None and not providers and (stats.get("total") or 0) > 0:
            reasons["providers"] = "inconsistent"
        elif polled_stats is not None and providers and not any(v for v in stats.values if v is not None):
            reasons["stats"] = "inconsistent"

    def _log(
        self,
        snapshot: Snapshot,
        results: dict[str, FetchResult],
        parsed: dict[str, ParsedProviders | ParsedStats],
        reasons: dict[str, str | None],
        causes: dict[str, str],
        duration: float,
    ) -> None:
        for endpoint, reason in reasons.items():
            if reason is not None:
                result = results[endpoint]
                log.warning(
                    "Provider API poll failed",
                    extra={
                        "endpoint": endpoint,
                        "reason": reason,
                        "cause": result.cause if result.reason == reason else causes.get(endpoint),
                        "status_code": result.status_code,
                        "duration_ms": round(result.duration_seconds * 1000, 1),
                    },
                )
        for endpoint, accepted in parsed.items():
            if accepted.dropped:
                log.warning(
                    "Dropped invalid provider data",
                    extra={
                        "endpoint": endpoint,
                        "dropped": accepted.dropped,
                        "invalid_records": accepted.invalid_records,
                        "providers": list(accepted.slugs) if isinstance(accepted, ParsedProviders) else None,
                    },
                )
            if isinstance(accepted, ParsedProviders):
                self._log_providers(accepted)
        if any(s.success for s in snapshot.status.values()):
            stats = snapshot.stats
            log.info(
                "Updated provider metrics",
                extra={
                    "providers_total": _int(stats.get("total")) if stats else None,
                    "providers_active": _int(stats.get("active")) if stats else None,
                    "providers_healthy": _int(stats.get("healthy")) if stats else None,
                    "provider_count": len(snapshot.providers or ()),
                    "poll_duration_ms": round(duration * 1000, 1),
                },
            )

    def _log_providers(self, accepted: ParsedProviders) -> None:
        """An unrecognised health status: one WARNING per provider each time its text changes."""
        if accepted.quiet and log.isEnabledFor(logging.DEBUG):
            log.debug("Left out provider fields that are not numbers", extra={"fields": accepted.quiet})
        warned = self._unrecognised_health
        current = {p.slug: p.unrecognised_health for p in accepted.providers if p.unrecognised_health}
        for slug, text in current.items():
            if warned.get(slug) != text:
                log.warning(
                    "Unrecognised provider health status, exported as 0 (unknown)",
                    extra={"provider": slug, "health_status": text},
                )
        self._unrecognised_health = current


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
