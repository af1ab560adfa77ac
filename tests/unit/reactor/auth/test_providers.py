"""parse_providers: Convex-shaped auth_config entries in, providers or precise errors out."""

from __future__ import annotations

import pytest

from reactor.auth import AuthConfigError, CustomJwtProvider, OidcProvider, parse_providers
from schema.errors import ReactorError, SchemaError

from .conftest import data_uri

INLINE = data_uri({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "k"}]})


def test_parses_both_kinds_in_order() -> None:
    providers = parse_providers(
        [
            {"domain": "https://tenant.us.auth0.com/", "applicationID": "abc"},
            {
                "type": "customJwt",
                "issuer": "privy.io",
                "jwks": "https://auth.privy.io/api/v1/apps/x/jwks.json",
                "algorithm": "ES256",
                "applicationID": "x",
            },
            {"type": "customJwt", "issuer": "local", "jwks": INLINE, "algorithm": "RS256"},
        ]
    )

    assert providers == [
        OidcProvider("https://tenant.us.auth0.com/", "abc"),
        CustomJwtProvider(
            "privy.io", "https://auth.privy.io/api/v1/apps/x/jwks.json", "ES256", "x"
        ),
        CustomJwtProvider("local", INLINE, "RS256", None),
    ]
    assert isinstance(providers[0], OidcProvider)
    assert (
        providers[0].discovery_url == "https://tenant.us.auth0.com/.well-known/openid-configuration"
    )


def test_empty_list_is_valid() -> None:
    assert parse_providers([]) == []
    assert parse_providers(()) == []


def test_application_id_none_means_no_audience_check() -> None:
    (provider,) = parse_providers(
        [
            {
                "type": "customJwt",
                "issuer": "i",
                "jwks": INLINE,
                "algorithm": "ES256",
                "applicationID": None,
            }
        ]
    )
    assert provider.matches("i", []) and provider.matches("i", ["anything"])
    assert not provider.matches("i2", [])


def test_oidc_matching_ignores_a_trailing_slash_but_needs_the_audience() -> None:
    provider = OidcProvider("https://a.example.com", "app")
    assert provider.matches("https://a.example.com/", ["app"])
    assert provider.matches("https://a.example.com", ["x", "app"])
    assert not provider.matches("https://a.example.com", ["x"])
    assert not provider.matches("https://b.example.com", ["app"])


@pytest.mark.parametrize(
    ("raw", "message", "index", "field"),
    [
        ({"domain": "x"}, r"^`providers` must be a list, got dict$", None, None),
        ("https://x", r"^`providers` must be a list, got str$", None, None),
        (["https://x"], r"^Provider at index 0: must be a dict, got str$", 0, None),
        ([{"applicationID": "a"}], r"^Provider at index 0: `domain` is required$", 0, "domain"),
        ([{"domain": "https://x.com"}], r"`applicationID` is required$", 0, "applicationID"),
        (
            [{"domain": 7, "applicationID": "a"}],
            r"`domain` must be a string, got int$",
            0,
            "domain",
        ),
        ([{"domain": "  ", "applicationID": "a"}], r"`domain` must not be empty$", 0, "domain"),
        (
            [{"domain": "tenant.auth0.com", "applicationID": "a"}],
            r"`domain` must be the issuer's http\(s\) URL, got 'tenant\.auth0\.com'$",
            0,
            "domain",
        ),
        (
            [
                {"domain": "https://ok.com", "applicationID": "a"},
                {"domain": "https://ok.com", "applicationId": "a"},
            ],
            r"^Provider at index 1: `applicationId` is not a known key \(did you mean "
            r"`applicationID`\?\)",
            1,
            "applicationId",
        ),
        (
            [{"type": "credentials", "domain": "https://x.com"}],
            r"^Provider at index 0: `type` has unexpected value 'credentials'",
            0,
            "type",
        ),
        (
            [{"type": "customJwt", "jwks": INLINE, "algorithm": "ES256"}],
            r"`issuer` is required$",
            0,
            "issuer",
        ),
        (
            [{"type": "customJwt", "issuer": "i", "algorithm": "ES256"}],
            r"`jwks` is required$",
            0,
            "jwks",
        ),
        (
            [{"type": "customJwt", "issuer": "i", "jwks": "ftp://x/jwks", "algorithm": "ES256"}],
            r"`jwks` must be an http\(s\) URL or a data: URI, got 'ftp://x/jwks'$",
            0,
            "jwks",
        ),
        (
            [
                {
                    "type": "customJwt",
                    "issuer": "i",
                    "jwks": "data:application/json;base64,!!!",
                    "algorithm": "ES256",
                }
            ],
            r"`jwks` the data: URI's payload is not valid base64$",
            0,
            "jwks",
        ),
        (
            [
                {
                    "type": "customJwt",
                    "issuer": "i",
                    "jwks": data_uri({"nope": 1}),
                    "algorithm": "ES256",
                }
            ],
            r"`jwks` the data: URI is not a JWKS",
            0,
            "jwks",
        ),
        (
            [{"type": "customJwt", "issuer": "i", "jwks": INLINE}],
            r"`algorithm` is required$",
            0,
            "algorithm",
        ),
        (
            [{"type": "customJwt", "issuer": "i", "jwks": INLINE, "algorithm": "HS256"}],
            r"^Provider at index 0: `algorithm` must be \"RS256\" or \"ES256\", got 'HS256'$",
            0,
            "algorithm",
        ),
        (
            [
                {
                    "type": "customJwt",
                    "issuer": "i",
                    "jwks": INLINE,
                    "algorithm": "ES256",
                    "applicationID": 5,
                }
            ],
            r"`applicationID` must be a string, got int$",
            0,
            "applicationID",
        ),
        (
            [
                {
                    "type": "customJwt",
                    "issuer": "i",
                    "jwks": INLINE,
                    "algorithm": "ES256",
                    "domain": "x",
                }
            ],
            r"`domain` is not a known key",
            0,
            "domain",
        ),
    ],
)
def test_invalid_configs_name_the_provider_and_field(
    raw: object, message: str, index: int | None, field: str | None
) -> None:
    with pytest.raises(AuthConfigError, match=message) as info:
        parse_providers(raw)

    assert (info.value.index, info.value.field) == (index, field)
    assert info.value.code == "AuthConfigInvalid"
    assert isinstance(info.value, SchemaError) and isinstance(info.value, ReactorError)
