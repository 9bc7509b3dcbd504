"""Basic-auth credentials checked against bcrypt hashes, with caches so bcrypt runs rarely."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import NamedTuple

SUCCESS_CACHE_SIZE = 64
FAILURE_CACHE_SIZE = 4096
# bcrypt keys Blowfish with at most 72 bytes. Go's bcrypt.CompareHashAndPassword (exporter-toolkit)
# and htpasswd use the first 72 bytes of a longer password; so does this exporter, so the same
# hashes and passwords work in both. (bcrypt 5 for Python raises instead of truncating.)
BCRYPT_MAX_PASSWORD_BYTES = 72
# A well-formed bcrypt hash: checked by shape, never by running bcrypt, so a reload costs nothing.
# The salt is 22 characters for 16 bytes: its last one carries 2 bits and four zero bits, so it
# is one of ".Oeu"; bcrypt refuses any other (every check would fail) and so does this.
BCRYPT_HASH = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}")
# A check at cost 14 takes about a second; each step up doubles it. Costlier hashes would let
# a few wrong passwords occupy the bcrypt workers for minutes (and a check cannot be interrupted).
MAX_BCRYPT_COST = 14

CheckPassword = Callable[[bytes, bytes], bool]


def bcrypt_checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # loaded with the first web config that has users: most exporters have none

    return bool(bcrypt.checkpw(password, hashed))


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


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed[4:6])


class CredentialVerifier:
    """Checks basic-auth credentials against the configured bcrypt hashes.

    Verified and failed pairs are remembered apart by their SHA-256 digest (never the password), so
    repeats skip bcrypt. ``lookup`` is the cheap check; ``verify`` runs bcrypt (in the bcrypt pool).
    """

    def __init__(self, users: Mapping[str, bytes], *, checkpw: CheckPassword = bcrypt_checkpw):
        if not users:
            raise ValueError("no users")
        self._users = {user.encode("utf-8"): hashed for user, hashed in users.items()}
        # An unknown user is checked against the costliest configured hash, so it takes as long
        # as a known user's wrong password (the same time exactly when there is one user or one cost).
        self._reference = max(self._users.values(), key=bcrypt_cost)
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

        A reload must not make every scraper pay bcrypt again while a flood may fill the bcrypt pool.
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
