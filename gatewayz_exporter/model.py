"""Immutable values that flow from the parser to the collector.

A poll produces one ``Snapshot``; it is swapped in whole, so a scrape reads
either the previous poll or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ENDPOINTS = ("providers", "stats")

# Why a poll of one endpoint failed. A fixed set so the error counter's labels
# stay bounded; every (endpoint, reason) pair is exported from the start at 0.
REASONS = (
    "timeout",  # connect, first byte or whole request over REQUEST_TIMEOUT
    "connection",  # refused, reset, DNS, TLS
    "unauthorized",  # 401 or 403: the admin key is wrong or expired
    "rate_limited",  # 429
    "http_error",  # any other non-2xx status
    "redirect",  # a redirect to another host or too many redirects
    "too_large",  # body over MAX_RESPONSE_BYTES
    "truncated",  # body shorter than announced, connection dropped mid-body
    "invalid_json",  # not JSON: HTML error page, garbage, truncated document
    "invalid_payload",  # JSON of the wrong shape
    "inconsistent",  # 200 with empty data that the other endpoint contradicts
)

HEALTH_CODES = MappingProxyType({"unknown": 0, "healthy": 1, "degraded": 2, "down": 3})
STAT_FIELDS = ("total", "active", "inactive", "healthy", "degraded", "down", "unknown")
CAPABILITIES = ("streaming", "function_calling", "vision", "image_generation")


@dataclass(frozen=True, slots=True)
class Provider:
    """One validated provider. ``None`` means the field was absent or invalid: no series."""

    slug: str
    name: str = ""
    base_url: str = ""
    site_url: str = ""
    status_page_url: str = ""
    is_active: bool | None = None
    health_status: int = 0
    response_time_ms: float | None = None
    supports: tuple[bool | None, ...] = (None, None, None, None)  # in CAPABILITIES order
    last_health_check_seconds: float | None = None
    rate_limit: float | None = None
    max_tokens: float | None = None
    supported_models: int | None = None
    unrecognised_health: str = ""  # a health_status text outside HEALTH_CODES (health_status is then 0)


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """The aggregate counts, in STAT_FIELDS order; ``None`` for an invalid field."""

    values: tuple[float | None, ...]

    def get(self, name: str) -> float | None:
        return self.values[STAT_FIELDS.index(name)]


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """What the exporter knows about one endpoint after its latest attempt."""

    attempted: bool = False
    success: bool = False
    duration_seconds: float = 0.0
    last_success_unix: float | None = None  # wall clock, for the timestamp metric
    last_success_monotonic: float | None = None  # monotonic, for staleness
    reason: str | None = None  # from REASONS when the latest attempt failed
    status_code: int | None = None  # the latest attempt's HTTP status, when one arrived
    attempted_monotonic: float | None = None  # when the latest attempt ended

    def after(
        self,
        reason: str | None,
        duration_seconds: float,
        status_code: int | None,
        now_wall: float,
        now_monotonic: float,
    ) -> EndpointStatus:
        """The status after an attempt that ended now: a success (``reason`` None) or a failure,
        which keeps the last success."""
        succeeded = reason is None
        return EndpointStatus(
            attempted=True,
            success=succeeded,
            duration_seconds=duration_seconds,
            last_success_unix=now_wall if succeeded else self.last_success_unix,
            last_success_monotonic=now_monotonic if succeeded else self.last_success_monotonic,
            reason=reason,
            status_code=status_code,
            attempted_monotonic=now_monotonic,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one poll knows. Data is kept after failures until MAX_STALENESS."""

    generation: int = 0
    providers: tuple[Provider, ...] | None = None
    stats: ProviderStats | None = None
    status: Mapping[str, EndpointStatus] = field(
        default_factory=lambda: MappingProxyType({e: EndpointStatus() for e in ENDPOINTS})
    )
    errors: Mapping[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({(e, r): 0 for e in ENDPOINTS for r in REASONS})
    )
    invalid_records: int = 0

    def fresh(self, endpoint: str, now_monotonic: float, max_staleness: float) -> bool:
        """True while the endpoint's last success is recent enough to export its data."""
        ok_at = self.status[endpoint].last_success_monotonic
        return ok_at is not None and now_monotonic - ok_at <= max_staleness
