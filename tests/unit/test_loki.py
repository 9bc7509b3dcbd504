"""Log shipping against a Loki that answers too slowly: the whole push has a deadline."""

import logging
import socketserver
import threading
import time

import pytest

from gatewayz_exporter.loki import LokiHandler, LokiPusher
from support.waits import eventually


class TricklingLoki(socketserver.ThreadingTCPServer):
    """Reads a push, then answers one byte of a status line every ``every`` seconds, for a minute;
    with ``whole_lines``, a whole status line, then a whole header line every ``every`` seconds."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, every: float, whole_lines: bool = False):
        self.every, self.done = every, threading.Event()
        self.pushes = 0
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server.pushes += 1
                self.request.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += self.request.recv(65536)
                answer = b"HTTP/1.1 204 No Content\r\n" + b"X-Slow: " + b"a" * 200
                pieces = (
                    [answer[:25]] + [b"X-Slow: a\r\n"] * 300 if whole_lines else [bytes([b]) for b in answer]
                )
                for piece in pieces:
                    if server.done.wait(server.every):
                        return
                    try:
                        self.request.sendall(piece)
                    except OSError:
                        return

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.done.set()
        self.shutdown()
        self.server_close()


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("gatewayz_exporter.test", logging.INFO, __file__, 1, message, None, None)


@pytest.mark.parametrize("whole_lines", [False, True], ids=["bytes", "header-lines"])
def test_a_push_answered_by_a_trickle_fails_at_its_deadline(whole_lines):
    loki = TricklingLoki(every=0.1, whole_lines=whole_lines)
    try:
        started = time.monotonic()
        try:
            LokiPusher(loki.url, timeout=0.4).push(b"{}")
        except TimeoutError:
            pass
        else:
            raise AssertionError("a trickled answer was taken as a success")
        assert time.monotonic() - started < 5  # the trickle alone lasts half a minute
    finally:
        loki.close()


@pytest.mark.parametrize("whole_lines", [False, True], ids=["bytes", "header-lines"])
def test_a_trickling_loki_counts_a_failure_and_drops_the_lines_after_the_retries(whole_lines):
    loki = TricklingLoki(every=0.05, whole_lines=whole_lines)
    handler = LokiHandler(
        LokiPusher(loki.url, timeout=0.25), flush_interval=0.05, max_retries=1, backoff=0.01
    )
    try:
        handler.handle(record("one"))
        handler.handle(record("two"))
        assert eventually(lambda: handler.dropped == 2, timeout=15)
        assert handler.failures == 2 and handler.pushed == 0  # the first try and one retry
        assert loki.pushes == 2
    finally:
        handler.close(0.1)
        loki.close()
