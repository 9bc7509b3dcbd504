"""HTTP client for the GatewayZ provider endpoints: the only code that talks to the API.

``fetch`` never raises, whatever the API, the network or the resolver do: it
returns a ``FetchResult`` whose ``reason`` is one of ``model.REASONS`` and whose
``cause`` (refused, dns, tls, reset, head, body, ...) is one of ``CAUSES``.
Exception text never leaves this module (it can carry URLs); only those do.

``REQUEST_TIMEOUT`` is a deadline for the whole request: resolution, connect,
TLS, head and body. Each request runs on its own daemon thread; the caller
waits for it until the deadline and then abandons it, shutting down its socket
so the thread ends soon after. Name resolution cannot be interrupted, so a hung
resolver costs a thread until it answers, never the caller's time, and never
keeps the process alive (the threads are daemons).
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import errno
import http.client
import ipaddress
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from .parse import decode_json

log = logging.getLogger("gatewayz_exporter.client")

MAX_REDIRECTS = 5
# Sockets and Event.wait refuse timeouts past threading.TIMEOUT_MAX (~292 years) with
# OverflowError; a REQUEST_TIMEOUT beyond this (~31 years) is taken as this.
MAX_TIMEOUT_SECONDS = 1e9
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_RETRY_AFTER_SECONDS = 600
# Requests abandoned at their deadline whose threads have not ended yet (a hung
# resolver). Past this many, a new request is not started: it would only queue.
MAX_ABANDONED = 4
PATHS = {
    # The backend's list route is /providers/ (a route "/" under the /providers prefix), asked
    # directly: /providers answers a 307 whose Location carries the scheme uvicorn believes in,
    # http:// behind a TLS-terminating proxy, which the redirect policy rightly refuses.
    # Without include_inactive it hides exactly the providers is_active=0 is for.
    "providers": "/providers/?include_inactive=true",
    "stats": "/providers/stats",
}

# Why, more precisely than the reason: a log field, never a metric label.
CAUSES = (
    "dns",  # the host name did not resolve
    "refused",  # nothing listens there
    "unreachable",  # no route to the host or network
    "reset",  # the connection was reset or closed before an answer
    "tls",  # TLS handshake or certificate failure
    "bad_response",  # an answer that is not HTTP/1.x (bad status line, header too long, ...)
    "bad_url",  # a URL the client cannot request (a redirect target, usually)
    "connect",  # timed out resolving or connecting
    "head",  # timed out waiting for the status line and headers
    "body",  # timed out reading the body
    "stuck",  # not started: earlier requests are still stuck in name resolution
    "cross_origin",  # a redirect to another host, port or scheme
    "too_many",  # more than MAX_REDIRECTS redirects
    "declared",  # Content-Length over the limit
    "read",  # body over the limit as read
    "decoding",  # Content-Encoding that does not decode
    "cancelled",  # the exporter is stopping
    "other",  # anything else; the exception class is logged at DEBUG
)

_ASCII_DIGITS = re.compile(r"[0-9]+")
Resolver = Callable[..., object]  # socket.getaddrinfo's shape


@dataclass(frozen=True, slots=True)
class FetchResult:
    endpoint: str
    payload: object = None
    reason: str | None = None  # None on success
    status_code: int | None = None
    retry_after_seconds: float | None = None
    duration_seconds: float = 0.0  # from the start of the request to its answer (or the deadline)
    cause: str | None = None  # one of CAUSES, with some reasons

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Failure(Exception):
    def __init__(
        self,
        reason: str,
        status_code: int | None = None,
        retry_after: float | None = None,
        cause: str | None = None,
    ):
        super().__init__(reason)
        self.reason, self.status_code, self.retry_after, self.cause = reason, status_code, retry_after, cause


_RETRY = Retry(total=0, retry_after_max=MAX_RETRY_AFTER_SECONDS)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date, by urllib3); None if absent or bad.

    ASCII digits only; capped at MAX_RETRY_AFTER_SECONDS. An HTTP date is counted
    from ``now`` (Unix time; the exporter's wall clock, injected in tests) when given.
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(_RETRY.parse_retry_after(value))  # validates; a date counts from time.time()
        if now is not None and not _ASCII_DIGITS.fullmatch(value.strip()):
            # The same stdlib date parser urllib3 uses, against our clock rather than time.time().
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                seconds = min(max(0.0, email.utils.mktime_tz(parsed) - now), MAX_RETRY_AFTER_SECONDS)
        return seconds
    except Exception:  # noqa: BLE001 -- InvalidHeader, a number too long for int(), a date out of range
        return None


def content_length(value: str | None) -> int | None:
    """A Content-Length of ASCII digits, else None (the body is then read up to the limit)."""
    if value is None:
        return None
    value = value.strip()
    if not _ASCII_DIGITS.fullmatch(value):
        return None
    return int(value) if len(value) <= 18 else sys.maxsize  # int() refuses over 4300 digits


def _same_origin(a: str, b: str) -> bool:
    """Bearer tokens follow a redirect only to the same host and port (http->https allowed)."""
    pa, pb = urlsplit(a), urlsplit(b)
    if pb.scheme not in ("http", "https") or (pa.scheme == "https" and pb.scheme != "https"):
        return False
    default = {"http": 80, "https": 443}
    return (pa.hostname or "").lower() == (pb.hostname or "").lower() and (pa.port or default[pa.scheme]) == (
        pb.port or default[pb.scheme]
    )


# --- abandoning a request -----------------------------------------------------------------


class _Flight:
    """One request on its own thread: its result, its deadline, the sockets it opened.

    The waiter and the worker race to finish it; the first to ``finish`` wins.
    Sockets are tracked as duplicates of their descriptors, so shutting one down
    reaches the connection even after TLS has wrapped (and detached) the original.
    """

    def __init__(self, endpoint: str, deadline: float, started: float, resolve: Resolver):
        self.endpoint = endpoint
        self.resolve = resolve
        self.deadline = deadline
        self.started = started
        self.phase = "connect"
        self.location: str | None = None  # the latest answer's Location header
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: FetchResult | None = None
        self._sockets: list[socket.socket] = []
        self.abandoned = False  # the waiter gave up (deadline) or the client closed
        self.ended = False  # the worker thread is done (guarded by the client's lock)
        self.timed_out = False  # counted in the client's abandoned requests (same lock)

    def track(self, sock: socket.socket) -> None:
        """Remember ``sock``; if the waiter already gave up, shut it and fail the request now."""
        try:
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        with self._lock:
            if not self.abandoned:
                self._sockets.append(duplicate)
                return
        _shutdown(duplicate)
        duplicate.close()
        raise urllib3.exceptions.ConnectTimeoutError("request abandoned at its deadline")

    def finish(self, result: FetchResult) -> bool:
        """Record ``result`` unless the flight already ended; True if it was recorded."""
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
        self._done.set()
        return True

    def wait(self, timeout: float) -> FetchResult | None:
        self._done.wait(max(0.0, timeout))
        with self._lock:
            return self._result

    def abandon(self) -> None:
        """Shut the request's sockets down: its thread's blocked reads end at once."""
        with self._lock:  # held, so release() cannot close (and the OS reuse) a descriptor meanwhile
            self.abandoned = True
            for sock in self._sockets:
                _shutdown(sock)

    def release(self) -> None:
        """The worker is done: close the duplicates (the connections themselves stay pooled)."""
        with self._lock:
            self.abandoned = True
            for sock in self._sockets:
                sock.close()
            self._sockets = []


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()  # the worker thread's _Flight, for the connection hooks below


def _track(sock: socket.socket) -> None:
    flight: _Flight | None = getattr(_current, "flight", None)
    if flight is not None:
        flight.track(sock)


def _set_phase(phase: str) -> None:
    flight: _Flight | None = getattr(_current, "flight", None)
    if flight is not None:
        flight.phase = phase


def _new_tracked_conn(conn: HTTPConnection, new_conn: Callable[[], socket.socket]) -> socket.socket:
    host = conn.host
    flight: _Flight | None = getattr(_current, "flight", None)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if flight is not None:
            # Resolve once on our own first, so a hung or failing resolver is told apart
            # from a host that does not answer; the resolver's cache serves the second.
            flight.phase = "dns"
            try:
                flight.resolve(host, conn.port, type=socket.SOCK_STREAM)
            except socket.gaierror as error:
                raise urllib3.exceptions.NameResolutionError(host, conn, error) from error
    _set_phase("connect")
    sock = new_conn()
    try:
        _track(sock)
    except BaseException:
        sock.close()
        raise
    return sock


class _InterimSkippingResponse(http.client.HTTPResponse):
    """http.client skips only ``100 Continue``; 102 Processing and 103 Early Hints are interim
    answers too (RFC 9110 15.2), followed by the real one. Reported as 100, they are skipped
    the same way; a stream of them is cut by the deadline like any slow head."""

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]  # private, stable since 3.0
        if 100 < status < 200 and status != 101:  # 101 without an Upgrade asked for stays an error
            return version, http.client.CONTINUE, reason
        return version, status, reason


class _TrackedHTTPConnection(HTTPConnection):
    response_class = _InterimSkippingResponse

    def _new_conn(self) -> socket.socket:
        return _new_tracked_conn(self, super()._new_conn)

    def connect(self) -> None:
        super().connect()
        _set_phase("head")


class _TrackedHTTPSConnection(HTTPSConnection):
    response_class = _InterimSkippingResponse

    def _new_conn(self) -> socket.socket:
        sock = _new_tracked_conn(self, super()._new_conn)
        _set_phase("tls")
        return sock

    def connect(self) -> None:
        super().connect()
        _set_phase("head")


def _track_reused(conn: Any) -> Any:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            _track(sock)
        except BaseException:
            conn.close()
            raise
        _set_phase("head")
    return conn


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _track_reused(super()._get_conn(timeout))


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _track_reused(super()._get_conn(timeout))


def _take_location(response: requests.Response, *args: object, **kwargs: object) -> requests.Response:
    """Move Location out of requests' reach: it parses it even with allow_redirects=False,
    and raises on an invalid port or a header that is not UTF-8. Redirects are ours to judge."""
    flight: _Flight | None = getattr(_current, "flight", None)
    if flight is not None:
        flight.location = response.headers.pop("Location", None)
    return response


class _TrackingAdapter(HTTPAdapter):
    """requests' adapter whose connections report their sockets to the current flight."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


# --- classifying failures -----------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (urllib3 and requests nest them several deep)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nested in (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def classify(error: BaseException, phase: str) -> tuple[str, str]:
    """(reason, cause) for a failed request; ``phase`` is where it was when it failed."""
    chain = _chain(error)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(socket.gaierror, urllib3.exceptions.NameResolutionError):
        return "connection", "dns"
    if has(ssl.SSLError, ssl.CertificateError, requests.exceptions.SSLError):
        return "connection", "tls"
    if has(ConnectionRefusedError):
        return "connection", "refused"
    if has(TimeoutError, socket.timeout, requests.Timeout, urllib3.exceptions.TimeoutError):
        return "timeout", phase
    if has(ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected):
        return "connection", "reset"
    unreachable = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN)
    if any(isinstance(e, OSError) and e.errno in unreachable for e in chain):
        return "connection", "unreachable"
    if has(
        http.client.HTTPException,
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.InvalidHeader,
        requests.exceptions.InvalidHeader,
        requests.exceptions.ContentDecodingError,
    ):
        return "connection", "bad_response"
    if has(
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
        urllib3.exceptions.LocationParseError,
        UnicodeError,
    ):
        return "connection", "bad_url"
    return "connection", "other"


# --- the client -----------------------------------------------------------------------------


class PendingFetch:
    """A request in flight; ``result()`` returns by its deadline, whatever the request does."""

    def __init__(self, client: ApiClient, flight: _Flight):
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
        session: requests.Session | None = None,
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
        self._session = session or requests.Session()
        self._session.trust_env = False  # no ~/.netrc auth or proxy surprises
        adapter = _TrackingAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.hooks["response"].append(_take_location)
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._public_headers = dict(self._headers)
        if admin_key:
            self._headers["Authorization"] = f"Bearer {admin_key}"
        self._lock = threading.Lock()
        self._flights: set[_Flight] = set()
        self._abandoned = 0
        self._closed = False

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
            self._session.close()

    def fetch(self, endpoint: str, *, authorized: bool = True) -> FetchResult:
        """GET one endpoint; returns within REQUEST_TIMEOUT (plus a few ms) and never raises.

        ``authorized=False`` sends no Authorization header (public routes), redirects included.
        """
        return self.begin(endpoint, authorized=authorized).result()

    def begin(self, endpoint: str, *, authorized: bool = True) -> PendingFetch:
        """Start fetching ``endpoint`` on a daemon thread; ``.result()`` waits for it until the deadline."""
        started = time.monotonic()
        flight = _Flight(endpoint, started + self._timeout, started, self._resolve)
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

    def abandon(self, flight: _Flight) -> None:
        """Give up on ``flight`` at its deadline: its sockets are shut, its thread ends soon."""
        with self._lock:
            if not flight.ended:
                flight.timed_out = True
                self._abandoned += 1
        flight.abandon()

    def _work(self, flight: _Flight, authorized: bool) -> None:
        _current.flight = flight
        try:
            result = self._fetch_now(flight, self._headers if authorized else self._public_headers)
            if flight.finish(result) and log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "API request finished",
                    extra={
                        "endpoint": flight.endpoint,
                        "reason": result.reason,
                        "cause": result.cause,
                        "status_code": result.status_code,
                        "duration_ms": round(result.duration_seconds * 1000, 1),
                    },
                )
        finally:
            _current.flight = None
            flight.release()
            with self._lock:
                flight.ended = True
                self._flights.discard(flight)
                if flight.timed_out:
                    self._abandoned -= 1

    def _fetch_now(self, flight: _Flight, headers: dict[str, str]) -> FetchResult:
        try:
            payload, status = self._get_json(self.url(flight.endpoint), flight, headers)
        except _Failure as failure:
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
            log.debug(
                "API request failed unexpectedly",
                extra={"endpoint": flight.endpoint, "error": type(error).__name__, "cause": cause},
            )
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

    def _get_json(self, url: str, flight: _Flight, headers: dict[str, str]) -> tuple[object, int]:
        origin = url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request(url, flight, headers)
            with response:
                location = flight.location
                if location is not None and response.status_code in REDIRECT_STATUSES:
                    try:
                        target = urljoin(url, location)
                        allowed = _same_origin(origin, target)
                    except ValueError:  # an invalid port or IPv6 literal in Location
                        raise _Failure("redirect", response.status_code, cause="bad_url") from None
                    if not allowed:
                        raise _Failure("redirect", response.status_code, cause="cross_origin")
                    log.debug(
                        "API redirect followed",
                        extra={"endpoint": flight.endpoint, "status_code": response.status_code},
                    )
                    url = target
                    continue
                self._check_status(response)
                flight.phase = "body"
                body = self._read_body(response, flight.deadline)
                status = response.status_code
            return self._decode(body), status
        raise _Failure("redirect", cause="too_many")

    def _request(self, url: str, flight: _Flight, headers: dict[str, str]) -> requests.Response:
        remaining = flight.deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure("timeout", cause=flight.phase)
        flight.phase = "connect"
        flight.location = None
        try:
            return self._session.get(
                url, headers=headers, timeout=remaining, stream=True, allow_redirects=False
            )
        except Exception as error:  # noqa: BLE001 -- refused, reset, DNS, TLS, malformed head, bad URL...
            reason, cause = classify(error, flight.phase)
            raise _Failure(reason, cause=cause) from None

    def _check_status(self, response: requests.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise _Failure("unauthorized", status)
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            raise _Failure("rate_limited" if status == 429 else "http_error", status, retry_after)
        raise _Failure("http_error", status)

    def _read_body(self, response: requests.Response, deadline: float) -> bytearray:
        declared = content_length(response.headers.get("Content-Length"))
        if declared is not None and declared > self._max_bytes:
            raise _Failure("too_large", response.status_code, cause="declared")
        body = bytearray()  # grows in place: no list of chunks joined into a second copy
        raw = response.raw
        try:
            while True:
                self._shrink_read_timeout(response, deadline)
                # read1 returns what has arrived instead of waiting for a full chunk,
                # so the deadline is checked even when the body trickles in.
                chunk = raw.read1(256 * 1024, decode_content=True)
                if not chunk:
                    break
                body += chunk
                if len(body) > self._max_bytes:
                    raise _Failure("too_large", response.status_code, cause="read")
                if time.monotonic() > deadline:
                    raise _Failure("timeout", response.status_code, cause="body")
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise _Failure("timeout", response.status_code, cause="body") from None
        except urllib3.exceptions.DecodeError:
            raise _Failure("truncated", response.status_code, cause="decoding") from None
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as error:
            _, cause = classify(error, "body")
            raise _Failure("truncated", response.status_code, cause=cause) from None
        return body

    @staticmethod
    def _shrink_read_timeout(response: requests.Response, deadline: float) -> None:
        """Keep the whole request within the deadline even when the body trickles in."""
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(max(0.001, deadline - time.monotonic()))

    @staticmethod
    def _decode(body: bytearray) -> object:
        try:
            return decode_json(body)  # what json.loads accepts; an array as raw records, parsed later
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _Failure("invalid_json", 200) from None


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
