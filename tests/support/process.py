"""The exporter as its own process, the way every integration test starts one.

``ExporterProcess.start`` runs provider_metrics_exporter.py with an explicit environment, reads its
JSON log lines as they come, and returns once the "Exporter started" line names the port it
listens on (or fails with the output if the process exits first). The port is taken just before
the start; if another process wins the race for it the exporter exits 3 ("Address already in use")
and the start is retried on a new port, so a busy machine never fails a test that way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from . import ROOT
from .waits import free_port

SCRIPT = str(ROOT / "provider_metrics_exporter.py")
STARTED = "Exporter started"


def run_exporter(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The entry script run to completion (``--once``, ``--version``, a refused start-up)."""
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _Lines:
    """Every line a pipe gives, collected by a thread; a wait for the line a test expects."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self.arrived: list[float] = []  # time.monotonic() when each line was read
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line)
                self.arrived.append(time.monotonic())
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The first line for which ``predicate`` holds; None once the pipe closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def text(self, timeout: float = 10) -> str:
        self._thread.join(timeout)
        return "".join(self.lines)


def json_message(line: str) -> str | None:
    """The ``message`` of a JSON log line (None for any other line)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("message") if isinstance(record, dict) else None


class ExporterProcess:
    """One exporter process: its port, its output so far, and a clean stop."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path | None) -> None:
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._stdout = _Lines(self.process.stdout)
        self._stderr = _Lines(self.process.stderr)
        self.port = 0
        self.scheme = "http"

    @classmethod
    def start(
        cls,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        *,
        prefix: Sequence[str] = (),
        python: str = sys.executable,
        script: str = SCRIPT,
        cwd: Path | None = None,
        timeout: float = 30,
    ) -> ExporterProcess:
        """Start and wait for "Exporter started". ``env`` is the whole environment (PATH is added
        unless given). The port is chosen here: "{port}" in any value of ``env`` becomes it; when no
        value has "{port}" and METRICS_PORT is not given, METRICS_PORT is set to it. ``prefix`` goes before the
        interpreter (``bash -c 'ulimit ...'``)."""
        for _ in range(5):
            port = str(free_port())
            environment = {"PATH": os.environ["PATH"], **env}
            if "METRICS_PORT" not in env and not any("{port}" in value for value in env.values()):
                environment["METRICS_PORT"] = "{port}"
            environment = {name: value.replace("{port}", port) for name, value in environment.items()}
            exporter = cls([*prefix, python, script, *args], environment, cwd)
            started = exporter.wait_for_log(STARTED, timeout)
            if started is not None:
                record = json.loads(started)
                exporter.port = int(record["port"])
                exporter.scheme = "https" if record.get("tls") else "http"
                return exporter
            output = exporter.stop()
            if exporter.process.returncode == 3 and "Address already in use" in output:
                continue  # another process took the port between free_port() and the bind
            raise AssertionError(
                f"the exporter never started (exit {exporter.process.returncode}):\n{output}"
            )
        raise AssertionError("five free ports were taken before the exporter could bind one")

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def wait_for_log(self, message: str, timeout: float = 10) -> str | None:
        """The first JSON log line with this ``message`` (on stdout or stderr), waiting up to ``timeout``."""
        found = self._stdout.wait_for(lambda line: json_message(line) == message, timeout)
        return found or self._stderr.wait_for(lambda line: json_message(line) == message, 0)

    def logged_at(self, message: str) -> list[float]:
        """When each stdout log line with this ``message`` arrived (time.monotonic()), so far."""
        lines = list(zip(self._stdout.arrived, self._stdout.lines, strict=False))
        return [at for at, line in lines if json_message(line) == message]

    @property
    def stdout(self) -> str:
        """What the process wrote to stdout so far (all of it once it has exited)."""
        return "".join(self._stdout.lines)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr.lines)

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> str:
        """Send ``signum`` (if it still runs), wait for the exit (kill after ``timeout``), and return
        everything it wrote (stdout, then stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self._stdout.text() + self._stderr.text()
