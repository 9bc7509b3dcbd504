"""Every record the JSON formatter writes is one strict JSON object, whatever its fields hold."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gatewayz_exporter.config import Config
from gatewayz_exporter.logs import configure_logging

SECRET = "sk-admin-key-in-a-log-test"


def _strict(line: str) -> dict[str, object]:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    record = json.loads(line, parse_constant=refuse)
    assert isinstance(record, dict)
    return record


@pytest.fixture
def logged():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _one_line(stream: io.StringIO) -> dict[str, object]:
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    return _strict(lines[0])


def test_numbers_that_are_not_finite_are_written_as_text(logged):
    logging.getLogger("t").warning(
        "odd numbers", extra={"nan": float("nan"), "nested": {"up": [float("inf"), -float("inf")]}}
    )
    record = _one_line(logged)
    assert record["nan"] == "nan"
    assert record["nested"] == {"up": ["inf", "-inf"]}


def test_mapping_keys_that_are_not_text_keep_the_line(logged):
    logging.getLogger("t").warning("odd keys", extra={"by_pair": {(1, 2): 3}})
    assert _one_line(logged)["by_pair"] == {"(1, 2)": 3}


def test_a_field_that_contains_itself_is_written_as_text(logged):
    loop: dict[str, object] = {}
    loop["self"] = loop
    logging.getLogger("t").warning("cycle", extra={"loop": loop, "count": 3})
    record = _one_line(logged)
    assert record["loop"] == "{'self': {...}}"
    assert record["message"] == "cycle"


def test_a_config_in_a_field_shows_its_repr_never_the_admin_key(logged):
    config = Config.from_env({"ADMIN_KEY": SECRET, "LOKI_URL": "http://loki:3100"})
    logging.getLogger("t").warning("config", extra={"config": config, "several": [config]})
    record = _one_line(logged)
    assert SECRET not in logged.getvalue()
    assert record["config"] == repr(config)
