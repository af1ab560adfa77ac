"""Convex's ``UserIdentity``: built from verified JWT claims, or checked when an admin acts as one.

Owns the claim-to-field mapping (``given_name`` -> ``givenName`` ...), which claims count as
custom, and the shape of ``UserIdentityAttributes`` sent with admin credentials. It does not
verify anything: callers hand it claims whose signature was already checked, or attributes
that an authenticated admin supplied.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reactor.errors import AuthenticationError

__all__ = [
    "REGISTERED_CLAIMS",
    "STANDARD_CLAIMS",
    "USER_IDENTITY_FIELDS",
    "normalize_identity_attributes",
    "user_identity_from_claims",
]

STANDARD_CLAIMS: Mapping[str, str] = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "website": "websiteUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
    "address": "address",
    "updated_at": "updatedAt",
}
"""OIDC standard claim -> ``UserIdentity`` field."""

USER_IDENTITY_FIELDS: tuple[str, ...] = (
    "tokenIdentifier",
    "subject",
    "issuer",
    *STANDARD_CLAIMS.values(),
)
"""The named fields of ``UserIdentity``; every other key is a custom claim."""

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})
"""RFC 7519 claims: never copied into the identity as custom claims."""

# ID-token protocol claims that Convex's OIDC path consumes and does not expose.
_OIDC_PROTOCOL_CLAIMS = frozenset({"auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash"})
_BOOLEAN_FIELDS = frozenset({"emailVerified", "phoneNumberVerified"})


def user_identity_from_claims(
    claims: Mapping[str, Any], *, custom_jwt: bool = False
) -> dict[str, Any]:
    """The ``UserIdentity`` dict for the verified claims of a token.

    ``tokenIdentifier`` is ``f"{iss}|{sub}"``. Standard OIDC claims are renamed
    (``STANDARD_CLAIMS``); ``email_verified``/``phone_number_verified`` given as the strings
    ``"true"``/``"false"`` (AWS Cognito does) become booleans, a numeric ``updated_at`` becomes
    an RFC 3339 string and an ``address`` object becomes its ``formatted`` string, since
    ``UserIdentity.address``/``updatedAt`` are strings. Every other claim is kept as a custom
    claim, except the registered ones and, for OIDC tokens, the ID-token protocol claims
    (``azp``, ``nonce``, ``auth_time``, ...). A custom claim never overrides a named field.

    Args:
        claims: the token's verified claims; ``iss`` and ``sub`` must be strings.
        custom_jwt: the token came from a ``customJwt`` provider: nested objects in custom
            claims are flattened to dotted keys (``{"properties": {"id": 1}}`` gives
            ``"properties.id": 1``), as Convex documents for custom JWTs.
    """
    issuer, subject = claims["iss"], claims["sub"]
    identity: dict[str, Any] = {
        "tokenIdentifier": f"{issuer}|{subject}",
        "subject": subject,
        "issuer": issuer,
    }
    custom: dict[str, Any] = {}
    excluded = REGISTERED_CLAIMS if custom_jwt else REGISTERED_CLAIMS | _OIDC_PROTOCOL_CLAIMS
    for claim, value in claims.items():
        if claim in excluded:
            continue
        field = STANDARD_CLAIMS.get(claim)
        if field is not None:
            converted = _convert_standard(field, value)
            if converted is not None:
                identity[field] = converted
        elif claim in USER_IDENTITY_FIELDS:
            continue
        elif custom_jwt and isinstance(value, dict):
            custom.update(_flatten(claim, value))
        else:
            custom[claim] = value
    for claim, value in custom.items():
        identity.setdefault(claim, value)
    return identity


def _convert_standard(field: str, value: Any) -> Any:
    if field in _BOOLEAN_FIELDS and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if field == "updatedAt" and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return value
    if field == "address" and isinstance(value, dict):
        formatted = value.get("formatted")
        return formatted if isinstance(formatted, str) else None
    return value


def _flatten(prefix: str, value: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, dict):
            flat.update(_flatten(name, item))
        else:
            flat[name] = item
    return flat


def normalize_identity_attributes(attributes: Any) -> dict[str, Any]:
    """Check ``UserIdentityAttributes`` supplied by an admin acting as a user.

    Named fields must be strings (``emailVerified``/``phoneNumberVerified``: booleans); other
    keys are custom claims and pass through. ``tokenIdentifier`` defaults to
    ``f"{issuer}|{subject}"``.

    Raises:
        AuthenticationError: reason ``InvalidAuthHeader``, naming the bad field.
    """
    if not isinstance(attributes, Mapping):
        raise _invalid(f"must be a JSON object, got {type(attributes).__name__}")
    identity: dict[str, Any] = {}
    for key, value in attributes.items():
        if not isinstance(key, str):
            raise _invalid(f"has a non-string key {key!r}")
        if key in USER_IDENTITY_FIELDS and value is not None:
            expected = bool if key in _BOOLEAN_FIELDS else str
            if not isinstance(value, expected):
                raise _invalid(
                    f"field `{key}` must be a {expected.__name__}, got {type(value).__name__}"
                )
        if value is not None or key not in USER_IDENTITY_FIELDS:
            identity[key] = value
    if "tokenIdentifier" not in identity:
        if "issuer" not in identity or "subject" not in identity:
            raise _invalid("needs `tokenIdentifier`, or both `issuer` and `subject`")
        identity["tokenIdentifier"] = f"{identity['issuer']}|{identity['subject']}"
    return identity


def _invalid(problem: str) -> AuthenticationError:
    return AuthenticationError(f"The acting-as user identity {problem}", reason="InvalidAuthHeader")
