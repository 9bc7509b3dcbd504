"""Helpers shared by every layer of the suite: stand-ins, receivers, process runners, waits.

Test modules import from here (``from support.api import FakeApi``); fixtures that wrap these
helpers live in the conftest.py of the layer that needs them.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's top directory."""
