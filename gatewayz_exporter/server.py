"""The HTTP server for /metrics, /healthz, /readyz and /.

asyncio on one thread holds every connection, so hundreds of idle or
half-sent connections cost a little memory each and never a worker; each has
a deadline for its request head. Building a body (and checking a bcrypt
password) runs in a small, bounded thread pool. The server never waits on the
GatewayZ API: it reads the newest snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import urlsplit

from opentelemetry import trace

from .exposition import Exposition, accepts_gzip, wants_openmetrics

log = logging.getLogger("gatewayz_exporter.server")

MAX_HEAD_BYTES = 16 * 1024
MAX_IGNORED_BODY_BYTES = 64 * 1024
WRITE_SLICE = 256 * 1024

LANDING_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>GatewayZ provider metrics exporter</title></head>
<body><h1>GatewayZ provider metrics exporter</h1>
<ul><li><a href="/metrics">/metrics</a> (Prometheus metrics)</li>
<li><a href="/healthz">/healthz</a> (liveness)</li>
<li><a href="/readyz">/readyz</a> (readiness: a recent successful poll)</li></ul>
</body></html>
"""


def make_listen_socket(host: str | None, port: int) -> socket.socket:
    """Bind ``host:port``; with no host, every interface on IPv6 *and* IPv4 where the kernel allows."""
    if host is None:
        if socket.has_dualstack_ipv6():
            return socket.create_server(
                ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=False, backlog=1024
            )
        return socket.create_server(("0.0.0.0", port), backlog=1024)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host.strip("[]"), port), family=family, backlog=1024)


class _Request:
    __slots__ = ("headers", "method", "path", "version")

    def __init__(self, method: str, path: str, version: str, headers: dict[str, str]):
        self.method, self.path, self.version, self.headers = method, path, version, headers

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class MetricsServer:
    """Serves the exposition; ``start()`` binds and returns once listening, ``stop()`` closes."""

    def __init__(
        self,
        exposition: Exposition,
        is_ready: Callable[[], bool],
        *,
        host: str | None = None,
        port: int = 8001,
        ssl_context: ssl.SSLContext | None = None,
        authenticate: Callable[[str | None], bool] | None = None,
        tracer: trace.Tracer | None = None,
        workers: int = 4,
        head_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        max_connections: int = 1024,
    ):
        self._exposition = exposition
        self._is_ready = is_ready
        self._host, self._port = host, port
        self._ssl = ssl_context
        self._authenticate = authenticate
        self._tracer = tracer or trace.NoOpTracer()
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.port: int | None = None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> int:
        sock = make_listen_socket(self._host, self._port)
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(
                self._handle,
                sock=sock,
                ssl=self._ssl,
                limit=MAX_HEAD_BYTES,
                ssl_handshake_timeout=self._head_timeout if self._ssl else None,
            )
            ready.set()

        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except Exception as error:  # noqa: BLE001 -- reported by start(), in the caller's thread
                failure.append(error)
                ready.set()
                return
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="metrics-server", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            sock.close()
            raise OSError(
                f"the server did not start: {type(failure[0]).__name__ if failure else 'timed out'}"
            )
        return self.port

    def stop(self, timeout: float = 3.0) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- connections -------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._max_connections:
            writer.transport.abort()
            return
        self._connections.add(writer)
        try:
            first = True
            while True:
                request = await self._read_request(
                    reader, writer, self._head_timeout if first else self._idle_timeout
                )
                if request is None:
                    return
                first = False
                keep_alive = await self._respond(request, writer)
                if not keep_alive:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            return
        except Exception:  # a bug must cost one response, not the server
            log.exception("Request failed")
            try:
                await self._send(
                    writer, HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", keep_alive=False
                )
            except Exception:
                pass
        finally:
            self._connections.discard(writer)
            try:
                writer.close()
            except Exception:  # the peer may be long gone
                pass

    async def _read_request(self, reader, writer, timeout: float) -> _Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except (TimeoutError, asyncio.IncompleteReadError):
            return None
        except asyncio.LimitOverrunError:
            await self._send(
                writer,
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                b"request head too large\n",
                keep_alive=False,
            )
            return None
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
        except ValueError:
            await self._send(writer, HTTPStatus.BAD_REQUEST, b"bad request\n", keep_alive=False)
            return None
        length = headers.get("content-length", "0")
        if "transfer-encoding" in headers or not length.isdigit() or int(length) > MAX_IGNORED_BODY_BYTES:
            await self._send(
                writer, HTTPStatus.BAD_REQUEST, b"request bodies are not accepted\n", keep_alive=False
            )
            return None
        if int(length):
            await asyncio.wait_for(reader.readexactly(int(length)), timeout)
        return _Request(method, urlsplit(target).path or "/", version, headers)

    async def _respond(self, request: _Request, writer) -> bool:
        keep_alive = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            await self._send(
                writer,
                HTTPStatus.METHOD_NOT_ALLOWED,
                b"only GET and HEAD\n",
                keep_alive=keep_alive,
                extra=(("Allow", "GET, HEAD"),),
            )
            return keep_alive
        head_only = request.method == "HEAD"
        path = request.path.rstrip("/") or "/"
        if path == "/healthz":
            await self._send(writer, HTTPStatus.OK, b"ok\n", keep_alive=keep_alive, head_only=head_only)
            return keep_alive
        if path == "/readyz":
            ready = self._is_ready()
            await self._send(
                writer,
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                b"ready\n" if ready else b"no successful poll within MAX_STALENESS\n",
                keep_alive=keep_alive,
                head_only=head_only,
            )
            return keep_alive
        if path not in ("/", "/metrics"):
            await self._send(
                writer,
                HTTPStatus.NOT_FOUND,
                b"not found; see /\n",
                keep_alive=keep_alive,
                head_only=head_only,
            )
            return keep_alive
        loop = asyncio.get_running_loop()
        if self._authenticate is not None:
            allowed = await loop.run_in_executor(
                self._pool, self._authenticate, request.headers.get("authorization")
            )
            if not allowed:
                await self._send(
                    writer,
                    HTTPStatus.UNAUTHORIZED,
                    b"unauthorized\n",
                    keep_alive=keep_alive,
                    head_only=head_only,
                    extra=(("WWW-Authenticate", 'Basic realm="gatewayz-exporter", charset="UTF-8"'),),
                )
                return keep_alive
        if path == "/":
            await self._send(
                writer,
                HTTPStatus.OK,
                LANDING_PAGE,
                keep_alive=keep_alive,
                head_only=head_only,
                content_type="text/html; charset=utf-8",
            )
            return keep_alive
        openmetrics = wants_openmetrics(request.headers.get("accept"))
        gzip = accepts_gzip(request.headers.get("accept-encoding"))
        parts, content_type = await loop.run_in_executor(self._pool, self._metrics, openmetrics, gzip)
        extra = (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")) if gzip else ()
        await self._send(
            writer,
            HTTPStatus.OK,
            parts,
            keep_alive=keep_alive,
            head_only=head_only,
            content_type=content_type,
            extra=extra,
        )
        return keep_alive

    def _metrics(self, openmetrics: bool, gzip: bool) -> tuple[tuple[bytes, ...], str]:
        with self._tracer.start_as_current_span("scrape", kind=trace.SpanKind.SERVER) as span:
            parts, content_type = self._exposition.parts(openmetrics=openmetrics, gzip=gzip)
            span.set_attribute("http.method", "GET")
            span.set_attribute("http.route", "/metrics")
            span.set_attribute("http.status_code", 200)
            span.set_attribute("response_bytes", sum(map(len, parts)))
        return parts, content_type

    async def _send(
        self,
        writer,
        status: HTTPStatus,
        body: bytes | tuple[bytes, ...],
        *,
        keep_alive: bool,
        head_only: bool = False,
        content_type: str = "text/plain; charset=utf-8",
        extra=(),
    ) -> None:
        parts = (body,) if isinstance(body, bytes) else body
        headers = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {sum(map(len, parts))}",
            "Connection: keep-alive" if keep_alive else "Connection: close",
        ]
        headers.extend(f"{name}: {value}" for name, value in extra)
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
        # In slices, waiting for each to drain: a slow reader then holds one slice of
        # buffer, not a copy of a 10 MB exposition. A reader that stops is cut off.
        for part in () if head_only else parts:
            view = memoryview(part)
            for start in range(0, len(view), WRITE_SLICE):
                writer.write(view[start : start + WRITE_SLICE])
                await asyncio.wait_for(writer.drain(), self._idle_timeout)
        await asyncio.wait_for(writer.drain(), self._idle_timeout)
