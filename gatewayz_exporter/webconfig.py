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

Validated at start (a problem stops start-up) and re-read when it or its files change; an edit
that does not validate or would weaken security keeps the last good config and logs one error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .credentials import (
    BCRYPT_HASH,
    MAX_BCRYPT_COST,
    CheckPassword,
    CredentialVerifier,
    bcrypt_checkpw,
    bcrypt_cost,
)

log = logging.getLogger("gatewayz_exporter.webconfig")

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
# A web config is a few hundred bytes (a bcrypt hash is 60); 256 KiB holds thousands of users.
# The cap and the regular-file check keep a path like /dev/zero or a FIFO from hanging start-up
# or a reload (it runs on the server's event loop) or reading without end.
MAX_CONFIG_BYTES = 256 * 1024

EMPTY_DIGEST = hashlib.sha256(b"").digest()


class WebConfigError(ValueError):
    """The web config file is missing, malformed, or names files that do not exist."""


@dataclass(frozen=True)
class WebConfig:
    """One validated web config. ``verifier`` is None when no users are configured."""

    ssl_context: ssl.SSLContext | None
    users: Mapping[str, bytes]
    verifier: CredentialVerifier | None = field(default=None, repr=False)
    path: str | None = None
    signature: tuple[object, ...] = field(default=(), repr=False)

    def authenticate(self, authorization: bytes | str | None) -> bool:
        return self.verifier is not None and self.verifier.authenticate(authorization)


def read_config_file(path: str) -> bytes:
    """The file's bytes: a regular file of at most MAX_CONFIG_BYTES, read without blocking on open."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WebConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise WebConfigError(f"{path}: cannot be read ({type(error).__name__})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise WebConfigError(f"{path}: not a regular file")
        raw = b""
        while len(raw) <= MAX_CONFIG_BYTES and (chunk := os.read(fd, MAX_CONFIG_BYTES + 1 - len(raw))):
            raw += chunk
    except OSError as error:
        raise WebConfigError(f"{path}: cannot be read ({type(error).__name__})") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise WebConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    return raw


def load_web_config(path: str, *, checkpw: CheckPassword = bcrypt_checkpw) -> WebConfig:
    import yaml  # loaded only when a web config file is given

    """Read and validate the file; raise WebConfigError naming the problem."""
    file = Path(path)
    raw = read_config_file(path)
    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
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
    files: list[str] = []
    context = _tls_context(document.get("tls_server_config"), base, path, files)
    users = _users(document.get("basic_auth_users"), path)
    verifier = CredentialVerifier(users, checkpw=checkpw) if users else None
    return WebConfig(context, users, verifier, path, _signature(raw, files))


def _signature(config_bytes: bytes, files: list[str]) -> tuple[object, ...]:
    """What identifies this version of the config: its text and the named files' stat data."""
    stats: list[object] = [hashlib.sha256(config_bytes).digest()]
    for name in files:
        try:
            st = Path(name).stat()
            stats.append((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            stats.append((name, None))
    return tuple(stats)


def current_signature(config: WebConfig) -> tuple[object, ...] | None:
    """The signature the config's files have now (None when the config file cannot be read)."""
    if config.path is None:
        return config.signature
    try:
        raw = read_config_file(config.path)
    except WebConfigError:
        return None
    names = [entry[0] for entry in config.signature[1:] if isinstance(entry, tuple)]
    return _signature(raw, [str(name) for name in names])


class WebConfigReloader:
    """The newest good web config, re-read when its file or the files it names change.

    ``current()`` costs a small read and a few ``stat`` calls; the server asks
    it for every new connection and every authenticated request. TLS cannot be
    switched on or off by an edit (the listening port's protocol is fixed at
    start); such an edit is refused like any invalid one.
    """

    def __init__(
        self,
        initial: WebConfig,
        *,
        load: Callable[[str], WebConfig] = load_web_config,
    ):
        self._config = initial
        self._load = load
        self._rejected: tuple[object, ...] | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> WebConfig:
        """The config in force, without checking the files."""
        return self._config

    def current(self) -> WebConfig:
        config = self._config
        if config.path is None:
            return config
        signature = current_signature(config)
        if signature == config.signature or (signature is not None and signature == self._rejected):
            return config
        with self._lock:
            config = self._config
            if signature == config.signature:
                return config
            path = config.path
            if path is None:
                return config
            try:
                if signature is not None and signature[0] == EMPTY_DIGEST:
                    # An editor that truncates and rewrites leaves the file empty for a moment;
                    # an empty file is a valid config (no TLS, no users) that would open /metrics.
                    raise WebConfigError(f"{path}: the file is empty (an edit in progress?)")
                fresh = self._load(path)
                if (fresh.ssl_context is None) != (config.ssl_context is None):
                    raise WebConfigError(
                        f"{config.path}: tls_server_config cannot be added or removed while running; restart"
                    )
                if (weakened := _tls_weakened(config.ssl_context, fresh.ssl_context)) is not None:
                    raise WebConfigError(f"{config.path}: {weakened} while running; restart")
                if config.users and not fresh.users:
                    # Half-written (basic_auth_users: with nothing under it yet) or meant: either
                    # way a reload must not open /metrics to anyone.
                    raise WebConfigError(
                        f"{config.path}: basic_auth_users cannot be emptied or removed while running; "
                        "restart to turn authentication off"
                    )
            except WebConfigError as error:
                # One error per broken state: a file that cannot be read (gone, a FIFO, too
                # large) has no signature, so the problem itself tells one such state from another.
                rejected = signature if signature is not None else ("unreadable", str(error))
                if rejected != self._rejected:
                    log.error(
                        "Web config not reloaded; keeping the last good one",
                        extra={"error": str(error)},
                    )
                self._rejected = rejected
                return config
            if fresh.verifier is not None and config.verifier is not None:
                fresh.verifier.adopt(config.verifier)
            self._config, self._rejected = fresh, None
            log.info(
                "Web config reloaded",
                extra={"tls": fresh.ssl_context is not None, "basic_auth_users": len(fresh.users)},
            )
            return fresh


def _tls_weakened(old: ssl.SSLContext | None, new: ssl.SSLContext | None) -> str | None:
    """What a reload would weaken in TLS, if anything: client certificates are authentication too."""
    if old is None or new is None:
        return None
    if new.verify_mode < old.verify_mode:
        return "client certificates cannot stop being required or verified"
    if new.minimum_version < old.minimum_version:
        return "tls_server_config.min_version cannot be lowered"
    return None


def _refuse_unsupported(section: dict[Any, Any], name: str, path: str) -> None:
    for key in sorted(UNSUPPORTED & set(section)):
        raise WebConfigError(f"{path}: {name}.{key} is not supported by this exporter; remove it")


def _file(value: object, key: str, base: Path, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{path}: tls_server_config.{key} must be a file path")
    resolved = value if Path(value).is_absolute() else str(base / value)
    if not Path(resolved).is_file():
        raise WebConfigError(f"{path}: tls_server_config.{key}: no such file {value!r}")
    return resolved


def _tls_context(tls: object, base: Path, path: str, files: list[str]) -> ssl.SSLContext | None:
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
    files.extend((cert, key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions: dict[str, ssl.TLSVersion] = {}
    for name in ("min_version", "max_version"):
        version = tls.get(name)
        if version is not None:
            if version not in TLS_VERSIONS:
                raise WebConfigError(
                    f"{path}: tls_server_config.{name} must be TLS12 or TLS13 (got {version!r})"
                )
            versions[name] = TLS_VERSIONS[version]
    minimum = versions.get("min_version", ssl.TLSVersion.TLSv1_2)
    maximum = versions.get("max_version", ssl.TLSVersion.MAXIMUM_SUPPORTED)
    if "max_version" in versions and maximum < minimum:
        raise WebConfigError(
            f"{path}: tls_server_config.min_version {tls.get('min_version') or 'TLS12'} "
            f"is above max_version {tls['max_version']}: no handshake could succeed"
        )
    context.minimum_version = minimum
    context.maximum_version = maximum
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
        ca_file = _file(ca, "client_ca_file", base, path)
        files.append(ca_file)
        try:
            context.load_verify_locations(ca_file)
        except ssl.SSLError:
            raise WebConfigError(f"{path}: client_ca_file cannot be loaded") from None
    elif auth_type != "NoClientCert":
        raise WebConfigError(f"{path}: client_auth_type {auth_type} needs client_ca_file")
    context.verify_mode = CLIENT_AUTH[auth_type]
    return context


def _users(users: object, path: str) -> dict[str, bytes]:
    if users is None:
        return {}
    if not isinstance(users, dict):
        raise WebConfigError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    out: dict[str, bytes] = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"{path}: basic_auth_users: invalid user name {user!r}")
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed.encode("latin-1", "replace")):
            raise WebConfigError(f"{path}: basic_auth_users.{user} must be a bcrypt hash")
        cost = bcrypt_cost(hashed.encode("ascii"))
        if cost > MAX_BCRYPT_COST:
            raise WebConfigError(
                f"{path}: basic_auth_users.{user}: bcrypt cost {cost} is above {MAX_BCRYPT_COST}; "
                f"hash the password again with a lower cost (htpasswd -nBC 12 {user})"
            )
        out[user] = hashed.encode("ascii")
    return out
