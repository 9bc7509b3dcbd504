"""The listening socket and the file descriptors the connection cap may use.

asyncio accepts a small ACCEPT_BATCH per wake-up, so few sockets are accepted ahead of the
admission policy; the kernel's queue is LISTEN_BACKLOG. The cap is what the open-file limit
leaves after the descriptors already held and a reserve for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import socket
from pathlib import Path

from .syntax import unbracket

log = logging.getLogger("gatewayz_exporter.server")

LISTEN_BACKLOG = 1024  # the kernel's queue of connections not accepted yet
ACCEPT_BATCH = 16  # sockets asyncio accepts per wake-up
ACCEPT_BATCHES_IN_FLIGHT = 4  # accepted but not yet admitted or closed, at most, in a burst
FD_RESERVE = 32  # descriptors kept for everything but client connections
MIN_CONNECTIONS = 16


def make_listen_socket(host: str | None, port: int) -> socket.socket:
    """Bind ``host:port``; with no host, every interface on IPv6 *and* IPv4 where the kernel allows."""
    if host is None:
        if socket.has_dualstack_ipv6():
            return socket.create_server(
                ("::", port),
                family=socket.AF_INET6,
                dualstack_ipv6=True,
                reuse_port=False,
                backlog=LISTEN_BACKLOG,
            )
        return socket.create_server(("0.0.0.0", port), backlog=LISTEN_BACKLOG)
    address = unbracket(host)
    with contextlib.suppress(ValueError):
        mapped = ipaddress.IPv6Address(address).ipv4_mapped
        if mapped is not None:
            # An IPv6 listener is IPV6_V6ONLY, so binding ::ffff:a.b.c.d fails (EINVAL); the
            # clients that address names are IPv4's, and an IPv4 listener on a.b.c.d serves them.
            address = str(mapped)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=LISTEN_BACKLOG)


def open_descriptors() -> int:
    """File descriptors the process holds now (a generous guess where /proc is missing)."""
    try:
        return sum(1 for _ in Path("/proc/self/fd").iterdir()) - 1  # less the one the listing opened
    except OSError:
        return 64


def connection_budget(connections: int) -> int:
    """Raise the soft limit on open files to fit ``connections`` (as Go does for every program);
    return how many connections the limit leaves room for."""
    overhead = FD_RESERVE + ACCEPT_BATCH * ACCEPT_BATCHES_IN_FLIGHT
    held = open_descriptors()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = held + connections + overhead
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    room = max(MIN_CONNECTIONS, soft - held - overhead)
    log.warning(
        "Open-file limit caps the connections",
        extra={"soft_limit": soft, "held": held, "connections": room},
    )
    return room


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """Running out of file descriptors in accept() is load, not a bug: a WARNING, not an ERROR."""
    if "out of system resource" in str(context.get("message", "")):
        log.warning("Cannot accept connections for a moment: out of file descriptors")
        return
    loop.default_exception_handler(context)
