"""A smoke run of the benchmark, so it keeps working. Not a timed test: no figure is asserted."""

import subprocess
import sys

from conftest import ROOT


def test_benchmark_runs_end_to_end_and_prints_every_row():
    result = subprocess.run(
        [
            sys.executable,
            "bench/benchmark.py",
            "--providers",
            "20",
            "--scrapes",
            "3",
            "--intervals",
            "1",
            "--interval",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for row in (
        "time to first complete /metrics",
        "poll time",
        "CPU per interval",
        "scrape latency plain, median",
        "scrape latency gzip, p99",
        "exposition size plain",
        "resident memory",
        "idle CPU between polls",
    ):
        assert row in table, row
    assert "| 20 providers | ours | reference | reference / ours |" in table
