"""The validation rules for provider records and stats objects, each written once.

A record reaches ``judge_provider`` either as the dict ``json.loads`` made or
as the typed struct the msgspec decoder made (``records``); both answer
``get(key)`` with the field's value, so the same functions judge both. Absent
or ``null`` fields are normal and not counted; wrong types, negatives, NaN,
infinities and bad timestamps drop their series and are counted as problems.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Protocol

from .model import CAPABILITIES, HEALTH_CODES, Provider

MAX_SLUG_LENGTH = 256
MAX_LABEL_LENGTH = 512
MAX_HEALTH_TEXT_LENGTH = 64  # an unrecognised health status, as logged
SUPPORT_KEYS = tuple(f"supports_{name}" for name in CAPABILITIES)


class FieldSource(Protocol):
    """A decoded JSON object: a dict, or a ``TypedObject``."""

    def get(self, key: str, /) -> object: ...


class TypedObject:
    """Base of the fast decoder's structs: a JSON object that answers ``get(key)`` as a dict does."""

    __slots__ = ()

    def get(self, key: str, /) -> object:
        return getattr(self, key, None)


class ElementCount(int):
    """A JSON array's length, counted by the fast decoder without building its elements."""


class NotBuilt:
    """A JSON array or object the fast decoder left unbuilt where a rule expects a scalar.

    No rule accepts it, so it is judged as the wrong type, as the list or
    dict ``json.loads`` would have built is.
    """

    __slots__ = ()


NOT_BUILT = NotBuilt()


def clean_text(value: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """A label-safe string: lone surrogates replaced (they cannot be encoded), length capped."""
    if len(value) > limit:
        value = value[:limit]
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def usable_slug(value: object) -> str | None:
    """The record's slug as a label value, or None when the record has no usable one."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SLUG_LENGTH:
        return None
    return clean_text(value, MAX_SLUG_LENGTH)


def non_negative_number(value: object) -> float | None:
    """A finite JSON number >= 0 as a float, or None: a bool is not a number, nor an integer
    beyond float range; -0.0 is 0.0, one spelling in the exposition."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not 0 <= number < math.inf:  # NaN fails too
        return None
    return number + 0.0


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


def health_text(value: str) -> str:
    """An unrecognised health status as it may be logged: capped, printable, encodable."""
    capped = clean_text(value.strip(), MAX_HEALTH_TEXT_LENGTH)
    return "".join(c if c.isprintable() else "?" for c in capped)


class FieldJudge:
    """Reads one object's fields by the rules, noting each problem by field name."""

    __slots__ = ("problems", "quiet", "source")

    def __init__(self, source: FieldSource):
        self.source = source
        self.problems: list[str] = []
        self.quiet: list[str] = []

    def number(
        self, key: str, source: FieldSource | None = None, *, text_is_quiet: bool = False
    ) -> float | None:
        """A finite number >= 0; ``text_is_quiet``: a string is left out without counting it."""
        value = (self.source if source is None else source).get(key)
        if value is None:
            return None
        number = non_negative_number(value)
        if number is None:
            (self.quiet if text_is_quiet and isinstance(value, str) else self.problems).append(key)
        return number

    def flag(self, key: str) -> bool | None:
        value = self.source.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.problems.append(key)
            return None
        return value

    def text(self, key: str) -> str:
        value = self.source.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problems.append(key)
            return ""
        return clean_text(value)

    def health(self) -> tuple[int, str]:
        """The health code, and the status text when it is one the exporter does not know."""
        value = self.source.get("health_status")
        if value is None:
            return 0, ""
        if not isinstance(value, str):
            self.problems.append("health_status")
            return 0, ""
        code = HEALTH_CODES.get(value.strip().lower())
        if code is not None:
            return code, ""
        if not value.strip():
            return 0, ""
        self.problems.append("unrecognised_health_status")
        return 0, health_text(value)

    def timestamp(self, key: str) -> float | None:
        value = self.source.get(key)
        if value is None:
            return None
        seconds = parse_timestamp(value) if isinstance(value, str) else None
        if seconds is None:
            self.problems.append(key)
        return seconds

    def count(self, key: str, source: FieldSource) -> int | None:
        """The number of elements of a JSON array."""
        value = source.get(key)
        if value is None:
            return None
        if isinstance(value, (list, ElementCount)):
            return len(value) if isinstance(value, list) else int(value)
        self.problems.append(key)
        return None


def judge_provider(record: object) -> tuple[Provider | None, FieldJudge]:
    """One record to a Provider (None when it is not an object or has no usable slug), and the judge's notes."""
    if not isinstance(record, (dict, TypedObject)):
        fields = FieldJudge({})
        fields.problems.append("record_not_object")
        return None, fields
    fields = FieldJudge(record)
    slug = usable_slug(record.get("slug"))
    if slug is None:
        fields.problems.append("record_without_slug")
        return None, fields
    metadata = record.get("metadata")
    rate_limit = max_tokens = models = None
    if isinstance(metadata, (dict, TypedObject)):
        rate_limit = fields.number("rate_limit", metadata, text_is_quiet=True)
        max_tokens = fields.number("max_tokens", metadata, text_is_quiet=True)
        models = fields.count("supported_models", metadata)
    elif metadata is not None:
        fields.problems.append("metadata")
    health, unrecognised = fields.health()
    provider = Provider(
        slug=slug,
        name=fields.text("name"),
        base_url=fields.text("base_url"),
        site_url=fields.text("site_url"),
        status_page_url=fields.text("status_page_url"),
        is_active=fields.flag("is_active"),
        health_status=health,
        response_time_ms=fields.number("average_response_time_ms"),
        supports=tuple([fields.flag(key) for key in SUPPORT_KEYS]),
        last_health_check_seconds=fields.timestamp("last_health_check_at"),
        rate_limit=rate_limit,
        max_tokens=max_tokens,
        supported_models=models,
        unrecognised_health=unrecognised,
    )
    return provider, fields
