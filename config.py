"""The exporter's configuration, kept at the top level where the documented layout names it.

The code lives in ``gatewayz_exporter.config``; this module only re-exports it, so
``from config import Config`` keeps working in a checkout. The installed distribution
ships no top-level ``config`` module.
"""

from gatewayz_exporter.config import DEFAULT_API_URL, DEFAULT_PORT, Config, ConfigError

__all__ = ["DEFAULT_API_URL", "DEFAULT_PORT", "Config", "ConfigError"]
