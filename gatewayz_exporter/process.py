"""Process-wide effects: each applied by ``app.main`` only, never when a module is imported.

Tests build exporters in-process with ``app.build``; nothing here changes
their interpreter unless a test asks for it.
"""

from __future__ import annotations

import logging
import threading

from .logs import QUIET_HEADER_DEFECTS, log_thread_exception
from .telemetry import redact_header_warning

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default starting value


def keep_large_buffers_out_of_the_heap() -> None:
    """Have glibc give every buffer over 128 KiB back to the system as soon as it is freed.

    A fixed mmap threshold keeps each poll's large buffers in their own mappings instead of heap
    holes that stay resident. A no-op without glibc's ``mallopt``.
    """
    import ctypes  # only once the exposition is big: a small exporter needs none of this

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def install_log_hooks() -> None:
    """Every log line of the process in our format, and none that leaks a secret or the API's bytes.

    Before tracing is set up: the OpenTelemetry SDK logs a malformed
    ``OTEL_EXPORTER_OTLP_HEADERS`` entry while it starts, and headers carry tokens.
    """
    logging.getLogger("urllib3.connection").addFilter(QUIET_HEADER_DEFECTS)  # adding twice is a no-op
    logging.getLogger("opentelemetry.util.re").addFilter(redact_header_warning)
    logging.captureWarnings(True)
    threading.excepthook = log_thread_exception
