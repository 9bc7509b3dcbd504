"""The README and docs/: every relative link leads somewhere, and the API fields they document
are exactly the fields the exporter reads.

The API section of docs/reference.md is what someone writing a stand-in for the API works from,
so each route's JSON example is run through the exporter's own validator, which must accept it
whole, and the fields the validator asks for must be the fields the route's table names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from support import ROOT
from support.markdown import heading_anchors

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = ROOT / "docs" / "reference.md"


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code, other than web addresses and mail."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document: Path):
    links = relative_links(document.read_text())
    for link in links:
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{link}: no such file"
        if anchor:
            assert anchor in heading_anchors(target.read_text()), f"{link}: no such heading"
    if document.name == "README.md":
        assert len(links) > 30  # the contents and the reference table were read


def test_heading_anchors_follow_github():
    assert heading_anchors(
        "## The dead man's switch\n```\n# not a heading\n```\n### `GET /x` (`y`)\n## A\n## A"
    ) == {
        "the-dead-mans-switch",
        "get-x-y",
        "a",
        "a-1",
    }
    assert heading_anchors("## GatewayzProviderDown\n### What it means: `x`") == {
        "gatewayzproviderdown",
        "what-it-means-x",
    }


# --- the API fields the exporter reads -----------------------------------------------------


class Recording(dict[str, object]):
    """A JSON object that notes every key asked of it, nested objects as ``outer.inner``."""

    def __init__(self, data: dict[str, object], read: set[str], prefix: str = ""):
        super().__init__(
            {k: Recording(v, read, f"{prefix}{k}.") if isinstance(v, dict) else v for k, v in data.items()}
        )
        self.read, self.prefix = read, prefix

    def get(self, key, default=None):
        self.read.add(self.prefix + key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(self.prefix + key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(self.prefix + key)
        return super().__contains__(key)


def route_sections() -> dict[str, str]:
    """Route heading (as written, e.g. ``GET /providers/stats``) -> its text in docs/reference.md."""
    text = REFERENCE.read_text().split("\n## The API fields the exporter reads\n", 1)[1].split("\n## ", 1)[0]
    pieces = re.split(r"\n(?:### `|\*\*`)(GET [^`]+)`", text)
    return dict(zip(pieces[1::2], pieces[2::2], strict=True))


def documented_fields(section: str) -> set[str]:
    """The names in the first column of a section's table."""
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_.]+)`", line.split("|")[1]))
    return names


def example(section: str) -> object:
    return json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])


def flattened_keys(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, list):
        return set().union(*(flattened_keys(v, prefix) for v in value)) if value else set()
    if isinstance(value, dict):
        keys = {prefix + k for k in value}
        return keys.union(
            *(flattened_keys(v, f"{prefix}{k}.") for k, v in value.items() if isinstance(v, dict))
        )
    return set()


def validators() -> dict[str, Callable[[object], int]]:
    """Route -> a function validating its example as the poller would, returning the invalid count."""
    from gatewayz_exporter import status
    from gatewayz_exporter.parse import parse_providers, parse_stats

    return {
        "GET /providers/?include_inactive=true": lambda rows: parse_providers(rows).invalid_records,
        "GET /providers/stats": lambda obj: parse_stats(obj).invalid_records,
        "GET /v1/status/": lambda obj: status.parse_overall(obj).invalid_records,
        "GET /v1/status/providers": lambda rows: status.parse_status_providers(rows).invalid_records,
        "GET /v1/status/incidents?status=active&limit=100&offset=0": lambda rows: (
            status.parse_incidents([rows]).invalid_records
        ),
        "GET /v1/status/stats": lambda obj: status.parse_checks(obj).invalid_records,
        "GET /v1/status/models?limit=1000&offset=0": lambda rows: status.parse_models([rows]).invalid_records,
    }


def test_the_reference_documents_every_route_the_exporter_polls():
    from gatewayz_exporter.client import PATHS
    from gatewayz_exporter.status import STATUS_ENDPOINTS
    from gatewayz_exporter.status_poller import page_path

    polled = {f"GET {path}" for path in PATHS.values()}
    polled |= {f"GET {page_path(endpoint, 0)}" for endpoint in STATUS_ENDPOINTS}
    assert set(route_sections()) == polled == set(validators())


@pytest.mark.parametrize("route", sorted(validators()))
def test_each_routes_table_names_exactly_the_fields_the_exporter_reads(route: str):
    section = route_sections()[route]
    sample = example(section)
    read: set[str] = set()
    if isinstance(sample, list):
        recorded: object = [Recording(row, read) for row in sample]
    else:
        recorded = Recording(sample, read)
    assert validators()[route](recorded) == 0, "the documented example is not valid"
    documented = documented_fields(section)
    assert read == documented
    assert flattened_keys(sample) <= documented  # the example shows only fields that are read


def test_the_documented_log_line_is_what_the_formatter_writes_for_that_event():
    import datetime
    import logging

    from gatewayz_exporter.logs import ExporterJsonFormatter

    section = REFERENCE.read_text().split("\n## Logs and traces\n", 1)[1]
    documented = section.split("```json\n", 1)[1].split("\n```", 1)[0]
    line = json.loads(documented)
    record = logging.LogRecord(line["logger"], logging.INFO, __file__, 1, line["message"], None, None)
    stamp = datetime.datetime.fromisoformat(line["timestamp"])
    record.created = stamp.timestamp() + 0.0001  # within the millisecond shown
    fixed = {"timestamp", "level", "logger", "message", "service"}
    record.__dict__.update({key: value for key, value in line.items() if key not in fixed})
    assert ExporterJsonFormatter().format(record) == documented
