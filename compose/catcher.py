"""A local stand-in for Slack and SMTP in docker compose: it catches what Alertmanager sends and
shows it, so the stack runs and alerts end to end without any secret.

  SMTP on :1025   takes any mail (no TLS, no auth) and keeps it
  HTTP on :8025   POST on any path (Slack webhooks, the heartbeat) is kept;
                  GET / lists everything caught, newest first
  (CATCHER_SMTP_PORT and CATCHER_HTTP_PORT change the ports.)

Each message is also logged on one line (`docker compose logs -f catcher`). Only the last 200
are kept. Standard library only."""

from __future__ import annotations

import email
import email.policy
import html
import json
import os
import socketserver
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CAUGHT: deque[tuple[str, str, str]] = deque(maxlen=200)  # (time, one-line summary, text)
LOCK = threading.Lock()


def keep(kind: str, summary: str, text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    line = f"{kind}: {summary}"
    with LOCK:
        CAUGHT.appendleft((stamp, line, text))
    say(line)


def say(line: str) -> None:
    sys.stdout.write(f"catcher: {line}\n")
    sys.stdout.flush()


def webhook_summary(path: str, body: bytes) -> tuple[str, str, str]:
    """(kind, one-line summary, text) of a POST: a Slack message, Alertmanager's webhook, or other."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "webhook", f"{path}: {len(body)} bytes, not JSON", body.decode("utf-8", "replace")
    if isinstance(payload, dict) and payload.get("attachments"):
        attachment = payload["attachments"][0]
        title = attachment.get("title", "")
        return "slack", f"{path}: {title}", f"{title}\n\n{attachment.get('text', '')}"
    if isinstance(payload, dict) and "alerts" in payload:
        names = ", ".join(sorted({a.get("labels", {}).get("alertname", "?") for a in payload["alerts"]}))
        return "webhook", f"{path}: {payload.get('status')} {names}", json.dumps(payload, indent=2)
    return "webhook", path, json.dumps(payload, indent=2)


class Web(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        keep(*webhook_summary(self.path, body))
        self.reply(200, b"ok", "text/plain")

    def do_GET(self) -> None:
        with LOCK:
            items = list(CAUGHT)
        rows = "".join(
            f"<h3>{html.escape(stamp)} {html.escape(line)}</h3><pre>{html.escape(text)}</pre>"
            for stamp, line, text in items
        )
        page = f"<!DOCTYPE html><title>Caught alerts</title><h1>Caught alerts ({len(items)})</h1>{rows}"
        self.reply(200, page.encode(), "text/html; charset=utf-8")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Smtp(socketserver.StreamRequestHandler):
    timeout = 60

    def say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        recipients: list[str] = []
        self.say("220 catcher ESMTP")
        while line := self.rfile.readline(65536):
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.say("250 catcher")
            elif verb == "RCPT":
                recipients.append(line.decode("ascii", "replace").strip().split(":", 1)[-1])
                self.say("250 OK")
            elif verb == "DATA":
                self.say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (data := self.rfile.readline(65536)) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                part = message.get_body(("plain", "html"))
                text = part.get_content() if part is not None else ""
                keep(
                    "email",
                    f"to {', '.join(recipients)}: {message['Subject']}",
                    f"{message['Subject']}\n\n{text}",
                )
                recipients = []
                self.say("250 OK")
            elif verb == "QUIT":
                self.say("221 Bye")
                return
            else:  # MAIL, RSET, NOOP and anything else
                self.say("250 OK")


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    smtp_port = int(os.environ.get("CATCHER_SMTP_PORT", "1025"))
    http_port = int(os.environ.get("CATCHER_HTTP_PORT", "8025"))
    smtp = SmtpServer(("0.0.0.0", smtp_port), Smtp)
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    web = ThreadingHTTPServer(("0.0.0.0", http_port), Web)
    web.daemon_threads = True
    say(f"SMTP on :{smtp_port}, webhooks and the caught messages on http://localhost:{http_port}/")
    try:
        web.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
