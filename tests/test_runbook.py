"""docs/runbook.md: its commands use the tools the stack's images have, and the Prometheus ones
work against a real Prometheus scraping a live exporter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_prometheus import PROMTOOL, stack  # noqa: F401  # stack is a fixture used by name

pytestmark = pytest.mark.prometheus
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()
# Inline code spans; a command that wraps onto a second line is not one of them.
COMMANDS = re.findall(r"`([^`\n]+)`", RUNBOOK)


def test_the_runbook_reaches_the_stack_with_the_tools_its_images_have():
    """The Prometheus and Alertmanager images have wget, promtool and amtool, but no curl."""
    stack_addresses = ("$PROM", "$AM", "$EXPORTER", "railway.internal", "provider-metrics-exporter:")
    with_curl = [c for c in COMMANDS if c.startswith("curl") and any(a in c for a in stack_addresses)]
    assert with_curl == []
    for rules in re.findall(r"promtool check rules ([^`]+)", RUNBOOK):
        assert "*" not in rules and "prom.yml" not in rules, rules  # prom.yml is no rule file


def stack_commands() -> list[str]:
    return [
        c
        for c in COMMANDS
        if c.startswith(('promtool query instant "$PROM"', 'wget -qO- "$PROM', 'wget -qO- "$EXPORTER'))
        and "$AM" not in c
    ]


def test_the_runbook_has_prometheus_and_exporter_commands_to_run():
    assert len(stack_commands()) >= 15


def test_every_prometheus_and_exporter_command_of_the_runbook_runs(stack, tmp_path):  # noqa: F811
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
