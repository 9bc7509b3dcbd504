"""GatewayZ provider metrics exporter: poll the provider API, serve Prometheus metrics."""

import importlib.metadata
import tomllib
from pathlib import Path

DISTRIBUTION = "provider-metrics-exporter"
CHECKOUT = Path(__file__).resolve().parent.parent  # where pyproject.toml is in a checkout or the image


def read_version(root: Path = CHECKOUT) -> str:
    """The version, kept in one place: pyproject.toml's ``[project] version``.

    Read from pyproject.toml beside the package in a checkout or the image (so an older installed
    distribution cannot win), else from the installed distribution's metadata.
    """
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    return importlib.metadata.version(DISTRIBUTION)


__version__ = read_version()
