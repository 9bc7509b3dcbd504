"""GatewayZ provider metrics exporter: poll the provider API, serve Prometheus metrics."""

__version__ = "1.0.0"
