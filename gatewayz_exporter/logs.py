"""JSON log lines on stdout, one object per line, with the current trace and span ids.

Every logger, including urllib3's and OpenTelemetry's, goes through the root
logger's handlers, so third-party lines come out in the same format.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from .spans import current_ids

SERVICE_NAME = "provider-metrics-exporter"


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex) to a record written inside a span.

    The span is the exporter's own (``spans.LocalTracer``) or, with a trace backend,
    OpenTelemetry's: looked up only once its API is loaded, as no span can exist before.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        if ids is None and (otel := sys.modules.get("opentelemetry.trace")) is not None:
            ids = otel.get_current_span().get_span_context()
        if ids is not None and ids.is_valid:
            record.trace_id = format(ids.trace_id, "032x")
            record.span_id = format(ids.span_id, "016x")
        return True


class ExporterJsonFormatter(JsonFormatter):
    """python-json-logger with the field names the seed's Loki query expects."""

    def __init__(self, service: str = SERVICE_NAME):
        super().__init__(
            ["levelname", "name", "message"],
            timestamp=True,
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data.get("level", "")).lower()
        stamp = log_data.pop("timestamp")
        return {"timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"), **log_data}


class QuietHeaderDefects(logging.Filter):
    """urllib3 logs an odd response header (a line without a colon, ...) as a WARNING with a
    traceback. The API's bytes must not put tracebacks in the log: it becomes a DEBUG line,
    without the traceback, shown only at LOG_LEVEL=DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to parse headers"):
            return True
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


QUIET_HEADER_DEFECTS = QuietHeaderDefects()


def configure_logging(
    level: str = "INFO", stream: TextIO | None = None, extra_handlers: tuple[logging.Handler, ...] = ()
) -> logging.Handler:
    """Replace the root logger's handlers with one JSON handler on ``stream`` (stdout by default).

    The hooks for third-party lines and uncaught thread exceptions are
    ``process.install_log_hooks``, which only ``app.main`` calls.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(ExporterJsonFormatter())
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for extra in extra_handlers:
        extra.addFilter(TraceContextFilter())
        root.addHandler(extra)
    root.setLevel(level)
    return handler


def log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that escapes a thread becomes a JSON line too, not a bare traceback."""
    logging.getLogger("gatewayz_exporter").error(
        "Uncaught exception in thread",
        exc_info=args.exc_value if args.exc_value is not None else True,
        extra={"thread_name": getattr(args.thread, "name", None)},
    )
