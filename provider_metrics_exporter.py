#!/usr/bin/env python3
"""GatewayZ provider metrics exporter.

Polls GET /providers and GET /providers/stats in the background and serves
Prometheus metrics on METRICS_PORT (default 8001). See docs/reference.md.
"""

import signal
import sys

if __name__ == "__main__":
    # A signal while the imports below run (a few hundred ms) ends start-up quietly with
    # exit 0, as it would a moment later; main() then installs the real handlers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

from gatewayz_exporter.app import exit_process, main  # after the handlers above, on purpose

if __name__ == "__main__":
    exit_process(main(sys.argv[1:]))
