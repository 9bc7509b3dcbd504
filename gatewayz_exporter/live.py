"""The live families, read at each scrape: the process's own resource use.

Named and written as prometheus_client's ``ProcessCollector`` exports them,
read from ``/proc`` directly (nothing where there is no ``/proc``)::

    # HELP process_resident_memory_bytes Resident memory size in bytes.
    # TYPE process_resident_memory_bytes gauge
    process_resident_memory_bytes 4.1e+07
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

from .collector import Family


def _boot_time(proc: Path) -> float:
    with (proc / "stat").open("rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


def _gauge(name: str, documentation: str, value: float) -> Family:
    return Family(name, documentation, "gauge", (), [((), value)])


class ProcessFamilies:
    """``process_*`` families of this process: CPU, memory, start time, file descriptors."""

    def __init__(self, proc: Path = Path("/proc")):
        own = proc / "self"
        self._stat, self._limits, self._fds = own / "stat", own / "limits", own / "fd"
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = resource.getpagesize()
        try:
            self._boot = _boot_time(proc)
        except OSError:
            self._boot = 0.0

    def __call__(self) -> Iterator[Family]:
        if not self._boot:
            return
        try:
            fields = self._stat.read_bytes().rsplit(b")", 1)[-1].split()
        except OSError:
            pass
        else:
            yield _gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", float(fields[20]))
            yield _gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                float(fields[21]) * self._page,
            )
            yield _gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                float(fields[19]) / self._ticks + self._boot,
            )
            cpu = (float(fields[11]) + float(fields[12])) / self._ticks
            yield Family(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                "counter",
                (),
                [((), cpu)],
            )
        try:
            with self._limits.open("rb") as limits:
                max_fds = next(float(line.split()[3]) for line in limits if line.startswith(b"Max open file"))
            open_fds = len(os.listdir(self._fds))  # noqa: PTH208 -- a count, no Path objects needed
        except (OSError, StopIteration, IndexError, ValueError):
            return
        yield _gauge("process_open_fds", "Number of open file descriptors.", open_fds)
        yield _gauge("process_max_fds", "Maximum number of open file descriptors.", max_fds)
