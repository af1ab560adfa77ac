"""Claims -> UserIdentity, and the acting-as attributes an admin may supply."""

from __future__ import annotations

import pytest

from reactor.auth import (
    AuthenticationError,
    normalize_identity_attributes,
    user_identity_from_claims,
)


def test_minimal_identity() -> None:
    assert user_identity_from_claims({"iss": "https://i", "sub": "s", "exp": 1, "aud": "a"}) == {
        "tokenIdentifier": "https://i|s",
        "subject": "s",
        "issuer": "https://i",
    }


def test_protocol_claims_are_dropped_for_oidc_but_kept_for_custom_jwts() -> None:
    claims = {"iss": "i", "sub": "s", "azp": "client", "nonce": "n", "jti": "j", "iat": 1, "nbf": 1}

    assert "azp" not in user_identity_from_claims(claims)
    assert user_identity_from_claims(claims, custom_jwt=True) == {
        "tokenIdentifier": "i|s",
        "subject": "s",
        "issuer": "i",
        "azp": "client",
        "nonce": "n",
    }


def test_custom_claims_never_override_named_fields() -> None:
    claims = {"iss": "i", "sub": "s", "tokenIdentifier": "evil|x", "subject": "x", "givenName": "X"}

    assert user_identity_from_claims(claims) == {
        "tokenIdentifier": "i|s",
        "subject": "s",
        "issuer": "i",
    }


def test_standard_claim_conversions() -> None:
    identity = user_identity_from_claims(
        {
            "iss": "i",
            "sub": "s",
            "email_verified": "FALSE",
            "phone_number_verified": True,
            "address": {"street_address": "no formatted"},
            "updated_at": "2024-01-01T00:00:00Z",
            "name": None,
        }
    )

    assert identity == {
        "tokenIdentifier": "i|s",
        "subject": "s",
        "issuer": "i",
        "emailVerified": False,
        "phoneNumberVerified": True,
        "updatedAt": "2024-01-01T00:00:00Z",
    }


def test_nested_custom_claims_stay_nested_for_oidc() -> None:
    identity = user_identity_from_claims({"iss": "i", "sub": "s", "org": {"id": 1, "tags": ["a"]}})
    assert identity["org"] == {"id": 1, "tags": ["a"]}


def test_acting_as_attributes_default_the_token_identifier() -> None:
    assert normalize_identity_attributes(
        {"issuer": "i", "subject": "s", "email": "e", "team": {"id": 1}}
    ) == {
        "issuer": "i",
        "subject": "s",
        "email": "e",
        "team": {"id": 1},
        "tokenIdentifier": "i|s",
    }
    assert normalize_identity_attributes({"tokenIdentifier": "t", "name": None}) == {
        "tokenIdentifier": "t"
    }


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ([], r"must be a JSON object, got list"),
        ({"subject": "s"}, r"needs `tokenIdentifier`, or both `issuer` and `subject`"),
        ({"tokenIdentifier": 5}, r"field `tokenIdentifier` must be a str, got int"),
        (
            {"tokenIdentifier": "t", "emailVerified": "yes"},
            r"field `emailVerified` must be a bool, got str",
        ),
    ],
)
def test_invalid_acting_as_attributes(attributes: object, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as info:
        normalize_identity_attributes(attributes)
    assert info.value.reason == "InvalidAuthHeader"
