"""docs/runbook.md: its commands use the tools the stack's images have (they are run against a
real Prometheus in tests/stack/test_runbook_commands.py)."""

from __future__ import annotations

import re

from support.runbook import COMMANDS, RUNBOOK, stack_commands


def test_the_runbook_reaches_the_stack_with_the_tools_its_images_have():
    """The Prometheus and Alertmanager images have wget, promtool and amtool, but no curl."""
    stack_addresses = ("$PROM", "$AM", "$EXPORTER", "railway.internal", "provider-metrics-exporter:")
    with_curl = [c for c in COMMANDS if c.startswith("curl") and any(a in c for a in stack_addresses)]
    assert with_curl == []
    for rules in re.findall(r"promtool check rules ([^`]+)", RUNBOOK):
        assert "*" not in rules and "prom.yml" not in rules, rules  # prom.yml is no rule file


def test_the_runbook_has_prometheus_and_exporter_commands_to_run():
    assert len(stack_commands()) >= 15
