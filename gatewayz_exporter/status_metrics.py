"""The status API's metric families: which series a StatusSnapshot becomes.

Families are ``collector.Family`` values, so the one renderer writes them.
An endpoint's families are left out once its data is past MAX_STALENESS.
States are state sets: one series per state, 1 for the current one.

Emitted (abridged)::

    # HELP gatewayz_status_provider_state Measured provider status behind a gateway ...
    # TYPE gatewayz_status_provider_state gauge
    gatewayz_status_provider_state{gateway="openrouter",provider="openai",state="operational"} 1.0
    gatewayz_status_provider_state{gateway="openrouter",provider="openai",state="degraded"} 0.0
    # TYPE gatewayz_status_provider_uptime_ratio gauge
    gatewayz_status_provider_uptime_ratio{gateway="openrouter",provider="openai",window="24h"} 0.995
    # TYPE gatewayz_status_checks_success_ratio gauge
    gatewayz_status_checks_success_ratio 0.98
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from .collector import Family, PollRows
from .model import REASONS
from .render import render_families
from .status import (
    BREAKER_STATES,
    MODEL_STATES,
    OVERALL_COUNTS,
    OVERALL_STATES,
    PROVIDER_STATES,
    SEVERITIES,
    STATUS_ENDPOINTS,
    StatusSnapshot,
)

SOURCE = "(background poll of the GatewayZ status API)"

OVERALL_COUNT_FAMILIES = {
    # Overall attribute -> (family name, what it counts)
    "models": ("gatewayz_status_models_monitored", "Models the backend's health monitor watches"),
    "healthy_models": ("gatewayz_status_models_healthy", "Monitored models whose last check succeeded"),
    "offline_models": ("gatewayz_status_models_offline", "Monitored models with an open circuit breaker"),
    "providers": ("gatewayz_status_providers_monitored", "Provider and gateway pairs the monitor watches"),
    "gateways": ("gatewayz_status_gateways_monitored", "Gateways the monitor watches"),
    "healthy_gateways": (
        "gatewayz_status_gateways_healthy",
        "Gateways with at least one operational provider",
    ),
    "active_incidents": ("gatewayz_status_incidents_active", "Active incidents, from /v1/status/"),
}

PG = ("provider", "gateway")
PGM = ("provider", "gateway", "model")


def _gauge(
    name: str, doc: str, labels: tuple[str, ...], rows: Sequence[tuple[tuple[str, ...], float]]
) -> Family:
    return Family(name, f"{doc} {SOURCE}.", "gauge", labels, rows)


def _state_set(
    keys: Iterable[tuple[tuple[str, ...], str]], states: Sequence[str]
) -> list[tuple[tuple[str, ...], float]]:
    """One row per (key, state): 1.0 for the key's current state, 0.0 for the others."""
    return [((*key, state), 1.0 if state == current else 0.0) for key, current in keys for state in states]


def overall_families(snapshot: StatusSnapshot) -> Iterator[Family]:
    overall = snapshot.overall
    if overall is None:
        return
    yield _gauge(
        "gatewayz_status_overall_state",
        "Overall measured status, one series per state (1 for the current one)",
        ("state",),
        _state_set([((), overall.state)], OVERALL_STATES),
    )
    for attribute, _ in OVERALL_COUNTS:
        name, doc = OVERALL_COUNT_FAMILIES[attribute]
        value = getattr(overall, attribute)
        if value is not None:
            yield _gauge(name, doc, (), [((), value)])


def provider_families(snapshot: StatusSnapshot) -> Iterator[Family]:
    rows = snapshot.providers
    if rows is None:
        return
    keys = [(r.provider, r.gateway) for r in rows]
    yield _gauge(
        "gatewayz_status_provider_state",
        "Measured status of a provider behind a gateway, one series per state (1 for the current one)",
        (*PG, "state"),
        _state_set(zip(keys, (r.state for r in rows), strict=True), PROVIDER_STATES),
    )
    yield _gauge(
        "gatewayz_status_provider_uptime_ratio",
        "Average uptime of the provider's models behind a gateway over the window, 0 to 1",
        (*PG, "window"),
        [
            ((*key, window), value)
            for key, r in zip(keys, rows, strict=True)
            for window, value in (("24h", r.uptime_24h), ("7d", r.uptime_7d))
        ],
    )
    for name, doc, attribute in (
        ("gatewayz_status_provider_models", "Models of the provider monitored behind a gateway", "models"),
        (
            "gatewayz_status_provider_models_healthy",
            "Models of the provider whose last check succeeded",
            "healthy_models",
        ),
        (
            "gatewayz_status_provider_models_offline",
            "Models of the provider with an open circuit breaker",
            "offline_models",
        ),
        (
            "gatewayz_status_provider_response_time_ms",
            "Average measured response time of the provider's models, in milliseconds",
            "response_time_ms",
        ),
    ):
        yield _gauge(name, doc, PG, [(key, getattr(r, attribute)) for key, r in zip(keys, rows, strict=True)])
    yield _gauge(
        "gatewayz_status_provider_last_check_timestamp_seconds",
        "Unix time of the latest measured check of the provider's models behind a gateway",
        PG,
        [(key, r.last_checked) for key, r in zip(keys, rows, strict=True) if r.last_checked is not None],
    )


def incident_families(snapshot: StatusSnapshot) -> Iterator[Family]:
    incidents = snapshot.incidents
    if incidents is None:
        return
    counts = Counter((i.provider, i.gateway, i.severity) for i in incidents)
    oldest: dict[tuple[str, str], float] = {}
    for incident in incidents:
        key = (incident.provider, incident.gateway)
        oldest[key] = min(incident.started, oldest.get(key, incident.started))
    keys = sorted(oldest)
    yield _gauge(
        "gatewayz_status_incidents_open",
        "Active incidents of a provider behind a gateway by severity (every severity once one is open)",
        (*PG, "severity"),
        [((*key, s), float(counts[(*key, s)])) for key in keys for s in SEVERITIES],
    )
    yield _gauge(
        "gatewayz_status_oldest_incident_start_timestamp_seconds",
        "Unix time at which the oldest active incident of a provider behind a gateway began",
        PG,
        [(key, oldest[key]) for key in keys],
    )


def checks_families(snapshot: StatusSnapshot) -> Iterator[Family]:
    checks = snapshot.checks
    if checks is None:
        return
    if checks.success_ratio is not None:  # absent, not 0, when no check ran
        yield _gauge(
            "gatewayz_status_checks_success_ratio",
            "Share of the backend's health checks in the last 24 h that succeeded, 0 to 1",
            (),
            [((), checks.success_ratio)],
        )
    if checks.total is not None:
        yield _gauge(
            "gatewayz_status_checks_24h", "Health checks run in the last 24 h", (), [((), checks.total)]
        )
    if checks.failed is not None:
        yield _gauge(
            "gatewayz_status_checks_failed_24h",
            "Health checks that failed in the last 24 h",
            (),
            [((), checks.failed)],
        )
    if checks.monitoring_active is not None:
        yield _gauge(
            "gatewayz_status_monitoring_active",
            "1 if the backend ran any health check in the last 24 h, 0 if not",
            (),
            [((), 1.0 if checks.monitoring_active else 0.0)],
        )


def model_families(snapshot: StatusSnapshot) -> Iterator[Family]:
    models = snapshot.models
    if models is None:
        return
    keys = [(m.provider, m.gateway, m.model) for m in models]
    yield _gauge(
        "gatewayz_status_model_state",
        "Measured status of a model behind a gateway, one series per state (1 for the current one)",
        (*PGM, "state"),
        _state_set(zip(keys, (m.state for m in models), strict=True), MODEL_STATES),
    )
    yield _gauge(
        "gatewayz_status_model_uptime_ratio",
        "Measured uptime of a model behind a gateway over the window, 0 to 1",
        (*PGM, "window"),
        [
            ((*key, window), value)
            for key, m in zip(keys, models, strict=True)
            for window, value in (("24h", m.uptime_24h), ("7d", m.uptime_7d), ("30d", m.uptime_30d))
        ],
    )
    yield _gauge(
        "gatewayz_status_model_circuit_breaker_state",
        "Circuit breaker of a model behind a gateway, one series per state (1 for the current one)",
        (*PGM, "state"),
        _state_set(
            ((key, m.breaker) for key, m in zip(keys, models, strict=True) if m.breaker is not None),
            BREAKER_STATES,
        ),
    )
    yield _gauge(
        "gatewayz_status_model_incidents_active",
        "Active incidents of a model behind a gateway",
        PGM,
        [(key, m.active_incidents) for key, m in zip(keys, models, strict=True)],
    )
    yield _gauge(
        "gatewayz_status_models_left_out",
        "Models the status API lists that STATUS_MODELS_MAX left out of the per-model series",
        (),
        [((), float(snapshot.models_left_out))],
    )


DATA_FAMILIES = (
    ("status", overall_families),
    ("status_providers", provider_families),
    ("status_incidents", incident_families),
    ("status_stats", checks_families),
    ("status_models", model_families),
)


def status_data_families(snapshot: StatusSnapshot, fresh: frozenset[str]) -> Iterator[Family]:
    """Every data family of the endpoints in ``fresh`` (the others are past MAX_STALENESS)."""
    for endpoint, families in DATA_FAMILIES:
        if endpoint in fresh:
            yield from families(snapshot)


def invalid_records_family(snapshot: StatusSnapshot) -> Family:
    return Family(
        "gatewayz_status_invalid_records",
        "Status API records dropped or with a state outside the known set, by endpoint.",
        "counter",
        ("endpoint",),
        [((e,), float(snapshot.invalid_records[e])) for e in STATUS_ENDPOINTS],
    )


def poll_rows(snapshot: StatusSnapshot) -> PollRows:
    """The status endpoints' rows of the poll families the admin endpoints also fill (one family per name)."""
    status = snapshot.status
    attempted = [e for e in STATUS_ENDPOINTS if status[e].attempted]
    return PollRows(
        success=[((e,), 1.0 if status[e].success else 0.0) for e in attempted],
        duration=[((e,), status[e].duration_seconds) for e in attempted],
        last_success=[((e,), t) for e in STATUS_ENDPOINTS if (t := status[e].last_success_unix) is not None],
        errors=[((e, r), float(snapshot.errors[(e, r)])) for e in STATUS_ENDPOINTS for r in REASONS],
    )


class StatusReading:
    """One reading of the status store: the snapshot and which endpoints' data are fresh."""

    __slots__ = ("data_key", "fresh", "key", "snapshot")

    def __init__(self, snapshot: StatusSnapshot, fresh: frozenset[str]):
        self.snapshot, self.fresh = snapshot, fresh
        self.key = (snapshot.generation, fresh)  # everything, the poll outcomes included
        self.data_key = (snapshot.data_version, fresh)  # what the data families show

    def data_families(self) -> Iterator[Family]:
        return status_data_families(self.snapshot, self.fresh)

    def poll_rows(self) -> PollRows:
        return poll_rows(self.snapshot)

    def own_families(self) -> Iterator[Family]:
        yield invalid_records_family(self.snapshot)


class StatusSource:
    """Reads the status store for the collector; data past MAX_STALENESS is left out."""

    def __init__(
        self,
        store: StatusSnapshotSource,
        *,
        max_staleness: float,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._max_staleness = max_staleness
        self._monotonic = monotonic

    def __call__(self) -> StatusReading:
        snapshot, now = self._store.current, self._monotonic()
        fresh = frozenset(e for e in STATUS_ENDPOINTS if snapshot.fresh(e, now, self._max_staleness))
        return StatusReading(snapshot, fresh)


class StatusSnapshotSource(Protocol):
    @property
    def current(self) -> StatusSnapshot: ...


def render_status(snapshot: StatusSnapshot, fresh: frozenset[str], *, openmetrics: bool) -> bytes:
    """The status data families and the invalid-record counter as exposition text."""
    families = [*status_data_families(snapshot, fresh), invalid_records_family(snapshot)]
    return render_families(families, openmetrics=openmetrics)
