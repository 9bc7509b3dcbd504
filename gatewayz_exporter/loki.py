"""Ship log lines to Loki's push API without ever blocking the caller.

``LokiHandler`` is the standard library's ``QueueHandler`` on a bounded queue:
a logging call formats the line and offers it to the queue; when the queue is
full the line is dropped and counted, never waited for. One daemon thread
drains the queue in batches, gzips them and POSTs them, each POST within a
deadline for the whole push (connect to last byte: a Loki that trickles its
answer cannot hold it open), retrying with backoff on 429, 5xx and transport
failures, a missed deadline included. It uses ``http.client`` (not requests)
so its own traffic is never traced, and it reports its own failures straight
to the stdout handler, never through logging, so it cannot recurse.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import logging
import logging.handlers
import queue
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from .logs import SERVICE_NAME, ExporterJsonFormatter

PUSH_PATH = "/loki/api/v1/push"
_WAKE = object()  # queued by close() to wake the pusher thread
LEVELS = ("debug", "info", "warning", "error", "critical")
FLUSH_INTERVAL = 1.0  # seconds; a partial batch waits at most this long
Line = tuple[int, str, str]  # (unix_ns, level, JSON line)


class LokiPusher:
    """POSTs batches to Loki. Separate from the handler so it can be tested on its own."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tenant_id: str | None = None,
        timeout: float = 5.0,
    ):
        parts = urlsplit(base_url.rstrip("/"))
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "") + PUSH_PATH
        self._timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "gatewayz-provider-metrics-exporter",
        }
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        if tenant_id:
            self._headers["X-Scope-OrgID"] = tenant_id

    @staticmethod
    def body(batch: list[tuple[int, str, str]]) -> bytes:
        """Loki's JSON push body, one stream per level: ``[(unix_ns, level, line), ...]``."""
        streams: dict[str, list[list[str]]] = {}
        for stamp, level, line in batch:
            streams.setdefault(level, []).append([str(stamp), line])
        payload = {
            "streams": [
                {"stream": {"service": SERVICE_NAME, "level": level}, "values": values}
                for level, values in streams.items()
            ]
        }
        return gzip.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), compresslevel=5)

    def push(self, body: bytes) -> int:
        """One POST within ``timeout``; returns the HTTP status, raises OSError/HTTPException on
        transport trouble and TimeoutError past the deadline."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=self._timeout)
        # The socket timeout bounds each read; this bounds them all together.
        expired = threading.Event()
        timer = threading.Timer(self._timeout, _cut, args=(connection, expired))
        timer.daemon = True
        timer.start()
        try:
            connection.request("POST", self._path, body=body, headers=self._headers)
            response = connection.getresponse()
            response.read(64 * 1024)
            if expired.is_set():  # the cut ended the head or body early: http.client takes that as their end
                raise TimeoutError("Loki push deadline passed")
            return response.status
        except (OSError, http.client.HTTPException):
            if expired.is_set():
                raise TimeoutError("Loki push deadline passed") from None
            raise
        finally:
            timer.cancel()
            connection.close()


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """At the deadline: shut the push's socket down, so its blocked read ends at once."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class LokiHandler(logging.handlers.QueueHandler):
    """A non-blocking handler: bounded queue in front, batching pusher thread behind."""

    def __init__(
        self,
        pusher: LokiPusher,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = FLUSH_INTERVAL,
        max_retries: int = 5,
        backoff: float = 0.5,
        report: Callable[[str, dict[str, object]], None] | None = None,
    ):
        self._lines: queue.Queue[Line | object] = queue.Queue(maxsize=capacity)
        super().__init__(self._lines)
        self.setFormatter(ExporterJsonFormatter())
        self._pusher = pusher
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_retries = max_retries
        self._backoff = backoff
        self._report = report or (lambda message, fields: None)
        self._stop = threading.Event()
        self.closing = threading.Event()  # set once close() has begun
        self._counts_lock = threading.Lock()
        self.dropped = 0  # lines lost: queue full, or retries exhausted
        self.pushed = 0  # lines accepted by Loki
        self.failures = 0  # failed POST attempts
        self._last_report = 0.0
        self._thread = threading.Thread(target=self._run, name="loki-pusher", daemon=True)
        self._thread.start()

    # QueueHandler hooks ------------------------------------------------------

    def prepare(self, record: logging.LogRecord) -> Line:
        """Format in the caller's thread (trace ids are there); queue a small tuple."""
        level = record.levelname.lower()
        return (int(record.created * 1e9), level if level in LEVELS else "info", self.format(record))

    def enqueue(self, item: Line) -> None:  # type: ignore[override]  # what prepare() made
        try:
            self._lines.put_nowait(item)
        except queue.Full:
            with self._counts_lock:
                self.dropped += 1

    # pusher thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._collect()
                if batch:
                    self._send(batch)
            except Exception as error:  # noqa: BLE001 -- the pusher thread must outlive any surprise
                self._report_failure(type(error).__name__, 0)

    def _collect(self) -> list[Line]:
        # Block until a line arrives (no timer wakes an idle exporter), then gather a batch.
        first = self._lines.get()
        if not isinstance(first, tuple):  # _WAKE
            return []
        batch: list[Line] = [first]
        deadline = time.monotonic() + self._flush_interval
        while len(batch) < self._batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if not isinstance(item, tuple):  # _WAKE
                break
            batch.append(item)
        return batch

    def _send(self, batch: list[Line]) -> None:
        body = self._pusher.body(batch)
        delay = self._backoff
        for attempt in range(self._max_retries + 1):
            try:
                status = self._pusher.push(body)
            except (OSError, http.client.HTTPException) as error:
                status, detail = None, type(error).__name__
            else:
                detail = f"HTTP {status}"
            if status is not None and 200 <= status < 300:
                with self._counts_lock:
                    self.pushed += len(batch)
                return
            with self._counts_lock:
                self.failures += 1
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt == self._max_retries or self._stop.wait(delay):
                break
            delay = min(delay * 2, 30.0)
        with self._counts_lock:
            self.dropped += len(batch)
        self._report_failure(detail, len(batch))

    def _report_failure(self, detail: str, lines: int) -> None:
        now = time.monotonic()
        if now - self._last_report >= 60:  # at most one report a minute
            self._last_report = now
            self._report("Loki push failed; lines dropped", {"error": detail, "dropped_lines": lines})

    def close(self, timeout: float = 0.5) -> None:
        """Push what is queued, within ``timeout``; then stop the thread. Safe to call twice.

        Only the first call waits: a later one (logging's own at exit, while a shutdown
        thread still drains into a hung Loki) returns at once instead of waiting again.
        """
        with self._counts_lock:
            first = not self.closing.is_set()
            self.closing.set()
        if first:
            deadline = time.monotonic() + timeout
            while not self._lines.empty() and time.monotonic() < deadline:
                time.sleep(0.02)
            self._stop.set()
            with contextlib.suppress(queue.Full):  # the pusher is busy and will see the stop flag
                self._lines.put_nowait(_WAKE)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        super().close()
