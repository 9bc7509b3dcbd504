"""Exporter-toolkit web configuration: TLS and basic auth for /metrics."""


class WebConfigError(ValueError):
    pass


def load_web_config(path: str):
    raise WebConfigError("web configuration is not supported yet")
