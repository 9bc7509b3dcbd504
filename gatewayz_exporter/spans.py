"""Spans as the exporter uses them, without loading OpenTelemetry when no trace backend is set.

``Tracer`` is the one method the exporter calls. Without a backend, ``LocalTracer``
still gives each span ids (a child its parent's trace id), held in a context variable,
so the log lines written inside one poll share a ``trace_id``; nothing is recorded or
sent. With a backend, telemetry adapts the SDK's tracer to the same ``Tracer``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import NamedTuple, Protocol

AttributeValue = str | bool | int | float
INTERNAL = "internal"
SERVER = "server"  # a span that answers a request (a scrape)
CLIENT = "client"  # a span that makes a request (to the API)


class Span(Protocol):
    """What the exporter does with a span: attributes only."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None: ...


class Tracer(Protocol):
    def start_as_current_span(self, name: str, *, kind: str = INTERNAL) -> AbstractContextManager[Span]: ...

    def inject(self, headers: dict[str, str]) -> None:
        """Add the headers that carry the current span to the next service (W3C ``traceparent``)."""


class SpanIds(NamedTuple):
    """A span's ids, as OpenTelemetry's ``SpanContext`` names them (0 is invalid)."""

    trace_id: int
    span_id: int

    @property
    def is_valid(self) -> bool:
        return self.trace_id != 0 and self.span_id != 0


class LocalSpan:
    """A span that records nothing; it has ids unless its tracer gives none."""

    __slots__ = ("_ids",)

    def __init__(self, ids: SpanIds):
        self._ids = ids

    def get_span_context(self) -> SpanIds:
        return self._ids

    def is_recording(self) -> bool:
        return False

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        pass


NO_IDS = SpanIds(0, 0)
_current: ContextVar[LocalSpan | None] = ContextVar("gatewayz_exporter_span", default=None)


class LocalTracer:
    """Spans without a trace backend. ``ids=False`` (OTEL_SDK_DISABLED) gives none at all."""

    def __init__(self, *, ids: bool = True):
        self._ids = ids

    @contextmanager
    def start_as_current_span(self, name: str, *, kind: str = INTERNAL) -> Iterator[LocalSpan]:
        span = LocalSpan(self._new_ids() if self._ids else NO_IDS)
        token = _current.set(span)
        try:
            yield span
        finally:
            _current.reset(token)

    def inject(self, headers: dict[str, str]) -> None:
        """Nothing: no trace backend, so no trace for the API to join."""

    @staticmethod
    def _new_ids() -> SpanIds:
        parent = _current.get()
        trace_id = parent._ids.trace_id if parent is not None and parent._ids.is_valid else 0
        return SpanIds(trace_id or random.getrandbits(128) or 1, random.getrandbits(64) or 1)


def current_ids() -> SpanIds | None:
    """The ids of the innermost ``LocalTracer`` span, or None outside one (or when it has none)."""
    span = _current.get()
    ids = span.get_span_context() if span is not None else NO_IDS
    return ids if ids.is_valid else None
