#!/usr/bin/env python3
"""GatewayZ provider metrics exporter.

Polls GET /providers and GET /providers/stats in the background and serves
Prometheus metrics on METRICS_PORT (default 8001). See README.md.
"""

import sys

from gatewayz_exporter.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
