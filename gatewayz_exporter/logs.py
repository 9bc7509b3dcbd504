"""JSON log lines on stdout, one object per line, with the current trace and span ids.

Every logger, including urllib3's and OpenTelemetry's, goes through the root
logger's handlers, so third-party lines come out in the same format.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import math
import sys
import threading
from typing import Any, TextIO

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


# A record's own attributes: never copied as event fields (``taskName`` is Python 3.12's).
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class ExporterJsonFormatter(logging.Formatter):
    """One JSON object per record: ``timestamp``, ``level``, ``logger``, ``message``, ``service``,
    then ``exc_info``/``stack_info`` when present and the event's fields (``extra=``) in order."""

    def __init__(self, service: str = SERVICE_NAME):
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {}
        if isinstance(record.msg, dict):  # a mapping logged as the message: its items are fields
            fields.update(record.msg)
            record.message = ""
        else:
            record.message = record.getMessage()
        if record.exc_info and not fields.get("exc_info"):
            fields["exc_info"] = self.formatException(record.exc_info)
        if not fields.get("exc_info") and record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info and not fields.get("stack_info"):
            fields["stack_info"] = self.formatStack(record.stack_info)
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        line: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.message,
            "service": self._service,
            **fields,
        }
        for key, value in vars(record).items():
            if key not in RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        try:
            return json.dumps(_plain(line), default=_json_value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):  # a field JSON cannot hold (a cycle): as text
            return json.dumps({key: _text(value) for key, value in line.items()}, allow_nan=False)


def _plain(value: object) -> object:
    """``value`` with what json.dumps would write wrongly made text: a number that is not finite
    (``NaN`` is no JSON), a named tuple (an array would bypass a repr that hides secrets, as
    Config's does), a mapping's keys that are not text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return repr(value)
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _text(value: object) -> object:
    """A field as JSON surely holds it: text as it is, anything else as its repr."""
    if value is None or isinstance(value, (str, bool)):
        return value
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 -- a log line must not fail on a field
        return type(value).__name__


def _json_value(value: object) -> object:
    """A field value JSON has no type for: dates in ISO 8601, an exception as ``Type: text``,
    an enum member as its value, bytes in URL-safe base64, a class by name, anything else as text."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.urlsafe_b64encode(value).decode("ascii")
    if isinstance(value, type):
        return value.__name__
    try:
        return str(value)
    except Exception:  # noqa: BLE001 -- a log line must not fail on a field
        return repr(value)


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
