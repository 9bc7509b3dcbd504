"""Fixtures of the integration layer: the exporter as its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.api import TEST_KEY, FakeApi
from support.process import ExporterProcess


@pytest.fixture
def exporter_process(api: FakeApi, tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    """``exporter_process(web=None, *args, soft_file_limit=None, file_limit=None, **env)`` starts
    the exporter polling ``api`` on 127.0.0.1 (``env`` adds to or replaces its variables; a value of
    None removes one) and returns once it listens; every one still running is stopped at teardown.
    ``web`` is a web config document; the file limits are set as a shell's ``ulimit`` would."""
    started: list[ExporterProcess] = []

    def start(
        web: dict[str, Any] | None = None,
        *args: str,
        soft_file_limit: int | None = None,
        file_limit: int | None = None,
        **env: str | None,
    ) -> ExporterProcess:
        environment: dict[str, str | None] = {
            "METRICS_ADDR": "127.0.0.1",
            "GATEWAY_API_URL": api.url,
            "ADMIN_KEY": TEST_KEY,
            **env,
        }
        if web is not None:
            path = tmp_path / "web.yml"
            path.write_text(yaml.safe_dump(web))
            environment["WEB_CONFIG_FILE"] = str(path)
        prefix: list[str] = []
        if soft_file_limit is not None:  # as systemd starts a service: a low soft limit, a high hard one
            prefix = ["bash", "-c", f'ulimit -Sn {soft_file_limit} && exec "$0" "$@"']
        if file_limit is not None:  # soft and hard
            prefix = ["bash", "-c", f'ulimit -n {file_limit} && exec "$0" "$@"']
        given = {name: value for name, value in environment.items() if value is not None}
        exporter = ExporterProcess.start(given, args, prefix=prefix)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        exporter.stop()
