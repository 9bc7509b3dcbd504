"""A bad configuration as an operator meets it: the process exits 2 with one line, no traceback."""

import subprocess
import sys

from support import ROOT


def test_process_exit_code_is_2_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "provider_metrics_exporter.py"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ADMIN_KEY" in result.stderr and "METRICS_PORT" in result.stderr
