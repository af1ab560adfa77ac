"""Admin keys and the credentials a request carries.

Owns generating an admin key and the salted-hash record that stands for it (the key itself is
shown once and never stored), checking a key against a record in constant time, and parsing
``Authorization`` headers (``Bearer <jwt>``, ``Convex <adminKey>[:<base64 identity>]``) and
``Authenticate`` messages into :class:`Credentials`. It does not persist records (the caller
does, through whatever storage it likes) nor verify user JWTs (``reactor.auth.verifier``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from reactor.auth.identity import normalize_identity_attributes
from reactor.errors import AuthenticationError

__all__ = [
    "ADMIN_KEY_PREFIX",
    "AdminKeyStore",
    "CredentialKind",
    "Credentials",
    "parse_authorization",
]

ADMIN_KEY_PREFIX = "reactor-admin|"
"""Every generated key starts with this; the rest is 40 URL-safe characters (240 bits)."""

_RECORD_VERSION = 1


class AdminKeyStore:
    """Generates admin keys and verifies them against stored records.

    A record is a JSON-ready dict ``{"version", "kdf": "scrypt", "n", "r", "p", "salt", "hash"}``
    (salt and hash base64): it holds no part of the key. The key has 240 random bits, so the
    KDF's job is only to keep a leaked record useless; the default cost (n=2**14, ~30-50 ms)
    is moderate. Keys known to be right (generated here, or verified once) are remembered in
    memory as HMAC-SHA256 digests under a per-process random secret (a small LRU), so the
    right key is checked in microseconds (:meth:`recall`) and never waits behind a flood of
    wrong ones; only an unknown key pays scrypt. ``verify`` may run in worker threads (the
    memory is locked); ``reactor.auth.authenticator`` decides when and how many at once.
    """

    def __init__(self, *, n: int = 2**14, r: int = 8, p: int = 1, remember: int = 64) -> None:
        _check_cost(n, r, p)
        self._n, self._r, self._p = n, r, p
        self._remember = remember
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def generate(self) -> tuple[str, dict[str, Any]]:
        """A new random key and the record to persist for it.

        Returns:
            ``(key, record)``: show ``key`` to the operator once; store only ``record``.
        """
        key = ADMIN_KEY_PREFIX + secrets.token_urlsafe(30)
        salt = secrets.token_bytes(16)
        digest = _scrypt(key, salt, self._n, self._r, self._p)
        record = {
            "version": _RECORD_VERSION,
            "kdf": "scrypt",
            "n": self._n,
            "r": self._r,
            "p": self._p,
            "salt": base64.b64encode(salt).decode("ascii"),
            "hash": base64.b64encode(digest).decode("ascii"),
        }
        self._remember_digest(self._memo(key, salt, digest))
        return key, record

    def recall(self, key: str, record: Mapping[str, Any]) -> bool:
        """Whether ``key`` is remembered as right for ``record`` (no KDF: microseconds). False
        means "not known", not "wrong": call :meth:`verify` to find out.

        Raises:
            ValueError: ``record`` is not a record this store wrote.
        """
        _, _, _, salt, expected = _parse_record(record)
        if not isinstance(key, str) or not key:
            return False
        memo = self._memo(key, salt, expected)
        with self._lock:
            if memo in self._verified:
                self._verified.move_to_end(memo)
                return True
        return False

    def verify(self, key: str, record: Mapping[str, Any]) -> bool:
        """Whether ``key`` is the key ``record`` was generated for (constant-time compare).
        Runs scrypt unless :meth:`recall` knows the key; safe to call from a worker thread.

        Raises:
            ValueError: ``record`` is not a record this store wrote (corrupt storage), as
                opposed to a wrong key, which returns False.
        """
        n, r, p, salt, expected = _parse_record(record)
        if not isinstance(key, str) or not key:
            return False
        if self.recall(key, record):
            return True
        if not hmac.compare_digest(_scrypt(key, salt, n, r, p), expected):
            return False
        self._remember_digest(self._memo(key, salt, expected))
        return True

    def _memo(self, key: str, salt: bytes, expected: bytes) -> bytes:
        # Keyed by the record too, so a rotated key's memory no longer matches.
        return hmac.new(self._secret, salt + expected + key.encode("utf-8"), "sha256").digest()

    def _remember_digest(self, memo: bytes) -> None:
        with self._lock:
            self._verified[memo] = None
            self._verified.move_to_end(memo)
            while len(self._verified) > self._remember:
                self._verified.popitem(last=False)


def _scrypt(key: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        key.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * n * r * p + 2**20
    )


def _check_cost(n: Any, r: Any, p: Any) -> None:
    for name, value, low, high in (("n", n, 2**10, 2**20), ("r", r, 1, 32), ("p", p, 1, 16)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(
                f"scrypt parameter {name} must be an int in [{low}, {high}], got {value!r}"
            )
    if n & (n - 1):
        raise ValueError(f"scrypt parameter n must be a power of two, got {n}")


def _parse_record(record: Mapping[str, Any]) -> tuple[int, int, int, bytes, bytes]:
    if not isinstance(record, Mapping) or record.get("version") != _RECORD_VERSION:
        raise ValueError("not an admin key record (expected version 1)")
    if record.get("kdf") != "scrypt":
        raise ValueError(f"admin key record has unsupported kdf {record.get('kdf')!r}")
    n, r, p = record.get("n"), record.get("r"), record.get("p")
    _check_cost(n, r, p)
    try:
        salt = base64.b64decode(record["salt"], validate=True)
        digest = base64.b64decode(record["hash"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("admin key record has a malformed salt or hash") from exc
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("admin key record has a malformed salt or hash")
    return cast(int, n), cast(int, r), cast(int, p), salt, digest


class CredentialKind(enum.Enum):
    """Convex's ``AuthenticationToken`` variants."""

    NONE = "None"
    USER = "User"
    ADMIN = "Admin"


@dataclass(frozen=True)
class Credentials:
    """What a request or an ``Authenticate`` message claims to be; nothing is verified yet.

    ``token`` is the JWT (USER) or the admin key (ADMIN). ``acting_as`` is set only for an
    admin acting as a user: checked ``UserIdentityAttributes`` (``tokenIdentifier`` filled in).
    Treat it as read-only.
    """

    kind: CredentialKind
    token: str | None = None
    acting_as: dict[str, Any] | None = None

    @classmethod
    def none(cls) -> Credentials:
        return cls(CredentialKind.NONE)

    @classmethod
    def user(cls, token: str) -> Credentials:
        return cls(CredentialKind.USER, token)

    @classmethod
    def admin(cls, key: str, acting_as: Mapping[str, Any] | None = None) -> Credentials:
        """Raises ``AuthenticationError`` (``InvalidAuthHeader``) if ``acting_as`` is malformed."""
        identity = None if acting_as is None else normalize_identity_attributes(acting_as)
        return cls(CredentialKind.ADMIN, key, identity)

    @classmethod
    def from_authenticate(
        cls, token_type: str, value: str | None, acting_as: Mapping[str, Any] | None = None
    ) -> Credentials:
        """From the fields of a WebSocket ``Authenticate`` message (``tokenType`` ``User``,
        ``Admin`` or ``None``; ``impersonating``/``acting_as`` for admins).

        Raises:
            AuthenticationError: reason ``InvalidAuthHeader``: empty value, unknown type or
                malformed acting-as identity.
        """
        if token_type == "None":
            return cls.none()
        if token_type not in ("User", "Admin"):
            raise AuthenticationError(
                f"Unknown tokenType {token_type!r}", reason="InvalidAuthHeader"
            )
        if not value:
            raise AuthenticationError(
                f"Authenticate with tokenType {token_type!r} has an empty value",
                reason="InvalidAuthHeader",
            )
        if token_type == "User":
            return cls.user(value)
        return cls.admin(value, acting_as)


def parse_authorization(
    header_value: str | None, *, admin_key_param: str | None = None
) -> Credentials:
    """The credentials of an HTTP request, from its ``Authorization`` header.

    * ``Bearer <jwt>`` (any case): a user token.
    * ``Convex <adminKey>`` or ``Convex <adminKey>:<base64(JSON UserIdentityAttributes)>``
      (case-insensitive ``"convex "`` prefix): an admin, possibly acting as that user. The
      acting-as separator is the first ``:`` after the key's ``|`` (Convex keys start with a
      ``prod:``-style type prefix), or the first ``:`` when the key has no ``|``.
    * Anything else: treated as a bearer token (so it fails JWT verification, with a message).
    * Missing or blank: no credentials, unless ``admin_key_param`` (the ``?adminKey=`` query
      parameter, honoured only without a header) is given.

    Raises:
        AuthenticationError: reason ``InvalidAuthHeader``: an empty token or key, or an
            acting-as identity that isn't base64 of a JSON object of identity attributes.
    """
    value = (header_value or "").strip()
    if not value:
        return Credentials.admin(admin_key_param) if admin_key_param else Credentials.none()
    scheme, _, rest = value.partition(" ")
    scheme = scheme.lower()
    if scheme in ("bearer", "convex") and not rest.strip():
        raise AuthenticationError(
            f"The Authorization header's {scheme.capitalize()} credential is empty",
            reason="InvalidAuthHeader",
        )
    if scheme == "bearer":
        return Credentials.user(rest.strip())
    if scheme == "convex":
        return _parse_admin(rest.strip())
    return Credentials.user(value)


def _parse_admin(credential: str) -> Credentials:
    separator = credential.find(":", credential.find("|") + 1)
    if separator < 0:
        return Credentials.admin(credential)
    key, encoded = credential[:separator], credential[separator + 1 :]
    if not key:
        raise AuthenticationError(
            "The Authorization header's admin key is empty", reason="InvalidAuthHeader"
        )
    normalized = encoded.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
        attributes = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise AuthenticationError(
            "The acting-as user identity in the Authorization header is not base64-encoded JSON",
            reason="InvalidAuthHeader",
        ) from exc
    return Credentials.admin(key, attributes)
