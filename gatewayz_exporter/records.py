"""Typed decoding of provider records with msgspec: the fast path of ``parse``.

Loaded only when a body is big enough for it to matter, so an exporter
watching a few dozen providers never loads msgspec at all.
"""

from __future__ import annotations

import msgspec

from .model import HEALTH_CODES, Provider
from .parse import MAX_LABEL_LENGTH, MAX_SLUG_LENGTH, parse_timestamp

_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def split_array(body: bytes | bytearray) -> list[msgspec.Raw]:
    """A JSON array's elements as raw slices of ``body``; raises ``DECODE_ERRORS`` for anything else.

    msgspec checks the JSON syntax of the whole body (not the UTF-8 of
    strings it skips) without building the elements.
    """
    return _RAW_ARRAY.decode(body)


class _Metadata(msgspec.Struct):
    rate_limit: float | None = None
    max_tokens: float | None = None
    supported_models: list[msgspec.Raw] | None = None


class _Record(msgspec.Struct):
    """The fields the metrics use; msgspec skips every other field without building it."""

    slug: str
    name: str | None = None
    base_url: str | None = None
    site_url: str | None = None
    status_page_url: str | None = None
    is_active: bool | None = None
    health_status: str | None = None
    average_response_time_ms: float | None = None
    supports_streaming: bool | None = None
    supports_function_calling: bool | None = None
    supports_vision: bool | None = None
    supports_image_generation: bool | None = None
    last_health_check_at: str | None = None
    metadata: _Metadata | None = None


_RECORD = msgspec.json.Decoder(_Record)


def _label(value: str | None) -> str:
    # A str decoded by msgspec is valid UTF-8 (it rejects lone surrogates), so only the cap applies.
    return "" if value is None else value[:MAX_LABEL_LENGTH]


def _clean_provider(record: _Record) -> Provider | None:
    """The Provider for a typed record the validator would accept without a problem, else None."""
    slug = record.slug
    if not slug.strip() or len(slug) > MAX_SLUG_LENGTH:
        return None
    response = record.average_response_time_ms
    if response is not None:
        if response < 0:
            return None
        response += 0.0
    rate_limit = max_tokens = None
    models = None
    metadata = record.metadata
    if metadata is not None:
        rate_limit, max_tokens = metadata.rate_limit, metadata.max_tokens
        if rate_limit is not None:
            if rate_limit < 0:
                return None
            rate_limit += 0.0
        if max_tokens is not None:
            if max_tokens < 0:
                return None
            max_tokens += 0.0
        if metadata.supported_models is not None:
            models = len(metadata.supported_models)
    checked = None
    if record.last_health_check_at is not None:
        checked = parse_timestamp(record.last_health_check_at)
        if checked is None:
            return None
    health = record.health_status
    return Provider(
        slug=slug,
        name=_label(record.name),
        base_url=_label(record.base_url),
        site_url=_label(record.site_url),
        status_page_url=_label(record.status_page_url),
        is_active=record.is_active,
        health_status=0 if health is None else HEALTH_CODES.get(health.strip().lower(), 0),
        response_time_ms=response,
        supports=(
            record.supports_streaming,
            record.supports_function_calling,
            record.supports_vision,
            record.supports_image_generation,
        ),
        last_health_check_seconds=checked,
        rate_limit=rate_limit,
        max_tokens=max_tokens,
        supported_models=models,
    )


def clean_provider(raw: msgspec.Raw) -> Provider | None:
    """The Provider for a record the validator would accept unchanged, or None: then the validator decides."""
    try:
        return _clean_provider(_RECORD.decode(raw))
    except (ValueError, RecursionError):  # msgspec's DecodeError/ValidationError, UnicodeDecodeError
        return None
