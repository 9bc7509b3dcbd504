"""The release workflow and the changelog read as data."""

import re

import yaml

from support import ROOT
from support.deploy import DOCKERFILES, IMAGES, WORKFLOW, project_version


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


def test_the_exporter_reads_pyprojects_name_and_version_as_a_toml_parser_does():
    import tomllib

    from gatewayz_exporter import project_keys

    text = (ROOT / "pyproject.toml").read_text()
    project = tomllib.loads(text)["project"]
    assert project_keys("\n" + text) == {"name": project["name"], "version": project["version"]}
    # Only the [project] table is read; a comment after the value is allowed.
    other = (
        '[tool.x]\nversion = "9.9.9"\n[project]\nname = "n"\nversion = "1.2.3"  # ok\n[tool.y]\nname = "z"\n'
    )
    assert project_keys("\n" + other) == {"name": "n", "version": "1.2.3"}
    assert project_keys('\n[projects]\nversion = "1.0.0"\n') == {}
