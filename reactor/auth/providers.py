"""Auth providers: the validated form of ``providers = [...]`` from an app's ``auth_config.py``.

Owns the two provider kinds Convex accepts (OIDC ``{domain, applicationID}`` and
``{type: "customJwt", issuer, jwks, algorithm, applicationID?}``), their validation with errors
that name the provider index and field, and which provider a token's ``iss``/``aud`` selects.
It does not load ``auth_config.py`` (the app loader does), fetch keys (``reactor.auth.jwks``) or
check signatures (``reactor.auth.verifier``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reactor.auth.jwks import decode_data_uri, parse_jwks
from reactor.errors import AuthConfigError

__all__ = [
    "CUSTOM_JWT_ALGORITHMS",
    "OIDC_ALGORITHMS",
    "CustomJwtProvider",
    "OidcProvider",
    "Provider",
    "parse_providers",
]

OIDC_ALGORITHMS = ("RS256", "EdDSA")
"""Signature algorithms accepted from OIDC providers (as Convex)."""

CUSTOM_JWT_ALGORITHMS = ("RS256", "ES256")
"""Values of a custom JWT provider's ``algorithm`` (as Convex)."""

_OIDC_KEYS = ("domain", "applicationID")
_CUSTOM_JWT_KEYS = ("type", "issuer", "jwks", "algorithm", "applicationID")


@dataclass(frozen=True)
class OidcProvider:
    """``{"domain": <issuer URL>, "applicationID": <aud>}``: keys found by OIDC discovery.

    ``domain`` must equal the token's ``iss`` up to a trailing slash (Auth0 documents its domain
    without one but puts one in ``iss``), and ``application_id`` must be one of its ``aud``.
    """

    domain: str
    application_id: str

    def matches(self, issuer: str, audiences: Sequence[str]) -> bool:
        """Whether a token with this ``iss`` and these ``aud`` values belongs to this provider."""
        return issuer.rstrip("/") == self.domain.rstrip("/") and self.application_id in audiences

    @property
    def discovery_url(self) -> str:
        return f"{self.domain.rstrip('/')}/.well-known/openid-configuration"

    @property
    def algorithms(self) -> tuple[str, ...]:
        return OIDC_ALGORITHMS

    def describe(self) -> str:
        return f"OIDC provider {self.domain!r} (applicationID {self.application_id!r})"


@dataclass(frozen=True)
class CustomJwtProvider:
    """``{"type": "customJwt", "issuer", "jwks", "algorithm", "applicationID"?}``.

    ``issuer`` must equal ``iss`` exactly; ``aud`` is checked only when ``application_id`` is
    set. ``jwks`` is an http(s) URL or a ``data:`` URI holding the JWKS JSON.
    """

    issuer: str
    jwks: str
    algorithm: str
    application_id: str | None = None

    def matches(self, issuer: str, audiences: Sequence[str]) -> bool:
        """Whether a token with this ``iss`` and these ``aud`` values belongs to this provider."""
        if issuer != self.issuer:
            return False
        return self.application_id is None or self.application_id in audiences

    @property
    def algorithms(self) -> tuple[str, ...]:
        return (self.algorithm,)

    def describe(self) -> str:
        aud = (
            "any audience"
            if self.application_id is None
            else f"applicationID {self.application_id!r}"
        )
        return f"custom JWT provider {self.issuer!r} ({aud})"


Provider = OidcProvider | CustomJwtProvider


def parse_providers(raw: Any) -> list[Provider]:
    """Validate the ``providers`` list of ``auth_config.py``.

    Args:
        raw: the list as written by the app: dicts shaped like Convex's ``auth.config.ts``
            entries. Unknown keys are refused, so that a typo such as ``applicationId`` cannot
            silently switch the audience check off.

    Returns:
        One :data:`Provider` per entry, in order (the first match wins when verifying).

    Raises:
        AuthConfigError: naming the provider index and field that is wrong.
    """
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise AuthConfigError(f"`providers` must be a list, got {type(raw).__name__}")
    return [_parse_provider(index, entry) for index, entry in enumerate(raw)]


def _parse_provider(index: int, entry: Any) -> Provider:
    if not isinstance(entry, dict):
        raise AuthConfigError(f"must be a dict, got {type(entry).__name__}", index=index)
    kind = entry.get("type")
    if kind is None:
        _refuse_unknown_keys(index, entry, _OIDC_KEYS)
        domain = _required_string(index, entry, "domain")
        scheme, host = _url_parts(domain)
        if scheme not in ("http", "https") or not host:
            raise AuthConfigError(
                f"must be the issuer's http(s) URL, got {domain!r}", index=index, field="domain"
            )
        return OidcProvider(domain, _required_string(index, entry, "applicationID"))
    if kind == "customJwt":
        _refuse_unknown_keys(index, entry, _CUSTOM_JWT_KEYS)
        issuer = _required_string(index, entry, "issuer")
        jwks = _required_string(index, entry, "jwks")
        _check_jwks_location(index, jwks)
        algorithm = _required_string(index, entry, "algorithm")
        if algorithm not in CUSTOM_JWT_ALGORITHMS:
            raise AuthConfigError(
                f'must be "RS256" or "ES256", got {algorithm!r}', index=index, field="algorithm"
            )
        application_id = None
        if entry.get("applicationID") is not None:
            application_id = _required_string(index, entry, "applicationID")
        return CustomJwtProvider(issuer, jwks, algorithm, application_id)
    raise AuthConfigError(
        f'has unexpected value {kind!r}: use "customJwt", or leave `type` out for an OIDC provider',
        index=index,
        field="type",
    )


def _refuse_unknown_keys(index: int, entry: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise AuthConfigError(
                f"is not a known key{hint}; allowed keys are {', '.join(allowed)}",
                index=index,
                field=str(key),
            )


def _required_string(index: int, entry: dict[str, Any], field: str) -> str:
    if field not in entry or entry[field] is None:
        raise AuthConfigError("is required", index=index, field=field)
    value = entry[field]
    if not isinstance(value, str):
        raise AuthConfigError(
            f"must be a string, got {type(value).__name__}", index=index, field=field
        )
    if not value.strip():
        raise AuthConfigError("must not be empty", index=index, field=field)
    return value


def _url_parts(value: str) -> tuple[str, str]:
    try:
        parts = urlsplit(value)
        return parts.scheme.lower(), parts.hostname or ""
    except ValueError:
        return "", ""


def _check_jwks_location(index: int, jwks: str) -> None:
    if jwks.startswith("data:"):
        try:
            parse_jwks(decode_data_uri(jwks), source="the data: URI")
        except ValueError as exc:
            raise AuthConfigError(str(exc), index=index, field="jwks") from exc
        return
    scheme, host = _url_parts(jwks)
    if scheme not in ("http", "https") or not host:
        raise AuthConfigError(
            f"must be an http(s) URL or a data: URI, got {jwks!r}", index=index, field="jwks"
        )
