"""Importing the package in a fresh interpreter: what it loads and what it leaves alone."""

import os
import subprocess
import sys

from gatewayz_exporter.telemetry import SANITIZE_VARIABLE
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
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_importing_the_package_changes_nothing_process_wide():
    code = (
        "import logging, os, sys, threading\n"
        "hook = threading.excepthook\n"
        "import gatewayz_exporter.app, gatewayz_exporter.telemetry, gatewayz_exporter.exposition\n"
        "assert threading.excepthook is hook\n"
        "assert not logging.getLogger('urllib3.connection').filters\n"
        "assert not logging.getLogger('opentelemetry.util.re').filters\n"
        f"assert {SANITIZE_VARIABLE!r} not in os.environ\n"
    )
    env = {k: v for k, v in os.environ.items() if k != SANITIZE_VARIABLE}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
