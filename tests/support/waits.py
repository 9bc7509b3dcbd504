"""Waiting on conditions instead of sleeping a fixed time."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(predicate: Callable[[], T], timeout: float = 10.0, step: float = 0.01) -> T:
    """Poll ``predicate`` until truthy (returned) or ``timeout`` passes (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(step)


def free_port() -> int:
    """A loopback port free right now. Another process may take it before it is used: prefer
    binding port 0 in-process, and starting an exporter process through ``support.process``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
