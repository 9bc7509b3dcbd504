"""The HTML around the page at ``/``: its title and the links to the other endpoints, written once."""

from __future__ import annotations

_LINKS = """<ul><li><a href="/metrics">/metrics</a> (Prometheus metrics)</li>
<li><a href="/healthz">/healthz</a> (liveness)</li>
<li><a href="/readyz">/readyz</a> (readiness: a recent successful poll)</li></ul>"""


def page(content: str) -> bytes:
    """The whole page, with ``content`` (already escaped HTML) between the heading and the links."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>GatewayZ provider metrics exporter</title></head>
<body><h1>GatewayZ provider metrics exporter</h1>
{content}{_LINKS}
</body></html>
""".encode()


LINKS_ONLY = page("")
"""What a server without a landing page source answers at ``/``."""
