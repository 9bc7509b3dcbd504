"""The README's first command works as written on a stock Debian/Ubuntu Python.

A stock Debian 12 or Ubuntu 24.04 has an externally managed system ``python3`` (PEP 668: pip
refuses to install into it) and no ``python`` command. This test copies the repository as a
fresh clone would have it, puts such a Python first on the PATH, runs the README's first command
exactly as written, and checks the demo answers ``/metrics``; then it installs the project as a
package into the same virtual environment and runs the console command.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import ROOT
from support.waits import free_port

CANDIDATES = ("/usr/bin/python3", "/bin/python3", "/usr/local/bin/python3")


def externally_managed_python() -> str | None:
    """A python3 whose standard library carries the EXTERNALLY-MANAGED marker (PEP 668)."""
    for candidate in CANDIDATES:
        if not os.access(candidate, os.X_OK):
            continue
        stdlib = subprocess.run(
            [candidate, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").exists():
            return candidate
    return None


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))


def fresh_clone(destination: Path) -> Path:
    """The tracked files only, as `git clone` would give them (no .venv, no caches)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(
        b"\0"
    )
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def wait_for_metrics(url: str, process: subprocess.Popen[bytes], deadline: float) -> bytes:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the README command exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: bytes = response.read()
                if b"gatewayz_provider_health_status{" in body:
                    return body
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} never showed provider metrics")


@pytest.mark.slow
def test_the_readme_first_command_runs_the_demo_with_an_externally_managed_system_python(tmp_path):
    system_python = externally_managed_python()
    if system_python is None:
        pytest.skip("no PEP 668 (externally managed) python3 on this machine")
    command = readme_first_command()
    assert "--demo" in command and "venv" in command
    checkout = fresh_clone(tmp_path / "checkout")
    bin_dir = str(Path(system_python).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE", "CONDA", "PYENV"))
    }
    env.pop("ADMIN_KEY", None)
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", METRICS_PORT=str(free_port()))
    # The premise: the system Python refuses pip installs and there is no `python` command.
    refused = subprocess.run(
        [system_python, "-m", "pip", "install", "--dry-run", "six"], capture_output=True, text=True, env=env
    )
    assert refused.returncode != 0
    # No bare `python` or `pip`: a stock machine has neither on the PATH.
    words = command.replace("&&", " ").split()
    assert "python" not in words and "pip" not in words, command

    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        body = wait_for_metrics(
            f"http://127.0.0.1:{env['METRICS_PORT']}/metrics", process, time.monotonic() + 300
        )
        assert b"gatewayz_provider_scrape_success" in body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, process.stdout.read().decode()[-2000:] if process.stdout else ""
    assert (checkout / ".venv" / "bin" / "python").exists()

    # `pip install .` gives the console command, in the same virtual environment.
    installed = subprocess.run(
        [".venv/bin/pip", "install", "-q", "--no-deps", "."],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = subprocess.run(
        [str(checkout / ".venv/bin/provider-metrics-exporter"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert version.returncode == 0 and "1." in version.stdout, version.stderr
    assert version.stdout.startswith("provider-metrics-exporter "), version.stdout  # its own name
    # The installed distribution brings the package and the entry module, never a top-level `config`.
    site = subprocess.run(
        [
            str(checkout / ".venv/bin/python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(site) / "gatewayz_exporter" / "config.py").is_file()
    assert not (Path(site) / "config.py").exists()
