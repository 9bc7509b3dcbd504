"""Validate API payloads into model values.

The rule: a payload of the wrong shape fails the whole endpoint
(``PayloadError``); a bad record drops only itself; a bad field drops only its
series. Absent or ``null`` optional fields are normal for the real backend and
are not counted; wrong types, negatives, NaN and infinities are.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from .model import CAPABILITIES, HEALTH_CODES, STAT_FIELDS, Provider, ProviderStats

MAX_SLUG_LENGTH = 256
MAX_LABEL_LENGTH = 512


class PayloadError(ValueError):
    """The payload is JSON of the wrong shape for its endpoint."""

    reason = "invalid_payload"


@dataclass(frozen=True, slots=True)
class ParsedProviders:
    providers: tuple[Provider, ...]
    invalid_records: int  # records with any problem (dropped, duplicate, or a field dropped)
    dropped: dict[str, int]  # what was dropped, by kind, for one log line per poll


@dataclass(frozen=True, slots=True)
class ParsedStats:
    stats: ProviderStats
    dropped: dict[str, int]

    @property
    def invalid_records(self) -> int:
        """The stats object is one record: 1 when any of its fields was dropped."""
        return 1 if self.dropped else 0


def clean_text(value: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """A label-safe string: lone surrogates replaced (they cannot be encoded), length capped."""
    if len(value) > limit:
        value = value[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class _Fields:
    """Reads one record's fields, noting each invalid one."""

    __slots__ = ("problems", "record")

    def __init__(self, record: dict):
        self.record = record
        self.problems: list[str] = []

    def number(self, key: str, source: dict | None = None) -> float | None:
        value = (self.record if source is None else source).get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problems.append(key)
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            self.problems.append(key)
            return None
        if not math.isfinite(number) or number < 0:
            self.problems.append(key)
            return None
        return number

    def flag(self, key: str) -> bool | None:
        value = self.record.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.problems.append(key)
            return None
        return value

    def text(self, key: str) -> str:
        value = self.record.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problems.append(key)
            return ""
        return clean_text(value)

    def health(self) -> int:
        value = self.record.get("health_status")
        if isinstance(value, str):
            return HEALTH_CODES.get(value.strip().lower(), 0)
        if value is not None:
            self.problems.append("health_status")
        return 0

    def timestamp(self, key: str) -> float | None:
        value = self.record.get(key)
        if value is None:
            return None
        seconds = parse_timestamp(value) if isinstance(value, str) else None
        if seconds is None:
            self.problems.append(key)
        return seconds


def parse_timestamp(text: str) -> float | None:
    """ISO 8601 (``Z`` or ``+00:00``; naive means UTC) to Unix seconds, or None."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def parse_provider(record: object) -> tuple[Provider | None, list[str]]:
    """One record to a Provider, or None when it has no usable slug or is not an object."""
    if not isinstance(record, dict):
        return None, ["record_not_object"]
    slug = record.get("slug")
    if not isinstance(slug, str) or not slug.strip() or len(slug) > MAX_SLUG_LENGTH:
        return None, ["record_without_slug"]
    fields = _Fields(record)
    metadata = record.get("metadata")
    rate_limit = max_tokens = models = None
    if isinstance(metadata, dict):
        rate_limit = fields.number("rate_limit", metadata)
        max_tokens = fields.number("max_tokens", metadata)
        listed = metadata.get("supported_models")
        if isinstance(listed, list):
            models = len(listed)
        elif listed is not None:
            fields.problems.append("supported_models")
    elif metadata is not None:
        fields.problems.append("metadata")
    provider = Provider(
        slug=clean_text(slug, MAX_SLUG_LENGTH),
        name=fields.text("name"),
        base_url=fields.text("base_url"),
        site_url=fields.text("site_url"),
        status_page_url=fields.text("status_page_url"),
        is_active=fields.flag("is_active"),
        health_status=fields.health(),
        response_time_ms=fields.number("average_response_time_ms"),
        supports=tuple(fields.flag(f"supports_{name}") for name in CAPABILITIES),
        last_health_check_seconds=fields.timestamp("last_health_check_at"),
        rate_limit=rate_limit,
        max_tokens=max_tokens,
        supported_models=models,
    )
    return provider, fields.problems


def parse_providers(payload: object) -> ParsedProviders:
    """The ``/providers`` payload (a JSON array) to validated providers; first duplicate slug wins."""
    if not isinstance(payload, list):
        raise PayloadError(f"expected a JSON array of providers, got {type(payload).__name__}")
    providers: list[Provider] = []
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    invalid = 0
    for record in payload:
        provider, problems = parse_provider(record)
        if provider is not None and provider.slug in seen:
            provider, problems = None, ["duplicate_slug"]
        if problems:
            invalid += 1
            dropped.update(problems)
        if provider is not None:
            seen.add(provider.slug)
            providers.append(provider)
    return ParsedProviders(tuple(providers), invalid, dict(dropped))


def parse_stats(payload: object) -> ParsedStats:
    """The ``/providers/stats`` payload to counts; a field that is not a count is dropped."""
    if not isinstance(payload, dict):
        raise PayloadError(f"expected a JSON object of counts, got {type(payload).__name__}")
    fields = _Fields(payload)
    values = tuple(fields.number(name) for name in STAT_FIELDS)
    if all(value is None for value in values):
        raise PayloadError("no provider count in the stats object")
    return ParsedStats(ProviderStats(values), dict(Counter(fields.problems)))
