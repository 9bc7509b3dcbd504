"""The client's deadline machinery: each request on its own thread, abandoned at its deadline.

A ``Flight`` is one request: its deadline, the phase it is in (for the timeout's
cause) and the sockets it opened. The connection classes below report every
socket to the current thread's flight, so the waiter can shut them down at the
deadline and the worker's blocked reads end at once. Name resolution runs first
on its own (``Flight.resolve``) so a hung resolver is told apart from a silent
host; it cannot be interrupted, so it costs a daemon thread, never the caller's time.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .failures import FetchResult
from .syntax import unbracket

Resolver = Callable[..., object]  # socket.getaddrinfo's shape


class Flight:
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

    def finish(self, result: FetchResult, recorded: Callable[[], None] | None = None) -> bool:
        """Record ``result`` unless the flight already ended; True if it was recorded.

        ``recorded`` runs before the waiter is woken, so what it logs precedes what the waiter does.
        """
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
        if recorded is not None:
            recorded()
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


current = threading.local()  # the worker thread's Flight, for the connection hooks below


def _track(sock: socket.socket) -> None:
    flight: Flight | None = getattr(current, "flight", None)
    if flight is not None:
        flight.track(sock)


def _set_phase(phase: str) -> None:
    flight: Flight | None = getattr(current, "flight", None)
    if flight is not None:
        flight.phase = phase


def _new_tracked_conn(conn: HTTPConnection, new_conn: Callable[[], socket.socket]) -> socket.socket:
    host = conn.host
    flight: Flight | None = getattr(current, "flight", None)
    try:
        ipaddress.ip_address(unbracket(host))
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


def tracked_pool_manager() -> urllib3.PoolManager:
    """Connection pools whose connections report their sockets to the current flight.

    No proxy, no ``.netrc``: urllib3 reads nothing from the environment. TLS is verified
    against the system's certificate store (urllib3's default).
    """
    manager = urllib3.PoolManager(num_pools=10, maxsize=10)
    manager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}
    return manager
