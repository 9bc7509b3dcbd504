"""The command line as an operator runs it: real processes, real signals."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest
import requests

from support import ROOT
from support.api import TEST_KEY, Reply
from support.process import SCRIPT, ExporterProcess, run_exporter
from support.waits import eventually, free_port


def test_version_and_help():
    version = run_exporter(["--version"], {})
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.returncode == 0 and version.stdout.split()[-1] == pinned
    usage = run_exporter(["--help"], {})
    assert usage.returncode == 0 and "--once" in usage.stdout and "--demo" in usage.stdout


def test_once_prints_the_exposition_alone_on_stdout_and_logs_on_stderr(api):
    result = run_exporter(["--once"], {"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert 'gatewayz_provider_health_status{provider="openai"} 1.0' in result.stdout
    assert all(not line.startswith("{") for line in result.stdout.splitlines())
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(line["message"] == "Updated provider metrics" for line in lines)


def test_once_exits_non_zero_with_the_reason_when_the_api_fails(api):
    api.routes["/providers/stats"] = Reply(401, b'{"detail":"bad key"}')
    result = run_exporter(["--once"], {"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    assert result.returncode == 1
    assert "stats: unauthorized" in result.stderr
    assert TEST_KEY not in result.stderr + result.stdout


def test_once_survives_an_odd_answer_and_still_prints_the_other_endpoint(api):
    # A redirect to an impossible port is a counted failure with its reason, never a traceback.
    api.routes["/providers/"] = Reply(302, b"", {"Location": "http://127.0.0.1:99999/providers/"})
    api.routes["/providers/stats"] = Reply(429, b"", {"Retry-After": "\u00b2"})
    result = run_exporter(["--once"], {"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "poll failed: providers: redirect, stats: rate_limited" in result.stderr
    assert (
        'gatewayz_provider_scrape_errors_total{endpoint="providers",reason="redirect"} 1.0' in result.stdout
    )
    lines = [json.loads(l) for l in result.stderr.splitlines() if l.startswith("{")]
    failures = [l for l in lines if l["message"] == "Provider API poll failed"]
    assert {(l["endpoint"], l["reason"], l["cause"]) for l in failures} == {
        ("providers", "redirect", "bad_url"),
        ("stats", "rate_limited", None),
    }


def test_an_address_that_is_not_on_this_host_is_one_line_and_exit_3(api):
    result = run_exporter(
        [],
        {
            "METRICS_ADDR": "192.0.2.1",
            "METRICS_PORT": str(free_port()),
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
        },
    )
    assert result.returncode == 3 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("provider-metrics-exporter: cannot listen on 192.0.2.1:")


def test_demo_serves_metrics_without_a_key_and_sigterm_exits_0_quickly():
    exporter = ExporterProcess.start({"SCRAPE_INTERVAL": "0.5"}, ["--demo"])
    try:
        body = eventually(lambda: has_providers(requests.get(exporter.url("/metrics"), timeout=2).text))
        assert 'gatewayz_provider_is_active{provider="cohere"} 0.0' in body  # inactive ones are asked for
        assert requests.get(f"http://[::1]:{exporter.port}/healthz", timeout=2).status_code == 200  # IPv6 too
        started = time.monotonic()
        exporter.send_signal(signal.SIGTERM)
        assert exporter.process.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        exporter.stop(signal.SIGKILL)
    lines = [json.loads(line) for line in exporter.stdout.splitlines()]
    assert {"Exporter started", "Updated provider metrics", "Exporter stopped"} <= {
        l["message"] for l in lines
    }
    assert exporter.stderr == ""


def has_providers(body: str) -> str | None:
    return body if "gatewayz_providers_total" in body else None


def test_sigint_also_stops_cleanly(api):
    exporter = ExporterProcess.start({"GATEWAY_API_URL": api.url, "ADMIN_KEY": TEST_KEY})
    try:
        exporter.send_signal(signal.SIGINT)
        assert exporter.process.wait(10) == 0
    finally:
        exporter.stop(signal.SIGKILL)


def test_a_busy_port_is_one_line_on_stderr_and_exit_3(api):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_exporter(
            [],
            {
                "METRICS_PORT": str(port),
                "METRICS_ADDR": "127.0.0.1",
                "GATEWAY_API_URL": api.url,
                "ADMIN_KEY": TEST_KEY,
            },
        )
    assert result.returncode == 3
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert (
        line
        == f"provider-metrics-exporter: cannot listen on 127.0.0.1:{port} (METRICS_ADDR, METRICS_PORT): Address already in use"
    )


def test_a_busy_ipv6_port_is_named_with_brackets(api):
    import socket

    with socket.socket(socket.AF_INET6) as holder:
        holder.bind(("::1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "METRICS_PORT": str(port),
            "METRICS_ADDR": "::1",
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
        }
        result = run_exporter([], env)
    assert result.returncode == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"provider-metrics-exporter: cannot listen on [::1]:{port} (METRICS_ADDR, METRICS_PORT): "
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_once_exits_0_within_3_seconds_with_nothing_printed(api, signum):
    # The API never answers, REQUEST_TIMEOUT stays at 10 s, and Loki hangs too.
    from support.receivers import LokiReceiver

    api.routes["/providers/"] = Reply(body=[], delay=60)
    api.routes["/providers/stats"] = Reply(body={}, delay=60)
    loki = LokiReceiver()
    loki.hang = True
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            "PATH": os.environ["PATH"],
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            "LOKI_URL": loki.url,
        },
        text=True,
    )
    try:
        assert eventually(lambda: api.count("/providers/stats") >= 1 or process.poll() is not None, 20)
        assert process.poll() is None and api.count("/providers/stats") >= 1  # the poll is in flight
        started = time.monotonic()
        process.send_signal(signum)
        code = process.wait(10)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
        loki.close()
    assert code == 0, err
    assert elapsed < 3.0
    assert out == ""
    assert "Traceback" not in err
    assert [json.loads(line)["message"] for line in err.splitlines()][-1] == "Stopping"


# The entry script run as __main__, with the package's import held up until the test signals.
_SLOW_IMPORT = """
import importlib.abc, runpy, sys, time

class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gatewayz_exporter.app":
            print("importing", flush=True)
            time.sleep(30)
        return None

sys.meta_path.insert(0, Slow())
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_entry_script_imports_exits_0(signum):
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_IMPORT, SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "ADMIN_KEY": TEST_KEY},
        text=True,
    )
    try:
        assert process.stdout.readline() == "importing\n"
        process.send_signal(signum)
        code = process.wait(3)
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
    assert code == 0 and err == ""
