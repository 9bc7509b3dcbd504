"""GatewayZ provider metrics exporter: poll the provider API, serve Prometheus metrics."""

import re
from pathlib import Path

DISTRIBUTION = "provider-metrics-exporter"
CHECKOUT = Path(__file__).resolve().parent.parent  # where pyproject.toml is in a checkout or the image
# A key of pyproject.toml's [project] table written as a basic string on a line of its own, as
# ours are: matched instead of loading a TOML parser into every exporter for two values.
_PROJECT_KEY = re.compile(r'^(name|version) = "([^"\\]*)"\s*(?:#.*)?$', re.MULTILINE)


def project_keys(text: str) -> dict[str, str]:
    """``name`` and ``version`` from the ``[project]`` table of pyproject.toml's ``text``."""
    _, found, rest = text.partition("\n[project]\n")
    if not found:
        return {}
    table = re.split(r"^\[", rest, maxsplit=1, flags=re.MULTILINE)[0]
    return dict(_PROJECT_KEY.findall(table))


def read_version(root: Path = CHECKOUT) -> str:
    """The version, kept in one place: pyproject.toml's ``[project] version``.

    Read from pyproject.toml beside the package in a checkout or the image (so an older installed
    distribution cannot win), else from the installed distribution's metadata.
    """
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        project = project_keys("\n" + pyproject.read_text(encoding="utf-8"))
        if project.get("name") == DISTRIBUTION and "version" in project:
            return project["version"]
    import importlib.metadata  # installed, without a checkout beside it

    return importlib.metadata.version(DISTRIBUTION)


__version__ = read_version()
