"""Which redirects the client follows: the admin key goes only where the first request went.

A ``Location`` is refused where ``urllib.parse`` and urllib3's ``parse_url`` could read it
differently (backslashes, white space, control characters) or where it carries user info; what
is left must name the same scheme, host and port by both parsers.
"""

from __future__ import annotations

import logging
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

from urllib3.util import parse_url

from .syntax import unbracket

log = logging.getLogger("gatewayz_exporter.client")

_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(Exception):
    """A redirect the client will not follow; ``cause`` is the log's cause field."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def _unsafe(location: str) -> bool:
    return any(c == "\\" or c.isspace() or not c.isprintable() or ord(c) < 0x21 for c in location)


def _origin_by_both_parsers(url: str) -> Origin:
    """The URL's origin as urllib3 and urllib.parse both read it; refused if they differ or carry user info."""
    try:
        strict = parse_url(url)
        loose = urlsplit(url)
        loose_port = loose.port  # raises ValueError on a port out of range
    except ValueError:  # LocationParseError is a ValueError
        raise RedirectRefused("bad_url") from None
    scheme = (strict.scheme or "").lower()
    if strict.auth is not None or loose.username is not None or "@" in loose.netloc:
        raise RedirectRefused("bad_url")
    if scheme not in _DEFAULT_PORTS:
        raise RedirectRefused("cross_origin")
    host = unbracket((strict.host or "").lower())
    if host != (loose.hostname or "").lower() or scheme != loose.scheme.lower():
        raise RedirectRefused("bad_url")
    port = strict.port or _DEFAULT_PORTS[scheme]
    if port != (loose_port or _DEFAULT_PORTS[scheme]):
        raise RedirectRefused("bad_url")
    return Origin(scheme, host, port)


def origin_of(url: str) -> Origin:
    """The origin of the client's own base URL (config has validated it)."""
    return _origin_by_both_parsers(prepared_url(url))


def prepared_url(url: str) -> str:
    """The URL exactly as the client will request it: urllib3's reading, normalized.

    The host lowercased (an internationalized one in its IDNA form), characters a URL may
    not carry percent-encoded, dot segments removed, an empty path as ``/``. A scheme other
    than http(s) is left as it is, for the origin check to refuse.
    """
    url = url.lstrip()
    if ":" in url and not url.lower().startswith("http"):
        return url
    try:
        parsed = parse_url(_ascii_host(url))
    except ValueError:  # LocationParseError is a ValueError; UnicodeError too
        raise RedirectRefused("bad_url") from None
    if not parsed.scheme or not parsed.host or parsed.host.startswith(("*", ".")):
        raise RedirectRefused("bad_url")
    return parsed._replace(path=parsed.path or "/").url


def _ascii_host(url: str) -> str:
    """``url`` with a non-ASCII host in IDNA form (the standard library's codec, so urllib3
    needs no ``idna`` package to read it); a URL that is all ASCII as it is."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname
    if host is None or host.isascii():
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if not hostport.lower().startswith(host):  # a host whose lower case is spelled longer
        raise ValueError(url)
    port = hostport[len(host) :]
    netloc = (userinfo + "@" if userinfo else "") + host.encode("idna").decode("ascii") + port
    return urlunsplit(parts._replace(netloc=netloc))


def follow(origin: Origin, current_url: str, location: str) -> str:
    """The URL to request next for ``Location: location``; raises ``RedirectRefused`` if it is not followed.

    Allowed: the same host and port, by scheme http->http, https->https or
    http->https. An https->http redirect on the same host is refused with its own
    cause and a WARNING: the API builds its URLs from the scheme it sees, so behind
    a TLS-terminating proxy it must trust the proxy's forwarded headers.
    """
    if _unsafe(location):
        raise RedirectRefused("bad_url")
    try:
        target = prepared_url(urljoin(current_url, location))
    except ValueError:  # an invalid IPv6 literal
        raise RedirectRefused("bad_url") from None
    to = _origin_by_both_parsers(target)
    if to.host != origin.host:
        raise RedirectRefused("cross_origin")
    if origin.scheme == "https" and to.scheme == "http":
        log.warning(
            "API redirected from https to http; not followed. The API must build https URLs behind "
            "its TLS proxy (uvicorn --proxy-headers --forwarded-allow-ips=<proxy address>)",
            extra={"cause": "scheme_downgrade"},
        )
        raise RedirectRefused("scheme_downgrade")
    if to.port != origin.port:
        raise RedirectRefused("cross_origin")
    return target
