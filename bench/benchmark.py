#!/usr/bin/env python3
"""Benchmark: this exporter against the straightforward design, side by side, same machine, same fake API.

    python bench/benchmark.py                      # N = 50, 1000, 10000
    python bench/benchmark.py --providers 10000 --runs 3
    python bench/benchmark.py --providers 10000 --churn 1   # every record changes on every poll

For each N a stand-in API on loopback serves N generated providers to both exporters, run as
separate processes (ours with tracing, Loki and the status API off unless asked), and it prints a
table of time to the first complete /metrics, poll time, CPU per interval, scrape latency and
size, resident memory, idle CPU, and ours against the cached-bytes limit
(``cached_bytes_server.py``). Ratios are ours / reference: below 1 means ours is better.
``--status-models M`` adds a table of ours with the status API polled against ours without.
The method and the results are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the status stand-in is the exporter's own (gatewayz_exporter.status_standin)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def providers_payload(count: int, variant: int = 0, churn: float = 0.0) -> list[dict]:
    """N generated providers; ``variant`` shifts the values of the records ``churn`` selects."""
    healths = ("healthy", "healthy", "healthy", "degraded", "down", "unknown")
    changed = round(churn * 100)  # of every 100 records
    return [
        {
            "id": i,
            "name": f"Provider {i}",
            "slug": f"provider-{i}",
            "description": "generated",
            "base_url": f"https://api.provider-{i}.example",
            "api_key_env_var": f"P{i}_KEY",
            "logo_url": None,
            "site_url": f"https://provider-{i}.example",
            "privacy_policy_url": None,
            "terms_of_service_url": None,
            "status_page_url": f"https://status.provider-{i}.example",
            "is_active": i % 7 != 0,
            "supports_streaming": True,
            "supports_function_calling": i % 2 == 0,
            "supports_vision": i % 3 == 0,
            "supports_image_generation": i % 5 == 0,
            "metadata": {
                "rate_limit": 1000 + i,
                "max_tokens": 8192 * (1 + i % 16),
                "supported_models": [f"m{j}" for j in range(i % 4)],
            },
            "average_response_time_ms": 100 + (i * 37) % 900 + (variant if i % 100 < changed else 0),
            "health_status": healths[i % len(healths)],
            "last_health_check_at": f"2026-11-28T04:09:{11 + (variant if i % 100 < changed else 0):02d}.817Z",
            "created_at": "2025-12-17T04:09:11.817Z",
            "updated_at": "2026-11-28T04:09:11.817Z",
        }
        for i in range(count)
    ]


def status_data(models: int, variant: int = 0):
    """The status routes' data for ``models`` generated models over 40 providers and two gateways."""
    from gatewayz_exporter.status_standin import StatusData, incident_row, model_view_row, provider_view_row

    tiers = ("critical", "popular", "standard", "standard", "on_demand")
    data = StatusData(checks_total=288 * models, checks_successful=280 * models)
    for i in range(models):
        uptime = 100.0 - ((i * 7 + variant) % 60) / 10
        data.models.append(
            model_view_row(
                f"provider-{i % 40}",
                ("openrouter", "portkey")[i % 2],
                f"model-{i}",
                monitoring_tier=tiers[i % len(tiers)],
                uptime_percentage_24h=uptime,
                circuit_breaker_state="open" if i % 97 == 0 else "closed",
                usage_count_24h=models - i,
                last_called_at=f"2026-11-28T04:{variant % 60:02d}:11+00:00",
            )
        )
    for p in range(40):
        for g, gateway in enumerate(("openrouter", "portkey")):
            data.providers.append(provider_view_row(f"provider-{p}", gateway, avg_uptime_24h=99.5 - (p % 5)))
            if p % 8 == 0:
                data.incidents.append(
                    incident_row(p * 2 + g, f"provider-{p}", 1_796_000_000.0, gateway=gateway)
                )
    return data


class StandIn:
    """The fake API plus sinks for OTLP and Loki, on one loopback port."""

    VARIANTS = 3  # bodies served in turn when records churn

    def __init__(self, count: int, churn: float = 0.0, status_models: int = 0):
        from gatewayz_exporter.status_standin import answer

        # The status routes' answers, rendered once per variant (a request must not cost the
        # stand-in more than the exporter it measures).
        status = [status_data(status_models, v) for v in range(self.VARIANTS if churn else 1)]
        status_cache: dict[tuple[int, str], tuple[int, bytes]] = {}

        def status_answer(path: str, query: str, variant: int) -> tuple[int, bytes] | None:
            key = (variant, f"{path}?{query}")
            if key not in status_cache:
                answered = answer(status[variant], path, query, 1_796_000_600.0)
                if answered is None:
                    return None
                status_cache[key] = (answered[0], json.dumps(answered[1]).encode())
            return status_cache[key]

        providers = providers_payload(count)
        variants = [json.dumps(providers).encode()]
        if churn:
            variants += [
                json.dumps(providers_payload(count, variant, churn)).encode()
                for variant in range(1, self.VARIANTS)
            ]
        self.body_bytes = len(variants[0])
        turn = iter(range(10**9))
        bodies = {
            "/providers/": variants[0],
            "/providers/stats": json.dumps(
                {
                    "total": count,
                    "active": sum(p["is_active"] for p in providers),
                    "inactive": sum(not p["is_active"] for p in providers),
                    "healthy": 0,
                    "degraded": 0,
                    "down": 0,
                    "unknown": 0,
                }
            ).encode(),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path.startswith("/v1/status") and status_models:
                    answered = status_answer(path, query, next(turn) % len(status))
                    if answered is not None:
                        self._reply(*answered)
                        return
                if path == "/providers":
                    self._reply(307, b"", {"Location": "/providers/?include_inactive=true"})
                    return
                body = bodies.get(path)
                if path == "/providers/":
                    body = variants[next(turn) % len(variants)]
                self._reply(200 if body else 404, body or b"{}")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._reply(200 if self.path == "/v1/traces" else 204, b"")

            def _reply(self, status, body, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in dict(headers).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def scrape(port: int, gzip_wanted: bool) -> tuple[float, bytes]:
    """One GET /metrics on a fresh connection: seconds to the last byte, and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzip_wanted else {}
    started = time.perf_counter()
    connection.request("GET", "/metrics", headers=headers)
    body = connection.getresponse().read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Subject:
    """One exporter process; its poll completions are read from its JSON stdout."""

    def __init__(self, name: str, command: list[str], env: dict):
        self.name = name
        self.port = int(env["METRICS_PORT"])
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.polls: queue.Queue = queue.Queue()
        self.poll_ms: list[float] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "Updated provider metrics":
                self.poll_ms.append(event["poll_duration_ms"])
                self.polls.put(time.monotonic())

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def cpu_ns_live_threads(self) -> int:
        """On-CPU nanoseconds of the live threads (schedstat): fine-grained, for short idle windows."""
        total = 0
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            try:
                with open(f"/proc/{self.process.pid}/task/{task}/schedstat") as stat:
                    total += int(stat.read().split()[0])
            except OSError:
                pass
        return total

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def scrape(self, gzip_wanted: bool) -> tuple[float, bytes]:
        return scrape(self.port, gzip_wanted)

    def wait_first_complete(self, last_slug: str, timeout: float = 120) -> float:
        marker = f'provider="{last_slug}"'.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, body = self.scrape(False)
                if marker in body and b"gatewayz_providers_total" in body:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name}: no complete /metrics within {timeout}s")

    def next_poll(self, timeout: float = 120) -> float:
        return self.polls.get(timeout=timeout)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(subject: Subject, count: int, scrapes: int, intervals: int, interval: float, idle: bool) -> dict:
    result = {"first_complete_s": subject.wait_first_complete(f"provider-{count - 1}")}
    _, body = subject.scrape(False)
    # Like for like: both exporters must export the same per-provider series.
    result["provider_series"] = sum(
        1 for line in body.split(b"\n") if line.startswith(b"gatewayz_provider") and b'provider="' in line
    )
    plain, packed = [], []
    for _ in range(scrapes):
        elapsed, body = subject.scrape(False)
        plain.append(elapsed)
        result["size_plain"] = len(body)
        elapsed, body = subject.scrape(True)
        packed.append(elapsed)
        result["size_gzip"] = len(body)
        assert gzip.decompress(body).count(b"\n") > count, f"{subject.name}: gzip body incomplete"
    result.update(
        plain_p50=statistics.median(plain),
        plain_p99=percentile(plain, 0.99),
        gzip_p50=statistics.median(packed),
        gzip_p99=percentile(packed, 0.99),
    )
    while not subject.polls.empty():  # only completions from now on count
        subject.polls.get()
    subject.next_poll()
    cpu_start = subject.cpu_seconds()
    for _ in range(intervals):  # one gzip scrape per interval, as one Prometheus would
        subject.scrape(True)
        subject.next_poll()
    result["cpu_per_interval_s"] = (subject.cpu_seconds() - cpu_start) / intervals
    if idle:  # between two polls, no scrapes: what does an idle exporter burn?
        subject.next_poll()
        time.sleep(0.25)
        # End before the next poll starts: both schedule it one interval after the last one started.
        window = max(0.5, interval - subject.poll_ms[-1] / 1000 - 0.75)
        cpu_start = subject.cpu_ns_live_threads()
        time.sleep(window)
        result["idle_cpu_ms_per_s"] = (subject.cpu_ns_live_threads() - cpu_start) / 1e6 / window
    result["poll_s"] = statistics.median(subject.poll_ms) / 1000
    result["rss_mib"] = subject.rss_mib()
    return result


def cached_bytes_limit(body: bytes, packed: bytes, scrapes: int) -> float:
    """Median plain scrape of ``body`` from a process that only writes bytes it holds.

    Scraped as ``measure`` scrapes the exporters, a plain and a gzip scrape (``packed``,
    decompressed by the client) in turn, so both plain figures follow the same client work.
    """
    port = free_port()
    with (
        tempfile.NamedTemporaryFile(prefix="exposition-") as held,
        tempfile.NamedTemporaryFile(prefix="exposition-gzip-") as held_packed,
    ):
        for file, content in ((held, body), (held_packed, packed)):
            file.write(content)
            file.flush()
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "cached_bytes_server.py"),
                held.name,
                held_packed.name,
                str(port),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            times = []
            for _ in range(scrapes):
                elapsed, received = scrape(port, False)
                assert received == body, "the cached-bytes server sent other bytes"
                times.append(elapsed)
                _, received = scrape(port, True)
                assert received == packed, "the cached-bytes server sent other bytes"
                gzip.decompress(received)  # the client's work between two plain scrapes, as in measure()
        finally:
            server.terminate()
            server.wait(10)
    return statistics.median(times)


def run(
    count: int,
    scrapes: int,
    intervals: int,
    interval: float,
    idle: bool,
    churn: float = 0.0,
    subjects: tuple[str, ...] = ("ours", "reference"),
    telemetry: bool = False,
    status_models: int = 0,
) -> dict[str, dict]:
    """Each subject in turn against one stand-in: ``ours`` (status API off), ``reference``, ``ours+status``."""
    api = StandIn(count, churn, status_models)
    results = {}
    try:
        for name in subjects:
            env = {
                "GATEWAY_API_URL": api.url,
                "ADMIN_KEY": "benchmark-key",
                "SCRAPE_INTERVAL": str(interval),
                "METRICS_PORT": str(free_port()),
                "METRICS_ADDR": "127.0.0.1",
            }
            if name.startswith("ours"):
                if telemetry:
                    env.update(LOKI_URL=api.url, OTEL_EXPORTER_OTLP_ENDPOINT=api.url)
                env["STATUS_API"] = "on" if name == "ours+status" else "off"
                # Room for the biggest body (the default 64 MiB cap stops ~70,000 providers).
                env["MAX_RESPONSE_BYTES"] = str(max(64 * 1024 * 1024, 2 * api.body_bytes))
                command = [sys.executable, "provider_metrics_exporter.py"]
            else:
                command = [sys.executable, "bench/reference_exporter.py"]
            subject = Subject(name, command, env)
            try:
                results[name] = measure(subject, count, scrapes, intervals, interval, idle)
                if name == "ours":
                    body, packed = subject.scrape(False)[1], subject.scrape(True)[1]
            finally:
                subject.stop()
            if name == "ours":
                results[name]["limit_plain_p50"] = cached_bytes_limit(body, packed, scrapes)
    finally:
        api.close()
    return results


ROWS = [
    ("time to first complete /metrics", "first_complete_s", "s", False),
    ("poll time (median)", "poll_s", "s", False),
    ("CPU per interval (1 poll + 1 gzip scrape)", "cpu_per_interval_s", "s", False),
    ("scrape latency plain, median", "plain_p50", "ms", False),
    ("scrape latency plain, p99", "plain_p99", "ms", False),
    ("scrape latency gzip, median", "gzip_p50", "ms", False),
    ("scrape latency gzip, p99", "gzip_p99", "ms", False),
    ("exposition size plain", "size_plain", "KiB", True),
    ("exposition size gzip", "size_gzip", "KiB", True),
    ("resident memory", "rss_mib", "MiB", False),
    ("idle CPU between polls", "idle_cpu_ms_per_s", "ms/s", False),
]


def format_limit(runs: list[dict[str, dict]]) -> str:
    """Ours' fresh-connection plain scrape against the cached-bytes limit (medians over the runs)."""
    ours = statistics.median(run["ours"]["plain_p50"] for run in runs) * 1000
    limit = statistics.median(run["ours"]["limit_plain_p50"] for run in runs) * 1000
    ratios = [run["ours"]["plain_p50"] / run["ours"]["limit_plain_p50"] for run in runs]
    spread = f" ({min(ratios):.3g}–{max(ratios):.3g})" if len(runs) > 1 else ""
    return (
        f"Plain scrape on a fresh connection: {ours:,.3g} ms; the same bytes from a server that only "
        f"writes them (the cached-bytes limit): {limit:,.3g} ms; {statistics.median(ratios):.3g}× the limit{spread}."
    )


STATUS_ROWS = [
    ("CPU per interval (1 poll + 1 gzip scrape)", "cpu_per_interval_s", "s"),
    ("resident memory", "rss_mib", "MiB"),
    ("exposition size plain", "size_plain", "KiB"),
    ("scrape latency gzip, median", "gzip_p50", "ms"),
]


def format_status_table(title: str, runs: list[dict[str, dict]]) -> str:
    """Ours with the status API polled against ours without it: medians and the median difference."""
    lines = [f"| {title} | status API on | off | on - off (median) |", "|---|---:|---:|---:|"]
    for label, key, unit in STATUS_ROWS:
        scale = {"ms": 1000, "KiB": 1 / 1024}.get(unit, 1)
        on = statistics.median(run["ours+status"][key] for run in runs) * scale
        off = statistics.median(run["ours"][key] for run in runs) * scale
        difference = statistics.median(run["ours+status"][key] - run["ours"][key] for run in runs) * scale
        lines.append(f"| {label} ({unit}) | {on:,.3g} | {off:,.3g} | {difference:+,.3g} |")
    return "\n".join(lines)


def format_table(title: str, runs: list[dict[str, dict]]) -> str:
    """One row per figure: medians over the runs, and ours / reference as median (lowest to highest)."""
    many = len(runs) > 1
    ratio_head = f"ours / reference (median, range of {len(runs)} runs)" if many else "ours / reference"
    lines = [f"| {title} | ours | reference | {ratio_head} |", "|---|---:|---:|---:|"]
    for label, key, unit, informational in ROWS:
        if key not in runs[0]["ours"]:
            continue
        scale = {"ms": 1000, "KiB": 1 / 1024}.get(unit, 1)
        ours = statistics.median(run["ours"][key] for run in runs) * scale
        reference = statistics.median(run["reference"][key] for run in runs) * scale
        ratio = ""
        if not informational:
            ratios = [
                run["ours"][key] / run["reference"][key] if run["reference"][key] > 0 else float("inf")
                for run in runs
            ]
            ratio = f"{statistics.median(ratios):.3g}×"
            if many:
                ratio += f" ({min(ratios):.3g}–{max(ratios):.3g})"
        lines.append(f"| {label} ({unit}) | {ours:,.3g} | {reference:,.3g} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, nargs="+", default=[50, 1000, 10000])
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes per format for latency")
    parser.add_argument(
        "--intervals",
        type=int,
        default=None,
        help="poll intervals for CPU per interval (default: 10 below 5,000 providers, where CPU "
        "is counted in 10 ms ticks; 3 above)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="side-by-side runs per N (the table shows the spread)"
    )
    parser.add_argument("--churn", type=float, default=0.0, help="fraction of records changed on every poll")
    parser.add_argument(
        "--telemetry",
        choices=("off", "on"),
        default="off",
        help="ours with OTLP tracing and Loki shipping to stand-in receivers (default: off, as the reference)",
    )
    parser.add_argument(
        "--status-models",
        type=int,
        default=0,
        help="also measure status API polling with this many models upstream, against STATUS_API=off",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="SCRAPE_INTERVAL for both (default: 2 s; 4 s from 5,000 providers, 30 s from 50,000)",
    )
    args = parser.parse_args(argv)
    print(
        f"# {platform.node() or 'host'}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    smallest = min(args.providers)
    for count in args.providers:
        interval = args.interval or (
            20.0 if count >= 50000 else 4.0 if count >= 5000 or count == smallest else 2.0
        )
        intervals = args.intervals or (3 if count >= 5000 else 10)
        runs = [
            run(
                count,
                args.scrapes,
                intervals,
                interval,
                idle=count == smallest,
                churn=args.churn,
                telemetry=args.telemetry == "on",
            )
            for _ in range(args.runs)
        ]
        churn = f", {args.churn:.0%} of records changed per poll" if args.churn else ""
        telemetry = ", tracing and Loki on" if args.telemetry == "on" else ""
        print()
        print(format_table(f"{count:,} providers{churn}{telemetry}", runs))
        print()
        print(format_limit(runs))
        sys.stdout.flush()
        if args.status_models:
            runs = [
                run(
                    count,
                    args.scrapes,
                    intervals,
                    interval,
                    idle=False,
                    churn=args.churn,
                    subjects=("ours", "ours+status"),
                    telemetry=args.telemetry == "on",
                    status_models=args.status_models,
                )
                for _ in range(args.runs)
            ]
            print()
            print(
                format_status_table(f"{count:,} providers, {args.status_models:,} status models{churn}", runs)
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
