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
Like exporter-toolkit, the file (and the certificate, key and CA files it
names) is re-read when it changes: ``WebConfigReloader.current()`` is asked on
every connection and request, so a rotated certificate or a changed password
applies to the next one. An edit that does not validate keeps the last good
config and logs one error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import ssl
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

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
SUCCESS_CACHE_SIZE = 64
FAILURE_CACHE_SIZE = 4096
# bcrypt keys Blowfish with at most 72 bytes. Go's bcrypt.CompareHashAndPassword (exporter-toolkit)
# and htpasswd use the first 72 bytes of a longer password; so does this exporter, so the same
# hashes and passwords work in both. (bcrypt 5 for Python raises instead of truncating.)
BCRYPT_MAX_PASSWORD_BYTES = 72
# A well-formed bcrypt hash: checked by shape, never by running bcrypt, so a reload costs nothing.
BCRYPT_HASH = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")

# A web config is a few hundred bytes (a bcrypt hash is 60); 256 KiB holds thousands of users.
# The cap and the regular-file check keep a path like /dev/zero or a FIFO from hanging start-up
# or a reload (it runs on the server's event loop) or reading without end.
MAX_CONFIG_BYTES = 256 * 1024

CheckPassword = Callable[[bytes, bytes], bool]
EMPTY_DIGEST = hashlib.sha256(b"").digest()


def bcrypt_checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # loaded with the first web config that has users: most exporters have none

    return bool(bcrypt.checkpw(password, hashed))


class WebConfigError(ValueError):
    """The web config file is missing, malformed, or names files that do not exist."""


class Credentials(NamedTuple):
    """A parsed ``Authorization: Basic`` header; ``digest`` identifies it without holding the password."""

    user: bytes
    password: bytes
    digest: bytes


def parse_basic(authorization: bytes | str | None) -> Credentials | None:
    """The user and password of a Basic ``Authorization`` header, or None when it is not one."""
    if authorization is None:
        return None
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1", "replace")
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return Credentials(user, password, hashlib.sha256(decoded).digest())


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])


class CredentialVerifier:
    """Checks basic-auth credentials against the configured bcrypt hashes.

    bcrypt is deliberately slow, so a verified (user, password) pair is
    remembered by its SHA-256 digest: a scrape every few seconds pays the
    bcrypt cost once, and the cache never holds a password. A pair that failed
    is remembered too, apart (so failures can never push out a good pair): the
    same wrong password sent again is refused without bcrypt. ``lookup`` is the
    cheap check (run it anywhere); ``verify`` is the slow one (run it in the
    bcrypt pool). ``checkpw`` is injectable so tests can count bcrypt calls.
    """

    def __init__(self, users: Mapping[str, bytes], *, checkpw: CheckPassword = bcrypt_checkpw):
        if not users:
            raise ValueError("no users")
        self._users = {user.encode("utf-8"): hashed for user, hashed in users.items()}
        # An unknown user is checked against the costliest configured hash, so it takes as long
        # as a known user's wrong password (the same time exactly when there is one user or one cost).
        self._reference = max(self._users.values(), key=_cost)
        self._checkpw = checkpw
        self._verified: OrderedDict[bytes, bytes] = OrderedDict()  # digest -> its user
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, credentials: Credentials) -> bool | None:
        """True: verified before; False: failed before; None: only bcrypt can tell."""
        with self._lock:
            if credentials.digest in self._verified:
                self._verified.move_to_end(credentials.digest)
                return True
            if credentials.digest in self._failed:
                return False
        return None

    def verify(self, credentials: Credentials) -> bool:
        """Run bcrypt; remember the pair on success. Thread-safe."""
        stored = self._users.get(credentials.user)
        reference = stored if stored is not None else self._reference
        try:
            matches = self._checkpw(credentials.password[:BCRYPT_MAX_PASSWORD_BYTES], reference)
        except ValueError:  # cannot happen with hashes that passed validation; never a 500
            matches = False
        valid = matches and stored is not None
        with self._lock:
            if valid:
                self._verified[credentials.digest] = credentials.user
                while len(self._verified) > SUCCESS_CACHE_SIZE:
                    self._verified.popitem(last=False)
            else:
                self._failed[credentials.digest] = None
                while len(self._failed) > FAILURE_CACHE_SIZE:
                    self._failed.popitem(last=False)
        return valid

    def adopt(self, previous: CredentialVerifier) -> None:
        """Keep what ``previous`` verified for users whose hash this config leaves unchanged.

        A reload (a rotated certificate, another user added) must not make every scraper pay
        bcrypt again: during a flood of wrong passwords the bcrypt pool is full, and a scraper
        whose credentials were forgotten would get 429 until the flood ends.
        """
        with previous._lock:
            verified = list(previous._verified.items())
            old_users = dict(previous._users)
        with self._lock:
            for digest, user in verified:
                if user in self._users and self._users[user] == old_users.get(user):
                    self._verified[digest] = user

    def authenticate(self, authorization: bytes | str | None) -> bool:
        """True when the header holds a configured user's password (cache first, then bcrypt)."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return False
        known = self.lookup(credentials)
        return known if known is not None else self.verify(credentials)


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
    """Read and validate the file; raise WebConfigError naming the problem."""
    import yaml  # loaded only when a web config file is given

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
        out[user] = hashed.encode("ascii")
    return out
