"""Polls the backend's public status API into a StatusSnapshot, beside the admin endpoints.

It runs on its own thread with the same client (whole-request deadline, size
cap, redirect policy, Retry-After) but sends no Authorization header: the
status routes are public and the admin key goes only to the admin routes. Its
snapshot lives in its own store, so a failing status API never removes or
delays the admin endpoints' series and never changes readiness.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import MappingProxyType

from .client import ApiClient, FetchResult
from .parse import PayloadError, RawArray
from .poller import Store, retry_not_before, run_polls
from .status import (
    PAGE_SIZES,
    PARSERS,
    STATUS_ENDPOINTS,
    STATUS_PATHS,
    ModelHealth,
    Parsed,
    RowMemo,
    StatusSnapshot,
    parse_models,
    within_budget,
)

log = logging.getLogger("gatewayz_exporter.status")

# Pages asked per paged endpoint and poll at most: 50,000 models, 2,000 active incidents.
MAX_PAGES = MappingProxyType({"status_incidents": 20, "status_models": 50})


def page_path(endpoint: str, page: int) -> str:
    """The path of one page of ``endpoint`` (the whole route when it is not paged)."""
    path = STATUS_PATHS[endpoint]
    size = PAGE_SIZES.get(endpoint)
    if size is None:
        return path
    return f"{path}{'&' if '?' in path else '?'}limit={size}&offset={page * size}"


def _page_bytes(payload: object) -> int:
    """The bytes a page holds: its rows' JSON when the body was big enough to stay raw.

    A smaller body was decoded at once and is under ``RAW_ARRAY_MIN_BYTES``; it is not counted.
    """
    return sum(len(row) for row in payload) if isinstance(payload, RawArray) else 0


class StatusStore(Store[StatusSnapshot]):
    """Holds the newest StatusSnapshot."""

    def __init__(self) -> None:
        super().__init__(StatusSnapshot())


class StatusPoller:
    """Polls every status route each ``interval``; owns the error counts, which only grow."""

    def __init__(
        self,
        client: ApiClient,
        store: StatusStore,
        *,
        interval: float,
        models_max: int,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self._client = client
        self._store = store
        self._interval = interval
        self._models_max = models_max
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._not_before = dict.fromkeys(STATUS_ENDPOINTS, -math.inf)
        self._slack = min(0.5, interval / 2)
        self._not_found: set[str] = set()  # routes whose 404 was logged (once, until they answer)
        # Model rows unchanged since the previous poll are not judged again (most of thousands).
        self._parsers: dict[str, Callable[[Sequence[object]], Parsed]] = {
            **PARSERS,
            "status_models": functools.partial(parse_models, memo=RowMemo()),
        }
        self._closed = False

    def close(self) -> None:
        """Abandon requests in flight; a poll under way publishes nothing."""
        self._closed = True
        self._client.close()

    def run(self, stop: threading.Event) -> None:
        """Poll now, then every ``interval`` seconds (from the start of each poll) until ``stop``."""
        run_polls(self.poll_once, self._interval, stop, self._monotonic, lambda: self._closed, "status")

    def poll_once(self) -> StatusSnapshot:
        """Fetch every due route (all pages), validate, publish and return the new snapshot."""
        started = self._monotonic()
        due = [e for e in STATUS_ENDPOINTS if started >= self._not_before[e] - self._slack]
        first = {e: self._client.begin(page_path(e, 0), authorized=False) for e in due}
        # A route's pages are one answer: they share the poll's interval (or one request's
        # deadline, when that is longer), so a list that never ends, however slowly, cannot hold
        # back the other routes' data past MAX_STALENESS.
        deadline = started + max(self._interval, self._client.timeout)
        pages = {e: self._pages(e, p.result(), deadline) for e, p in first.items()}
        if self._closed:
            return self._store.current
        snapshot = self._build(self._store.current, pages, started)
        self._store.publish(snapshot)
        return snapshot

    def _pages(self, endpoint: str, result: FetchResult, deadline: float) -> tuple[FetchResult, list[object]]:
        """The rest of a paged route after its first page: the last result and every page's payload.

        A page still to ask at ``deadline`` fails the route (``timeout``): a partial list is not data.
        The pages are one answer to the size cap too (``too_large``), or a list that never ends would
        hold MAX_PAGES times MAX_RESPONSE_BYTES.
        """
        payloads = [result.payload]
        held = _page_bytes(result.payload)
        size = PAGE_SIZES.get(endpoint)
        duration = result.duration_seconds
        while (
            size is not None
            and result.ok
            and isinstance(result.payload, Sequence)
            and len(result.payload) >= size
            and len(payloads) < MAX_PAGES[endpoint]
            and not self._closed
        ):
            if self._monotonic() >= deadline:
                result = FetchResult(endpoint, reason="timeout", cause="body")
                break
            result = self._client.fetch(page_path(endpoint, len(payloads)), authorized=False)
            duration += result.duration_seconds
            held += _page_bytes(result.payload)
            if held > self._client.max_bytes:
                result = FetchResult(endpoint, reason="too_large", cause="read")
                payloads.clear()
                break
            payloads.append(result.payload)
        return replace(result, payload=None, duration_seconds=duration), payloads

    def _build(
        self, previous: StatusSnapshot, pages: dict[str, tuple[FetchResult, list[object]]], started: float
    ) -> StatusSnapshot:
        now_mono, now_wall = self._monotonic(), self._wall_clock()
        data: dict[str, object] = {}
        status = dict(previous.status)
        errors = dict(previous.errors)
        invalid = dict(previous.invalid_records)
        for endpoint, (result, payloads) in pages.items():
            reason = result.reason
            if reason is None:
                try:
                    parsed = self._parsers[endpoint](payloads)
                    data[endpoint] = parsed.value
                    invalid[endpoint] += parsed.invalid_records
                    if parsed.invalid_records:
                        log.warning(
                            "Dropped invalid status data",
                            extra={"endpoint": endpoint, "invalid_records": parsed.invalid_records},
                        )
                except PayloadError as error:
                    reason = error.reason
                except Exception:  # a payload the validator did not foresee is still just a bad payload
                    log.exception("Unexpected status payload", extra={"endpoint": endpoint})
                    reason = "invalid_payload"
            else:
                not_before = retry_not_before(result, started, self._interval, self._slack)
                if not_before is not None:
                    self._not_before[endpoint] = not_before
            status[endpoint] = previous.status[endpoint].after(
                reason, result.duration_seconds, result.status_code, now_wall, now_mono
            )
            if reason is None:
                self._not_found.discard(endpoint)
            else:
                errors[(endpoint, reason)] += 1
                self._log_failure(endpoint, reason, result)
        models, left_out = previous.models, previous.models_left_out
        if "status_models" in data:
            listed: Sequence[ModelHealth] = data["status_models"]  # type: ignore[assignment]
            models, left_out = within_budget(listed, self._models_max)
        fields = {
            "overall": data.get("status", previous.overall),
            "providers": data.get("status_providers", previous.providers),
            "incidents": data.get("status_incidents", previous.incidents),
            "checks": data.get("status_stats", previous.checks),
            "models": models,
            "models_left_out": left_out,
        }
        # Equal values keep the previous objects, so an unchanged poll keeps its rendered lines.
        changed = False
        for name, value in fields.items():
            old = getattr(previous, name)
            if value is not old and value == old:
                fields[name] = old
            changed = changed or fields[name] is not old
        return StatusSnapshot(
            generation=previous.generation + 1,
            data_version=previous.data_version + changed,
            status=MappingProxyType(status),
            errors=MappingProxyType(errors),
            invalid_records=MappingProxyType(invalid),
            **fields,  # type: ignore[arg-type]
        )

    def _log_failure(self, endpoint: str, reason: str, result: FetchResult) -> None:
        fields = {
            "endpoint": endpoint,
            "reason": reason,
            "cause": result.cause if result.reason == reason else None,
            "status_code": result.status_code,
            "duration_ms": round(result.duration_seconds * 1000, 1),
        }
        if result.status_code == 404:
            # A backend without the status routes: said once, counted every poll.
            if endpoint not in self._not_found:
                self._not_found.add(endpoint)
                log.warning(
                    "Status API route not found; set STATUS_API=off if this backend has none", extra=fields
                )
            return
        log.warning("Status API poll failed", extra=fields)
