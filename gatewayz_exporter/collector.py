"""The metric contract: which families and series a Snapshot exports.

``stats_families`` (the stats counts), the per-provider families described by
``INFO_*`` and ``PROVIDER_GAUGES``, and ``status_families`` (the exporter's
own poll outcomes) are data; ``render`` writes them as exposition text, the
only renderer. ``SnapshotCollector`` reads the newest Snapshot and says which
of its endpoints are still fresh.

Emitted (abridged; values come from the background poll, never from the scrape)::

    # HELP gatewayz_providers_total Number of providers in total, from /providers/stats (background poll of the GatewayZ API).
    # TYPE gatewayz_providers_total gauge
    gatewayz_providers_total 5.0
    # HELP gatewayz_provider_health_status Provider health: 0 unknown, 1 healthy, 2 degraded, 3 down (background poll of the GatewayZ API).
    # TYPE gatewayz_provider_health_status gauge
    gatewayz_provider_health_status{provider="openai"} 1.0
    # TYPE gatewayz_provider_scrape_errors_total counter
    gatewayz_provider_scrape_errors_total{endpoint="providers",reason="timeout"} 0.0

The whole exposition of the seed fixture is in ``tests/golden/``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, Protocol

from .model import CAPABILITIES, ENDPOINTS, REASONS, STAT_FIELDS, Provider, Snapshot


class SnapshotSource(Protocol):
    """Where the newest Snapshot is read (the poller's store)."""

    @property
    def current(self) -> Snapshot: ...


POLL = "(background poll of the GatewayZ API)"
Row = tuple[tuple[str, ...], float]


class Family(NamedTuple):
    """One metric family as data: ``rows`` are (label values, value) in label_names order."""

    name: str  # OpenMetrics family name (no _total/_info suffix)
    documentation: str
    kind: str  # gauge | counter | info
    label_names: tuple[str, ...]
    rows: Sequence[tuple[tuple[str, ...], float]]


class PollRows(NamedTuple):
    """More endpoints' rows for the exporter's own poll families (``endpoint`` label first)."""

    success: Sequence[Row] = ()
    duration: Sequence[Row] = ()
    last_success: Sequence[Row] = ()
    errors: Sequence[Row] = ()


NO_MORE = PollRows()


class ExtraView(Protocol):
    """One immutable reading of another data source exported beside the snapshot (the status API)."""

    @property
    def key(self) -> object:
        """Changes whenever what it renders changes."""

    @property
    def data_key(self) -> object:
        """Changes whenever what ``data_families`` renders changes."""

    def data_families(self) -> Iterator[Family]:
        """Its data, exported after the per-provider families."""

    def poll_rows(self) -> PollRows:
        """Its endpoints' rows in the exporter's own poll families."""

    def own_families(self) -> Iterator[Family]:
        """Its own counters, exported last."""


def _flag(value: bool | None) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


INFO_LABELS = ("provider", "name", "base_url", "site_url", "status_page_url")
INFO_NAME = "gatewayz_provider"
INFO_DOC = f"Static provider details; always 1 {POLL}."


class ProviderGauge(NamedTuple):
    """One per-provider gauge: ``field`` is the Provider attribute, ``item`` an index into it (supports)."""

    name: str
    documentation: str
    field: str
    item: int | None = None

    def value(self, provider: Provider) -> float | None:
        value = getattr(provider, self.field)
        if self.item is not None:
            value = value[self.item]
        if isinstance(value, bool):
            return _flag(value)
        return None if value is None else float(value)


# In exposition order, after the info family: what render_providers writes for each provider.
PROVIDER_GAUGES = (
    ProviderGauge(
        "gatewayz_provider_is_active", f"1 if the provider is active, 0 if not {POLL}.", "is_active"
    ),
    ProviderGauge(
        "gatewayz_provider_health_status",
        f"Provider health: 0 unknown, 1 healthy, 2 degraded, 3 down {POLL}.",
        "health_status",
    ),
    ProviderGauge(
        "gatewayz_provider_response_time_ms",
        f"Provider average response time in milliseconds {POLL}.",
        "response_time_ms",
    ),
    *(
        ProviderGauge(
            f"gatewayz_provider_supports_{capability}",
            f"1 if the provider supports {capability.replace('_', ' ')}, 0 if not {POLL}.",
            "supports",
            index,
        )
        for index, capability in enumerate(CAPABILITIES)
    ),
    ProviderGauge(
        "gatewayz_provider_last_health_check_timestamp_seconds",
        f"Unix time of the provider's last health check, in seconds {POLL}.",
        "last_health_check_seconds",
    ),
    ProviderGauge(
        "gatewayz_provider_rate_limit",
        f"Provider rate limit from its metadata, in requests {POLL}.",
        "rate_limit",
    ),
    ProviderGauge(
        "gatewayz_provider_max_tokens",
        f"Provider maximum tokens from its metadata, in tokens {POLL}.",
        "max_tokens",
    ),
    ProviderGauge(
        "gatewayz_provider_supported_models",
        f"Number of models listed in the provider's metadata {POLL}.",
        "supported_models",
    ),
)


def stats_families(snapshot: Snapshot, *, stats_fresh: bool) -> Iterator[Family]:
    """The /providers/stats counts; none once the stats are stale."""
    if stats_fresh and snapshot.stats is not None:
        for field, value in zip(STAT_FIELDS, snapshot.stats.values, strict=True):
            if value is not None:
                label = "in total" if field == "total" else f"that are {field}"
                yield Family(
                    f"gatewayz_providers_{field}",
                    f"Number of providers {label}, from /providers/stats {POLL}.",
                    "gauge",
                    (),
                    [((), value)],
                )


def status_families(
    snapshot: Snapshot, *, version: str, python_version: str, more: PollRows = NO_MORE
) -> Iterator[Family]:
    """The exporter's own families: poll outcomes (``more`` adds other endpoints'), error counts, build info."""
    status = snapshot.status
    attempted = [e for e in ENDPOINTS if status[e].attempted]
    yield Family(
        "gatewayz_provider_scrape_success",
        "1 if the exporter's latest poll of the API endpoint succeeded, 0 if it failed.",
        "gauge",
        ("endpoint",),
        [*(((e,), 1.0 if status[e].success else 0.0) for e in attempted), *more.success],
    )
    yield Family(
        "gatewayz_provider_scrape_duration_seconds",
        "Duration of the exporter's latest poll of the API endpoint, in seconds.",
        "gauge",
        ("endpoint",),
        [*(((e,), status[e].duration_seconds) for e in attempted), *more.duration],
    )
    yield Family(
        "gatewayz_provider_last_successful_scrape_timestamp_seconds",
        "Unix time of the exporter's latest successful poll of the API endpoint, in seconds.",
        "gauge",
        ("endpoint",),
        [
            *(((e,), t) for e in ENDPOINTS if (t := status[e].last_success_unix) is not None),
            *more.last_success,
        ],
    )
    yield Family(
        "gatewayz_provider_scrape_errors",
        "Failed polls of the API, by endpoint and reason.",
        "counter",
        ("endpoint", "reason"),
        [*(((e, r), float(snapshot.errors[(e, r)])) for e in ENDPOINTS for r in REASONS), *more.errors],
    )
    yield Family(
        "gatewayz_provider_invalid_records",
        "Provider records (and stats objects) with an invalid field or no usable slug, dropped in part or whole.",
        "counter",
        (),
        [((), float(snapshot.invalid_records))],
    )
    yield Family(
        "gatewayz_exporter_build",
        "Exporter build information; always 1.",
        "info",
        ("version", "python_version"),
        [((version, python_version), 1.0)],
    )


def exported_providers(snapshot: Snapshot, *, providers_fresh: bool) -> tuple[Provider, ...] | None:
    """The providers whose families are exported, or None once they are stale."""
    return snapshot.providers if providers_fresh else None


class SnapshotCollector:
    """Reads the store's newest Snapshot: which endpoints are fresh, and whether the exporter is ready."""

    def __init__(
        self,
        store: SnapshotSource,
        *,
        max_staleness: float,
        version: str,
        python_version: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        extra: Callable[[], ExtraView] | None = None,
    ):
        self.store = store
        self.max_staleness = max_staleness
        self.version = version
        self.python_version = python_version or platform.python_version()
        self._monotonic = monotonic
        self._extra = extra  # another source exported beside the snapshot; never part of readiness

    def extra(self) -> ExtraView | None:
        """The extra source's current reading, or None without one."""
        return None if self._extra is None else self._extra()

    def freshness(self, snapshot: Snapshot) -> tuple[bool, bool]:
        """(providers fresh, stats fresh): an endpoint's data is exported until MAX_STALENESS."""
        now = self._monotonic()
        return (
            snapshot.fresh("providers", now, self.max_staleness),
            snapshot.fresh("stats", now, self.max_staleness),
        )

    def ready(self) -> bool:
        """Readiness: a poll of either endpoint succeeded within MAX_STALENESS."""
        return any(self.freshness(self.store.current))

    def status_families(self, snapshot: Snapshot, more: PollRows = NO_MORE) -> Iterator[Family]:
        return status_families(snapshot, version=self.version, python_version=self.python_version, more=more)
