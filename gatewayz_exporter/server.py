"""The HTTP server for /metrics, /healthz, /readyz and /.

asyncio on one thread holds every connection, so hundreds of idle or
half-sent connections cost a little memory each and never a worker. HTTP/1.1
framing is h11's (sans-IO): our code decides what a request means, never where
it ends. A request h11 refuses gets a 4xx and the connection closes; a
client's bad bytes are logged at DEBUG at most, rate-limited.

Every connection is counted from ``accept``, before TLS; who may hold one, and who
makes room at the cap, is ``admission.Admission``'s policy. The bytes of a connection
(TLS on memory buffers included) are ``connection.Connection``'s: one that never sends
a ClientHello costs no TLS state, and few handshakes run at once. The first request
head (the handshake included) must arrive within ``head_timeout`` of accept; every
later head within ``head_timeout`` of its first byte, and that byte within ``idle_timeout``.

A body already rendered is served from the loop (its bytes and a few live lines);
rendering runs in a small pool of its own and bcrypt in another (``auth.AuthGate``),
so neither blocks the loop and a password flood never delays rendering. The server
never waits on the GatewayZ API: it reads the newest snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import h11

from .admission import BACK_TO_BACK, EVICT_GRACE, Admission
from .auth import AuthGate, Verdict
from .connection import Connection
from .exposition import Exposition, accepts_gzip, wants_openmetrics
from .listening import (
    ACCEPT_BATCH,
    LISTEN_BACKLOG,
    connection_budget,
    loop_exception_handler,
    make_listen_socket,
)
from .pages import LINKS_ONLY
from .request_checks import FOLD, HOST_HEADER, ClientErrorLog, could_be_request_line, path_of
from .responses import send_response
from .spans import SERVER, AttributeValue, LocalTracer, Tracer
from .webconfig import WebConfig, WebConfigReloader

log = logging.getLogger("gatewayz_exporter.server")

MAX_HEAD_BYTES = 16 * 1024
SCRAPE_SPAN: dict[str, AttributeValue] = {
    "http.method": "GET",
    "http.route": "/metrics",
    "http.status_code": 200,
}


class _Refused(Exception):
    """A request this server will not serve; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class MetricsServer:
    """Serves the exposition; ``start()`` binds and returns once listening, ``stop()`` closes."""

    def __init__(
        self,
        exposition: Exposition,
        is_ready: Callable[[], bool],
        *,
        host: str | None = None,
        port: int = 8001,
        web: WebConfigReloader | WebConfig | None = None,
        landing: Callable[[], bytes] | None = None,
        auth_gate: AuthGate | None = None,
        tracer: Tracer | None = None,
        workers: int = 4,
        head_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        max_connections: int = 1024,
        max_handshakes: int = 128,
        handshake_timeout: float = 5.0,
        evict_grace: float = EVICT_GRACE,
        back_to_back: float = BACK_TO_BACK,
        listen_socket: socket.socket | None = None,
    ):
        """``listen_socket``: an already bound socket to serve on instead of binding ``host:port``
        (inherited from a supervisor, or bound by a test)."""
        self._exposition = exposition
        self._is_ready = is_ready
        self._host, self._port = host, port
        self._listen_socket = listen_socket
        if isinstance(web, WebConfig):
            web = WebConfigReloader(web)
        self._web = web
        self._landing = landing
        self._gate = auth_gate or AuthGate()
        self._tracer = tracer or LocalTracer(ids=False)
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._handshake_timeout = handshake_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._client_errors = ClientErrorLog()
        self._admission = Admission(
            max_connections,
            max_handshakes,
            time.monotonic,
            self.client_error,
            evict_grace=evict_grace,
            back_to_back=back_to_back,
        )
        self.port: int | None = None

    @property
    def connections(self) -> int:
        """Connections held now, counted from accept (TLS handshakes included)."""
        return len(self._admission)

    @property
    def max_connections(self) -> int:
        """The connection cap (after start, as the open-file limit allows)."""
        return self._max_connections

    @property
    def auth_gate(self) -> AuthGate:
        return self._gate

    # --- what a Connection asks of its host (connection.ConnectionHost) -------

    @property
    def idle_timeout(self) -> float:
        return self._idle_timeout

    @property
    def handshake_timeout(self) -> float:
        return self._handshake_timeout

    def admit(self, connection: Connection) -> bool:
        return self._admission.admit(connection)

    def released(self, connection: Connection) -> None:
        self._admission.release(connection)

    def write_stalled(self, connection: Connection) -> None:
        self._admission.stalled(connection)

    def write_resumed(self, connection: Connection) -> None:
        self._admission.resumed(connection)

    def want_handshake(self, connection: Connection) -> None:
        self._admission.want_handshake(connection)

    def handshake_finished(self, connection: Connection) -> None:
        self._admission.handshake_finished(connection)

    def client_error(self, event: str, peer: str | None, **fields: object) -> None:
        self._client_errors(event, peer, **fields)

    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    def current_config(self) -> WebConfig | None:
        return self._web.current() if self._web is not None else None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> int:
        sock = self._listen_socket or make_listen_socket(self._host, self._port)
        self.port = sock.getsockname()[1]
        loop = self._loop = asyncio.new_event_loop()
        loop.set_exception_handler(loop_exception_handler)
        self._max_connections = min(self._max_connections, connection_budget(self._max_connections))
        self._admission.max_connections = self._max_connections
        ready = threading.Event()

        async def serve() -> None:
            # asyncio accepts up to backlog sockets per wake-up and calls listen(backlog) itself:
            # a small batch for asyncio, then the kernel's queue set back to LISTEN_BACKLOG.
            self._server = await loop.create_server(
                lambda: Connection(self, loop), sock=sock, backlog=ACCEPT_BATCH
            )
            sock.listen(LISTEN_BACKLOG)
            ready.set()

        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except Exception as error:  # noqa: BLE001 -- reported by start(), in the caller's thread
                failure.append(error)
                ready.set()
                loop.close()
                return
            loop.run_forever()
            loop.close()

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
            for connection in self._admission.members():
                connection.abort()
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
        self._gate.close()

    # --- one connection --------------------------------------------------------

    async def serve(self, connection: Connection) -> None:
        loop = self._loop_or_raise()
        try:
            async with asyncio.timeout_at(connection.accepted + self._head_timeout):
                if not await connection.handshake():
                    connection.abort()
                    return
            exchange = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
            first = True
            answered: float | None = None
            while True:
                if first:
                    deadline = connection.accepted + self._head_timeout
                else:
                    started = connection.has_buffered() or bool(exchange.trailing_data[0])
                    deadline = loop.time() + (self._head_timeout if started else self._idle_timeout)
                request = await self._next_request(connection, exchange, deadline)
                if request is None:
                    break
                self._admission.request_started(connection, answered)
                first = False
                keep_alive = await self._respond(connection, exchange, request)
                if (
                    not keep_alive
                    or exchange.our_state is not h11.DONE
                    or exchange.their_state is not h11.DONE
                ):
                    break
                exchange.start_next_cycle()
                answered = time.monotonic()
                self._admission.waiting(connection)
            await self._finish(connection)
        except (TimeoutError, ConnectionError, OSError):
            connection.abort()

    async def _finish(self, connection: Connection) -> None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                await connection.drain()
        except (TimeoutError, ConnectionError):
            connection.abort()
            return
        connection.close()

    async def _next_request(
        self, connection: Connection, exchange: h11.Connection, deadline: float
    ) -> h11.Request | None:
        """The next request head, or None when the client is gone or was refused."""
        loop = self._loop_or_raise()
        try:
            async with asyncio.timeout_at(deadline) as timeout:
                while True:
                    event = exchange.next_event()
                    if event is h11.NEED_DATA:
                        # Checked before each wait: pipelined bytes left from the last request too.
                        if exchange.their_state is h11.IDLE and not could_be_request_line(
                            exchange.trailing_data[0]
                        ):
                            raise _Refused(400, "not an HTTP/1.x request line")
                        data = await connection.receive()
                        # h11 bounds only an incomplete head; a whole 20 KiB head in one read
                        # would pass. Feeding at most one byte over the limit makes it refuse (431).
                        room = max(1, MAX_HEAD_BYTES + 1 - len(exchange.trailing_data[0]))
                        if len(data) > room:
                            connection.push_back(data[room:])
                            data = data[:room]
                        if data and exchange.their_state is h11.IDLE and not exchange.trailing_data[0]:
                            # The head deadline runs from the first byte of each request.
                            timeout.reschedule(min(deadline, loop.time() + self._head_timeout))
                        if FOLD.search(data) or (
                            data[:1] in (b" ", b"\t") and exchange.trailing_data[0][-1:] == b"\n"
                        ):
                            raise _Refused(400, "obsolete line folding (obs-fold) is not accepted")
                        exchange.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        return event
                    # ConnectionClosed, PAUSED; Data/EndOfMessage cannot come first: the end
                    return None
        except TimeoutError:
            self.client_error("Request head deadline passed", connection.peer)
            return None
        except h11.RemoteProtocolError as error:
            status = error.error_status_hint if 400 <= error.error_status_hint < 500 else 400
            await self._refuse(connection, exchange, status, str(error))
            return None
        except _Refused as refused:
            await self._refuse(connection, exchange, refused.status, str(refused))
            return None

    async def _refuse(
        self, connection: Connection, exchange: h11.Connection, status: int, message: str
    ) -> None:
        self.client_error("Bad request", connection.peer, status=status, problem=message[:200])
        if exchange.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{HTTPStatus(status).phrase.lower()}\n".encode()
        try:
            await self._send(
                connection, exchange, status, (body,), head_only=False, extra=((b"connection", b"close"),)
            )
        except (h11.LocalProtocolError, ConnectionError, TimeoutError):
            connection.abort()

    async def _respond(self, connection: Connection, exchange: h11.Connection, request: h11.Request) -> bool:
        """Answer one request; False when the connection must close."""
        try:
            return await self._route(connection, exchange, request)
        except _Refused as refused:
            await self._refuse(connection, exchange, refused.status, str(refused))
            return False
        except h11.RemoteProtocolError as error:  # the client's bytes, found bad mid-request
            await self._refuse(connection, exchange, 400, str(error))
            return False
        except (ConnectionError, TimeoutError, OSError):
            raise
        except Exception:  # a bug must cost one response, not the server
            log.exception("Request failed")
            if exchange.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.LocalProtocolError, ConnectionError, TimeoutError):
                    await self._send(
                        connection,
                        exchange,
                        500,
                        (b"internal error\n",),
                        head_only=False,
                        extra=((b"connection", b"close"),),
                    )
            return False

    async def _route(self, connection: Connection, exchange: h11.Connection, request: h11.Request) -> bool:
        if request.http_version not in (b"1.0", b"1.1"):
            raise _Refused(400, "only HTTP/1.0 and HTTP/1.1")
        headers: dict[bytes, list[bytes]] = {}
        for name, value in request.headers:
            headers.setdefault(name, []).append(value)
        hosts = headers.get(b"host", [])
        if len(hosts) > 1 or (hosts and not HOST_HEADER.fullmatch(hosts[0])):
            raise _Refused(400, "invalid Host")
        if len(headers.get(b"authorization", [])) > 1:
            raise _Refused(400, "more than one Authorization")
        has_body = b"transfer-encoding" in headers or any(
            value.strip(b"0") for value in headers.get(b"content-length", [])
        )
        method = request.method
        head_only = method == b"HEAD"
        if has_body:  # never read: answered, then the connection closes
            if method in (b"GET", b"HEAD"):
                raise _Refused(400, "request bodies are not accepted")
        # Without a body h11 reports the request's end at once.
        elif not isinstance(exchange.next_event(), h11.EndOfMessage):
            raise _Refused(400, "request bodies are not accepted")
        if method not in (b"GET", b"HEAD"):
            close = ((b"connection", b"close"),) if has_body else ()
            await self._send(
                connection,
                exchange,
                405,
                (b"only GET and HEAD\n",),
                head_only=False,
                extra=((b"allow", b"GET, HEAD"), *close),
            )
            return not has_body
        path = path_of(request.target)
        path = path.rstrip(b"/") or b"/"
        if path == b"/healthz":
            await self._send(connection, exchange, 200, (b"ok\n",), head_only=head_only)
            return True
        if path == b"/readyz":
            ready = self._is_ready()
            await self._send(
                connection,
                exchange,
                200 if ready else 503,
                (b"ready\n" if ready else b"no successful poll within MAX_STALENESS\n",),
                head_only=head_only,
            )
            return True
        if path not in (b"/", b"/metrics"):
            await self._send(connection, exchange, 404, (b"not found; see /\n",), head_only=head_only)
            return True
        config = self.current_config()
        if config is not None and config.verifier is not None:
            authorization = headers.get(b"authorization", [None])[0]
            verdict = await self._gate.check(config.verifier, authorization, connection.peer)
            if verdict is Verdict.THROTTLED:
                retry = str(self._gate.retry_after(connection.peer)).encode()
                await self._send(
                    connection,
                    exchange,
                    429,
                    (b"too many failed or pending authentication attempts\n",),
                    head_only=head_only,
                    extra=((b"retry-after", retry),),
                )
                return True
            if verdict is not Verdict.ALLOWED:
                await self._send(
                    connection,
                    exchange,
                    401,
                    (b"unauthorized\n",),
                    head_only=head_only,
                    extra=((b"www-authenticate", b'Basic realm="gatewayz-exporter", charset="UTF-8"'),),
                )
                return True
        if path == b"/":
            page = self._landing() if self._landing is not None else LINKS_ONLY
            await self._send(
                connection,
                exchange,
                200,
                (page,),
                head_only=head_only,
                content_type=b"text/html; charset=utf-8",
            )
            return True
        openmetrics = wants_openmetrics(b",".join(headers.get(b"accept", [])).decode("latin-1"))
        gzip = accepts_gzip(b",".join(headers.get(b"accept-encoding", [])).decode("latin-1"))
        with self._tracer.start_as_current_span("scrape", kind=SERVER) as span:
            # A body rendered already is bytes and a few live lines: served from the loop.
            built = self._exposition.cached_parts(openmetrics=openmetrics, gzip=gzip)
            if built is None:  # rendering runs in the pool, never on the loop
                render = functools.partial(self._exposition.parts, openmetrics=openmetrics, gzip=gzip)
                built = await asyncio.get_running_loop().run_in_executor(self._pool, render)
            parts, content_type = built
            span.set_attributes({**SCRAPE_SPAN, "response_bytes": sum(map(len, parts))})
        extra = ((b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")) if gzip else ()
        await self._send(
            connection,
            exchange,
            200,
            parts,
            head_only=head_only,
            content_type=content_type.encode("latin-1"),
            extra=extra,
        )
        self._admission.scraped(connection)
        return True

    async def _send(
        self,
        connection: Connection,
        exchange: h11.Connection,
        status: int,
        parts: Sequence[bytes],
        *,
        head_only: bool,
        content_type: bytes = b"text/plain; charset=utf-8",
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        deadline = self._loop_or_raise().time() + self._idle_timeout
        await send_response(connection, exchange, status, parts, deadline, head_only, content_type, extra)
