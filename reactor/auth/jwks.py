"""JSON Web Key Sets: where verification keys come from and for how long they are trusted.

Owns fetching JWKS (and OIDC discovery documents) with httpx, inline ``data:`` URIs, a TTL
cache per URL with one shared in-flight fetch per URL, an early refetch for an unknown ``kid``
(key rotation) at most once per ``refetch_interval_s``, serving stale keys for a while when a
refresh fails, and turning one JWK into a key object for one algorithm. It does not parse tokens
or choose providers (``reactor.auth.verifier`` does).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from jwt import PyJWK, PyJWTError

from reactor.errors import AuthenticationError

__all__ = [
    "JwksCache",
    "KeySet",
    "decode_data_uri",
    "describe_location",
    "load_key",
    "parse_jwks",
]

log = logging.getLogger(__name__)

KeySet = tuple[dict[str, Any], ...]
"""The JWK objects of one JWKS, in document order."""

# algorithm -> (kty, accepted curves or None)
_KEY_FAMILIES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", ("P-256",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def decode_data_uri(uri: str) -> bytes:
    """The bytes of an RFC 2397 ``data:[<mediatype>][;base64],<data>`` URI.

    Any media type is accepted (Convex's docs use ``text/plain;charset=utf-8``; JSON tools emit
    ``application/json``). Base64 may be standard or URL-safe, with or without padding.

    Raises:
        ValueError: not a data URI, or its payload does not decode.
    """
    if not uri.startswith("data:"):
        raise ValueError("not a data: URI")
    header, comma, data = uri[len("data:") :].partition(",")
    if not comma:
        raise ValueError("the data: URI has no ',' before its payload")
    if header.split(";")[-1].strip().lower() != "base64":
        return unquote_to_bytes(data)
    text = "".join(unquote_to_bytes(data).decode("ascii", "replace").split())
    return _b64decode(text, what="the data: URI's payload")


def _b64decode(text: str, *, what: str) -> bytes:
    normalized = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def parse_jwks(document: bytes | str | Mapping[str, Any], *, source: str) -> KeySet:
    """Check a JWKS document (raw JSON or decoded) and return its JWK objects.

    Raises:
        ValueError: not JSON, not ``{"keys": [...]}``, or without any key object.
    """
    if isinstance(document, (bytes, str)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise ValueError(f"{source} is not JSON") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError(f'{source} is not a JWKS (expected {{"keys": [...]}})')
    keys = tuple(key for key in document["keys"] if isinstance(key, dict))
    if not keys:
        raise ValueError(f"{source} has no keys")
    return keys


def load_key(jwk: Mapping[str, Any], algorithm: str) -> Any:
    """The public key object of ``jwk`` for verifying ``algorithm`` signatures.

    A key is usable only when its ``kty`` (and ``crv``) fit the algorithm, its optional ``alg``
    equals it and its optional ``use`` is ``sig``. Refusing mismatches here is what prevents
    algorithm-confusion attacks (an RSA key used as an HMAC secret, and so on).

    Raises:
        ValueError: says why the key cannot verify ``algorithm`` (the message completes
            "The key with kid 'x' ...").
    """
    family = _KEY_FAMILIES.get(algorithm)
    if family is None:
        raise ValueError(f"cannot be used: algorithm {algorithm!r} is not supported")
    kty, curves = family
    if jwk.get("kty") != kty:
        raise ValueError(f"is a {jwk.get('kty')!r} key, which cannot verify {algorithm} signatures")
    if curves is not None and jwk.get("crv") not in curves:
        raise ValueError(
            f"is on curve {jwk.get('crv')!r}, which cannot verify {algorithm} signatures"
        )
    if jwk.get("alg") not in (None, algorithm):
        raise ValueError(f"is declared for {jwk.get('alg')!r}, not {algorithm}")
    if jwk.get("use") not in (None, "sig"):
        raise ValueError(f"is declared for use {jwk.get('use')!r}, not 'sig'")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise ValueError("contains private key material; publish only public keys")
    try:
        return PyJWK(dict(jwk), algorithm).key
    except PyJWTError as exc:
        raise ValueError(f"could not be loaded: {exc}") from exc


def describe_location(location: str) -> str:
    """``location`` for messages: URLs verbatim, inline JWKS without their (long) payload."""
    return "the inline data: JWKS" if location.startswith("data:") else location


@dataclass(frozen=True)
class _Cached:
    value: Any
    fetched_at: float


class JwksCache:
    """JWKS and OIDC discovery documents by URL, cached for ``ttl_s`` seconds.

    Invariants: at most one fetch per URL is in flight, and every caller asking for that URL
    meanwhile awaits it (so a burst of verifications after a restart or a rotation costs one
    request). A successful fetch replaces the cached copy; a failed one leaves it, and callers
    that allow it get the stale copy (up to ``max_stale_s`` old) instead of an error.

    Not thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float],
        ttl_s: float = 300.0,
        refetch_interval_s: float = 1.0,
        max_stale_s: float = 3600.0,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = http
        self._owns_http = http is None
        self._clock = clock
        self.ttl_s = ttl_s
        self.refetch_interval_s = refetch_interval_s
        self.max_stale_s = max_stale_s
        self._timeout_s = timeout_s
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._inline: dict[str, KeySet] = {}

    async def keys(self, location: str, *, refetch: bool = False) -> KeySet:
        """The JWKS at ``location`` (an http(s) URL or a ``data:`` URI).

        Args:
            location: where the JWKS lives.
            refetch: the caller met an unknown ``kid``: refetch unless the cached copy is
                younger than ``refetch_interval_s`` (which bounds how often tokens with made-up
                ``kid`` values can make us call the provider), and don't fall back to stale keys.

        Raises:
            AuthenticationError: reason ``AuthProviderUnavailable`` when the JWKS can't be had.
        """
        if location.startswith("data:"):
            return self._inline_keys(location)
        max_age_s = self.refetch_interval_s if refetch else self.ttl_s
        keys: KeySet = await self._get(
            location,
            max_age_s=max_age_s,
            allow_stale=not refetch,
            what="JWKS",
            parse=lambda doc: parse_jwks(doc, source="the response"),
        )
        return keys

    async def jwks_uri(self, discovery_url: str, *, issuer: str) -> str:
        """The ``jwks_uri`` of the OIDC discovery document at ``discovery_url``.

        The document's ``issuer`` must equal ``issuer`` up to a trailing slash, as OIDC
        Discovery requires.

        Raises:
            AuthenticationError: reason ``AuthProviderUnavailable``.
        """

        def parse(doc: Any) -> str:
            if not isinstance(doc, dict):
                raise ValueError("the response is not a JSON object")
            found = doc.get("issuer")
            if not isinstance(found, str) or found.rstrip("/") != issuer.rstrip("/"):
                raise ValueError(f"it names issuer {found!r}, expected {issuer!r}")
            uri = doc.get("jwks_uri")
            if not isinstance(uri, str) or urlsplit(uri).scheme not in ("http", "https"):
                raise ValueError(f"its `jwks_uri` is not an http(s) URL: {uri!r}")
            return uri

        uri: str = await self._get(
            discovery_url,
            max_age_s=self.ttl_s,
            allow_stale=True,
            what="the OpenID configuration",
            parse=parse,
        )
        return uri

    def clear(self) -> None:
        """Forget every cached document (in-flight fetches still complete)."""
        self._cache.clear()

    async def aclose(self) -> None:
        """Close the HTTP client if this cache created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _inline_keys(self, location: str) -> KeySet:
        keys = self._inline.get(location)
        if keys is None:
            try:
                keys = parse_jwks(decode_data_uri(location), source="the inline data: JWKS")
            except ValueError as exc:
                raise AuthenticationError(str(exc), reason="AuthProviderUnavailable") from exc
            self._inline[location] = keys
        return keys

    async def _get(
        self,
        url: str,
        *,
        max_age_s: float,
        allow_stale: bool,
        what: str,
        parse: Callable[[Any], Any],
    ) -> Any:
        now = self._clock()
        cached = self._cache.get(url)
        if cached is not None and now - cached.fetched_at <= max_age_s:
            return cached.value
        future = self._inflight.get(url)
        if future is None:
            future = asyncio.ensure_future(self._fetch(url, what, parse))
            self._inflight[url] = future
            future.add_done_callback(lambda done: self._fetch_done(url, done))
        try:
            # Shielded: one caller giving up must not cancel the fetch the others await.
            return await asyncio.shield(future)
        except AuthenticationError:
            if allow_stale and cached is not None and now - cached.fetched_at <= self.max_stale_s:
                log.warning("serving %s for %s from a stale copy: refresh failed", what, url)
                return cached.value
            raise

    def _fetch_done(self, url: str, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(url) is future:
            del self._inflight[url]
        if not future.cancelled():
            future.exception()  # retrieved here so an unawaited failure is never logged as lost

    async def _fetch(self, url: str, what: str, parse: Callable[[Any], Any]) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
        failure = f"Could not fetch {what} from {url}"
        try:
            response = await self._http.get(
                url, headers={"Accept": "application/json"}, follow_redirects=True
            )
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AuthenticationError(
                f"{failure}: {detail}", reason="AuthProviderUnavailable"
            ) from exc
        if response.status_code != 200:
            raise AuthenticationError(
                f"{failure}: HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                reason="AuthProviderUnavailable",
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise AuthenticationError(
                f"{failure}: the response is not JSON", reason="AuthProviderUnavailable"
            ) from exc
        try:
            value = parse(document)
        except ValueError as exc:
            raise AuthenticationError(
                f"{failure}: {exc}", reason="AuthProviderUnavailable"
            ) from exc
        self._cache[url] = _Cached(value, self._clock())
        return value
