"""``AuthVerifier``: a user JWT in, Convex's ``UserIdentity`` out (or ``AuthenticationError``).

Owns the checks a token passes, in order: it parses as a JWS; its ``iss``/``aud`` select a
provider; its header fits the provider (``alg``; for custom JWTs ``kid`` and ``typ``); its
signature verifies with a key from the provider's JWKS; then ``sub``, ``exp`` (with a small
clock-skew leeway) and ``nbf``. It does not fetch or cache keys itself (``reactor.auth.jwks``),
map claims (``reactor.auth.identity``), or decide what a refusal does to a connection.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import jwt
from jwt.api_jws import PyJWS

from reactor.auth.identity import user_identity_from_claims
from reactor.auth.jwks import JwksCache, KeySet, describe_location, load_key
from reactor.auth.providers import CustomJwtProvider, OidcProvider, Provider, parse_providers
from reactor.errors import AuthenticationError

__all__ = ["AuthVerifier", "VerifiedToken", "is_token_expired", "token_valid_until"]

_JWS = PyJWS()


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check.

    ``expires_at``/``issued_at`` are Unix seconds (``exp``/``iat``; ``iat`` is None when
    absent). ``valid_until`` is the last instant the token is accepted: ``exp`` plus the
    verifier's clock-skew leeway (:func:`token_valid_until`, the one rule every transport
    uses). The sync server ends a session's identity then (Convex's ``TokenExpired``, sent with
    ``authUpdateAttempted: false``), so a token HTTP accepts is accepted over the websocket too.
    """

    identity: dict[str, Any]
    expires_at: float
    issued_at: float | None
    provider: Provider
    valid_until: float

    def is_expired(self, now: float) -> bool:
        return is_token_expired(self.valid_until, now)


def token_valid_until(expires_at: float, leeway_s: float) -> float:
    """The last instant (Unix seconds) a token with ``exp = expires_at`` is accepted."""
    return expires_at + leeway_s


def is_token_expired(valid_until: float, now: float) -> bool:
    """Whether a token accepted until ``valid_until`` (see :func:`token_valid_until`) is
    refused at ``now``."""
    return now > valid_until


class AuthVerifier:
    """Verifies user JWTs against the providers of ``auth_config.py``.

    Keys come from a :class:`~reactor.auth.jwks.JwksCache` shared by all calls: cached for
    ``jwks_ttl_s``, refetched early (at most once per ``jwks_refetch_interval_s``) when a token
    names an unknown ``kid``, one fetch per URL at a time. Use it from one event loop, and close
    it (``aclose`` or ``async with``) to release the HTTP client it creates when none is given.
    """

    def __init__(
        self,
        providers: Sequence[Provider] | Sequence[dict[str, Any]],
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        jwks_ttl_s: float = 300.0,
        jwks_refetch_interval_s: float = 1.0,
        leeway_s: float = 5.0,
        http_timeout_s: float = 10.0,
    ) -> None:
        """Args:
        providers: parsed providers, or the raw ``providers`` list (then parsed here, raising
            ``AuthConfigError``).
        http: the client to fetch discovery documents and JWKS with; by default one is created
            on first use and closed by ``aclose``.
        clock: Unix time in seconds, for ``exp``/``nbf`` and cache ages.
        jwks_ttl_s: how long a fetched JWKS or discovery document is trusted.
        jwks_refetch_interval_s: the minimum age of a cached JWKS before an unknown ``kid``
            triggers a refetch.
        leeway_s: clock skew tolerated on ``exp`` and ``nbf``.
        http_timeout_s: timeout of the HTTP client created when ``http`` is None.
        """
        if all(isinstance(p, (OidcProvider, CustomJwtProvider)) for p in providers):
            self.providers: tuple[Provider, ...] = tuple(providers)  # type: ignore[arg-type]
        else:
            self.providers = tuple(parse_providers(providers))
        self._clock = clock
        self.leeway_s = leeway_s
        self.jwks = JwksCache(
            http=http,
            clock=clock,
            ttl_s=jwks_ttl_s,
            refetch_interval_s=jwks_refetch_interval_s,
            timeout_s=http_timeout_s,
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The ``UserIdentity`` dict of a valid token (see :meth:`verify_token`).

        Raises:
            AuthenticationError: the token is refused; the message says why.
        """
        return (await self.verify_token(token)).identity

    async def verify_token(self, token: str) -> VerifiedToken:
        """Check ``token`` and return its identity with its expiry.

        Raises:
            AuthenticationError: ``reason`` is ``InvalidAuthHeader`` (malformed token, missing
                header or claim, wrong ``alg``/``typ``), ``NoAuthProvider``,
                ``InvalidSignature``, ``UnknownKey``, ``TokenExpired``, ``TokenNotYetValid``
                or ``AuthProviderUnavailable``.
        """
        if not isinstance(token, str) or not token.strip():
            raise _malformed("The auth token is empty")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = _claims_object(
                _JWS.decode_complete(token, options={"verify_signature": False})["payload"]
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise _malformed(f"Could not parse the auth token as a JWT: {exc}") from exc

        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise _malformed("Token is missing the `iss` claim")
        provider = self._select_provider(
            issuer, _audiences(unverified.get("aud")), unverified.get("aud")
        )
        algorithm, kid = self._check_header(header, provider)
        claims = _claims_object(await self._check_signature(token, provider, algorithm, kid))
        expires_at, issued_at = self._check_claims(claims)
        identity = user_identity_from_claims(
            claims, custom_jwt=isinstance(provider, CustomJwtProvider)
        )
        valid_until = token_valid_until(expires_at, self.leeway_s)
        return VerifiedToken(identity, expires_at, issued_at, provider, valid_until)

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier created it."""
        await self.jwks.aclose()

    async def __aenter__(self) -> AuthVerifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- checks, in the order verify_token runs them --------------------------------------------

    def _select_provider(self, issuer: str, audiences: list[str], raw_aud: Any) -> Provider:
        for provider in self.providers:
            if provider.matches(issuer, audiences):
                return provider
        if not self.providers:
            raise AuthenticationError(
                "No auth provider found matching the given token (no providers configured). "
                "Check auth_config.py.",
                reason="NoAuthProvider",
            )
        configured = "; ".join(p.describe() for p in self.providers)
        raise AuthenticationError(
            f"No auth provider found matching the token's issuer {issuer!r} and audience "
            f"{raw_aud!r}. Configured providers: {configured}",
            reason="NoAuthProvider",
        )

    def _check_header(self, header: dict[str, Any], provider: Provider) -> tuple[str, str | None]:
        algorithm = header.get("alg")
        if algorithm not in provider.algorithms:
            if isinstance(provider, CustomJwtProvider):
                problem = f"doesn't match the provider's algorithm {provider.algorithm!r}"
            else:
                problem = "is not supported: OIDC tokens must be signed with RS256 or EdDSA"
            raise _malformed(f"Token `alg` header {algorithm!r} {problem}")
        kid = header.get("kid")
        if isinstance(provider, CustomJwtProvider):
            if kid is None:
                raise _malformed("Token is missing the `kid` header")
            typ = header.get("typ")
            if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
                raise _malformed(f'Token `typ` header must be "JWT", got {typ!r}')
        return str(algorithm), kid

    async def _check_signature(
        self, token: str, provider: Provider, algorithm: str, kid: str | None
    ) -> bytes:
        if isinstance(provider, OidcProvider):
            location = await self.jwks.jwks_uri(provider.discovery_url, issuer=provider.domain)
        else:
            location = provider.jwks
        keys = await self.jwks.keys(location)
        if kid is not None and not any(key.get("kid") == kid for key in keys):
            # Unknown kid: the provider may have rotated its keys since we fetched them.
            keys = await self.jwks.keys(location, refetch=True)
        for key in _candidate_keys(keys, kid, algorithm, describe_location(location)):
            try:
                payload: bytes = _JWS.decode_complete(token, key=key, algorithms=[algorithm])[
                    "payload"
                ]
                return payload
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise AuthenticationError(f"Could not verify the token: {exc}") from exc
        raise AuthenticationError("Token signature is invalid", reason="InvalidSignature")

    def _check_claims(self, claims: dict[str, Any]) -> tuple[float, float | None]:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _malformed("Token is missing the `sub` claim")
        expires_at = _number(claims.get("exp"))
        if expires_at is None:
            raise _malformed("Token is missing the `exp` claim (a number of seconds)")
        now = self._clock()
        if is_token_expired(token_valid_until(expires_at, self.leeway_s), now):
            raise AuthenticationError(
                f"Token expired at {_iso(expires_at)} (the current time is {_iso(now)})",
                reason="TokenExpired",
            )
        not_before = _number(claims.get("nbf"))
        if not_before is not None and now + self.leeway_s < not_before:
            raise AuthenticationError(
                f"Token is not valid before {_iso(not_before)} (the current time is {_iso(now)})",
                reason="TokenNotYetValid",
            )
        return expires_at, _number(claims.get("iat"))


def _candidate_keys(keys: KeySet, kid: str | None, algorithm: str, where: str) -> list[Any]:
    """Key objects that may have signed the token: the one named by ``kid``, or (no ``kid``,
    OIDC only) every key usable with ``algorithm``."""
    if kid is not None:
        named = [key for key in keys if key.get("kid") == kid]
        if not named:
            raise AuthenticationError(
                f"Token `kid` header {kid!r} names no key in the JWKS at {where}",
                reason="UnknownKey",
            )
        try:
            return [load_key(key, algorithm) for key in named]
        except ValueError as exc:
            raise AuthenticationError(
                f"The key with kid {kid!r} in the JWKS at {where} {exc}", reason="UnknownKey"
            ) from exc
    usable = []
    for key in keys:
        try:
            usable.append(load_key(key, algorithm))
        except ValueError:
            continue
    if not usable:
        raise AuthenticationError(
            f"No key in the JWKS at {where} can verify {algorithm} signatures", reason="UnknownKey"
        )
    return usable


def _claims_object(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise _malformed(
            "Could not parse the auth token as a JWT: its payload is not JSON"
        ) from exc
    if not isinstance(claims, dict):
        raise _malformed(
            "Could not parse the auth token as a JWT: its payload is not a JSON object"
        )
    return claims


def _audiences(aud: Any) -> list[str]:
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return aud
    raise _malformed("Token `aud` claim must be a string or a list of strings")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond float range: later than any clock reading
            return math.inf if value > 0 else -math.inf
    return None


def _iso(seconds: float) -> str:
    try:
        stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return stamp.replace("+00:00", "Z")


def _malformed(message: str) -> AuthenticationError:
    return AuthenticationError(message, reason="InvalidAuthHeader")
