"""Real receivers on loopback: Loki (push API), Tempo (OTLP/HTTP), a Slack incoming webhook, an
SMTP server, and the stack's other targets as Prometheus scrapes them."""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import json
import re
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class _Receiver:
    """An HTTP server that records POST bodies. ``statuses`` are answered first, then ``default``."""

    path = "/"

    def __init__(self, default: int = 204):
        self.default = default
        self.statuses: list[int] = []
        self.hang = False
        self.attempts = 0  # POSTs that arrived, answered or not
        self.bodies: list[tuple[dict, bytes]] = []
        self.released = threading.Event()
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.received:
                    receiver.attempts += 1
                    receiver.received.notify_all()
                if receiver.hang:
                    # Released when the receiver closes: the answer below ends the client's
                    # request now, not at its timeout, after the test (in the next one's logs).
                    receiver.released.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                if 200 <= status < 300 and self.path == receiver.path:
                    with receiver.received:
                        receiver.bodies.append((dict(self.headers), body))
                        receiver.received.notify_all()
                reply = receiver.reply(status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def reply(self, status: int) -> bytes:
        return b""

    def wait_until(self, predicate, timeout: float = 10.0):
        """Wait for ``predicate(self)`` to become truthy; return its value or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.received:
            while True:
                result = predicate(self)
                remaining = deadline - time.monotonic()
                if result or remaining <= 0:
                    return result
                self.received.wait(remaining)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class LokiReceiver(_Receiver):
    """Accepts Loki's JSON push API (gzip), keeps the decoded streams."""

    path = "/loki/api/v1/push"

    def lines(self) -> list[tuple[dict, dict]]:
        """Every pushed line as (stream labels, parsed JSON line)."""
        out = []
        for headers, body in list(self.bodies):
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            for stream in json.loads(body)["streams"]:
                for stamp, line in stream["values"]:
                    assert stamp.isdigit()
                    out.append((stream["stream"], json.loads(line)))
        return out


class OtlpReceiver(_Receiver):
    """Accepts OTLP/HTTP protobuf on /v1/traces and decodes it with opentelemetry-proto."""

    path = "/v1/traces"

    def __init__(self):
        super().__init__(default=200)

    def reply(self, status: int) -> bytes:
        return ExportTraceServiceResponse().SerializeToString() if status == 200 else b""

    def spans(self) -> list[dict]:
        """Every received span flattened: name, ids (hex), parent, kind, attributes, resource."""
        out = []
        for _, body in list(self.bodies):
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "resource": resource,
                            }
                        )
        return out


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


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
