"""Optional telemetry: OTLP traces (to Tempo) and log shipping (to Loki).

Both are off unless configured, and neither can slow the exporter: spans go
through a bounded batch processor, log lines through a bounded queue, every
network call has a timeout, and ``shutdown`` is bounded no matter how the
receivers behave.

The OpenTelemetry SDK reads the ``OTEL_*`` variables it knows from the process
environment itself; this module adds only what it lacks: tracing off unless an
endpoint is set, the choice of protocol, and this service's default name.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TextIO

from .collector import Family
from .logs import SERVICE_NAME, ExporterJsonFormatter
from .spans import CLIENT, INTERNAL, SERVER, LocalTracer, Span, Tracer

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource

    from .config import Config
    from .loki import LokiHandler

log = logging.getLogger("gatewayz_exporter.telemetry")


def redact_header_warning(record: logging.LogRecord) -> bool:
    """The SDK logs a malformed OTEL_EXPORTER_OTLP_HEADERS entry verbatim, and headers carry tokens."""
    if record.args:
        record.msg = (
            "OTEL_EXPORTER_OTLP_HEADERS: an entry is not a URL-encoded name=value pair; it is ignored"
        )
        record.args = ()
    return True


PROTOCOLS = ("http/protobuf", "grpc")
# Numbers the SDK reads from the environment for the parts used here.
SDK_NUMBERS = (
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)
_SDK_NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")


class TelemetryError(ValueError):
    """A telemetry setting is invalid; start-up stops with exit code 2."""


def tracing_settings(env: Mapping[str, str]) -> dict[str, str] | None:
    """What the SDK does not decide itself: whether to trace at all, and over which protocol.

    Tracing is on when an OTLP endpoint is set (the SDK would otherwise send to
    localhost) and not switched off. Everything else -- endpoint, headers,
    timeout, TLS and ``insecure``, resource attributes, batching -- the SDK
    reads from the ``OTEL_*`` variables itself.
    """

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    if get("OTEL_SDK_DISABLED").lower() == "true" or get("OTEL_TRACES_EXPORTER").lower() == "none":
        return None
    if not get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") and not get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    protocol_variable = next(
        (name for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") if get(name)),
        None,
    )
    protocol = get(protocol_variable) if protocol_variable else "http/protobuf"
    if protocol not in PROTOCOLS:
        raise TelemetryError(
            f"{protocol_variable}: must be one of {', '.join(PROTOCOLS)} (got {protocol[:40]!r})"
        )
    # The SDK parses these with int()/float(), which take non-ASCII digits ("١٢") and fall
    # back to a default with a traceback on anything else: refuse them at start instead.
    bad = [name for name in SDK_NUMBERS if get(name) and not _SDK_NUMBER.fullmatch(get(name))]
    if bad:
        raise TelemetryError("; ".join(f"{name}: must be a number in ASCII digits" for name in bad))
    return {"protocol": protocol}


def service_resource() -> Resource:
    """The SDK's resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; our name when neither names it."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


class _Tracing:
    """A TracerProvider with an OTLP exporter."""

    def __init__(self, settings: dict[str, str]):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

        exporter: SpanExporter
        if settings["protocol"] == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            exporter = GrpcExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            exporter = HttpExporter()
        # Our own bounded shutdown replaces the SDK's atexit hook, which can wait on a hung receiver.
        self.provider = TracerProvider(resource=service_resource(), shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* apply
        self.tracer = _SdkTracer(self.provider.get_tracer("gatewayz_exporter"))

    def shutdown(self, timeout: float) -> None:
        self.provider.force_flush(int(timeout * 1000))
        self.provider.shutdown()


class _SdkTracer:
    """The SDK's tracer as the exporter's ``Tracer``: the span kind by name."""

    def __init__(self, tracer: trace.Tracer):
        from opentelemetry.propagate import inject
        from opentelemetry.trace import SpanKind

        self._tracer = tracer
        self._inject = inject
        self._kinds = {INTERNAL: SpanKind.INTERNAL, SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}

    def start_as_current_span(self, name: str, *, kind: str = INTERNAL) -> AbstractContextManager[Span]:
        return self._tracer.start_as_current_span(name, kind=self._kinds[kind])

    def inject(self, headers: dict[str, str]) -> None:
        """The current span's context, by the propagators OTEL_PROPAGATORS names (W3C by default)."""
        self._inject(headers)


def loki_families(dropped: int, pushed: int, failures: int) -> tuple[Family, ...]:
    """The log shipping counters (all 0 when Loki is not configured)::

    # TYPE gatewayz_exporter_loki_dropped_lines_total counter
    gatewayz_exporter_loki_dropped_lines_total 0.0
    """
    return (
        Family(
            "gatewayz_exporter_loki_dropped_lines",
            "Log lines not delivered to Loki (buffer full or push failed).",
            "counter",
            (),
            [((), dropped)],
        ),
        Family(
            "gatewayz_exporter_loki_pushed_lines",
            "Log lines accepted by Loki.",
            "counter",
            (),
            [((), pushed)],
        ),
        Family(
            "gatewayz_exporter_loki_push_failures",
            "Failed push attempts to Loki, retries included.",
            "counter",
            (),
            [((), failures)],
        ),
    )


class Telemetry:
    """The tracer, extra log handlers, and their metrics; ``shutdown`` is bounded."""

    def __init__(
        self,
        tracer: Tracer,
        log_handlers: tuple[logging.Handler, ...] = (),
        tracing: _Tracing | None = None,
        loki: LokiHandler | None = None,
    ):
        """``loki``, when given, is one of ``log_handlers``: the one whose counters are exported."""
        self.tracer = tracer
        self.log_handlers = log_handlers
        self._tracing = tracing
        self._loki = loki
        self._stopped = False

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls(LocalTracer(ids=False))

    @classmethod
    def from_config(
        cls,
        config: Config,
        env: Mapping[str, str],
        *,
        enable_tracing: bool = True,
        report_stream: TextIO | None = None,
        loki_flush_interval: float | None = None,
    ) -> Telemetry:
        """Tracing from the OTEL_* variables in ``env``; Loki from LOKI_* in ``config``."""
        settings = tracing_settings(env) if enable_tracing else None
        tracing = None
        if settings:
            try:
                tracing = _Tracing(settings)
            except Exception as error:  # noqa: BLE001 -- the SDK refuses a setting with whatever it likes
                raise TelemetryError(_sdk_refusal(error, env)) from None
        tracer: Tracer
        if tracing is not None:
            tracer = tracing.tracer
        elif (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
            tracer = LocalTracer(ids=False)
        else:
            tracer = LocalTracer()
        loki = None
        if config.loki_url:
            from .loki import FLUSH_INTERVAL, LokiHandler, LokiPusher

            pusher = LokiPusher(
                config.loki_url,
                username=config.loki_username,
                password=config.loki_password,
                tenant_id=config.loki_tenant_id,
            )
            loki = LokiHandler(
                pusher,
                flush_interval=FLUSH_INTERVAL if loki_flush_interval is None else loki_flush_interval,
                report=_direct_reporter(report_stream or sys.stdout),
            )
        return cls(tracer, (loki,) if loki else (), tracing, loki)

    def live_families(self) -> tuple[Family, ...]:
        """The log shipping counters, read at each scrape."""
        loki = self._loki
        return loki_families(loki.dropped, loki.pushed, loki.failures) if loki else loki_families(0, 0, 0)

    def shutdown(self, timeout: float) -> None:
        """Flush spans and log lines; returns within about ``timeout`` seconds whatever the receivers do."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        jobs: list[Callable[[], None]] = []
        if self._tracing is not None:
            jobs.append(functools.partial(self._tracing.shutdown, timeout))
        for handler in self.log_handlers:
            logging.getLogger().removeHandler(handler)
            if handler is self._loki:
                jobs.append(functools.partial(self._loki.close, timeout))
            else:
                jobs.append(handler.close)
        # In parallel, on daemon threads: a receiver that never answers costs at most ``timeout``.
        workers = [threading.Thread(target=job, name="telemetry-shutdown", daemon=True) for job in jobs]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def _sdk_refusal(error: Exception, env: Mapping[str, str]) -> str:
    """One line for a setting the SDK raised on (OTEL_BSP_MAX_QUEUE_SIZE=0, a bad gRPC endpoint, ...).

    The SDK's own message says which; it is left out if it could carry a header value.
    """
    detail = (str(error).splitlines() or [""])[0][:160]
    secrets = [
        part.strip()
        for name, value in env.items()
        if name.startswith("OTEL_") and name.endswith("HEADERS")
        for part in value.replace("=", ",").split(",")
        if len(part.strip()) >= 4
    ]
    if any(secret in detail for secret in secrets):
        detail = ""
    return f"OTEL_*: the OpenTelemetry SDK refused a setting ({type(error).__name__}{': ' + detail if detail else ''})"


def _direct_reporter(stream: TextIO) -> Callable[[str, dict[str, object]], None]:
    """Report the Loki handler's own trouble as a JSON line on ``stream``, bypassing logging."""
    formatter = ExporterJsonFormatter()

    def report(message: str, fields: dict[str, object]) -> None:
        record = logging.LogRecord(
            "gatewayz_exporter.loki", logging.WARNING, __file__, 0, message, None, None
        )
        record.__dict__.update(fields)
        try:
            stream.write(formatter.format(record) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    return report
