"""Waiting on conditions instead of sleeping a fixed time."""

from __future__ import annotations

import random
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
    """A loopback port free right now, outside the kernel's range for outgoing connections' source
    ports (so no client socket of this or another test takes it before the server binds it).
    Another server may still bind it first: the process helpers retry on a new port then."""
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free loopback port from 10000 to {low}")


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (32768 where it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > 11_000 else 32768
