"""Stopping an in-process exporter: no thread outlives it, and a server that cannot start says so."""

import signal
import socket
import threading
import time

import pytest

from gatewayz_exporter.app import build, main
from gatewayz_exporter.server import MetricsServer
from support.api import TEST_KEY, Reply, make_config
from support.waits import eventually
from support.wire import keep_alive_scrape


def test_no_thread_keeps_the_interpreter_alive_after_stop(api):
    api.routes["/providers/stats"] = Reply(body={}, delay=60)
    exporter = build(make_config(api.url, REQUEST_TIMEOUT="30", METRICS_ADDR="127.0.0.1"))
    before = set(threading.enumerate())
    exporter.start()
    assert eventually(lambda: api.count("/providers/stats") >= 1)
    keep_alive = keep_alive_scrape(exporter.server.port)
    try:
        started = time.monotonic()
        exporter.stop()
        assert time.monotonic() - started < 3.0
    finally:
        keep_alive.close()

    def lingering():
        return [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]

    assert eventually(lambda: not lingering(), timeout=3), lingering()
    assert not exporter.thread.is_alive()


def test_a_server_that_cannot_start_is_reported_as_not_started(api):
    exporter = build(make_config(api.url))
    # asyncio refuses a datagram socket when the server starts listening, in the server's own thread.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    server = MetricsServer(exporter.exposition, lambda: True, listen_socket=udp)
    with pytest.raises(OSError, match="did not start"):
        server.start()
    assert udp.fileno() == -1  # closed, not leaked


def test_main_returning_early_leaves_no_signal_wakeup_fd_behind():
    """Its socket closes with ``main``: a wakeup fd left set would get a byte at each later
    signal, written into whatever file reuses the number."""
    assert threading.current_thread() is threading.main_thread()  # where main catches signals
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert main([], env={"ADMIN_KEY": TEST_KEY, "SCRAPE_INTERVAL": "soon"}) == 2
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
