"""The status API stand-in wired into the tests' fake API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from conftest import FakeApi, Reply

from gatewayz_exporter.status_standin import StatusData, answer


def serve_status(api: FakeApi, data: StatusData, now: Callable[[], float] = time.time) -> StatusData:
    """Have the fake API answer the status routes from ``data``; returns ``data``.

    Routes a test sets in ``api.routes`` win, so one route can be made to fail.
    """

    def answerer(path: str, query: str) -> Reply | None:
        answered = answer(data, path, query, now())
        if answered is None:
            return None
        status, body = answered
        return Reply(status, json.dumps(body).encode())

    api.answerers.append(answerer)
    return data
