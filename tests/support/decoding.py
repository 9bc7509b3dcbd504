"""Parsing a provider body as a poll would, and the peak memory a piece of work allocates."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

from gatewayz_exporter.parse import PayloadError, RecordMemo, parse_providers
from gatewayz_exporter.parse import decode_json as decode_json_as_configured


def peak_bytes_while(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def parse_body(body: bytes) -> Any:
    """The parsed providers, or the PayloadError the poll would count."""
    try:
        return parse_providers(decode_json_as_configured(body), RecordMemo())
    except PayloadError as error:
        return error
