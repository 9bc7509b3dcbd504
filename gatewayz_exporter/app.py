"""Wiring: build every part from the Config, run until SIGTERM/SIGINT.

``build`` is where the one registry and every collaborator are made and
handed down; tests use it with a dict instead of ``os.environ``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from . import __version__
from .client import ApiClient, is_loopback_url
from .collector import SnapshotCollector
from .config import Config, ConfigError
from .exposition import Exposition
from .landing import LandingPage, describe_api
from .live import ProcessFamilies
from .logs import configure_logging
from .poller import Poller, SnapshotStore
from .process import install_log_hooks, keep_large_buffers_out_of_the_heap
from .server import MetricsServer
from .syntax import unbracket
from .telemetry import Telemetry, TelemetryError
from .webconfig import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from .status_poller import StatusPoller

log = logging.getLogger("gatewayz_exporter")

# Exit codes, documented in docs/reference.md (Configuration).
EXIT_OK = 0  # stopped by SIGTERM/SIGINT, or `--once` with both endpoints polled
EXIT_POLL_FAILED = 1  # `--once`: an endpoint failed (the reasons are on stderr)
EXIT_CONFIG = 2  # invalid configuration: environment, web config file, OTEL_* settings
EXIT_CANNOT_SERVE = 3  # cannot listen (port in use, address not on this host, no permission) or start
# SIGTERM to stop(): docs/reference.md promises exit within 2 s; the interpreter's own
# exit (atexit handlers, daemon threads) follows, so stop() gets less.
STOP_SECONDS = 1.7


@dataclass
class Exporter:
    """Every long-lived part of a running exporter."""

    config: Config
    store: SnapshotStore
    poller: Poller
    collector: SnapshotCollector
    exposition: Exposition
    server: MetricsServer
    telemetry: Telemetry
    web: WebConfig | None
    stop_event: threading.Event
    thread: threading.Thread | None = None
    status_poller: StatusPoller | None = None  # the public status API (STATUS_API), on its own thread
    status_thread: threading.Thread | None = None

    def is_ready(self) -> bool:
        """A poll of either endpoint succeeded within MAX_STALENESS."""
        return self.collector.ready()

    def start(self) -> None:
        """Bind the server, then start polling in the background."""
        self.server.start()
        self.thread = threading.Thread(
            target=self.poller.run, args=(self.stop_event,), name="poller", daemon=True
        )
        self.thread.start()
        if self.status_poller is not None:
            self.status_thread = threading.Thread(
                target=self.status_poller.run, args=(self.stop_event,), name="status-poller", daemon=True
            )
            self.status_thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop polling, close the server, flush telemetry: all within ``timeout`` seconds.

        Requests in flight are abandoned first, so a hanging API costs nothing; what
        is left of the budget goes to flushing spans and log lines.
        """
        deadline = time.monotonic() + timeout
        self.stop_event.set()
        self.poller.close()
        if self.status_poller is not None:
            self.status_poller.close()
        self.server.stop(max(0.1, min(1.0, deadline - time.monotonic())))
        for thread in (self.thread, self.status_thread):
            if thread is not None:
                thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        self.telemetry.shutdown(max(0.1, deadline - time.monotonic()))


def build(
    config: Config,
    *,
    api_url: str | None = None,
    telemetry: Telemetry | None = None,
    web: WebConfig | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    on_large_body: Callable[[], None] | None = None,
) -> Exporter:
    """Make every part from ``config``; nothing starts yet.

    ``monotonic`` and ``wall_clock`` are the time every part reads (scheduling,
    Retry-After, staleness, timestamps); tests pass fake clocks here.
    ``on_large_body`` runs once when the exposition first grows large (``main``
    tunes the allocator there).
    """
    telemetry = telemetry or Telemetry.disabled()
    store = SnapshotStore()
    # The demo backend needs no key, so a real one set in the environment is never sent to it.
    client = ApiClient(
        api_url or config.gateway_api_url,
        None if config.demo else config.admin_key,
        timeout=config.request_timeout,
        max_bytes=config.max_response_bytes,
        user_agent=f"gatewayz-provider-metrics-exporter/{__version__}",
        wall_clock=wall_clock,
        tracer=telemetry.tracer,
    )
    poller = Poller(
        client,
        store,
        interval=config.scrape_interval,
        tracer=telemetry.tracer,
        monotonic=monotonic,
        wall_clock=wall_clock,
    )
    status_poller = status_store = status_source = None
    if config.status_api:
        # Loaded only with the status API on.
        from .status_metrics import StatusSource
        from .status_poller import StatusPoller, StatusStore

        status_store = StatusStore()
        status_poller = StatusPoller(
            # A client of its own (same deadline, size cap, redirect and Retry-After rules) without
            # the key: the status routes are public, and a hanging one holds no admin request back.
            ApiClient(
                api_url or config.gateway_api_url,
                None,
                timeout=config.request_timeout,
                max_bytes=config.max_response_bytes,
                user_agent=f"gatewayz-provider-metrics-exporter/{__version__}",
                wall_clock=wall_clock,
                tracer=telemetry.tracer,
            ),
            status_store,
            interval=config.scrape_interval,
            models_max=config.status_models_max,
            monotonic=monotonic,
            wall_clock=wall_clock,
        )
        status_source = StatusSource(status_store, max_staleness=config.max_staleness, monotonic=monotonic)
    collector = SnapshotCollector(
        store,
        max_staleness=config.max_staleness,
        version=__version__,
        monotonic=monotonic,
        extra=status_source,
    )
    process_families = ProcessFamilies()
    exposition = Exposition(
        collector,
        store,
        live=lambda: (*process_families(), *telemetry.live_families()),
        on_large_body=on_large_body,
    )
    store.subscribe(exposition.prerender)
    if status_store is not None:
        status_store.subscribe(lambda _: exposition.prerender_extra())
    landing = LandingPage(
        lambda: store.current,
        version=__version__,
        mode=describe_api(config.gateway_api_url, demo=config.demo),
        max_staleness=config.max_staleness,
        status=None if status_store is None else lambda: status_store.current,
        monotonic=monotonic,
    )
    server = MetricsServer(
        exposition,
        collector.ready,
        host=config.metrics_addr,
        port=config.metrics_port,
        web=web,  # re-read when its files change (webconfig.WebConfigReloader)
        landing=landing.render,
        tracer=telemetry.tracer,
    )
    return Exporter(
        config,
        store,
        poller,
        collector,
        exposition,
        server,
        telemetry,
        web,
        threading.Event(),
        status_poller=status_poller,
    )


class Arguments(NamedTuple):
    """The command line; the defaults are what no arguments mean."""

    once: bool = False
    demo: bool = False
    web_config_file: str | None = None


def parse_args(argv: list[str], prog: str = "provider_metrics_exporter.py") -> Arguments:
    if not argv:  # how the image runs: no parser to load
        return Arguments()
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Poll the GatewayZ provider API and serve Prometheus metrics. "
        "Configured by environment variables; see docs/reference.md.",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll once, print the metrics to stdout and exit (non-zero if the API failed)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="poll a built-in sample API on loopback instead of GATEWAY_API_URL; no key needed",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config (TLS, basic auth); overrides WEB_CONFIG_FILE",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parsed = parser.parse_args(argv)
    return Arguments(parsed.once, parsed.demo, parsed.web_config_file)


def run_once(exporter: Exporter, stop: threading.Event | None = None) -> int:
    """Poll once and print the exposition; ``stop`` (SIGTERM/SIGINT) abandons the poll: exit 0, nothing printed."""
    if stop is not None:
        # A watcher, not the signal handler, closes the poller: closing takes locks the
        # interrupted main thread may hold.
        threading.Thread(target=_close_when_set, args=(stop, exporter), name="once-stop", daemon=True).start()
    snapshot = exporter.poller.poll_once()
    if exporter.status_poller is not None and not (stop is not None and stop.is_set()):
        exporter.status_poller.poll_once()  # its failures are logged, and do not change the exit code
    if stop is not None and stop.is_set():
        log.info("Stopping")
        return EXIT_OK
    sys.stdout.write(exporter.exposition.snapshot_text().decode("utf-8"))
    sys.stdout.flush()
    failed = [f"{endpoint}: {reason}" for (endpoint, reason), count in snapshot.errors.items() if count]
    if failed:
        print("poll failed: " + ", ".join(failed), file=sys.stderr)
        return EXIT_POLL_FAILED
    return EXIT_OK


def _close_when_set(stop: threading.Event, exporter: Exporter) -> None:
    stop.wait()
    exporter.poller.close()
    if exporter.status_poller is not None:
        exporter.status_poller.close()


def _fail(message: str) -> None:
    """A start-up failure: one line on stderr, nothing else."""
    print(f"provider-metrics-exporter: {message}", file=sys.stderr, flush=True)


class _Signals:
    """SIGTERM/SIGINT set one Event, from the very start, so a signal during start-up is not lost.

    The kernel may deliver a signal to any thread, and Python runs the handler only when the main
    thread next runs bytecode. So the main thread sleeps in ``select`` on a socket set as the
    interpreter's signal wakeup fd, which the C-level handler writes to in whichever thread caught
    the signal: it wakes at once, and never otherwise.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        reader, writer = socket.socketpair()
        for end in (reader, writer):
            end.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._wakeup = (reader, writer)

    def wait(self) -> None:
        """Return once a signal has set the event."""
        if self._wakeup is None:
            self.event.wait()
            return
        reader = self._wakeup[0]
        while not self.event.is_set():
            select.select([reader], [], [])
            with contextlib.suppress(BlockingIOError):
                reader.recv(4096)

    def uninstall(self) -> None:
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for end in self._wakeup:
                end.close()
            self._wakeup = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name
        self.event.set()


def main(
    argv: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    prog: str = "provider_metrics_exporter.py",
) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    signals = _Signals()
    if threading.current_thread() is threading.main_thread():
        signals.install()
    try:
        return _run(args, os.environ if env is None else env, signals)
    finally:
        # Every return, a config error's too: the wakeup fd must not outlive its socket.
        signals.uninstall()


def _run(args: Arguments, env: Mapping[str, str], signals: _Signals) -> int:
    """``main`` once the signals are caught: configure, build, then serve (or poll once)."""
    try:
        config = Config.from_env(env, demo=args.demo, web_config_file=args.web_config_file)
    except ConfigError as error:
        _fail(str(error))
        return EXIT_CONFIG

    web = None
    if config.web_config_file:
        try:
            web = load_web_config(config.web_config_file)
        except WebConfigError as error:
            _fail(f"WEB_CONFIG_FILE: {error}")
            return EXIT_CONFIG
    stream = sys.stderr if args.once else sys.stdout
    # Logging first, so what the OpenTelemetry SDK says while it starts is a JSON line too.
    install_log_hooks()
    configure_logging(config.log_level, stream)
    try:
        telemetry = Telemetry.from_config(config, env, enable_tracing=not args.once, report_stream=stream)
    except TelemetryError as error:
        _fail(str(error))
        return EXIT_CONFIG
    configure_logging(config.log_level, stream, telemetry.log_handlers)

    demo = None
    api_url = None
    exporter = None
    try:
        if config.demo:
            from .demo import DemoBackend

            demo = DemoBackend(config.demo_down).start()
            api_url = demo.url
        exporter = build(
            config,
            api_url=api_url,
            telemetry=telemetry,
            web=web,
            on_large_body=keep_large_buffers_out_of_the_heap,
        )
        if args.once:
            return run_once(exporter, signals.event)
        return serve(exporter, signals)
    finally:
        if exporter is not None:
            exporter.poller.close()
        # A no-op after serve(), which flushed within STOP_SECONDS; after a signal during
        # --once or start-up, what is left must fit in that budget too.
        telemetry.shutdown(1.5 if signals.event.is_set() else 3.0)
        if demo is not None:
            demo.stop()


def open_url(config: Config, port: int, tls: bool) -> str:
    """The URL an operator on this host opens: ``localhost`` for a wildcard address."""
    host = config.metrics_addr
    if host is None or unbracket(host) in ("::", "0.0.0.0"):
        host = "localhost"
    return f"{'https' if tls else 'http'}://{_bracketed(host)}:{port}/"


def _bracketed(host: str) -> str:
    """``host`` as it goes before ``:port``: an IPv6 address in brackets ([::1]:8001, not ::1:8001)."""
    return f"[{unbracket(host)}]" if ":" in host else host


def serve(exporter: Exporter, signals: _Signals) -> int:
    """Start, run until SIGTERM or SIGINT, stop within STOP_SECONDS."""
    config = exporter.config
    try:
        exporter.start()
    except OSError as error:
        where = f"{_bracketed(config.metrics_addr or '*')}:{config.metrics_port}"
        if isinstance(error, socket.gaierror):  # METRICS_ADDR is a name that does not resolve
            why = str(error.strerror)
        else:
            why = os.strerror(error.errno) if error.errno else str(error)
        _fail(f"cannot listen on {where} (METRICS_ADDR, METRICS_PORT): {why}")
        exporter.stop(1.0)
        return EXIT_CANNOT_SERVE
    tls = bool(exporter.web and exporter.web.ssl_context)
    url = open_url(config, exporter.server.port or config.metrics_port, tls)
    log.info(
        "Exporter started",
        extra={
            "version": __version__,
            "url": url,
            "port": exporter.server.port,
            "api_url": None if config.demo else config.gateway_api_url,
            "demo": config.demo,
            "scrape_interval": config.scrape_interval,
            "request_timeout": config.request_timeout,
            "max_staleness": config.max_staleness,
            "tls": tls,
            "basic_auth": bool(exporter.web and exporter.web.users),
            "max_connections": exporter.server.max_connections,
        },
    )
    if config.scrape_interval < 1 and not config.demo and not is_loopback_url(config.gateway_api_url):
        log.warning(
            "SCRAPE_INTERVAL below 1 s polls a remote API often",
            extra={
                "scrape_interval": config.scrape_interval,
                "requests_per_second": round(3 / config.scrape_interval, 1),  # two endpoints, one redirect
                "api_url": config.gateway_api_url,
            },
        )
    # The exporter's own stop_event is what the poller watches; the signals' event is apart.
    signals.wait()
    log.info("Stopping", extra={"signal": signals.received})
    exporter.stop()
    log.info("Exporter stopped")
    return EXIT_OK


def exit_process(code: int) -> None:
    """Leave with ``code`` once ``main`` has stopped everything, without interpreter finalization.

    Finalization stops daemon threads by unwinding them, and one still inside bcrypt (Rust)
    then aborts the whole process; a bcrypt check cannot be interrupted, so it is abandoned.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def console_main() -> None:
    """Entry point of the installed ``provider-metrics-exporter`` command."""
    exit_process(main(sys.argv[1:], prog="provider-metrics-exporter"))
