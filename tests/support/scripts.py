"""The images' entrypoint scripts run here with ``sh``, their real binaries replaced by stubs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from . import ROOT


def stub(path: Path, *lines: str) -> Path:
    """An executable shell script at ``path`` that runs ``lines`` (a stand-in for an image's binary)."""
    path.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def run_script(
    script: str, *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``sh ROOT/script args`` with only ``env`` (and a minimal PATH) in its environment."""
    return subprocess.run(
        ["sh", str(ROOT / script), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
