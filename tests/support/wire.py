"""Talking to a server over raw sockets, and the web config files (TLS, basic auth) tests serve with."""

from __future__ import annotations

import base64
import re
import socket
import ssl
from pathlib import Path

import bcrypt
import yaml

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cost 4 keeps tests fast


def basic(user: str, password: str | bytes) -> str:
    """The Authorization header value for basic auth."""
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return "Basic " + base64.b64encode(raw).decode()


def basic_header(user: str, password: str | bytes) -> dict[str, str]:
    return {"Authorization": basic(user, password)}


def exchange(
    port: int,
    data: bytes,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    must_close: bool = True,
    half_close: bool = False,
    source: tuple[str, int] | None = None,
) -> bytes:
    """Send ``data`` and read until the server closes; what came back.

    With ``must_close`` a server that keeps the connection past ``timeout``
    fails the test (TimeoutError); without, whatever came by then is returned.
    ``half_close`` ends the sending side after ``data``, as a client that is done does.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=source)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            if must_close:
                raise
        return received


def statuses(received: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def client_context(certs: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.crt"))


def keep_alive_scrape(port: int) -> socket.socket:
    """A scrape on a connection that stays open, as Prometheus keeps one."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def write_config(directory: Path, document: str | dict[str, object]) -> str:
    """A web config file (YAML text or a document) in ``directory``; its path."""
    path = directory / "web.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


def tls_config(certs: Path, **extra: object) -> str:
    """A web config serving TLS with the ``certs`` fixture's files and basic auth for "prometheus"."""
    return write_config(
        certs,
        {
            "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", **extra},
            "basic_auth_users": {"prometheus": HASH},
        },
    )
