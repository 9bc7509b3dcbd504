"""Traces (OTLP to Tempo) and log shipping (Loki): optional, never in the exporter's way."""

from __future__ import annotations

import logging
from typing import Mapping

from opentelemetry import trace


class TelemetryError(ValueError):
    """A telemetry setting is invalid; start-up stops with exit code 2."""


class Telemetry:
    """The tracer and extra log handlers; ``shutdown`` flushes within a bounded time."""

    def __init__(self, tracer: trace.Tracer, log_handlers: tuple[logging.Handler, ...] = ()):
        self.tracer = tracer
        self.log_handlers = log_handlers

    @classmethod
    def disabled(cls) -> "Telemetry":
        return cls(trace.NoOpTracer())

    @classmethod
    def from_config(cls, config, env: Mapping[str, str], *, enable_tracing: bool = True) -> "Telemetry":
        return cls.disabled()

    def register_metrics(self, registry) -> None:
        pass

    def shutdown(self, timeout: float) -> None:
        pass
