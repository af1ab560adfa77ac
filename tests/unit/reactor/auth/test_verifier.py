"""AuthVerifier against real keys and a real identity provider on 127.0.0.1 (no crypto mocks)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import jwt
import pytest

from reactor.auth import (
    AuthConfigError,
    AuthenticationError,
    AuthVerifier,
    CustomJwtProvider,
    OidcProvider,
    parse_providers,
)

from .conftest import FakeClock, IdentityProvider, MakeVerifier, SigningKey, data_uri, jwks_of

pytestmark = pytest.mark.anyio

APP = "reactor-app"


def claims_for(clock: FakeClock, issuer: str, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "user|42",
        "aud": APP,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
    }
    claims.update(extra)
    return {key: value for key, value in claims.items() if value is not None}


def oidc(domain: str, application_id: str = APP) -> list[dict[str, Any]]:
    return [{"domain": domain, "applicationID": application_id}]


def custom(issuer: str, jwks: str, algorithm: str = "ES256", **extra: Any) -> list[dict[str, Any]]:
    return [{"type": "customJwt", "issuer": issuer, "jwks": jwks, "algorithm": algorithm, **extra}]


async def refused(verifier: AuthVerifier, token: str, match: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError, match=match) as info:
        await verifier.verify(token)
    assert info.value.code == "Unauthenticated"
    return info.value


# -- OIDC ----------------------------------------------------------------------------------------


async def test_oidc_rs256_token_gives_the_exact_user_identity(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    token = rsa_key.sign(
        claims_for(
            clock,
            domain,
            nbf=int(clock.now),
            jti="token-1",
            azp="client-1",
            nonce="n-0S6",
            auth_time=int(clock.now),
            name="Ada Lovelace",
            given_name="Ada",
            family_name="Lovelace",
            nickname="ada",
            preferred_username="ada.l",
            profile="https://example.com/ada",
            picture="https://example.com/ada.png",
            website="https://ada.example.com",
            email="ada@example.com",
            email_verified="true",
            gender="female",
            birthdate="1815-12-10",
            zoneinfo="Europe/London",
            locale="en-GB",
            phone_number="+44 20 7946 0000",
            phone_number_verified=False,
            address={"formatted": "12 St James's Square, London", "country": "UK"},
            updated_at=1700000000,
            org_id="org_7",
            roles=["admin", "editor"],
            meta={"plan": "pro"},
        )
    )
    verifier = make_verifier(oidc(domain))

    identity = await verifier.verify(token)

    assert identity == {
        "tokenIdentifier": f"{domain}|user|42",
        "subject": "user|42",
        "issuer": domain,
        "name": "Ada Lovelace",
        "givenName": "Ada",
        "familyName": "Lovelace",
        "nickname": "ada",
        "preferredUsername": "ada.l",
        "profileUrl": "https://example.com/ada",
        "pictureUrl": "https://example.com/ada.png",
        "websiteUrl": "https://ada.example.com",
        "email": "ada@example.com",
        "emailVerified": True,
        "gender": "female",
        "birthday": "1815-12-10",
        "timezone": "Europe/London",
        "language": "en-GB",
        "phoneNumber": "+44 20 7946 0000",
        "phoneNumberVerified": False,
        "address": "12 St James's Square, London",
        "updatedAt": "2023-11-14T22:13:20+00:00",
        "org_id": "org_7",
        "roles": ["admin", "editor"],
        "meta": {"plan": "pro"},
    }


async def test_verify_token_reports_expiry_and_provider(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))

    verified = await verifier.verify_token(rsa_key.sign(claims_for(clock, domain)))

    assert verified.expires_at == clock.now + 3600
    assert verified.issued_at == clock.now
    assert verified.provider == OidcProvider(domain, APP)
    # Accepted until exp plus the leeway, the one rule every transport applies.
    assert verified.valid_until == clock.now + 3600 + verifier.leeway_s
    assert not verified.is_expired(clock.now)
    assert not verified.is_expired(clock.now + 3600 + verifier.leeway_s)
    assert verified.is_expired(clock.now + 3600 + verifier.leeway_s + 0.001)


async def test_oidc_issuer_matches_up_to_a_trailing_slash(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain + "/"))

    identity = await verifier.verify(rsa_key.sign(claims_for(clock, domain)))

    assert identity["tokenIdentifier"] == f"{domain}|user|42"


async def test_oidc_audience_may_be_a_list(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))

    identity = await verifier.verify(rsa_key.sign(claims_for(clock, domain, aud=["other", APP])))

    assert identity["subject"] == "user|42"


async def test_oidc_eddsa_token(
    idp: IdentityProvider, ed_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", ed_key)
    verifier = make_verifier(oidc(domain))

    identity = await verifier.verify(ed_key.sign(claims_for(clock, domain)))

    assert identity["issuer"] == domain


async def test_oidc_token_without_kid_is_tried_against_every_usable_key(
    idp: IdentityProvider,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
    ec_key: SigningKey,
    clock: FakeClock,
    make_verifier: MakeVerifier,
) -> None:
    domain = idp.serve_oidc("oidc", ec_key, rsa_key, rsa_key_2)
    verifier = make_verifier(oidc(domain))

    identity = await verifier.verify(rsa_key_2.sign(claims_for(clock, domain), kid=None))

    assert identity["subject"] == "user|42"


async def test_oidc_refuses_es256_and_hs256_and_none(
    idp: IdentityProvider,
    rsa_key: SigningKey,
    ec_key: SigningKey,
    clock: FakeClock,
    make_verifier: MakeVerifier,
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key, ec_key)
    verifier = make_verifier(oidc(domain))
    claims = claims_for(clock, domain)

    await refused(verifier, ec_key.sign(claims), r"Token `alg` header 'ES256' is not supported")
    hs256 = jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256")
    await refused(verifier, hs256, r"'HS256' is not supported: OIDC tokens must be signed with")
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    error = await refused(verifier, unsigned, r"Token `alg` header 'none' is not supported")
    assert error.reason == "InvalidAuthHeader"


async def test_discovery_must_name_the_same_issuer(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    idp.serve(
        "/oidc/.well-known/openid-configuration",
        {"issuer": "https://impostor.example.com", "jwks_uri": f"{domain}/jwks"},
    )
    verifier = make_verifier(oidc(domain))

    error = await refused(
        verifier,
        rsa_key.sign(claims_for(clock, domain)),
        r"Could not fetch the OpenID configuration from .*/oidc/\.well-known/openid-configuration: "
        r"it names issuer 'https://impostor.example.com'",
    )
    assert error.reason == "AuthProviderUnavailable"


async def test_discovery_not_found_is_a_clear_error(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.url("/nowhere")
    verifier = make_verifier(oidc(domain))

    await refused(
        verifier,
        rsa_key.sign(claims_for(clock, domain)),
        r"Could not fetch the OpenID configuration from "
        r".*/nowhere/\.well-known/openid-configuration: HTTP 404",
    )


# -- custom JWT ----------------------------------------------------------------------------------


async def test_custom_jwt_es256_token_flattens_nested_claims(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", jwks_of(ec_key))
    verifier = make_verifier(custom("https://auth.example.com", idp.url("/custom/jwks")))
    claims = claims_for(
        clock,
        "https://auth.example.com",
        aud=None,
        email="grace@example.com",
        properties={"id": "123", "favoriteColor": "red", "deep": {"er": True}},
    )

    identity = await verifier.verify(ec_key.sign(claims))

    assert identity == {
        "tokenIdentifier": "https://auth.example.com|user|42",
        "subject": "user|42",
        "issuer": "https://auth.example.com",
        "email": "grace@example.com",
        "properties.id": "123",
        "properties.favoriteColor": "red",
        "properties.deep.er": True,
    }


@pytest.mark.parametrize("media_type", ["application/json", "text/plain;charset=utf-8"])
async def test_custom_jwt_with_inline_data_uri_jwks(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier, media_type: str
) -> None:
    jwks = data_uri(jwks_of(ec_key), media_type)
    verifier = make_verifier(custom("privy.io", jwks))

    identity = await verifier.verify(ec_key.sign(claims_for(clock, "privy.io")))

    assert identity["tokenIdentifier"] == "privy.io|user|42"


async def test_custom_jwt_rs256(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", jwks_of(rsa_key))
    verifier = make_verifier(custom("issuer-x", idp.url("/custom/jwks"), "RS256"))

    identity = await verifier.verify(rsa_key.sign(claims_for(clock, "issuer-x")))

    assert identity["subject"] == "user|42"


async def test_custom_jwt_checks_aud_only_with_an_application_id(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    jwks = data_uri(jwks_of(ec_key))
    open_verifier = make_verifier(custom("iss", jwks))
    strict_verifier = make_verifier(custom("iss", jwks, applicationID="mine"))
    token = ec_key.sign(claims_for(clock, "iss", aud="someone-else"))

    assert (await open_verifier.verify(token))["subject"] == "user|42"
    error = await refused(
        strict_verifier,
        token,
        r"No auth provider found matching the token's issuer 'iss' and audience 'someone-else'",
    )
    assert error.reason == "NoAuthProvider"


async def test_custom_jwt_requires_kid(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))

    error = await refused(
        verifier,
        ec_key.sign(claims_for(clock, "iss"), kid=None),
        r"^Token is missing the `kid` header$",
    )
    assert error.reason == "InvalidAuthHeader"


async def test_custom_jwt_alg_must_match_the_provider(
    rsa_key: SigningKey, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key, rsa_key))))

    await refused(
        verifier,
        rsa_key.sign(claims_for(clock, "iss")),
        r"Token `alg` header 'RS256' doesn't match the provider's algorithm 'ES256'",
    )


async def test_custom_jwt_typ_must_be_jwt_if_present(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))

    await refused(
        verifier,
        ec_key.sign(claims_for(clock, "iss"), typ="at+jwt"),
        r"Token `typ` header must be \"JWT\"",
    )
    lower = ec_key.sign(claims_for(clock, "iss"), typ="jwt")
    assert (await verifier.verify(lower))["subject"] == "user|42"


async def test_a_key_of_the_wrong_type_is_never_used(
    rsa_key: SigningKey, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    # The JWKS names an EC key "rsa-1": an RS256 token with that kid must not be checked with it.
    impostor = dict(ec_key.jwk, kid=rsa_key.kid, alg=None)
    del impostor["alg"]
    verifier = make_verifier(custom("iss", data_uri({"keys": [impostor]}), "RS256"))

    error = await refused(
        verifier,
        rsa_key.sign(claims_for(clock, "iss")),
        r"The key with kid 'rsa-1' in the JWKS at the inline data: JWKS is a 'EC' key, which "
        r"cannot verify RS256 signatures",
    )
    assert error.reason == "UnknownKey"


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ("sub", r"Token is missing the `sub` claim"),
        ("exp", r"Token is missing the `exp` claim"),
        ("iss", r"Token is missing the `iss` claim"),
    ],
)
async def test_required_claims(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier, claim: str, message: str
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))
    claims = claims_for(clock, "iss")
    del claims[claim]

    error = await refused(verifier, ec_key.sign(claims), message)
    assert error.reason == "InvalidAuthHeader"


# -- refusals common to both kinds ---------------------------------------------------------------


async def test_wrong_signature_same_kid(
    idp: IdentityProvider,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
    clock: FakeClock,
    make_verifier: MakeVerifier,
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))
    forged = rsa_key_2.sign(claims_for(clock, domain), kid=rsa_key.kid)

    error = await refused(verifier, forged, r"^Token signature is invalid$")
    assert error.reason == "InvalidSignature"


async def test_tampered_payload_fails_the_signature(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))
    header, _, signature = ec_key.sign(claims_for(clock, "iss")).split(".")
    other_payload = ec_key.sign(claims_for(clock, "iss", sub="admin")).split(".")[1]

    await refused(
        verifier, f"{header}.{other_payload}.{signature}", r"^Token signature is invalid$"
    )


async def test_wrong_issuer(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))

    error = await refused(
        verifier,
        rsa_key.sign(claims_for(clock, "https://evil.example.com")),
        r"^No auth provider found matching the token's issuer 'https://evil\.example\.com' and "
        r"audience 'reactor-app'\. Configured providers: OIDC provider",
    )
    assert error.reason == "NoAuthProvider"
    assert idp.hits("/oidc/jwks") == 0  # refused before any key was fetched


async def test_wrong_audience(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))

    await refused(
        verifier,
        rsa_key.sign(claims_for(clock, domain, aud="another-app")),
        r"No auth provider found matching the token's issuer '.*/oidc' and audience 'another-app'",
    )
    await refused(verifier, rsa_key.sign(claims_for(clock, domain, aud=None)), r"and audience None")


async def test_no_providers_configured(
    rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier([])

    await refused(
        verifier,
        rsa_key.sign(claims_for(clock, "https://x.example.com")),
        r"No auth provider found matching the given token \(no providers configured\)",
    )


async def test_expired_token(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))
    clock.now = 1_700_000_000.0
    token = ec_key.sign(claims_for(clock, "iss", exp=1_700_000_000 - 60))

    error = await refused(
        verifier,
        token,
        r"^Token expired at 2023-11-14T22:12:20Z \(the current time is 2023-11-14T22:13:20Z\)$",
    )
    assert error.reason == "TokenExpired"


async def test_expiry_allows_a_little_clock_skew(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))
    token = ec_key.sign(claims_for(clock, "iss", exp=int(clock.now) - 3))

    assert (await verifier.verify(token))["subject"] == "user|42"
    clock.advance(3)
    await refused(verifier, token, r"^Token expired at")


async def test_not_yet_valid_token(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))
    token = ec_key.sign(claims_for(clock, "iss", nbf=int(clock.now) + 60))

    error = await refused(verifier, token, r"^Token is not valid before")
    assert error.reason == "TokenNotYetValid"
    clock.advance(56)
    assert (await verifier.verify(token))["subject"] == "user|42"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", r"^The auth token is empty$"),
        ("   ", r"^The auth token is empty$"),
        ("not-a-jwt", r"^Could not parse the auth token as a JWT"),
        ("a.b.c", r"^Could not parse the auth token as a JWT"),
        ("eyJhbGciOiJFUzI1NiJ9.WzFd.c2ln", r"its payload is not a JSON object"),
    ],
)
async def test_malformed_tokens(
    ec_key: SigningKey, make_verifier: MakeVerifier, token: str, message: str
) -> None:
    verifier = make_verifier(custom("iss", data_uri(jwks_of(ec_key))))

    error = await refused(verifier, token, message)
    assert error.reason == "InvalidAuthHeader"


async def test_raw_provider_dicts_are_parsed(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    raw = custom("iss", data_uri(jwks_of(ec_key)))
    verifier = make_verifier(raw)

    assert verifier.providers == tuple(parse_providers(raw))
    assert isinstance(verifier.providers[0], CustomJwtProvider)
    with pytest.raises(AuthConfigError):
        make_verifier([{"domain": "nope"}])


# -- JWKS fetching, caching, rotation ------------------------------------------------------------


async def test_unknown_kid_triggers_one_refetch_after_rotation(
    idp: IdentityProvider,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
    clock: FakeClock,
    make_verifier: MakeVerifier,
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))
    assert (await verifier.verify(rsa_key.sign(claims_for(clock, domain))))["subject"] == "user|42"
    assert idp.hits("/oidc/jwks") == 1

    idp.serve("/oidc/jwks", jwks_of(rsa_key, rsa_key_2))  # the provider rotates
    clock.advance(2)
    identity = await verifier.verify(rsa_key_2.sign(claims_for(clock, domain)))

    assert identity["subject"] == "user|42"
    assert idp.hits("/oidc/jwks") == 2
    assert idp.hits("/oidc/.well-known/openid-configuration") == 1
    await verifier.verify(rsa_key.sign(claims_for(clock, domain)))  # old key: still cached
    assert idp.hits("/oidc/jwks") == 2


async def test_unknown_kid_refetches_at_most_once_per_interval(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", jwks_of(ec_key))
    verifier = make_verifier(custom("iss", idp.url("/custom/jwks")))
    await verifier.verify(ec_key.sign(claims_for(clock, "iss")))

    for _ in range(3):
        error = await refused(
            verifier,
            ec_key.sign(claims_for(clock, "iss"), kid="made-up"),
            r"Token `kid` header 'made-up' names no key in the JWKS at http://127\.0\.0\.1:\d+/custom/jwks",
        )
        assert error.reason == "UnknownKey"
    assert idp.hits("/custom/jwks") == 1

    clock.advance(1.5)
    await refused(verifier, ec_key.sign(claims_for(clock, "iss"), kid="made-up"), r"names no key")
    assert idp.hits("/custom/jwks") == 2


async def test_jwks_is_cached_for_the_ttl(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", jwks_of(ec_key))
    verifier = make_verifier(custom("iss", idp.url("/custom/jwks")), jwks_ttl_s=60)

    for _ in range(3):
        await verifier.verify(ec_key.sign(claims_for(clock, "iss")))
    assert idp.hits("/custom/jwks") == 1
    clock.advance(61)
    await verifier.verify(ec_key.sign(claims_for(clock, "iss")))
    assert idp.hits("/custom/jwks") == 2


async def test_concurrent_verifies_share_one_fetch(
    idp: IdentityProvider, rsa_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    domain = idp.serve_oidc("oidc", rsa_key)
    verifier = make_verifier(oidc(domain))
    tokens = [rsa_key.sign(claims_for(clock, domain, sub=f"user-{i}")) for i in range(8)]

    identities = await asyncio.gather(*(verifier.verify(token) for token in tokens))

    assert [identity["subject"] for identity in identities] == [f"user-{i}" for i in range(8)]
    assert idp.hits("/oidc/.well-known/openid-configuration") == 1
    assert idp.hits("/oidc/jwks") == 1


async def test_concurrent_verifies_share_one_failed_fetch(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", {"error": "boom"}, status=503)
    verifier = make_verifier(custom("iss", idp.url("/custom/jwks")))
    token = ec_key.sign(claims_for(clock, "iss"))

    results = await asyncio.gather(
        *(verifier.verify(token) for _ in range(5)), return_exceptions=True
    )

    assert all(isinstance(result, AuthenticationError) for result in results)
    assert idp.hits("/custom/jwks") == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_jwks_endpoint_down_is_a_clear_error(
    ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/jwks.json"
    verifier = make_verifier(custom("iss", url))

    error = await refused(
        verifier,
        ec_key.sign(claims_for(clock, "iss")),
        rf"^Could not fetch JWKS from {url}: ConnectError",
    )
    assert error.reason == "AuthProviderUnavailable"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"error": "x"}, r"HTTP 500 Internal Server Error$"),
        (200, b"<html>", r"the response is not JSON$"),
        (200, {"keys": "nope"}, r"the response is not a JWKS"),
        (200, {"keys": []}, r"the response has no keys$"),
    ],
)
async def test_bad_jwks_responses(
    idp: IdentityProvider,
    ec_key: SigningKey,
    clock: FakeClock,
    make_verifier: MakeVerifier,
    status: int,
    body: dict[str, Any] | bytes,
    message: str,
) -> None:
    idp.serve("/custom/jwks", body, status=status)
    verifier = make_verifier(custom("iss", idp.url("/custom/jwks")))

    await refused(
        verifier,
        ec_key.sign(claims_for(clock, "iss")),
        r"^Could not fetch JWKS from .*/custom/jwks: " + message,
    )


async def test_stale_keys_are_served_while_the_provider_is_down(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock, make_verifier: MakeVerifier
) -> None:
    idp.serve("/custom/jwks", jwks_of(ec_key))
    verifier = make_verifier(custom("iss", idp.url("/custom/jwks")), jwks_ttl_s=60)
    await verifier.verify(ec_key.sign(claims_for(clock, "iss")))

    idp.serve("/custom/jwks", {"error": "down"}, status=503)
    clock.advance(120)
    assert (await verifier.verify(ec_key.sign(claims_for(clock, "iss"))))["subject"] == "user|42"
    assert idp.hits("/custom/jwks") == 2

    clock.advance(verifier.jwks.max_stale_s)
    await refused(verifier, ec_key.sign(claims_for(clock, "iss")), r"HTTP 503")


async def test_a_given_http_client_is_used_and_left_open(
    idp: IdentityProvider, ec_key: SigningKey, clock: FakeClock
) -> None:
    import httpx

    from reactor.auth import AuthVerifier

    idp.serve("/custom/jwks", jwks_of(ec_key))
    async with httpx.AsyncClient() as client:
        async with AuthVerifier(
            custom("iss", idp.url("/custom/jwks")), http=client, clock=clock
        ) as verifier:
            await verifier.verify(ec_key.sign(claims_for(clock, "iss")))
        assert not client.is_closed
    assert idp.hits("/custom/jwks") == 1
