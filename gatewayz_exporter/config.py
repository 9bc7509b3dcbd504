"""Exporter configuration: one frozen object, built from a mapping, validated once.

``Config.from_env(os.environ)`` collects *every* problem before failing, so an
operator fixes a bad deployment in one round trip. Secrets (``ADMIN_KEY``,
``LOKI_PASSWORD``) have no default and never appear in an error message.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from .syntax import is_ascii_digits, unbracket

DEFAULT_API_URL = "https://api.gatewayz.ai"
DEFAULT_PORT = 8001
SECRETS = frozenset({"admin_key", "loki_password"})  # never in Config's repr


class ConfigError(ValueError):
    """Raised with every configuration problem found; ``str()`` names each variable."""

    def __init__(self, problems: list[str]):
        self.problems = tuple(problems)
        super().__init__("invalid configuration: " + "; ".join(problems))


class Config(NamedTuple):
    """Everything the exporter needs to run; no field is read from the environment later.

    A NamedTuple rather than a dataclass: as immutable, and built at import without generating code.
    """

    gateway_api_url: str = DEFAULT_API_URL
    admin_key: str | None = None
    scrape_interval: float = 60.0
    metrics_port: int = DEFAULT_PORT
    metrics_addr: str | None = None  # None: every interface, IPv6 and IPv4
    request_timeout: float = 10.0
    max_staleness: float = 300.0
    max_response_bytes: int = 64 * 1024 * 1024
    log_level: str = "INFO"
    loki_url: str | None = None
    loki_username: str | None = None
    loki_password: str | None = None
    loki_tenant_id: str | None = None
    web_config_file: str | None = None
    demo: bool = False
    status_api: bool = True  # poll the backend's public status API (/v1/status/...)
    status_models_max: int = 500  # per-model status series budget; 0: none
    demo_down: frozenset[str] = frozenset()  # demo providers kept down (--demo only)

    def __repr__(self) -> str:
        """Every field but the secrets."""
        shown = (
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True) if name not in SECRETS
        )
        return f"Config({', '.join(shown)})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, demo: bool = False, web_config_file: str | None = None
    ) -> Config:
        """Build and validate a Config from ``env``; raise ConfigError listing every problem."""
        problems: list[str] = []

        def text(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        def number(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            # ASCII only: float() alone would take "١٢", "1_0", "nan" and "inf".
            value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
            if not math.isfinite(value) or value <= 0:
                problems.append(f"{name}: must be a positive number of seconds (got {_shown(raw)})")
                return default
            return value

        def url(name: str, raw: str | None, default: str | None) -> str | None:
            if raw is None:
                return default
            # A URL may carry a secret (user:password@, ?api_key=): never echo those parts.
            shown = _shown(_url_without_secrets(raw))
            try:
                parts = urlsplit(raw)
                parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
            except ValueError:
                problems.append(f"{name}: must be an http:// or https:// URL with a valid port (got {shown})")
                return default
            if parts.username or parts.password or "@" in parts.netloc:
                problems.append(f"{name}: must not contain credentials")
                return default
            if parts.query or parts.fragment or "?" in raw or "#" in raw:
                problems.append(f"{name}: must not contain a query or fragment (the key goes in ADMIN_KEY)")
                return default
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"{name}: must be an http:// or https:// URL (got {shown})")
                return default
            if not raw.isascii() or any(c.isspace() or not c.isprintable() for c in raw):
                problems.append(f"{name}: must be ASCII without spaces (use punycode and percent-encoding)")
                return default
            # urllib3 ends the host at a backslash, decodes a percent-encoded one and reads port 0
            # as the default; urllib.parse does none of these: the client would connect elsewhere.
            if "\\" in raw or ("%" in parts.hostname and not parts.netloc.startswith("[")) or parts.port == 0:
                problems.append(
                    f"{name}: must have no backslash, no percent-encoded host, no port 0 (got {shown})"
                )
                return default
            return raw.rstrip("/")

        api_url = url("GATEWAY_API_URL", text("GATEWAY_API_URL"), DEFAULT_API_URL)

        admin_key = env.get("ADMIN_KEY")
        if admin_key is not None:
            admin_key = admin_key.strip() or None
        if admin_key is None and not demo:
            problems.append("ADMIN_KEY: required (the GatewayZ admin API key)")
        elif admin_key is not None and not _is_visible_ascii(admin_key):
            # It goes into an HTTP header; never echo it, not even in part.
            problems.append(
                "ADMIN_KEY: must be visible ASCII characters only (no spaces, no control or non-ASCII characters)"
            )

        # The demo polls every 5 s by default so that trying it shows change within seconds.
        interval = number("SCRAPE_INTERVAL", 5.0 if demo else 60.0)
        timeout = number("REQUEST_TIMEOUT", 10.0)
        staleness = number("MAX_STALENESS", 5 * interval)
        if text("MAX_STALENESS") is not None and staleness < interval:
            problems.append(f"MAX_STALENESS: must be at least SCRAPE_INTERVAL ({interval:g}s)")

        metrics_port = DEFAULT_PORT
        port_setting = port_variable(env)
        if port_setting is not None:
            port_name, raw_port = port_setting
            parsed_port = parse_port(raw_port)
            if parsed_port is None:
                problems.append(
                    f"{port_name}: must be a port number from 1 to 65535 (got {_shown(raw_port)})"
                )
            else:
                metrics_port = parsed_port

        max_bytes = 64 * 1024 * 1024
        raw_max = text("MAX_RESPONSE_BYTES")
        if raw_max is not None:
            if is_ascii_digits(raw_max, max_digits=18) and int(raw_max) >= 1024:
                max_bytes = int(raw_max)
            else:
                problems.append(
                    f"MAX_RESPONSE_BYTES: must be a whole number of bytes, at least 1024 (got {_shown(raw_max)})"
                )

        log_level = (text("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            problems.append(
                f"LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got {_shown(log_level)})"
            )
            log_level = "INFO"

        loki_url = url("LOKI_URL", text("LOKI_URL"), None)
        loki_username, loki_password = text("LOKI_USERNAME"), env.get("LOKI_PASSWORD") or None
        if (loki_username is None) != (loki_password is None):
            problems.append("LOKI_USERNAME/LOKI_PASSWORD: set both or neither")

        web_config = web_config_file or text("WEB_CONFIG_FILE")

        metrics_addr = text("METRICS_ADDR")
        if metrics_addr is not None and not _is_address(metrics_addr):
            problems.append(f"METRICS_ADDR: must be an IP address or host name (got {_shown(metrics_addr)})")
        if loki_username is not None and not _is_header_safe(loki_username):
            problems.append("LOKI_USERNAME: must not contain control characters")
        tenant = text("LOKI_TENANT_ID")
        if tenant is not None and not _is_visible_ascii(tenant):
            problems.append("LOKI_TENANT_ID: must be visible ASCII characters only (it is an HTTP header)")
        if loki_password is not None and not _is_header_safe(loki_password):
            problems.append("LOKI_PASSWORD: must not contain control characters")

        status_api = (text("STATUS_API") or "on").lower()
        if status_api not in ("on", "off"):
            problems.append(f"STATUS_API: must be on or off (got {_shown(status_api)})")
        models_max = 500
        raw_models_max = text("STATUS_MODELS_MAX")
        if raw_models_max is not None:
            if is_ascii_digits(raw_models_max, max_digits=9):
                models_max = int(raw_models_max)
            else:
                problems.append(
                    f"STATUS_MODELS_MAX: must be a whole number of models, 0 for none (got {_shown(raw_models_max)})"
                )

        from .demo import DEMO_SLUGS  # the demo's provider names, nothing else

        demo_down = frozenset(s.strip() for s in (text("DEMO_DOWN") or "").split(",") if s.strip())
        if not demo_down <= set(DEMO_SLUGS):
            problems.append(
                f"DEMO_DOWN: must name demo providers ({', '.join(DEMO_SLUGS)}), "
                f"not {_shown(','.join(sorted(demo_down - set(DEMO_SLUGS))))}"
            )
            demo_down = frozenset()

        if problems:
            raise ConfigError(problems)
        return cls(
            gateway_api_url=api_url or DEFAULT_API_URL,
            admin_key=admin_key,
            scrape_interval=interval,
            metrics_port=metrics_port,
            metrics_addr=metrics_addr,
            request_timeout=timeout,
            max_staleness=staleness,
            max_response_bytes=max_bytes,
            log_level=log_level,
            loki_url=loki_url,
            loki_username=loki_username,
            loki_password=loki_password,
            loki_tenant_id=text("LOKI_TENANT_ID"),
            web_config_file=web_config,
            demo=demo,
            status_api=status_api != "off",
            status_models_max=models_max,
            demo_down=demo_down,
        )


_DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18}")


def _shown(raw: str) -> str:
    """A bad value as shown in an error: quoted, escaped, and cut short."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


def _url_without_secrets(raw: str) -> str:
    """``raw`` without user information, query and fragment, for error messages."""
    cut = min((i for i in (raw.find("?"), raw.find("#")) if i >= 0), default=len(raw))
    head = raw[:cut]
    scheme, sep, rest = head.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        head = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return head + ("..." if cut < len(raw) else "")


def port_variable(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(name, value) of the variable that sets the listening port: METRICS_PORT, else Railway's
    PORT; None when neither is set (blank counts as unset), for DEFAULT_PORT."""
    for name in ("METRICS_PORT", "PORT"):
        value = (env.get(name) or "").strip()
        if value:
            return name, value
    return None


def parse_port(raw: str) -> int | None:
    """A port number from 1 to 65535 in ASCII digits, else None."""
    return int(raw) if is_ascii_digits(raw, max_digits=5) and 1 <= int(raw) <= 65535 else None


def _is_visible_ascii(value: str) -> bool:
    return all("!" <= c <= "~" for c in value)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(unbracket(value))
        return True
    except ValueError:
        return (
            re.fullmatch(
                r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}"
                r"[A-Za-z0-9])?)*",
                value,
            )
            is not None
        )


def _is_header_safe(value: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
