"""GatewayZ provider metrics exporter: poll the provider API, serve Prometheus metrics."""

import importlib.metadata
import tomllib
from pathlib import Path

DISTRIBUTION = "provider-metrics-exporter"
CHECKOUT = Path(__file__).resolve().parent.parent  # where pyproject.toml is in a checkout or the image


def read_version(root: Path = CHECKOUT) -> str:
    """The version, kept in one place: pyproject.toml's ``[project] version``.

    A checkout or the container image has pyproject.toml beside the package and reads it there
    (an older install of the distribution elsewhere on the path must not win); an installed
    distribution has no pyproject.toml and answers from its metadata, written from that file.
    """
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    return importlib.metadata.version(DISTRIBUTION)


__version__ = read_version()
