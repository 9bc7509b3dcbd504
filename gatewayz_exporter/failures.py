"""What went wrong with a request, as values: a reason from ``model.REASONS`` and a cause from ``CAUSES``.

Exception text never leaves the client (it can carry URLs); only these do. Also
the two headers whose numbers the client trusts: Retry-After and Content-Length.
"""

from __future__ import annotations

import email.utils
import errno
import http.client
import socket
import ssl
import sys
from dataclasses import dataclass

import urllib3
from urllib3.util.retry import Retry

from .syntax import is_ascii_digits

MAX_RETRY_AFTER_SECONDS = 600

# Why, more precisely than the reason: a log field, never a metric label.
CAUSES = (
    "dns",  # the host name did not resolve
    "refused",  # nothing listens there
    "unreachable",  # no route to the host or network
    "reset",  # the connection was reset or closed before an answer
    "tls",  # TLS handshake or certificate failure
    "bad_response",  # an answer that is not HTTP/1.x (bad status line, header too long, ...)
    "bad_url",  # a URL the client cannot or will not request (a redirect target, usually)
    "connect",  # timed out resolving or connecting
    "head",  # timed out waiting for the status line and headers
    "body",  # timed out reading the body
    "stuck",  # not started: earlier requests are still stuck in name resolution
    "cross_origin",  # a redirect to another host, port or scheme
    "scheme_downgrade",  # a redirect from https to http on the same host
    "too_many",  # more than MAX_REDIRECTS redirects
    "declared",  # Content-Length over the limit
    "read",  # body over the limit as read
    "decoding",  # Content-Encoding that does not decode
    "cancelled",  # the exporter is stopping
    "other",  # anything else; the exception class is logged at DEBUG
)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one request came to: a payload, or a reason (``model.REASONS``) with a cause (``CAUSES``)."""

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


class Failure(Exception):
    """A request that failed for a known reason; becomes a FetchResult, never leaves the client."""

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
        if now is not None and not is_ascii_digits(value.strip()):
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
    if not is_ascii_digits(value):
        return None
    return int(value) if len(value) <= 18 else sys.maxsize  # int() refuses over 4300 digits


def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (urllib3 nests them several deep)."""
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
    if has(ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError):
        return "connection", "tls"
    if has(ConnectionRefusedError):
        return "connection", "refused"
    if has(TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError):
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
        urllib3.exceptions.DecodeError,
    ):
        return "connection", "bad_response"
    if has(urllib3.exceptions.LocationValueError, UnicodeError):  # LocationParseError is one
        return "connection", "bad_url"
    return "connection", "other"
