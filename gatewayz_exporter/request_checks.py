"""What a request's bytes may look like before h11 reads them, and the log of clients' mistakes.

h11 decides where a request ends; these checks refuse early what h11 would
accept or wait on: obs-fold, bytes that can never begin a request line, an
invalid Host.
"""

from __future__ import annotations

import logging
import re
import time

log = logging.getLogger("gatewayz_exporter.server")

# RFC 9112 §5.2 lets a server reject obs-fold with 400; h11 would unfold it silently. An LF
# followed by SP or HTAB never occurs in a valid request head, and this server takes no bodies.
FOLD = re.compile(rb"\n[ \t]")
# RFC 9112 §3 request-line (method SP request-target SP HTTP-version), as h11 reads it, and every
# prefix of one. h11 waits for a whole head before it reads the line, so bytes that can never
# start a request (an SSLv2 ClientHello, an SSH banner, binary) would hold the connection until
# the head deadline; they are refused as soon as they arrive.
_TCHARS = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(_TCHARS + rb"+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r?")
_REQUEST_LINE_PREFIX = re.compile(
    _TCHARS + rb"*(?: [\x21-\x7e]*(?: (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?)?)?"
)
# RFC 3986 host [":" port]: reg-name, IPv4 or a bracketed IP literal.
HOST_HEADER = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")


def path_of(target: bytes) -> bytes:
    """The path of an origin-form or absolute-form request target (RFC 9112 §3.2)."""
    if target.startswith(b"/"):
        return target.split(b"?", 1)[0].split(b"#", 1)[0]
    scheme, sep, rest = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        slash = rest.find(b"/")
        return path_of(rest[slash:]) if slash >= 0 else b"/"
    return target  # asterisk-form or nonsense: no route matches it


def could_be_request_line(received: bytes) -> bool:
    """False when the bytes of a request received so far cannot begin with a request-line."""
    line, newline, _ = received.partition(b"\n")
    pattern = _REQUEST_LINE if newline else _REQUEST_LINE_PREFIX
    return pattern.fullmatch(line) is not None


class ClientErrorLog:
    """DEBUG lines about clients' bad requests, at most ``burst`` and then one per ``interval``."""

    def __init__(self, interval: float = 1.0, burst: int = 5):
        self._interval = interval
        self._tokens = float(burst)
        self._burst = float(burst)
        self._updated = time.monotonic()
        self._suppressed = 0

    def __call__(self, event: str, peer: str | None, **fields: object) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) / self._interval)
        self._updated = now
        if self._tokens < 1:
            self._suppressed += 1
            return
        self._tokens -= 1
        suppressed, self._suppressed = self._suppressed, 0
        log.debug(event, extra={"peer": peer, "suppressed": suppressed, **fields})
