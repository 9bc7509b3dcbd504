"""The exporter-toolkit web configuration file: TLS and basic auth, as Prometheus' own exporters read it.

Example (relative paths are relative to the file's directory, as in exporter-toolkit)::

    tls_server_config:
      cert_file: exporter.crt
      key_file: exporter.key
      client_ca_file: clients-ca.crt          # optional
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2b$12$...                  # bcrypt hash (htpasswd -nBC 12 prometheus)

Everything is validated when the exporter starts; a problem stops start-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TOP_LEVEL = {"tls_server_config", "basic_auth_users", "http_server_config"}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
}
# exporter-toolkit options this exporter cannot honour: refused rather than silently ignored,
# since an operator relying on them would believe in a protection that is not there.
UNSUPPORTED = {"cipher_suites", "curve_preferences", "client_allowed_sans", "headers"}
SUCCESS_CACHE_SIZE = 64


class WebConfigError(ValueError):
    """The web config file is missing, malformed, or names files that do not exist."""


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None
    users: dict[str, bytes]
    _verified: dict[bytes, bool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def authenticate(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header holds a configured user's password.

        bcrypt is deliberately slow, so a verified (user, password) pair is
        remembered by its SHA-256 digest: a scrape every few seconds pays the
        bcrypt cost once, and the cache never holds a password.
        """
        if not authorization or not authorization[:6].lower() == "basic ":
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        digest = hashlib.sha256(decoded).digest()
        with self._lock:
            if self._verified.get(digest):
                return True
        stored = self.users.get(user.decode("utf-8", "replace"))
        # An unknown user is checked against a real hash too: it costs the same time as a wrong password.
        reference = stored if stored is not None else next(iter(self.users.values()))
        valid = bcrypt.checkpw(password, reference) and stored is not None
        if valid:
            with self._lock:
                if len(self._verified) >= SUCCESS_CACHE_SIZE:
                    self._verified.pop(next(iter(self._verified)))
                self._verified[digest] = True
        return valid


def load_web_config(path: str) -> WebConfig:
    """Read and validate the file; raise WebConfigError naming the problem."""
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise WebConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WebConfigError(f"{path}: cannot be read ({type(error).__name__})") from None
    except yaml.YAMLError as error:
        raise WebConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise WebConfigError(f"{path}: must be a YAML mapping")
    unknown = set(document) - TOP_LEVEL
    if unknown:
        raise WebConfigError(f"{path}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    http = document.get("http_server_config") or {}
    if not isinstance(http, dict) or set(http) - {"http2"} - UNSUPPORTED:
        raise WebConfigError(f"{path}: http_server_config may only hold http2")
    _refuse_unsupported(http, "http_server_config", path)
    base = file.resolve().parent
    context = _tls_context(document.get("tls_server_config"), base, path)
    users = _users(document.get("basic_auth_users"), path)
    return WebConfig(context, users)


def _refuse_unsupported(section: dict, name: str, path: str) -> None:
    for key in sorted(UNSUPPORTED & set(section)):
        raise WebConfigError(f"{path}: {name}.{key} is not supported by this exporter; remove it")


def _file(value, key: str, base: Path, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{path}: tls_server_config.{key} must be a file path")
    resolved = value if os.path.isabs(value) else str(base / value)
    if not os.path.isfile(resolved):
        raise WebConfigError(f"{path}: tls_server_config.{key}: no such file {value!r}")
    return resolved


def _tls_context(tls, base: Path, path: str) -> ssl.SSLContext | None:
    if tls is None:
        return None
    if not isinstance(tls, dict):
        raise WebConfigError(f"{path}: tls_server_config must be a mapping")
    _refuse_unsupported(tls, "tls_server_config", path)
    unknown = set(tls) - TLS_KEYS
    if unknown:
        raise WebConfigError(f"{path}: unknown tls_server_config keys {', '.join(sorted(map(str, unknown)))}")
    if "cert_file" not in tls or "key_file" not in tls:
        raise WebConfigError(f"{path}: tls_server_config needs cert_file and key_file")
    cert, key = (
        _file(tls["cert_file"], "cert_file", base, path),
        _file(tls["key_file"], "key_file", base, path),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name, attribute in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        version = tls.get(name)
        if version is not None:
            if version not in TLS_VERSIONS:
                raise WebConfigError(
                    f"{path}: tls_server_config.{name} must be TLS12 or TLS13 (got {version!r})"
                )
            setattr(context, attribute, TLS_VERSIONS[version])
    if tls.get("min_version") is None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise WebConfigError(
            f"{path}: cert_file/key_file cannot be loaded ({error.__class__.__name__}: "
            f"{getattr(error, 'reason', None) or 'invalid certificate or key'})"
        ) from None
    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH:
        raise WebConfigError(
            f"{path}: tls_server_config.client_auth_type must be one of "
            f"{', '.join(CLIENT_AUTH)} (got {auth_type!r})"
        )
    ca = tls.get("client_ca_file")
    if ca is not None:
        try:
            context.load_verify_locations(_file(ca, "client_ca_file", base, path))
        except ssl.SSLError:
            raise WebConfigError(f"{path}: client_ca_file cannot be loaded") from None
    elif auth_type != "NoClientCert":
        raise WebConfigError(f"{path}: client_auth_type {auth_type} needs client_ca_file")
    context.verify_mode = CLIENT_AUTH[auth_type]
    return context


def _users(users, path: str) -> dict[str, bytes]:
    if users is None:
        return {}
    if not isinstance(users, dict):
        raise WebConfigError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    out: dict[str, bytes] = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"{path}: basic_auth_users: invalid user name {user!r}")
        if (
            not isinstance(hashed, str)
            or not hashed.startswith(("$2a$", "$2b$", "$2y$"))
            or len(hashed) != 60
        ):
            raise WebConfigError(f"{path}: basic_auth_users.{user} must be a bcrypt hash")
        try:
            bcrypt.checkpw(b"", hashed.encode())
        except ValueError:
            raise WebConfigError(f"{path}: basic_auth_users.{user} must be a bcrypt hash") from None
        out[user] = hashed.encode()
    return out
