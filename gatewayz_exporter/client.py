"""HTTP client for the GatewayZ provider endpoints: the only code that talks to the API.

``fetch`` never raises for upstream trouble: it returns a ``FetchResult`` whose
``reason`` is one of ``model.REASONS``. Exception text never leaves this module
(it can carry URLs); only the reason does.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .parse import decode_json

MAX_REDIRECTS = 5
PATHS = {
    # The backend's list route is /providers/ and /providers redirects there;
    # without include_inactive it hides exactly the providers is_active=0 is for.
    "providers": "/providers?include_inactive=true",
    "stats": "/providers/stats",
}


@dataclass(frozen=True, slots=True)
class FetchResult:
    endpoint: str
    payload: object = None
    reason: str | None = None  # None on success
    status_code: int | None = None
    retry_after_seconds: float | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Failure(Exception):
    def __init__(self, reason: str, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.status_code, self.retry_after = reason, status_code, retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _same_origin(a: str, b: str) -> bool:
    """Bearer tokens follow a redirect only to the same host and port (http->https allowed)."""
    pa, pb = urlsplit(a), urlsplit(b)
    if pb.scheme not in ("http", "https") or (pa.scheme == "https" and pb.scheme != "https"):
        return False
    default = {"http": 80, "https": 443}
    return (pa.hostname or "").lower() == (pb.hostname or "").lower() and (pa.port or default[pa.scheme]) == (
        pb.port or default[pb.scheme]
    )


class ApiClient:
    """Fetches one endpoint with a whole-request deadline and a body size cap."""

    def __init__(
        self,
        base_url: str,
        admin_key: str | None,
        *,
        timeout: float,
        max_bytes: int,
        session: requests.Session | None = None,
        user_agent: str = "gatewayz-provider-metrics-exporter",
    ):
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._session = session or requests.Session()
        self._session.trust_env = False  # no ~/.netrc auth or proxy surprises
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if admin_key:
            self._headers["Authorization"] = f"Bearer {admin_key}"

    def url(self, endpoint: str) -> str:
        return self._base_url + PATHS[endpoint]

    def close(self) -> None:
        self._session.close()

    def fetch(self, endpoint: str) -> FetchResult:
        started = time.monotonic()
        deadline = started + self._timeout
        try:
            payload = self._get_json(self.url(endpoint), deadline)
        except _Failure as failure:
            return FetchResult(
                endpoint,
                reason=failure.reason,
                status_code=failure.status_code,
                retry_after_seconds=failure.retry_after,
                duration_seconds=time.monotonic() - started,
            )
        return FetchResult(
            endpoint, payload=payload, status_code=200, duration_seconds=time.monotonic() - started
        )

    def _get_json(self, url: str, deadline: float) -> object:
        origin = url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request(url, deadline)
            with response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("Location", ""))
                    if not _same_origin(origin, target):
                        raise _Failure("redirect", response.status_code)
                    url = target
                    continue
                self._check_status(response)
                body = self._read_body(response, deadline)
            return self._decode(body)
        raise _Failure("redirect")

    def _request(self, url: str, deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure("timeout")
        try:
            return self._session.get(
                url, headers=self._headers, timeout=remaining, stream=True, allow_redirects=False
            )
        except requests.Timeout:  # connect, or waiting for the status line and headers
            raise _Failure("timeout") from None
        except requests.RequestException:  # refused, reset, DNS, TLS, malformed response head
            raise _Failure("connection") from None

    @staticmethod
    def _check_status(response: requests.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise _Failure("unauthorized", status)
        if status == 429:
            raise _Failure("rate_limited", status, parse_retry_after(response.headers.get("Retry-After")))
        raise _Failure(
            "http_error",
            status,
            parse_retry_after(response.headers.get("Retry-After")) if status == 503 else None,
        )

    def _read_body(self, response: requests.Response, deadline: float) -> bytearray:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise _Failure("too_large", response.status_code)
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
                    raise _Failure("too_large", response.status_code)
                if time.monotonic() > deadline:
                    raise _Failure("timeout", response.status_code)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise _Failure("timeout", response.status_code) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError, OSError):
            raise _Failure("truncated", response.status_code) from None
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
