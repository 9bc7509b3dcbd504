"""Container health check without curl: ``python -m gatewayz_exporter.healthcheck``.

Asks this container's own ``/healthz`` on the port the exporter listens on
(``METRICS_PORT``, else Railway's ``PORT``, else 8001), over HTTPS when a web
config file is set. Exit 0 when it answers 200, 1 otherwise.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main(env=os.environ) -> int:
    port = (env.get("METRICS_PORT") or env.get("PORT") or "8001").strip()
    host = (env.get("METRICS_ADDR") or "127.0.0.1").strip()
    if host in ("::", "0.0.0.0", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host.strip('[]')}]"
    tls = bool((env.get("WEB_CONFIG_FILE") or "").strip())
    context = None
    if tls:  # a self-signed certificate for a public name will not match 127.0.0.1
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = f"{'https' if tls else 'http'}://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:  # noqa: S310 -- http(s) only
            return 0 if response.status == 200 else 1
    except OSError:
        # A web config without TLS (basic auth only) is still plain HTTP.
        if tls:
            try:
                with urllib.request.urlopen(url.replace("https://", "http://", 1), timeout=4) as response:  # noqa: S310
                    return 0 if response.status == 200 else 1
            except OSError:
                return 1
        return 1


if __name__ == "__main__":
    sys.exit(main())
