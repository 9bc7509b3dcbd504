"""The runbook's Prometheus and exporter commands, run as written against a real Prometheus
scraping a live exporter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.runbook import stack_commands
from support.stack import PROMTOOL

pytestmark = pytest.mark.prometheus


def test_every_prometheus_and_exporter_command_of_the_runbook_runs(stack, tmp_path):
    prometheus, exporter = stack
    prometheus.wait_for('gatewayz_provider_health_status{provider="google"} == 3', "scraping the exporter")
    # wget as the images' busybox runs it here (`wget -qO- URL`), whatever the machine has.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wget = bin_dir / "wget"
    wget.write_text(
        f"#!{sys.executable}\nimport sys, urllib.request\n"
        "assert sys.argv[1] == '-qO-', sys.argv\n"
        "sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[2], timeout=10).read())\n"
    )
    wget.chmod(0o755)
    (bin_dir / "promtool").symlink_to(Path(PROMTOOL or "promtool"))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PROM": prometheus.url,
        "EXPORTER": f"http://127.0.0.1:{exporter.server.port}",
    }
    failed = []
    for command in stack_commands():
        result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)
        # A healthy stack has no rule errors: that grep rightly finds nothing.
        expect_output = '"lastError":"[^"]+"' not in command
        if result.stderr or result.returncode != (0 if expect_output else 1):
            failed.append((command, result.returncode, result.stderr[-500:]))
        elif command.startswith("wget") and expect_output and not result.stdout.strip():
            failed.append((command, "no output", ""))  # the grep pattern misses the real JSON
    assert failed == []
