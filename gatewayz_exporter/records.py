"""The fast decoder for big provider arrays: msgspec finds each record and reads its fields.

Loaded only for big bodies. It only decodes: ``fields.judge_provider`` judges the typed struct
by the same rules as a ``json.loads`` record. A record the struct cannot hold is decoded again
field by field; what msgspec declines even then is left to the caller's ``json``.
"""

from __future__ import annotations

import json
import re

import msgspec

from .fields import NOT_BUILT, ElementCount, FieldJudge, TypedObject, judge_provider
from .model import Provider

_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
_ABSENT = msgspec.Raw(b"")


def split_array(body: bytes | bytearray) -> list[msgspec.Raw]:
    """A JSON array's elements as raw slices of ``body``; raises ``DECODE_ERRORS`` for anything else.

    msgspec checks the JSON syntax of the whole body (not the UTF-8 of
    strings it skips) without building the elements.
    """
    return _RAW_ARRAY.decode(body)


_EMPTY_ARRAY = re.compile(rb"\[\s*\]")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NESTING = re.compile(rb"[\[\]{}]")
_OPENERS = b"[{"
_CHUNK_BYTES = 64 * 1024
_SMALL_ARRAY_BYTES = 1024


def count_elements(raw: bytes | bytearray | memoryview) -> int | None:
    """The number of elements of the JSON array ``raw`` (valid JSON), or None when it is not an array.

    Counts the commas outside strings and nested values, 64 KiB at a time,
    instead of building the elements: the memory used is a few chunks,
    however many elements there are.
    """
    if not raw or raw[0] != 0x5B:  # "["
        return None
    if len(raw) <= _SMALL_ARRAY_BYTES:  # a few hundred raw slices at most: cheaper than scanning
        try:
            return len(_RAW_ARRAY.decode(raw))
        except DECODE_ERRORS:  # not JSON msgspec reads (NaN, say): scanned like any other
            pass
    if _EMPTY_ARRAY.fullmatch(raw):
        return 0
    depth, commas, in_string, start, size = 0, 0, False, 0, len(raw)
    while start < size:
        end = min(start + _CHUNK_BYTES, size)
        while end < size and raw[end - 1] == 0x5C:  # a backslash stays with the byte it escapes
            end += 1
        chunk = bytes(raw[start:end])
        if b"\\" in chunk:
            chunk = _ESCAPE.sub(b"__", chunk)  # no escaped quote can end a string
        pieces = chunk.split(b'"')
        outside = b"".join(pieces[1 if in_string else 0 :: 2])  # the parts between strings
        in_string ^= len(pieces) % 2 == 0
        at = 0
        for bracket in _NESTING.finditer(outside):
            if depth == 1:
                commas += outside.count(b",", at, bracket.start())
            depth += 1 if outside[bracket.start()] in _OPENERS else -1
            at = bracket.end()
        if depth == 1:
            commas += outside.count(b",", at)
        start = end
    return commas + 1


class _Metadata(msgspec.Struct, TypedObject):
    rate_limit: float | None = None
    max_tokens: float | None = None
    supported_models: msgspec.Raw = _ABSENT  # counted, never decoded

    def get(self, key: str, /) -> object:
        if key != "supported_models":
            return getattr(self, key, None)
        raw = memoryview(self.supported_models)
        if not raw or raw[:4].tobytes() == b"null":
            return None
        count = count_elements(raw)
        return raw if count is None else ElementCount(count)  # anything but an array is a problem


class _Record(msgspec.Struct, TypedObject):
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


def _raw_value(raw: msgspec.Raw, key: str) -> object:
    """One raw field as ``json.loads`` reads it, except that arrays and objects are not built."""
    view = memoryview(raw)
    if not view:
        return None  # absent
    if view[0] == 0x5B:  # "["
        return ElementCount(count_elements(view) or 0) if key == "supported_models" else NOT_BUILT
    if view[0] == 0x7B:  # "{"
        return NOT_BUILT
    return json.loads(str(raw, "utf-8", "surrogatepass"))


class _RawMetadata(msgspec.Struct, TypedObject):
    rate_limit: msgspec.Raw = _ABSENT
    max_tokens: msgspec.Raw = _ABSENT
    supported_models: msgspec.Raw = _ABSENT

    def get(self, key: str, /) -> object:
        return _raw_value(getattr(self, key, _ABSENT), key)


_RAW_METADATA = msgspec.json.Decoder(_RawMetadata)


class _RawRecord(msgspec.Struct, TypedObject):
    """The same fields as ``_Record``, each as raw JSON: a record whose fields have any JSON type."""

    slug: msgspec.Raw = _ABSENT
    name: msgspec.Raw = _ABSENT
    base_url: msgspec.Raw = _ABSENT
    site_url: msgspec.Raw = _ABSENT
    status_page_url: msgspec.Raw = _ABSENT
    is_active: msgspec.Raw = _ABSENT
    health_status: msgspec.Raw = _ABSENT
    average_response_time_ms: msgspec.Raw = _ABSENT
    supports_streaming: msgspec.Raw = _ABSENT
    supports_function_calling: msgspec.Raw = _ABSENT
    supports_vision: msgspec.Raw = _ABSENT
    supports_image_generation: msgspec.Raw = _ABSENT
    last_health_check_at: msgspec.Raw = _ABSENT
    metadata: msgspec.Raw = _ABSENT

    def get(self, key: str, /) -> object:
        raw = getattr(self, key, _ABSENT)
        if key == "metadata" and raw and memoryview(raw)[0] == 0x7B:
            return _RAW_METADATA.decode(raw)
        return _raw_value(raw, key)


_RAW_RECORD = msgspec.json.Decoder(_RawRecord)


def judge_raw(raw: msgspec.Raw) -> tuple[Provider | None, FieldJudge] | None:
    """The judged record, or None when msgspec declines it (then ``json`` decodes it whole)."""
    try:
        return judge_provider(_RECORD.decode(raw))
    except (ValueError, RecursionError):  # msgspec's DecodeError/ValidationError, UnicodeDecodeError
        pass
    if memoryview(raw)[:1].tobytes() != b"{":
        return judge_provider(NOT_BUILT)  # not an object: dropped without building it
    try:
        return judge_provider(_RAW_RECORD.decode(raw))
    except (ValueError, RecursionError):
        return None
