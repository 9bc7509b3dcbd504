"""Decode API payloads and validate them into model values.

A payload of the wrong shape fails the whole endpoint (``PayloadError``); a bad record drops only
itself; a bad field drops only its series. The rules live in ``fields``. Small bodies are read by
``json``, big arrays split per record by msgspec (``records``); a ``RecordMemo`` owned by the
poller skips records unchanged since the previous payload.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .fields import FieldJudge, judge_provider
from .model import STAT_FIELDS, Provider, ProviderStats

if TYPE_CHECKING:
    import msgspec

# More records than this in one payload refuse it (``too_large``): each record
# costs memory however few bytes it takes in the body.
MAX_PROVIDER_RECORDS = 100_000
# Slugs named in the poll's log line about dropped data, at most.
MAX_LOGGED_SLUGS = 10


class PayloadError(ValueError):
    """The payload is JSON of the wrong shape for its endpoint."""

    reason = "invalid_payload"


class InvalidJson(PayloadError):
    """A record that a JSON decoder rejects inside a body that another accepted (defensive)."""

    reason = "invalid_json"


class TooManyRecords(PayloadError):
    """More provider records than ``MAX_PROVIDER_RECORDS``."""

    reason = "too_large"


class TooDense(PayloadError):
    """A body whose decoded values would cost far more memory than its bytes."""

    reason = "too_large"


# Some JSON is far bigger decoded than written ("0,", "{},"); bodies packed with such values
# are refused before anything is built, so a poll's memory stays proportional to its body.
_BYTES_PER_BRACKET = 16  # denser than this: refused (too_large), whatever would decode it
_BYTES_PER_COMMA = 6  # denser than this: count the records before splitting the array
_DENSITY_MIN_BYTES = 64 * 1024  # smaller bodies cost little however they are built
_LEADING_WHITESPACE = re.compile(rb"[ \t\r\n]*")


class ParsedProviders(NamedTuple):
    providers: tuple[Provider, ...]
    invalid_records: int  # records with any problem (dropped, duplicate, or a field dropped)
    dropped: dict[str, int]  # what was dropped, by kind, for one log line per poll
    slugs: tuple[str, ...] = ()  # some of the slugs with a problem, for that log line
    quiet: dict[str, int] | None = None  # fields left out without counting (logged at DEBUG)


class ParsedStats(NamedTuple):
    stats: ProviderStats
    dropped: dict[str, int]

    @property
    def invalid_records(self) -> int:
        """The stats object is one record: 1 when any of its fields was dropped."""
        return 1 if self.dropped else 0


class JudgedRecord(NamedTuple):
    provider: Provider | None
    problems: tuple[str, ...]
    quiet: tuple[str, ...]


def _judged(judgement: tuple[Provider | None, FieldJudge]) -> JudgedRecord:
    provider, fields = judgement
    return JudgedRecord(provider, tuple(fields.problems), tuple(fields.quiet))


def parse_provider(record: object) -> JudgedRecord:
    """One record as ``json.loads`` made it; no Provider when it has no usable slug or is not an object."""
    return _judged(judge_provider(record))


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


# Below this size json.loads is as quick and the exporter need not load msgspec.
RAW_ARRAY_MIN_BYTES = 64 * 1024


def decode_json(body: bytes | bytearray, *, raw_array_min_bytes: int = RAW_ARRAY_MIN_BYTES) -> object:
    """The JSON document in ``body``, as ``json.loads`` reads it, except that a big array is a ``RawArray``.

    Raises what ``json.loads`` raises (``ValueError``, ``RecursionError``) for what it rejects:
    msgspec only finds where each element ends, and ``json`` decides whatever msgspec declines
    or would let through unread.
    """
    if len(body) < raw_array_min_bytes:
        return _loads(body)
    from . import records

    _refuse_too_many_records(body, records.count_elements)
    try:
        items = _deeper(_STACK_MARGIN, records.split_array, body)
    except (*records.DECODE_ERRORS, RecursionError):
        return _loads(body)
    # msgspec does not check the UTF-8 of strings it skips; json.loads would reject
    # the whole body for a bad byte (it lets encoded surrogates through).
    if not body.isascii() and not _is_utf8(body):
        return _loads(body)  # raises, with json's message
    # Nor does it mind an integer too long for int(), which json.loads rejects.
    if _may_hold_a_long_integer(body):
        return _loads(body)  # raises when it is one; a long run of digits in a string is fine
    return RawArray(items)


def _loads(text: bytes | bytearray | str) -> object:
    """``json.loads``, refusing (``TooDense``) a big text packed with objects and arrays."""
    _refuse_dense(text)
    return json.loads(text)


def _refuse_dense(text: bytes | bytearray | str) -> None:
    """Raise ``TooDense`` for a big text with more brackets than one per ``_BYTES_PER_BRACKET`` bytes.

    Brackets in strings count too: an upper bound, found at the speed of memchr.
    """
    if len(text) < _DENSITY_MIN_BYTES:
        return
    if isinstance(text, str):
        brackets = text.count("{") + text.count("[")
    else:
        brackets = text.count(b"{") + text.count(b"[")
    if brackets * _BYTES_PER_BRACKET > len(text):
        raise TooDense(f"{brackets} brackets in {len(text)} bytes, too many to build")


def _refuse_too_many_records(body: bytes | bytearray, count: Callable[[memoryview], int | None]) -> None:
    """Raise ``TooManyRecords`` before a body packed with more than the limit is split into slices."""
    if len(body) < _DENSITY_MIN_BYTES or body.count(b",") * _BYTES_PER_COMMA <= len(body):
        return  # at most one slice per 6 bytes: splitting costs a few times the body at most
    _refuse_dense(body)  # counting would be slow among many brackets; json could not build them either
    start = _LEADING_WHITESPACE.match(body).end()  # type: ignore[union-attr]  # matches the empty string
    with memoryview(body) as view:
        records = count(view[start:])
    if records is not None and records > MAX_PROVIDER_RECORDS:
        raise TooManyRecords(f"{records} provider records, more than {MAX_PROVIDER_RECORDS}")


# Records are decoded deeper in the stack than the body is split here; a body nested close
# to the recursion limit within this margin is left to json.loads whole, as a small one is.
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
    those that are digits are looked at.
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


def _parse_raw(
    raw: msgspec.Raw, judge_raw: Callable[[msgspec.Raw], tuple[Provider | None, FieldJudge] | None]
) -> JudgedRecord:
    """One raw record, decoded by ``records`` (``json`` only for what msgspec declines)."""
    judgement = judge_raw(raw)
    if judgement is not None:
        return _judged(judgement)
    try:
        # The body is UTF-8 (decode_json checked it as json.loads reads it), so json.loads would
        # find the same encoding in each record; decoding directly skips its per-call detection.
        record = _loads(str(raw, "utf-8", "surrogatepass"))
    except PayloadError:
        raise
    except (ValueError, RecursionError):
        raise InvalidJson("a record json cannot decode") from None
    return parse_provider(record)


class RecordMemo:
    """The latest big array's judged records, keyed by a digest of each record's bytes.

    Judging is a pure function of those bytes, so a record seen in the
    previous payload is not judged again. Only the latest payload's records
    are kept, so the memo is as large as one snapshot's providers. One memo
    per poller: results never depend on another poller's history.
    """

    __slots__ = ("entries", "providers")

    def __init__(self) -> None:
        self.entries: dict[bytes, JudgedRecord] = {}
        self.providers: tuple[Provider, ...] = ()


def _judged_records(records: Sequence[object], memo: RecordMemo | None) -> Iterator[JudgedRecord]:
    if not isinstance(records, RawArray):
        for record in records:
            yield parse_provider(record)
        return
    from .records import judge_raw  # msgspec is loaded by now: the body was big

    previous = memo.entries if memo is not None else {}
    entries: dict[bytes, JudgedRecord] = {}
    blake2b = hashlib.blake2b
    for raw in records:
        key = blake2b(raw, digest_size=16).digest()
        judged = previous.get(key) or entries.get(key)
        if judged is None:
            judged = _parse_raw(raw, judge_raw)
        entries[key] = judged
        yield judged
    if memo is not None:
        memo.entries = entries


def parse_providers(payload: object, memo: RecordMemo | None = None) -> ParsedProviders:
    """The ``/providers`` payload (a JSON array) to validated providers; first duplicate slug wins.

    ``payload`` is what ``decode_json`` returns (or a plain list, as ``json.loads``
    returns). With a ``memo``, records unchanged since its previous payload are
    not judged again, and an unchanged result is the very same tuple.
    """
    if not isinstance(payload, (list, RawArray)):
        raise PayloadError(f"expected a JSON array of providers, got {type(payload).__name__}")
    if len(payload) > MAX_PROVIDER_RECORDS:
        raise TooManyRecords(f"{len(payload)} provider records, more than {MAX_PROVIDER_RECORDS}")
    providers: list[Provider] = []
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    quiet: Counter[str] = Counter()
    slugs: list[str] = []
    invalid = 0
    for judged in _judged_records(payload, memo):
        provider, problems = judged.provider, judged.problems
        duplicate = provider is not None and provider.slug in seen
        if duplicate:
            problems = ("duplicate_slug",)
        if problems:
            invalid += 1
            dropped.update(problems)
            if provider is not None and len(slugs) < MAX_LOGGED_SLUGS:
                slugs.append(provider.slug)
        if provider is None or duplicate:
            continue
        if judged.quiet:
            quiet.update(judged.quiet)
        seen.add(provider.slug)
        providers.append(provider)
    result = tuple(providers)
    if memo is not None and isinstance(payload, RawArray):
        # The same providers as last time: hand back the same tuple, so the
        # exposition can tell in one comparison that nothing needs rendering.
        last = memo.providers
        if len(last) == len(result) and all(a is b for a, b in zip(last, result, strict=True)):
            result = last
        memo.providers = result
    return ParsedProviders(result, invalid, dict(dropped), tuple(slugs), dict(quiet) or None)


def parse_stats(payload: object) -> ParsedStats:
    """The ``/providers/stats`` payload to counts; a field that is not a count is dropped."""
    if not isinstance(payload, dict):  # a RawArray, too: an array is the wrong shape
        raise PayloadError(f"expected a JSON object of counts, got {type(payload).__name__}")
    fields = FieldJudge(payload)
    values = tuple(fields.number(name) for name in STAT_FIELDS)
    if all(value is None for value in values):
        raise PayloadError("no provider count in the stats object")
    return ParsedStats(ProviderStats(values), dict(Counter(fields.problems)))
