"""Wiring: build every part from the Config, run until SIGTERM/SIGINT.

``build`` is where the one registry and every collaborator are made and
handed down; tests use it with a dict instead of ``os.environ``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from config import Config, ConfigError

from . import __version__
from .client import ApiClient
from .collector import SnapshotCollector
from .exposition import Exposition
from .landing import LandingPage, PollHistory, describe_api
from .logs import configure_logging
from .poller import Poller, SnapshotStore
from .server import MetricsServer

if TYPE_CHECKING:  # imported lazily at run time: OpenTelemetry and bcrypt are heavy
    from .telemetry import Telemetry
    from .webconfig import WebConfig

log = logging.getLogger("gatewayz_exporter")

EXIT_CONFIG = 2


@dataclass
class Exporter:
    """Every long-lived part of a running exporter."""

    config: Config
    store: SnapshotStore
    poller: Poller
    collector: SnapshotCollector
    live_registry: CollectorRegistry
    exposition: Exposition
    server: MetricsServer
    telemetry: Telemetry
    web: WebConfig | None
    stop_event: threading.Event
    thread: threading.Thread | None = None

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

    def stop(self, timeout: float = 3.0) -> None:
        """Stop polling, close the server, flush telemetry; bounded by ``timeout`` per part."""
        self.stop_event.set()
        self.server.stop(timeout)
        if self.thread is not None:
            self.thread.join(timeout)
        self.poller.close()
        self.telemetry.shutdown(min(timeout, 2.0))


def build(
    config: Config,
    *,
    api_url: str | None = None,
    telemetry: Telemetry | None = None,
    web: WebConfig | None = None,
) -> Exporter:
    """Make every part from ``config``; nothing starts yet."""
    from .telemetry import Telemetry  # OpenTelemetry set-up is heavy; only the daemon needs it

    telemetry = telemetry or Telemetry.disabled()
    store = SnapshotStore()
    # The demo backend needs no key, so a real one set in the environment is never sent to it.
    client = ApiClient(
        api_url or config.gateway_api_url,
        None if config.demo else config.admin_key,
        timeout=config.request_timeout,
        max_bytes=config.max_response_bytes,
        user_agent=f"gatewayz-provider-metrics-exporter/{__version__}",
    )
    poller = Poller(client, store, interval=config.scrape_interval, tracer=telemetry.tracer)
    collector = SnapshotCollector(store, max_staleness=config.max_staleness, version=__version__)
    live_registry = CollectorRegistry()
    ProcessCollector(registry=live_registry)
    telemetry.register_metrics(live_registry)
    exposition = Exposition(collector, store, live_registry)
    store.subscribe(exposition.prerender)
    history = PollHistory()
    store.subscribe(history.observe)
    landing = LandingPage(
        lambda: store.current,
        history,
        version=__version__,
        mode=describe_api(config.gateway_api_url, demo=config.demo),
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
        config, store, poller, collector, live_registry, exposition, server, telemetry, web, threading.Event()
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="provider_metrics_exporter.py",
        description="Poll the GatewayZ provider API and serve Prometheus metrics. "
        "Configured by environment variables; see README.md.",
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
    return parser.parse_args(argv)


def run_once(exporter: Exporter) -> int:
    snapshot = exporter.poller.poll_once()
    registry = CollectorRegistry()
    registry.register(exporter.collector)
    sys.stdout.write(generate_latest(registry).decode("utf-8"))
    sys.stdout.flush()
    failed = [f"{endpoint}: {reason}" for (endpoint, reason), count in snapshot.errors.items() if count]
    if failed:
        print("poll failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        config = Config.from_env(env, demo=args.demo, web_config_file=args.web_config_file)
    except ConfigError as error:
        print(f"provider-metrics-exporter: {error}", file=sys.stderr)
        return EXIT_CONFIG

    from .telemetry import Telemetry, TelemetryError

    web = None
    if config.web_config_file:
        from .webconfig import WebConfigError, load_web_config

        try:
            web = load_web_config(config.web_config_file)
        except WebConfigError as error:
            print(f"provider-metrics-exporter: WEB_CONFIG_FILE: {error}", file=sys.stderr)
            return EXIT_CONFIG
    stream = sys.stderr if args.once else sys.stdout
    try:
        telemetry = Telemetry.from_config(config, env, enable_tracing=not args.once, report_stream=stream)
    except TelemetryError as error:
        print(f"provider-metrics-exporter: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level, stream, telemetry.log_handlers)

    demo = None
    api_url = None
    if config.demo:
        from .demo import DemoBackend

        demo = DemoBackend().start()
        api_url = demo.url
    exporter = build(config, api_url=api_url, telemetry=telemetry, web=web)
    try:
        if args.once:
            return run_once(exporter)
        return serve(exporter)
    finally:
        exporter.poller.close()
        telemetry.shutdown(3.0)
        if demo is not None:
            demo.stop()


def serve(exporter: Exporter) -> int:
    stop = exporter.stop_event

    def on_signal(signum, _frame) -> None:
        log.info("Stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        exporter.start()
    except OSError as error:
        log.error("Cannot listen", extra={"port": exporter.config.metrics_port, "error": error.strerror})
        return 1
    config = exporter.config
    log.info(
        "Exporter started",
        extra={
            "version": __version__,
            "port": exporter.server.port,
            "api_url": None if config.demo else config.gateway_api_url,
            "demo": config.demo,
            "scrape_interval": config.scrape_interval,
            "max_staleness": config.max_staleness,
            "tls": bool(exporter.web and exporter.web.ssl_context),
            "basic_auth": bool(exporter.web and exporter.web.users),
        },
    )
    while not stop.wait(3600):
        pass
    exporter.stop()
    log.info("Exporter stopped")
    return 0


def console_main() -> None:
    """Entry point of the installed ``provider-metrics-exporter`` command."""
    sys.exit(main(sys.argv[1:]))
