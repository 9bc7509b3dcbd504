"""Decode and validate API payloads into model values.

The rule: a payload of the wrong shape fails the whole endpoint
(``PayloadError``); a bad record drops only itself; a bad field drops only its
series. Absent or ``null`` optional fields are normal for the real backend and
are not counted; wrong types, negatives, NaN and infinities are.

Speed without a second set of rules: ``decode_json`` accepts exactly the
documents ``json.loads`` accepts, but hands a JSON array back as one raw slice
per record (``RawArray``). ``parse_providers`` then decodes each record with
msgspec into a typed struct holding only the fields the metrics use. A record
that does not fit that struct cleanly (a wrong type, a negative, a missing
slug, a bad timestamp, anything unusual) is decoded again with ``json`` and
goes through the plain validator below, so the rules are written once and the
fast path only ever handles records the validator would accept unchanged.
Records whose bytes are unchanged since the previous payload are not parsed
again at all: most polls change a few providers, or none.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .model import CAPABILITIES, HEALTH_CODES, STAT_FIELDS, Provider, ProviderStats

if TYPE_CHECKING:
    import msgspec

MAX_SLUG_LENGTH = 256
MAX_LABEL_LENGTH = 512


class PayloadError(ValueError):
    """The payload is JSON of the wrong shape for its endpoint."""

    reason = "invalid_payload"


class InvalidJson(PayloadError):
    """A record that a JSON decoder rejects inside a body that another accepted (defensive)."""

    reason = "invalid_json"


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

    def __init__(self, record: dict[str, object]):
        self.record = record
        self.problems: list[str] = []

    def number(self, key: str, source: dict[str, object] | None = None) -> float | None:
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
        return number + 0.0  # -0.0 is 0.0: one spelling in the exposition

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


# --- decoding ---------------------------------------------------------------


class RawArray(Sequence["msgspec.Raw"]):
    """A JSON array as one undecoded slice per element; what ``decode_json`` makes of an array."""

    __slots__ = ("_items",)

    def __init__(self, items: list[msgspec.Raw]):
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]  # Sequence's overloads, int and slice
        return self._items[index]

    def __iter__(self) -> Iterator[msgspec.Raw]:
        return iter(self._items)


# Below this size json.loads is as quick and the exporter need not load msgspec
# (the real backend lists a few dozen providers: about 40 KB).
RAW_ARRAY_MIN_BYTES = 64 * 1024


def decode_json(body: bytes | bytearray, *, raw_array_min_bytes: int = RAW_ARRAY_MIN_BYTES) -> object:
    """The JSON document in ``body``, as ``json.loads`` reads it, except that a big array is a ``RawArray``.

    Raises what ``json.loads`` raises (``ValueError``, ``RecursionError``) for
    what it rejects. msgspec finds where each element ends without building
    it; ``json`` still decides anything msgspec declines (NaN literals, a byte
    order mark, UTF-16), anything msgspec lets through unread that ``json``
    may reject (invalid UTF-8, an integer too long for ``int()``, nesting near
    the recursion limit) and anything that is not an array.
    """
    if len(body) < raw_array_min_bytes:
        return json.loads(body)
    from . import records

    try:
        items = _deeper(_STACK_MARGIN, records.split_array, body)
    except (*records.DECODE_ERRORS, RecursionError):
        return json.loads(body)
    # msgspec does not check the UTF-8 of strings it skips; json.loads would reject
    # the whole body for a bad byte (it lets encoded surrogates through).
    if not body.isascii() and not _is_utf8(body):
        return json.loads(body)  # raises, with json's message
    # Nor does it mind an integer too long for int(), which json.loads rejects.
    if _may_hold_a_long_integer(body):
        return json.loads(body)  # raises when it is one; a long run of digits in a string is fine
    return RawArray(items)


# Records are parsed later, deeper in the poller's stack than the body is decoded
# here, and Python's recursion limit bounds how deep a decoder can nest: a body
# nested so deep that only this shallower stack reads it would pass here and fail
# the poll there, where json.loads would have read it whole. Split this many frames
# deeper, such a body is left to json.loads, as a small one is.
_STACK_MARGIN = 100


def _deeper(
    frames: int, split: Callable[[bytes | bytearray], list[msgspec.Raw]], body: bytes | bytearray
) -> list[msgspec.Raw]:
    return split(body) if frames <= 0 else _deeper(frames - 1, split, body)


_UTF8_CHUNK_BYTES = 64 * 1024


def _is_utf8(body: bytes | bytearray) -> bool:
    """Whether ``body`` is UTF-8 as ``json.loads`` reads it (encoded surrogates allowed).

    64 KiB at a time: decoding it whole would hold a str of up to four
    times the body's size (one emoji among CJK names is enough) just to drop it.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
    with memoryview(body) as view:
        try:
            for start in range(0, len(view), _UTF8_CHUNK_BYTES):
                decoder.decode(view[start : start + _UTF8_CHUNK_BYTES])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


_DIGIT_MARKS = bytes(49 if 48 <= byte <= 57 else 48 for byte in range(256))  # "1" for each ASCII digit


def _may_hold_a_long_integer(body: bytes | bytearray) -> bool:
    """Whether ``body`` has a run of more digits than ``int()`` converts (in a number or a string).

    Such a run covers one of every ``length``-th byte, so only the bytes around
    those that are digits are looked at: about a millisecond for a 10 MB body.
    """
    limit = sys.get_int_max_str_digits()
    if not limit:
        return False
    length = limit + 1
    run = b"1" * length
    for index, byte in enumerate(body[length - 1 :: length]):
        if 48 <= byte <= 57:
            at = length - 1 + index * length
            window = body[max(0, at - length + 1) : at + length]
            if window.translate(_DIGIT_MARKS).find(run) >= 0:
                return True
    return False


_NO_PROBLEMS: tuple[str, ...] = ()
_Parsed = tuple[Provider | None, Sequence[str]]


def _parse_raw(raw: msgspec.Raw, clean_provider: Callable[[msgspec.Raw], Provider | None]) -> _Parsed:
    """One raw record: the typed fast path when it is clean, the plain validator otherwise."""
    provider = clean_provider(raw)
    if provider is not None:
        return provider, _NO_PROBLEMS
    try:
        # The body is UTF-8 (decode_json checked it as json.loads reads it), so json.loads would
        # find the same encoding in each record; decoding directly skips its per-call detection.
        record = json.loads(str(raw, "utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        raise InvalidJson("a record json cannot decode") from None
    provider, problems = parse_provider(record)
    return provider, tuple(problems)


class _RecordMemo:
    """Parse results of the latest array's records, keyed by a digest of each record's bytes.

    Parsing is a pure function of those bytes, so a record seen in the
    previous payload is not parsed again. Only the latest payload's records
    are kept, so the memo is as large as one snapshot's providers.
    """

    __slots__ = ("entries", "providers")

    def __init__(self) -> None:
        self.entries: dict[bytes, _Parsed] = {}
        self.providers: tuple[Provider, ...] = ()


_MEMO = _RecordMemo()


def _parsed_records(records: Sequence[object]) -> Iterator[_Parsed]:
    if not isinstance(records, RawArray):
        for record in records:
            provider, problems = parse_provider(record)
            yield provider, problems
        return
    from .records import clean_provider  # msgspec is loaded by now: the body was big

    previous = _MEMO.entries
    entries: dict[bytes, _Parsed] = {}
    blake2b = hashlib.blake2b
    for raw in records:
        key = blake2b(raw, digest_size=16).digest()
        parsed = previous.get(key) or entries.get(key)
        if parsed is None:
            parsed = _parse_raw(raw, clean_provider)
        entries[key] = parsed
        yield parsed
    _MEMO.entries = entries


def parse_providers(payload: object) -> ParsedProviders:
    """The ``/providers`` payload (a JSON array) to validated providers; first duplicate slug wins.

    ``payload`` is what ``decode_json`` returns (or a plain list, as ``json.loads`` returns).
    """
    if not isinstance(payload, (list, RawArray)):
        raise PayloadError(f"expected a JSON array of providers, got {type(payload).__name__}")
    providers: list[Provider] = []
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    invalid = 0
    for record_provider, record_problems in _parsed_records(payload):
        provider, problems = record_provider, record_problems
        if provider is not None and provider.slug in seen:
            provider, problems = None, ["duplicate_slug"]
        if problems:
            invalid += 1
            dropped.update(problems)
        if provider is not None:
            seen.add(provider.slug)
            providers.append(provider)
    result = tuple(providers)
    if isinstance(payload, RawArray):
        # The same providers as last time: hand back the same tuple, so the
        # exposition can tell in one comparison that nothing needs rendering.
        last = _MEMO.providers
        if len(last) == len(result) and all(a is b for a, b in zip(last, result, strict=True)):
            result = last
        _MEMO.providers = result
    return ParsedProviders(result, invalid, dict(dropped))


def parse_stats(payload: object) -> ParsedStats:
    """The ``/providers/stats`` payload to counts; a field that is not a count is dropped."""
    if not isinstance(payload, dict):  # a RawArray, too: an array is the wrong shape
        raise PayloadError(f"expected a JSON object of counts, got {type(payload).__name__}")
    fields = _Fields(payload)
    values = tuple(fields.number(name) for name in STAT_FIELDS)
    if all(value is None for value in values):
        raise PayloadError("no provider count in the stats object")
    return ParsedStats(ProviderStats(values), dict(Counter(fields.problems)))
