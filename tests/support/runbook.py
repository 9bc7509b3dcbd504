"""docs/runbook.md's commands, as the tests that check and run them read them."""

from __future__ import annotations

import re

from . import ROOT

RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()
# Inline code spans; a command that wraps onto a second line is not one of them.
COMMANDS = re.findall(r"`([^`\n]+)`", RUNBOOK)


def stack_commands() -> list[str]:
    """The commands that ask Prometheus or the exporter something (not Alertmanager)."""
    return [
        c
        for c in COMMANDS
        if c.startswith(('promtool query instant "$PROM"', 'wget -qO- "$PROM', 'wget -qO- "$EXPORTER'))
        and "$AM" not in c
    ]
