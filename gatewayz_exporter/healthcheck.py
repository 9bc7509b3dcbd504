"""Container health check without curl: ``python -m gatewayz_exporter.healthcheck``.

Asks the exporter's own ``/healthz`` on its port (``METRICS_PORT``, else Railway's ``PORT``, else
8001). Exit 0 when it answers 200, 1 otherwise. It cannot see how the server was set up, so it
tries the likely addresses (``METRICS_ADDR``, then 127.0.0.1 and ::1) and schemes (https first
when a web config with TLS is found), all within ``BUDGET_SECONDS``.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from .config import DEFAULT_PORT, parse_port, port_variable
from .syntax import unbracket
from .webconfig import read_config_file

BUDGET_SECONDS = 4.0
ATTEMPT_SECONDS = 1.5


def exporter_argv(cmdline_path: str = "/proc/1/cmdline") -> list[str]:
    """The exporter's command line, or [] when it cannot be read (not PID 1, no /proc)."""
    try:
        with Path(cmdline_path).open("rb") as file:
            raw = file.read(64 * 1024)
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def web_config_path(env: Mapping[str, str], argv: Sequence[str]) -> str | None:
    """The web config file the exporter was given: ``--web.config.file`` wins over ``WEB_CONFIG_FILE``."""
    for index, arg in enumerate(argv):
        if arg.startswith("--web.config.file="):
            return arg.partition("=")[2]
        if arg == "--web.config.file":
            return argv[index + 1] if index + 1 < len(argv) else ""
    return (env.get("WEB_CONFIG_FILE") or "").strip() or None


def tls_configured(env: Mapping[str, str], argv: Sequence[str]) -> bool:
    """True when the exporter's web config may turn TLS on.

    A config with basic auth only serves plain HTTP; asking it https first would wait
    out a whole attempt. A file the probe cannot read or parse counts as TLS (both
    schemes are tried anyway).
    """
    path = web_config_path(env, argv)
    if path is None:
        return False
    try:
        # The exporter's own reader: a FIFO or a device there must not hang the probe.
        document = yaml.safe_load(read_config_file(path))
    except (ValueError, yaml.YAMLError):  # WebConfigError is a ValueError
        return True
    return not isinstance(document, dict) or document.get("tls_server_config") is not None


def candidate_hosts(metrics_addr: str | None) -> list[str]:
    host = unbracket((metrics_addr or "").strip())
    first = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return list(dict.fromkeys([first, "127.0.0.1", "::1"]))


def probe(host: str, port: int, tls: bool, timeout: float) -> bool:
    """One GET /healthz; True on 200."""
    connection: http.client.HTTPConnection
    if tls:
        # Any certificate: the probe checks liveness, and a certificate for a public
        # name never matches the loopback address it asks.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read(1024)
        return response.status == 200
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        connection.close()


def main(env: Mapping[str, str] | None = None, argv: Sequence[str] | None = None) -> int:
    env = os.environ if env is None else env
    argv = exporter_argv() if argv is None else argv
    setting = port_variable(env)
    port = DEFAULT_PORT if setting is None else parse_port(setting[1])
    if port is None:
        return 1
    schemes = [True, False] if tls_configured(env, argv) else [False, True]
    deadline = time.monotonic() + BUDGET_SECONDS
    for host in candidate_hosts(env.get("METRICS_ADDR")):
        for tls in schemes:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                return 1
            if probe(host, port, tls, min(ATTEMPT_SECONDS, remaining)):
                return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
