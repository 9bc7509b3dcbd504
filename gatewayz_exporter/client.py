"""HTTP client for the GatewayZ API: the only code that talks to it.

``fetch`` never raises, whatever the API, the network or the resolver do: it
returns a ``FetchResult`` whose ``reason`` is one of ``model.REASONS`` and whose
``cause`` is one of ``failures.CAUSES``. Exception text never leaves the client
(it can carry URLs); only those do.

``REQUEST_TIMEOUT`` is a deadline for the whole request, resolution to last
byte (``transport``). Redirects are followed only where ``redirects`` allows;
the admin key goes only with ``authorized`` requests. Each request is a client span
of the tracer it is given, and carries the span's context (``traceparent``) when
that tracer sends spans somewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import http.client
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import urllib3
from urllib3.util import make_headers, parse_url

from . import redirects
from .failures import (
    MAX_RETRY_AFTER_SECONDS,
    Failure,
    FetchResult,
    classify,
    content_length,
    parse_retry_after,
)
from .parse import PayloadError, decode_json
from .spans import CLIENT, LocalTracer, Span, Tracer
from .transport import Flight, Resolver, current, tracked_pool_manager

__all__ = ["MAX_RETRY_AFTER_SECONDS", "ApiClient", "FetchResult", "PendingFetch", "is_loopback_url"]

log = logging.getLogger("gatewayz_exporter.client")

MAX_REDIRECTS = 5
# Sockets and Event.wait refuse timeouts past threading.TIMEOUT_MAX (~292 years) with
# OverflowError; a REQUEST_TIMEOUT beyond this (~31 years) is taken as this.
MAX_TIMEOUT_SECONDS = 1e9
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Requests abandoned at their deadline whose threads have not ended yet (a hung
# resolver). Past this many, a new request is not started: it would only queue.
MAX_ABANDONED = 4
PATHS = {
    # The backend's list route is /providers/ (a route "/" under the /providers prefix), asked
    # directly: /providers answers a 307 whose Location carries the scheme uvicorn believes in,
    # http:// behind a TLS-terminating proxy, which the redirect policy refuses.
    # Without include_inactive it hides exactly the providers is_active=0 is for.
    "providers": "/providers/?include_inactive=true",
    "stats": "/providers/stats",
}


class PendingFetch:
    """A request in flight; ``result()`` returns by its deadline, whatever the request does."""

    def __init__(self, client: ApiClient, flight: Flight):
        self._client, self._flight = client, flight

    def result(self) -> FetchResult:
        """The request's result, or ``timeout`` (with the phase it was in) at its deadline."""
        flight = self._flight
        result = flight.wait(flight.deadline + self._client.grace - time.monotonic())
        if result is None:
            timed_out = FetchResult(
                flight.endpoint,
                reason="timeout",
                cause=flight.phase,
                duration_seconds=time.monotonic() - flight.started,
            )
            if flight.finish(timed_out):
                self._client.abandon(flight)
            result = flight.wait(0)
        if result is None:  # unreachable: finished above, or by the worker
            result = FetchResult(flight.endpoint, reason="timeout", cause=flight.phase)
        return result


class ApiClient:
    """Fetches one endpoint within a whole-request deadline, with a body size cap."""

    def __init__(
        self,
        base_url: str,
        admin_key: str | None,
        *,
        timeout: float,
        max_bytes: int,
        tracer: Tracer | None = None,
        user_agent: str = "gatewayz-provider-metrics-exporter",
        grace: float = 0.05,
        resolve: Resolver = socket.getaddrinfo,
        wall_clock: Callable[[], float] = time.time,
    ):
        self._base_url = base_url.rstrip("/")
        self._timeout = min(timeout, MAX_TIMEOUT_SECONDS)
        self._max_bytes = max_bytes
        self.grace = grace  # lets the worker report its own timeout first, with its cause
        self._resolve = resolve
        self._wall_clock = wall_clock  # what a Retry-After date is counted from
        self._tracer = tracer or LocalTracer(ids=False)
        self._pools = tracked_pool_manager()
        self._public_headers = {
            "Accept": "application/json",
            "Accept-Encoding": make_headers(accept_encoding=True)["accept-encoding"],  # what urllib3 decodes
            "User-Agent": user_agent,
        }
        self._admin_headers = dict(self._public_headers)
        if admin_key:
            self._admin_headers["Authorization"] = f"Bearer {admin_key}"
        self._lock = threading.Lock()
        self._flights: set[Flight] = set()
        self._abandoned = 0
        self._closed = False

    @property
    def max_bytes(self) -> int:
        """The size cap of one answer (MAX_RESPONSE_BYTES)."""
        return self._max_bytes

    @property
    def timeout(self) -> float:
        """The deadline of one request, in seconds (REQUEST_TIMEOUT)."""
        return self._timeout

    def url(self, endpoint: str) -> str:
        """An endpoint's URL: a name in ``PATHS``, or a path of the API's own starting with ``/``."""
        return self._base_url + (endpoint if endpoint.startswith("/") else PATHS[endpoint])

    def close(self) -> None:
        """Abandon every request in flight and close the connection pool."""
        with self._lock:
            self._closed = True
            flights = list(self._flights)
        for flight in flights:
            flight.finish(FetchResult(flight.endpoint, reason="timeout", cause="cancelled"))
            flight.abandon()
        with contextlib.suppress(Exception):  # closing must not fail a shutdown
            self._pools.clear()

    def fetch(self, endpoint: str, *, authorized: bool = True) -> FetchResult:
        """GET one endpoint; returns within REQUEST_TIMEOUT (plus a few ms) and never raises.

        ``authorized=False`` sends no Authorization header (public routes), redirects included.
        """
        return self.begin(endpoint, authorized=authorized).result()

    def begin(self, endpoint: str, *, authorized: bool = True) -> PendingFetch:
        """Start fetching ``endpoint`` on a daemon thread; ``.result()`` waits for it until the deadline."""
        started = time.monotonic()
        flight = Flight(endpoint, started + self._timeout, started, self._resolve)
        pending = PendingFetch(self, flight)
        with self._lock:
            if self._closed or self._abandoned >= MAX_ABANDONED:
                cause = "cancelled" if self._closed else "stuck"
                flight.finish(FetchResult(endpoint, reason="timeout", cause=cause))
                return pending
            self._flights.add(flight)
        context = contextvars.copy_context()  # the poll's span stays the parent of the request's
        thread = threading.Thread(
            target=context.run, args=(self._work, flight, authorized), name=f"fetch-{endpoint}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (interpreter shutting down, thread limit)
            flight.finish(FetchResult(endpoint, reason="connection", cause="other"))
            with self._lock:
                self._flights.discard(flight)
        return pending

    def abandon(self, flight: Flight) -> None:
        """Give up on ``flight`` at its deadline: its sockets are shut, its thread ends soon."""
        with self._lock:
            if not flight.ended:
                flight.timed_out = True
                self._abandoned += 1
        flight.abandon()

    def _work(self, flight: Flight, authorized: bool) -> None:
        current.flight = flight
        try:
            result = self._fetch_now(flight, self._admin_headers if authorized else self._public_headers)
            flight.finish(result, functools.partial(_log_finished, flight.endpoint, result))
        finally:
            current.flight = None
            flight.release()
            with self._lock:
                flight.ended = True
                self._flights.discard(flight)
                if flight.timed_out:
                    self._abandoned -= 1

    def _fetch_now(self, flight: Flight, headers: dict[str, str]) -> FetchResult:
        try:
            payload, status = self._get_json(self.url(flight.endpoint), flight, headers)
        except Failure as failure:
            return FetchResult(
                flight.endpoint,
                reason=failure.reason,
                status_code=failure.status_code,
                retry_after_seconds=failure.retry_after,
                duration_seconds=time.monotonic() - flight.started,
                cause=failure.cause,
            )
        except Exception as error:  # noqa: BLE001 -- whatever the API did, the poll goes on
            reason, cause = classify(error, flight.phase)
            _log_unexpected(flight.endpoint, error, cause)
            return FetchResult(
                flight.endpoint,
                reason=reason,
                cause=cause,
                duration_seconds=time.monotonic() - flight.started,
            )
        return FetchResult(
            flight.endpoint,
            payload=payload,
            status_code=status,
            duration_seconds=time.monotonic() - flight.started,
        )

    def _get_json(self, url: str, flight: Flight, headers: dict[str, str]) -> tuple[object, int]:
        try:
            url = redirects.prepared_url(url)
            origin = redirects.origin_of(url)
        except redirects.RedirectRefused as refused:  # config validates GATEWAY_API_URL; a path may be odd
            raise Failure("connection", cause=refused.cause) from None
        for _ in range(MAX_REDIRECTS + 1):
            with self._tracer.start_as_current_span("GET", kind=CLIENT) as span:
                span.set_attribute("http.method", "GET")
                span.set_attribute("http.url", url)
                started = time.monotonic()
                try:
                    status, answer = self._exchange(url, flight, headers, span)
                finally:
                    span.set_attribute("duration_ms", round((time.monotonic() - started) * 1000, 3))
            if isinstance(answer, bytearray):
                return self._decode(answer), status
            try:
                target = redirects.follow(origin, url, answer)
            except redirects.RedirectRefused as refused:
                raise Failure("redirect", status, cause=refused.cause) from None
            log.debug("API redirect followed", extra={"endpoint": flight.endpoint, "status_code": status})
            url = target
        raise Failure("redirect", cause="too_many")

    def _exchange(
        self, url: str, flight: Flight, headers: dict[str, str], span: Span
    ) -> tuple[int, bytearray | str]:
        """One request: its status and body, or its status and ``Location`` for a redirect to judge."""
        response = self._request(url, flight, headers)
        try:
            status = response.status
            span.set_attribute("http.status_code", status)
            location = response.headers.get("Location")
            if location is not None and status in REDIRECT_STATUSES:
                return status, location
            self._check_status(response)
            flight.phase = "body"
            return status, self._read_body(response, flight)
        finally:
            # The connection is closed, not kept: a server's idle timeout can never fail the next poll.
            response.close()
            response.release_conn()

    def _request(self, url: str, flight: Flight, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """Send the request for ``url`` (prepared and judged) to the origin both parsers read in it."""
        remaining = flight.deadline - time.monotonic()
        if remaining <= 0:
            raise Failure("timeout", cause=flight.phase)
        flight.phase = "connect"
        headers = dict(headers)
        self._tracer.inject(headers)
        try:
            target = parse_url(url)
            pool = self._pools.connection_from_host(target.host, target.port, target.scheme)
            return pool.urlopen(
                "GET",
                target.request_uri,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
        except Exception as error:  # noqa: BLE001 -- refused, reset, DNS, TLS, malformed head, bad URL...
            reason, cause = classify(error, flight.phase)
            if cause == "other":
                _log_unexpected(flight.endpoint, error, cause)
            raise Failure(reason, cause=cause) from None

    def _check_status(self, response: urllib3.BaseHTTPResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise Failure("unauthorized", status)
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            raise Failure("rate_limited" if status == 429 else "http_error", status, retry_after)
        raise Failure("http_error", status)

    def _read_body(self, response: urllib3.BaseHTTPResponse, flight: Flight) -> bytearray:
        declared = content_length(response.headers.get("Content-Length"))
        if declared is not None and declared > self._max_bytes:
            raise Failure("too_large", response.status, cause="declared")
        deadline = flight.deadline
        body = bytearray()  # grows in place: no list of chunks joined into a second copy
        try:
            while True:
                self._shrink_read_timeout(response, deadline)
                # read1 returns what has arrived instead of waiting for a full chunk,
                # so the deadline is checked even when the body trickles in.
                chunk = response.read1(256 * 1024, decode_content=True)
                if not chunk:
                    break
                body += chunk
                if len(body) > self._max_bytes:
                    raise Failure("too_large", response.status, cause="read")
                if time.monotonic() > deadline:
                    raise Failure("timeout", response.status, cause="body")
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise Failure("timeout", response.status, cause="body") from None
        except urllib3.exceptions.DecodeError:
            raise Failure("truncated", response.status, cause="decoding") from None
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as error:
            _, cause = classify(error, "body")
            if cause == "other":
                _log_unexpected(flight.endpoint, error, cause)
            raise Failure("truncated", response.status, cause=cause) from None
        return body

    @staticmethod
    def _shrink_read_timeout(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
        """Keep the whole request within the deadline even when the body trickles in."""
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(max(0.001, deadline - time.monotonic()))

    @staticmethod
    def _decode(body: bytearray) -> object:
        try:
            return decode_json(body)  # what json.loads accepts; an array as raw records, parsed later
        except PayloadError as refused:  # too many records, or too dense to build
            raise Failure(refused.reason, 200, cause=str(refused)) from None
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise Failure("invalid_json", 200) from None


def _log_unexpected(endpoint: str, error: BaseException, cause: str) -> None:
    """The exception class of a failure no cause names more precisely (its text may carry a URL)."""
    log.debug(
        "API request failed unexpectedly",
        extra={"endpoint": endpoint, "error": type(error).__name__, "cause": cause},
    )


def _log_finished(endpoint: str, result: FetchResult) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "API request finished",
            extra={
                "endpoint": endpoint,
                "reason": result.reason,
                "cause": result.cause,
                "status_code": result.status_code,
                "duration_ms": round(result.duration_seconds * 1000, 1),
            },
        )


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is a loopback address or ``localhost`` (no name is resolved)."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
