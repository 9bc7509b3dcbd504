"""Stand-ins for the notification receivers (a Slack incoming webhook, an SMTP server) and the
stack's own Alertmanager and Prometheus started through their images' entrypoints, on loopback."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import shutil
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from conftest import ROOT, free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING_AM = "Debian's prometheus-alertmanager package is needed (it brings amtool); .ci/run installs it"


class Inbox:
    """Messages that arrived, with a bounded wait for the one a test expects."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = threading.Condition()

    def add(self, message: Any) -> None:
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()

    def wait_for(self, predicate: Callable[[Any], bool], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {what} arrived in {timeout:.0f} s; got {self.messages!r}"[:4000]
                    )
                self.arrived.wait(remaining)


class SlackStandIn(Inbox):
    """An HTTP server taking Slack incoming-webhook POSTs (JSON) on any path."""

    def __init__(self) -> None:
        super().__init__()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                inbox.add({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.webhook_url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/stand-in"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @staticmethod
    def text(message: dict[str, Any]) -> str:
        return json.dumps(message["attachments"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    login: tuple[str, str] | None
    message: email.message.EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else ""


def address_of(command: str) -> str:
    """The <address> of a MAIL FROM or RCPT TO command ("" when there is none)."""
    match = re.search(r"<([^>]*)>", command)
    return match.group(1) if match else ""


class SmtpStandIn(Inbox):
    """A small SMTP server: EHLO, AUTH PLAIN (advertised, so the client must log in), MAIL, RCPT,
    DATA, RSET, NOOP, QUIT. Enough for Go's net/smtp, which Alertmanager uses."""

    def __init__(self) -> None:
        super().__init__()
        inbox = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                sender, recipients, login = "", [], None
                self.reply("220 stand-in ESMTP")
                while line := self.rfile.readline():
                    command = line.decode("ascii", "replace").rstrip("\r\n")
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-stand-in")
                        self.reply("250-AUTH PLAIN")
                        self.reply("250 8BITMIME")
                    elif verb == "AUTH":
                        parts = command.split()
                        if len(parts) == 2:
                            self.reply("334 ")
                            parts.append(self.rfile.readline().decode().strip())
                        _, user, password = base64.b64decode(parts[2]).decode().split("\0")
                        login = (user, password)
                        self.reply("235 2.7.0 Authentication successful")
                    elif verb == "MAIL":
                        sender = address_of(command)
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(address_of(command))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        lines = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(data[1:] if data.startswith(b"..") else data)
                        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                        inbox.add(Mail(sender, list(recipients), login, message))
                        recipients = []
                        self.reply("250 OK queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:
                        self.reply("502 Command not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Process:
    """A server started through one of the stack's entrypoints, stopped at the end."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path, url: str):
        self.name, self.url, self.log = name, url, log
        self.process = subprocess.Popen(
            command, env={"PATH": "/usr/bin:/bin", **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT
        )
        self.wait(lambda: requests.get(url + "/-/ready", timeout=1).status_code == 200, "ready")

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except requests.RequestException:
                pass
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became {what}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def alertmanager_config_copy(tmp: Path, wait: str = "1s") -> Path:
    """alertmanager/ with group_wait and group_interval shortened (the test's copy only)."""
    directory = tmp / "alertmanager-config"
    shutil.copytree(ROOT / "alertmanager", directory)
    config = directory / "alertmanager.yml"
    config.write_text(re.sub(r"group_(wait|interval): \w+", rf"group_\1: {wait}", config.read_text()))
    return directory


def notification_env(slack: SlackStandIn, smtp: SmtpStandIn) -> dict[str, str]:
    return {
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "ALERT_EMAIL_TO": "oncall@example.com,providers@example.com",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_FROM": "alertmanager@example.com",
        "SMTP_USERNAME": "alertmanager",
        "SMTP_PASSWORD": "stand-in-smtp-password",
        "SMTP_REQUIRE_TLS": "false",
        "GRAFANA_URL": "https://grafana.example.com",
    }


def start_alertmanager(tmp: Path, env: dict[str, str], config_dir: Path | None = None) -> Process:
    assert ALERTMANAGER and AMTOOL, MISSING_AM
    port = free_port()
    config_dir = config_dir or alertmanager_config_copy(tmp)
    command = [
        "sh",
        str(ROOT / "alertmanager/entrypoint.sh"),
        f"--storage.path={tmp / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    full_env = {
        "ALERTMANAGER_CONFIG_DIR": str(config_dir),
        "ALERTMANAGER_RUNTIME_DIR": str(tmp / "alertmanager-runtime"),
        "ALERTMANAGER_BIN": ALERTMANAGER,
        "AMTOOL_BIN": AMTOOL,
        **env,
    }
    return Process("alertmanager", command, full_env, tmp / "alertmanager.log", f"http://127.0.0.1:{port}")


def prometheus_config_copy(tmp: Path) -> Path:
    """prometheus/ with every interval shortened to 1 s and every rule's `for:` and
    `keep_firing_for:` from minutes to as many seconds, so they keep their proportions: "exporter
    down" (2 m) still fires after a scrape and an evaluation, and the alerts it inhibits still
    keep firing (5 m) past it (the test's copy only)."""
    directory = tmp / "prometheus-config"
    shutil.copytree(ROOT / "prometheus", directory)
    prom = directory / "prom.yml"
    text = re.sub(r"(scrape_interval|evaluation_interval): \w+", r"\1: 1s", prom.read_text())
    prom.write_text(re.sub(r"scrape_timeout: \w+", "scrape_timeout: 1s", text))
    alerts = directory / "alerts.yml"
    durations = re.compile(r"^(\s+)(for|keep_firing_for): (\d+)m$", re.MULTILINE)
    text, count = durations.subn(r"\1\2: \3s", alerts.read_text())
    assert count and not re.search(r"^\s+(for|keep_firing_for): (?!\d+s$)", text, re.MULTILINE), text
    alerts.write_text(text)
    return directory


class MetricsStandIn:
    """One HTTP server answering every GET with a tiny exposition: Loki, Tempo and Grafana as
    the stack's self-scrape sees them (up == 1)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"stand_in_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_prometheus(tmp: Path, exporter_url: str, alertmanager_url: str, stack_url: str = "") -> Process:
    """Prometheus through its entrypoint; ``stack_url`` stands in for Loki, Tempo and Grafana
    (unset: their compose names, which do not resolve here, so GatewayzStackTargetDown fires)."""
    assert PROMETHEUS and PROMTOOL, "Debian's prometheus package is needed; .ci/run installs it"
    port = free_port()
    command = [
        "sh",
        str(ROOT / "prometheus/entrypoint.sh"),
        f"--storage.tsdb.path={tmp / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Firing alerts are re-sent every minute; an alert that fired before Prometheus knew its
        # Alertmanager (Watchdog, at the first evaluation) would wait that long.
        "--rules.alert.resend-delay=1s",
    ]
    env = {
        "PROMETHEUS_CONFIG_DIR": str(prometheus_config_copy(tmp)),
        "PROMETHEUS_BIN": PROMETHEUS,
        "PROMTOOL_BIN": PROMTOOL,
        "EXPORTER_INTERNAL_URL": exporter_url,
        "ALERTMANAGER_INTERNAL_URL": alertmanager_url,
        "PROMETHEUS_INTERNAL_URL": f"http://127.0.0.1:{port}",
        "PROMETHEUS_EXTERNAL_URL": f"http://127.0.0.1:{port}",  # the "Source" links
    }
    if stack_url:
        env.update(LOKI_INTERNAL_URL=stack_url, TEMPO_INTERNAL_URL=stack_url, GRAFANA_INTERNAL_URL=stack_url)
    return Process("prometheus", command, env, tmp / "prometheus.log", f"http://127.0.0.1:{port}")


def query(prometheus: Process, expr: str) -> list[dict[str, Any]]:
    response = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert response["status"] == "success", (expr, response)
    result: list[dict[str, Any]] = response["data"]["result"]
    return result


def run_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Alertmanager's entrypoint with ``env``, the real binary replaced by a stub that prints its input."""
    stub = tmp_path / "alertmanager-stub"  # prints what the real binary would get
    stub.write_text('#!/bin/sh\necho "args=$*"\nenv | grep -E "^(SLACK|SMTP)" | sort\n')
    stub.chmod(0o755)
    return subprocess.run(
        ["sh", str(ROOT / "alertmanager/entrypoint.sh"), "--storage.path=/data"],
        env={
            "PATH": "/usr/bin:/bin",
            "ALERTMANAGER_CONFIG_DIR": str(ROOT / "alertmanager"),
            "ALERTMANAGER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "ALERTMANAGER_BIN": str(stub),
            "AMTOOL_BIN": AMTOOL or "amtool",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL, MISSING_AM
    return subprocess.run([AMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


# Alertmanager entrypoint environments: each channel alone, both, and a full email set-up.
SLACK_ONLY = {"SLACK_WEBHOOK_URL": "https://hooks.example.invalid/services/T/B/secret-part"}
EMAIL_ONLY = {
    "ALERT_EMAIL_TO": "oncall@example.com",
    "SMTP_HOST": "smtp.example.com",
    "SMTP_FROM": "alertmanager@example.com",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "smtp-secret-value",
}
CHANNELS = {"slack": SLACK_ONLY, "email": EMAIL_ONLY, "both": {**SLACK_ONLY, **EMAIL_ONLY}}
GOOD = {
    "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/services/T/B/secret-part",
    "ALERT_EMAIL_TO": "oncall@example.com",
    "SMTP_HOST": "smtp.example.com",
    "SMTP_FROM": "alertmanager@example.com",
    "SMTP_USERNAME": "apikey",
    "SMTP_PASSWORD": "smtp-secret-value",
}
