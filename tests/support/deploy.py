"""The deployment files as tests read them: the images and their Dockerfiles, Railway's graph
from the IaC file, the CI workflow and version, and Grafana's entrypoint run with a stand-in for
the image's server."""

from __future__ import annotations

import importlib.util
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from . import ROOT
from .scripts import run_script, stub

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

# The deployed images: name -> (Dockerfile, build context).
IMAGES = {
    "provider-metrics-exporter": ("Dockerfile", "."),
    "prometheus": ("prometheus/Dockerfile", "prometheus"),
    "alertmanager": ("alertmanager/Dockerfile", "alertmanager"),
    "grafana": ("grafana/Dockerfile", "grafana"),
    "loki": ("compose/loki.Dockerfile", "compose"),
    "tempo": ("compose/tempo.Dockerfile", "compose"),
}
# Every Dockerfile in the repository, deployed or not (compose's mail and webhook catcher too).
DOCKERFILES = sorted(
    str(path.relative_to(ROOT))
    for path in [ROOT / "Dockerfile", *ROOT.glob("*/Dockerfile"), *ROOT.glob("*/*.Dockerfile")]
)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, rest), continuation lines joined, comments dropped."""
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def railway_graph(**context: Any) -> Any:
    """The resource graph .railway/railway.py describes, as Railway's SDK evaluates it."""
    import railway_sdk

    spec = importlib.util.spec_from_file_location("railway_config", ROOT / ".railway" / "railway.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ctx = railway_sdk.create_railway_context(environment="production", **context)
    return module.main(ctx).to_graph()


def railway_services(**context: Any) -> dict[str, dict[str, Any]]:
    graph = railway_graph(repository="acme/gatewayz-fork", **context)
    return {r["name"]: r for r in graph["resources"] if r["type"] == "service"}


def run_grafana_entrypoint(
    tmp_path: Path, *, show_password: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """grafana/entrypoint.sh with a stand-in for the image's /run.sh that prints its arguments and
    the Prometheus URL Grafana would get (and the admin password, when ``show_password``); the
    data directory is in ``tmp_path``."""
    lines = ['echo "args=$*"', 'echo "prometheus=$PROMETHEUS_INTERNAL_URL"']
    if show_password:
        lines.append('echo "password=$GF_SECURITY_ADMIN_PASSWORD"')
    run = stub(tmp_path / "run.sh", *lines)
    environment = {"GRAFANA_RUN": str(run), "GF_PATHS_DATA": str(tmp_path / "data"), **env}
    return run_script("grafana/entrypoint.sh", "web", env=environment, timeout=30)


def project_version() -> str:
    """The version pyproject.toml declares (the one place it is written)."""
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version
