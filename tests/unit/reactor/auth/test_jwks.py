"""Key-set helpers: data: URIs, JWKS documents, and which JWK may verify which algorithm."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm

from reactor.auth import decode_data_uri, parse_jwks
from reactor.auth.jwks import load_key


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "data:application/json;base64," + base64.b64encode(b'{"keys":[]}').decode(),
            b'{"keys":[]}',
        ),
        ("data:text/plain;charset=utf-8;base64," + base64.b64encode(b"hi?>").decode(), b"hi?>"),
        ("data:;base64," + base64.urlsafe_b64encode(b"hi?>").decode().rstrip("="), b"hi?>"),
        ("data:application/json," + "%7B%22a%22%3A1%7D", b'{"a":1}'),
        ("data:,plain", b"plain"),
    ],
)
def test_decode_data_uri(uri: str, expected: bytes) -> None:
    assert decode_data_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://x/jwks", r"not a data: URI"),
        ("data:application/json;base64", r"has no ','"),
        ("data:application/json;base64,@@@@", r"not valid base64"),
    ],
)
def test_decode_data_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_data_uri(uri)


def test_parse_jwks_keeps_key_objects_only() -> None:
    keys = parse_jwks(json.dumps({"keys": [{"kty": "RSA"}, "junk", 3]}), source="x")
    assert keys == ({"kty": "RSA"},)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"nope", r"^src is not JSON$"),
        ({"keys": {}}, r"^src is not a JWKS"),
        ([], r"^src is not a JWKS"),
        ({"keys": ["junk"]}, r"^src has no keys$"),
    ],
)
def test_parse_jwks_errors(document: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_jwks(document, source="src")  # type: ignore[arg-type]  # [] on purpose


def _rsa_jwk(**extra: Any) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), as_dict=True
    )
    return {**jwk, **extra}


def test_load_key_gives_public_key_objects() -> None:
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    ed_jwk = jwt.algorithms.OKPAlgorithm.to_jwk(
        ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True
    )

    assert isinstance(load_key(_rsa_jwk(), "RS256"), rsa.RSAPublicKey)
    assert isinstance(load_key(ec_jwk, "ES256"), ec.EllipticCurvePublicKey)
    assert isinstance(load_key(ed_jwk, "EdDSA"), ed25519.Ed25519PublicKey)


def test_load_key_refuses_mismatches() -> None:
    p384 = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True
    )
    private_rsa = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True
    )

    with pytest.raises(ValueError, match=r"is a 'RSA' key, which cannot verify ES256"):
        load_key(_rsa_jwk(), "ES256")
    with pytest.raises(ValueError, match=r"is on curve 'P-384', which cannot verify ES256"):
        load_key(p384, "ES256")
    with pytest.raises(ValueError, match=r"is declared for 'RS512', not RS256"):
        load_key(_rsa_jwk(alg="RS512"), "RS256")
    with pytest.raises(ValueError, match=r"is declared for use 'enc'"):
        load_key(_rsa_jwk(use="enc"), "RS256")
    with pytest.raises(ValueError, match=r"contains private key material"):
        load_key(private_rsa, "RS256")
    with pytest.raises(ValueError, match=r"algorithm 'HS256' is not supported"):
        load_key({"kty": "oct", "k": "c2VjcmV0"}, "HS256")
    with pytest.raises(ValueError, match=r"could not be loaded"):
        load_key({"kty": "RSA", "n": "AQAB"}, "RS256")
