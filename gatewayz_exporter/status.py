"""The backend's public status API (``/v1/status/...``): immutable values and their validators.

One validator per payload kind, as in ``parse``: a payload of the wrong shape fails its endpoint;
a bad row drops only itself and is counted; an unknown state is kept as ``unknown`` and counted.
Percentages become ratios; ``null`` means absent, never 0. Big arrays (``RawArray``) are judged
row by row by the same validators.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, TypeVar

from .fields import MAX_LABEL_LENGTH, MAX_SLUG_LENGTH, clean_text, non_negative_number, parse_timestamp
from .model import REASONS, EndpointStatus
from .parse import InvalidJson, PayloadError, RawArray

# Endpoint name -> path; the names are the ``endpoint`` label of the poll metrics.
STATUS_PATHS = MappingProxyType(
    {
        "status": "/v1/status/",
        "status_providers": "/v1/status/providers",
        "status_incidents": "/v1/status/incidents?status=active",
        "status_stats": "/v1/status/stats",
        "status_models": "/v1/status/models",
    }
)
STATUS_ENDPOINTS = tuple(STATUS_PATHS)
# The route's own ``limit`` maxima (FastAPI answers 422 above them).
PAGE_SIZES = MappingProxyType({"status_incidents": 100, "status_models": 1000})

UNKNOWN = "unknown"
OVERALL_STATES = ("operational", "degraded", "major_outage", UNKNOWN)
PROVIDER_STATES = ("operational", "degraded", "major_outage", UNKNOWN)
MODEL_STATES = ("operational", "degraded", "partial_outage", "major_outage", "offline", UNKNOWN)
BREAKER_STATES = ("closed", "half_open", "open", UNKNOWN)
SEVERITIES = ("critical", "high", "medium", "low", UNKNOWN)
TIERS = ("critical", "popular", "standard", "on_demand")  # budget order; any other tier comes last


@dataclass(frozen=True, slots=True)
class Overall:
    """``/v1/status/``: ``None`` counts when the route has no data (``{"status": "unknown", ...}``)."""

    state: str
    models: float | None = None
    healthy_models: float | None = None
    offline_models: float | None = None
    providers: float | None = None
    gateways: float | None = None
    healthy_gateways: float | None = None
    active_incidents: float | None = None


OVERALL_COUNTS = (
    # (Overall attribute, JSON key)
    ("models", "total_models"),
    ("healthy_models", "healthy_models"),
    ("offline_models", "offline_models"),
    ("providers", "total_providers"),
    ("gateways", "total_gateways"),
    ("healthy_gateways", "healthy_gateways"),
    ("active_incidents", "active_incidents"),
)


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """One provider behind one gateway, from ``/v1/status/providers``."""

    provider: str
    gateway: str
    state: str
    uptime_24h: float  # ratio 0-1
    uptime_7d: float
    models: float
    healthy_models: float
    offline_models: float
    response_time_ms: float
    last_checked: float | None  # Unix seconds; None when never checked


@dataclass(frozen=True, slots=True)
class Incident:
    """One active incident from ``/v1/status/incidents?status=active``."""

    id: int
    provider: str
    gateway: str
    severity: str
    started: float  # Unix seconds


@dataclass(frozen=True, slots=True)
class Checks:
    """``/v1/status/stats``: the last 24 h of health checks."""

    total: float | None
    failed: float | None
    success_ratio: float | None  # None when no check ran (the API says null)
    monitoring_active: bool | None


class ModelHealth(NamedTuple):
    """One model behind one gateway, from ``/v1/status/models``.

    A named tuple, not a frozen dataclass: thousands are made on every poll,
    and a tuple is built several times faster.
    """

    provider: str
    gateway: str
    model: str
    tier: str
    state: str
    uptime_24h: float  # ratios 0-1
    uptime_7d: float
    uptime_30d: float
    breaker: str | None  # None when the API sends null
    active_incidents: float


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated payload: its value and how many records had a problem."""

    value: object
    invalid_records: int = 0


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the latest status poll knows; data kept after failures until MAX_STALENESS."""

    generation: int = 0
    data_version: int = 0  # grows only when a data field below changes (what the data lines show)
    overall: Overall | None = None
    providers: tuple[ProviderHealth, ...] | None = None
    incidents: tuple[Incident, ...] | None = None
    checks: Checks | None = None
    models: tuple[ModelHealth, ...] | None = None  # within the budget, in budget order
    models_left_out: int = 0
    status: Mapping[str, EndpointStatus] = field(
        default_factory=lambda: MappingProxyType({e: EndpointStatus() for e in STATUS_ENDPOINTS})
    )
    errors: Mapping[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({(e, r): 0 for e in STATUS_ENDPOINTS for r in REASONS})
    )
    invalid_records: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(STATUS_ENDPOINTS, 0))
    )

    def fresh(self, endpoint: str, now_monotonic: float, max_staleness: float) -> bool:
        """True while the endpoint's last success is recent enough to export its data."""
        ok_at = self.status[endpoint].last_success_monotonic
        return ok_at is not None and now_monotonic - ok_at <= max_staleness


# --- field rules --------------------------------------------------------------


# Ratios of the percentages seen so far: the API rounds to hundredths, so a few thousand at most.
_RATIOS: dict[float, float] = {}
_RATIOS_KEPT = 20_000


class _BadRow(ValueError):
    """A row with an invalid field: dropped and counted."""


def _count(row: Mapping[str, object], key: str) -> float:
    """A finite, non-negative JSON number (the rule of ``fields.non_negative_number``)."""
    number = non_negative_number(row.get(key))
    if number is None:
        raise _BadRow(key)
    return number


def _ratio(row: Mapping[str, object], key: str) -> float:
    """A percentage from 0 to 100, as a ratio from 0 to 1."""
    percent = _count(row, key)
    ratio = _RATIOS.get(percent)
    if ratio is None:
        if percent > 100:
            raise _BadRow(key)
        ratio = round(percent / 100, 10)  # 99.9 % is 0.999, not 0.9990000000000001
        if len(_RATIOS) < _RATIOS_KEPT:
            _RATIOS[percent] = ratio
    return ratio


def _label(row: Mapping[str, object], key: str, *, nullable: bool = False) -> str:
    text = row.get(key)
    if type(text) is not str:
        if text is None and nullable:
            return ""
        raise _BadRow(key)
    if not nullable and not text.strip():
        raise _BadRow(key)
    if text.isascii() and len(text) <= MAX_LABEL_LENGTH:
        return text  # nothing for clean_text to do
    return clean_text(text)


def _time(row: Mapping[str, object], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    seconds = parse_timestamp(value) if isinstance(value, str) else None
    if seconds is None:
        raise _BadRow(key)
    return seconds


def _state(row: Mapping[str, object], key: str, known: Sequence[str]) -> tuple[str, bool]:
    """The state and whether it was recognised; anything else is ``unknown``."""
    value = row.get(key)
    if isinstance(value, str):
        if value in known and value != UNKNOWN:
            return value, True  # already in canonical form (the usual case)
        state = value.strip().lower()
        if state in known and state != UNKNOWN:
            return state, True
    return UNKNOWN, False


# --- rows ---------------------------------------------------------------------


T = TypeVar("T")
Row = Mapping[str, object]
Judged = tuple[object | None, bool]  # a row's value (None: dropped) and whether it was clean


class RowMemo:
    """Judgements of the latest payload's raw rows, keyed by a digest of each row's bytes.

    Judging is a pure function of those bytes, so a row unchanged since the
    previous poll is neither decoded nor validated again. Only the latest
    payload's rows are kept.
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[bytes, Judged] = {}


def _judge(record: object, row: Callable[[Row], tuple[object | None, bool]]) -> Judged:
    if not isinstance(record, dict):
        return None, False
    try:
        return row(record)
    except _BadRow:
        return None, False


def _decode(raw: bytes, fast: Callable[[bytes], object], declined: tuple[type[Exception], ...]) -> object:
    """One row of a ``RawArray`` as ``json.loads`` reads it.

    msgspec's decoder (``fast``; loaded: the body was big) is quicker and
    builds the same objects; ``decode_json`` left whatever it would decline (a
    lone surrogate escape, a number beyond float range) to ``json`` already,
    which is read again here.
    """
    try:
        return fast(raw)
    except declined:
        pass
    try:
        return json.loads(str(raw, "utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        raise InvalidJson("a record json cannot decode") from None


def _judged(
    pages: Sequence[object], what: str, row: Callable[[Row], tuple[object | None, bool]], memo: RowMemo | None
) -> Iterator[Judged]:
    """Each row of each page (a JSON array) judged; a ``RawArray`` page's rows decoded one by one."""
    previous = memo.entries if memo is not None else {}
    entries: dict[bytes, Judged] = {}
    blake2b = hashlib.blake2b
    for page in pages:
        if isinstance(page, list):
            for record in page:
                yield _judge(record, row)
        elif isinstance(page, RawArray):
            import msgspec

            fast, declined = msgspec.json.decode, (msgspec.DecodeError, RecursionError)
            for raw in page:
                if memo is None:
                    yield _judge(_decode(raw, fast, declined), row)
                    continue
                digest = blake2b(raw, digest_size=16).digest()
                judged = previous.get(digest) or entries.get(digest)
                if judged is None:
                    judged = _judge(_decode(raw, fast, declined), row)
                entries[digest] = judged
                yield judged
        else:
            raise PayloadError(f"expected a JSON array of {what}, got {type(page).__name__}")
    if memo is not None:
        memo.entries = entries


def _parse_rows(
    pages: Sequence[object],
    what: str,
    row: Callable[[Row], tuple[T | None, bool]],
    key: Callable[[T], object],
    memo: RowMemo | None = None,
) -> tuple[list[T], int]:
    """Every valid row in API order, first of each key kept; and the count of rows with a problem."""
    values: list[T] = []
    seen: set[object] = set()
    invalid = 0
    for judged, clean in _judged(pages, what, row, memo):
        value: T | None = judged  # type: ignore[assignment]  # what ``row`` made
        repeated = False
        if value is not None:
            identity = key(value)
            repeated = identity in seen
            if not repeated:
                seen.add(identity)
                values.append(value)
        if repeated or not clean:
            invalid += 1
    return values, invalid


def _provider_row(row: Row) -> tuple[ProviderHealth | None, bool]:
    state, known = _state(row, "status", PROVIDER_STATES)
    health = ProviderHealth(
        provider=_label(row, "name")[:MAX_SLUG_LENGTH],
        gateway=_label(row, "gateway", nullable=True),
        state=state,
        uptime_24h=_ratio(row, "uptime_24h"),
        uptime_7d=_ratio(row, "uptime_7d"),
        models=_count(row, "total_models"),
        healthy_models=_count(row, "healthy_models"),
        offline_models=_count(row, "offline_models"),
        response_time_ms=_count(row, "avg_response_time_ms"),
        last_checked=_time(row, "last_checked"),
    )
    return health, known


def _incident_row(row: Row) -> tuple[Incident | None, bool]:
    if row.get("status") != "active":  # asked for active ones only; a resolved one is not counted
        return None, True
    number = row.get("id")
    if isinstance(number, bool) or not isinstance(number, int):
        raise _BadRow("id")
    severity, known = _state(row, "severity", SEVERITIES)
    started = _time(row, "started_at")
    if started is None:
        raise _BadRow("started_at")
    provider = _label(row, "provider")[:MAX_SLUG_LENGTH]
    return Incident(number, provider, _label(row, "gateway", nullable=True), severity, started), known


def _model_row(row: Row) -> tuple[ModelHealth | None, bool]:
    state, known = _state(row, "status", MODEL_STATES)
    breaker: str | None = None
    if row.get("circuit_breaker_state") is not None:
        breaker, breaker_known = _state(row, "circuit_breaker_state", BREAKER_STATES)
        known = known and breaker_known
    tier = row.get("tier")
    health = ModelHealth(
        provider=_label(row, "provider")[:MAX_SLUG_LENGTH],
        gateway=_label(row, "gateway", nullable=True),
        model=_label(row, "model_id"),
        tier=tier if isinstance(tier, str) and tier in TIERS else "",
        state=state,
        uptime_24h=_ratio(row, "uptime_24h"),
        uptime_7d=_ratio(row, "uptime_7d"),
        uptime_30d=_ratio(row, "uptime_30d"),
        breaker=breaker,
        active_incidents=_count(row, "active_incidents"),
    )
    return health, known


# --- one validator per payload kind -------------------------------------------


def parse_overall(payload: object) -> Parsed:
    """``/v1/status/``: the overall state and its counts (none when the route has no data)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
        raise PayloadError("expected a JSON object with a status")
    state, known = _state(payload, "status", OVERALL_STATES)
    known = known or payload.get("status") == UNKNOWN
    counts: dict[str, float | None] = {}
    for attribute, key in OVERALL_COUNTS:
        try:
            counts[attribute] = _count(payload, key) if key in payload else None
        except _BadRow:
            counts[attribute], known = None, False
    return Parsed(Overall(state, **counts), 0 if known else 1)


def parse_status_providers(payload: object) -> Parsed:
    """``/v1/status/providers``: one row per provider and gateway."""
    rows, invalid = _parse_rows((payload,), "providers", _provider_row, lambda p: (p.provider, p.gateway))
    return Parsed(tuple(rows), invalid)


def parse_incidents(pages: Sequence[object]) -> Parsed:
    """The pages of ``/v1/status/incidents?status=active``: the active incidents."""
    rows, invalid = _parse_rows(pages, "incidents", _incident_row, lambda i: i.id)
    return Parsed(tuple(rows), invalid)


def parse_checks(payload: object) -> Parsed:
    """``/v1/status/stats``: the health checks of the last 24 h."""
    checks = payload.get("checks_24h") if isinstance(payload, dict) else None
    if not isinstance(checks, dict):
        raise PayloadError("expected a JSON object with checks_24h")
    bad = 0
    values: list[float | None] = []
    for key in ("total", "failed", "success_rate"):
        try:
            if checks.get(key) is None:
                values.append(None)
            else:
                values.append(_ratio(checks, key) if key == "success_rate" else _count(checks, key))
        except _BadRow:
            values.append(None)
            bad = 1
    active = checks.get("monitoring_active")
    if active is not None and not isinstance(active, bool):
        active, bad = None, 1
    return Parsed(Checks(values[0], values[1], values[2], active), bad)


def parse_models(pages: Sequence[object], memo: RowMemo | None = None) -> Parsed:
    """The pages of ``/v1/status/models``: one row per model and gateway, in the API's order.

    The API orders by use, which can shift between pages: a row seen on an
    earlier page wins and the repeat is counted.
    """
    rows, invalid = _parse_rows(pages, "models", _model_row, lambda m: (m.provider, m.gateway, m.model), memo)
    return Parsed(tuple(rows), invalid)


# Each endpoint's validator over the payloads of its pages (one page unless paged).
PARSERS: Mapping[str, Callable[[Sequence[object]], Parsed]] = MappingProxyType(
    {
        "status": lambda pages: parse_overall(pages[0]),
        "status_providers": lambda pages: parse_status_providers(pages[0]),
        "status_incidents": parse_incidents,
        "status_stats": lambda pages: parse_checks(pages[0]),
        "status_models": parse_models,
    }
)


def within_budget(models: Sequence[ModelHealth], budget: int) -> tuple[tuple[ModelHealth, ...], int]:
    """The models to export (by tier, then in the API's order) and how many the budget left out.

    ``budget`` 0 exports none.
    """
    if budget <= 0:
        return (), len(models)
    rank = {tier: index for index, tier in enumerate(TIERS)}
    chosen = sorted(models, key=lambda m: rank.get(m.tier, len(TIERS)))[:budget]  # sorted() is stable
    return tuple(chosen), len(models) - len(chosen)
