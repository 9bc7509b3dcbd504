"""What an exporter loads depends on what its configuration uses: nothing for features that are off."""

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from gatewayz_exporter.live import ProcessFamilies
from gatewayz_exporter.render import format_value, render_families
from support import ROOT
from support.waits import free_port

OPTIONAL = [
    "bcrypt",
    "yaml",
    "msgspec",
    "prometheus_client",
    "opentelemetry",
    "requests",  # the client drives urllib3 itself
    "charset_normalizer",
    "idna",
    "certifi",
    "http.cookiejar",
    "ctypes",
    "gatewayz_exporter.status_poller",
    "gatewayz_exporter.status_metrics",
    "gatewayz_exporter.status",
    "argparse",  # no command-line arguments: no parser
    "tomllib",  # the version is read from pyproject.toml without it
]

# Start an exporter with every optional feature off (no web config, no OTLP endpoint, no Loki,
# STATUS_API=off), poll a small API once,
# serve /metrics once, and list which optional modules were loaded on the way.
RUN_DEFAULT = """
import http.client, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from gatewayz_exporter import app

class Api(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'[{"slug": "p1", "name": "P"}]' if "stats" not in self.path else b'{"total": 1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
threading.Thread(target=api.serve_forever, daemon=True).start()
env = {"GATEWAY_API_URL": f"http://127.0.0.1:{api.server_address[1]}", "ADMIN_KEY": "k",
       "METRICS_ADDR": "127.0.0.1", "METRICS_PORT": sys.argv[1], "STATUS_API": "off"}
stop = threading.Event()
result = {}
def scrape_then_stop():
    import time
    for _ in range(500):
        try:
            scrape = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
            scrape.request("GET", "/metrics")
            body = scrape.getresponse().read().decode()
            scrape.close()
            if 'provider="p1"' in body:
                result["served"] = True
                break
        except OSError:
            pass
        time.sleep(0.02)
    import os, signal
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=scrape_then_stop, daemon=True).start()
code = app.main([], env)
loaded = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"code": code, "served": result.get("served", False), "loaded": loaded}))
"""


def test_an_exporter_loads_no_module_for_the_features_its_configuration_leaves_off():
    run = subprocess.run(
        [sys.executable, "-c", RUN_DEFAULT, str(free_port()), json.dumps(OPTIONAL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0 and outcome["served"], run.stderr
    assert outcome["loaded"] == []


def test_process_families_are_those_prometheus_client_would_export():
    ours = {(f.name, f.kind, f.documentation) for f in ProcessFamilies()()}
    theirs = {(m.name, m.type, m.documentation) for m in ProcessCollector(registry=None).collect()}
    assert ours == theirs and len(ours) == 6
    text = render_families(list(ProcessFamilies()()), openmetrics=False).decode()
    assert "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " in text


def test_process_families_are_empty_without_proc(tmp_path):
    assert list(ProcessFamilies(tmp_path)()) == []


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
def test_sample_values_are_spelled_as_prometheus_client_spells_them(value):
    assert format_value(value) == floatToGoString(value)


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 1234567.0, 1e6, 999999.0, 1e22, 1.5e-7, -1e7])
def test_sample_values_at_the_edges_of_exponent_form(value):
    assert format_value(value) == floatToGoString(value)
