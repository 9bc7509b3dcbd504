"""Importing the package in a fresh interpreter: what it loads and what it leaves alone."""

import subprocess
import sys

from support import ROOT


def test_msgspec_is_loaded_only_once_a_body_is_big():
    code = (
        "import json, sys\n"
        "import gatewayz_exporter.app\n"
        "from gatewayz_exporter.parse import decode_json, parse_providers\n"
        'parse_providers(decode_json(b\'[{"slug": "a"}]\'))\n'
        "assert 'msgspec' not in sys.modules\n"
        "parse_providers(decode_json(json.dumps([{'slug': f'p{i}'} for i in range(10000)]).encode()))\n"
        "assert 'msgspec' in sys.modules\n"
    )
    run_fresh(code)


def test_importing_the_package_changes_nothing_process_wide():
    code = (
        "import logging, os, sys, threading\n"
        "hook, environ = threading.excepthook, dict(os.environ)\n"
        "import gatewayz_exporter.app, gatewayz_exporter.telemetry, gatewayz_exporter.exposition\n"
        "assert threading.excepthook is hook\n"
        "assert not logging.getLogger('urllib3.connection').filters\n"
        "assert not logging.getLogger('opentelemetry.util.re').filters\n"
        "assert os.environ == environ\n"
    )
    run_fresh(code)


def test_without_a_trace_backend_a_polls_log_lines_share_a_trace_id_and_no_opentelemetry_is_loaded():
    code = (
        "import io, json, logging, sys\n"
        "from gatewayz_exporter.config import Config\n"
        "import gatewayz_exporter.poller, gatewayz_exporter.landing\n"
        "from gatewayz_exporter.logs import configure_logging\n"
        "from gatewayz_exporter.telemetry import Telemetry\n"
        "env = {'GATEWAY_API_URL': 'http://127.0.0.1:9', 'ADMIN_KEY': 'k'}\n"
        "telemetry = Telemetry.from_config(Config.from_env(env), env)\n"
        "stream = io.StringIO()\n"
        "configure_logging('INFO', stream)\n"
        "with telemetry.tracer.start_as_current_span('poll'):\n"
        "    logging.getLogger('a').info('one')\n"
        "    with telemetry.tracer.start_as_current_span('convert'):\n"
        "        logging.getLogger('a').info('two')\n"
        "logging.getLogger('a').info('after')\n"
        "one, two, after = [json.loads(line) for line in stream.getvalue().splitlines()]\n"
        "assert len(one['trace_id']) == 32 and one['trace_id'] == two['trace_id'], (one, two)\n"
        "assert one['span_id'] != two['span_id'] and 'trace_id' not in after\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    run_fresh(code)


def test_the_html_module_loads_with_the_first_view_of_the_landing_page():
    run_fresh(
        "import sys\n"
        "import gatewayz_exporter.app\n"
        "from gatewayz_exporter.landing import LandingPage\n"
        "from gatewayz_exporter.model import Snapshot\n"
        "page = LandingPage(Snapshot, version='<v>', mode='demo', max_staleness=300)\n"
        "assert 'html' not in sys.modules\n"
        "assert b'Version &lt;v&gt;;' in page.render() and 'html' in sys.modules\n"
    )


def run_fresh(code: str) -> None:
    """Run ``code`` in a new interpreter from the checkout: its asserts are the test's."""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
