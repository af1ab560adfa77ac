"""Admin keys (generate/verify against salted-hash records) and Authorization header parsing."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from reactor.auth import (
    ADMIN_KEY_PREFIX,
    AdminKeyStore,
    AuthenticationError,
    CredentialKind,
    Credentials,
    parse_authorization,
)


@pytest.fixture
def store() -> AdminKeyStore:
    return AdminKeyStore(n=2**10)  # the cheapest allowed cost keeps the tests fast


class TestAdminKeyStore:
    def test_generated_key_shape_and_record_without_plaintext(self, store: AdminKeyStore) -> None:
        key, record = store.generate()

        assert re.fullmatch(re.escape(ADMIN_KEY_PREFIX) + r"[A-Za-z0-9_-]{40}", key)
        secret = key.removeprefix(ADMIN_KEY_PREFIX)
        stored = json.dumps(record)
        assert secret not in stored and secret[:12] not in stored and secret[-12:] not in stored
        assert set(record) == {"version", "kdf", "n", "r", "p", "salt", "hash"}
        assert record["kdf"] == "scrypt" and record["n"] == 2**10

    def test_verify(self, store: AdminKeyStore) -> None:
        key, record = store.generate()
        other_key, other_record = store.generate()

        assert key != other_key and record["salt"] != other_record["salt"]
        assert store.verify(key, record)
        assert store.verify(key, record)  # the remembered path
        assert not store.verify(other_key, record)
        assert not store.verify(key, other_record)
        assert not store.verify(key[:-1] + ("A" if key[-1] != "A" else "B"), record)
        assert not store.verify("", record)
        assert not store.verify(None, record)  # type: ignore[arg-type]

    def test_verify_works_across_stores_and_default_cost(self) -> None:
        key, record = AdminKeyStore().generate()
        assert record["n"] == 2**14
        assert AdminKeyStore(n=2**10).verify(key, json.loads(json.dumps(record)))

    def test_tampered_hash_fails(self, store: AdminKeyStore) -> None:
        key, record = store.generate()
        digest = bytearray(base64.b64decode(record["hash"]))
        digest[0] ^= 1
        tampered = dict(record, hash=base64.b64encode(bytes(digest)).decode())

        assert not store.verify(key, tampered)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"version": 2}, r"not an admin key record"),
            ({"kdf": "md5"}, r"unsupported kdf 'md5'"),
            ({"n": 3000}, r"n must be a power of two"),
            ({"r": 0}, r"scrypt parameter r must be an int"),
            ({"salt": "***"}, r"malformed salt or hash"),
            ({"hash": base64.b64encode(b"short").decode()}, r"malformed salt or hash"),
        ],
    )
    def test_corrupt_records_raise(
        self, store: AdminKeyStore, change: dict[str, Any], message: str
    ) -> None:
        key, record = store.generate()
        with pytest.raises(ValueError, match=message):
            store.verify(key, {**record, **change})

    def test_costs_are_bounded(self) -> None:
        with pytest.raises(ValueError, match=r"scrypt parameter n must be an int in"):
            AdminKeyStore(n=2**30)


def acting_as_b64(attributes: dict[str, Any], *, urlsafe: bool = False) -> str:
    raw = json.dumps(attributes).encode()
    return (
        base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if urlsafe
        else base64.b64encode(raw).decode()
    )


class TestParseAuthorization:
    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_missing_header_means_no_credentials(self, header: str | None) -> None:
        assert parse_authorization(header) == Credentials(CredentialKind.NONE)

    @pytest.mark.parametrize("header", ["Bearer eyJ.a.b", "bearer eyJ.a.b", "BEARER   eyJ.a.b  "])
    def test_bearer(self, header: str) -> None:
        assert parse_authorization(header) == Credentials(CredentialKind.USER, "eyJ.a.b")

    @pytest.mark.parametrize(
        "header",
        ["Convex reactor-admin|abc", "convex reactor-admin|abc", "CONVEX  reactor-admin|abc"],
    )
    def test_admin_key(self, header: str) -> None:
        assert parse_authorization(header) == Credentials(CredentialKind.ADMIN, "reactor-admin|abc")

    def test_admin_acting_as_a_user(self) -> None:
        attributes = {"issuer": "https://i", "subject": "u1", "name": "Ada", "role": "x"}
        credentials = parse_authorization(f"Convex reactor-admin|abc:{acting_as_b64(attributes)}")

        assert credentials.kind is CredentialKind.ADMIN
        assert credentials.token == "reactor-admin|abc"
        assert credentials.acting_as == {**attributes, "tokenIdentifier": "https://i|u1"}

    def test_convex_deploy_key_type_prefix_is_not_the_acting_as_separator(self) -> None:
        assert parse_authorization("Convex prod:happy-otter-123|eyJ2") == Credentials(
            CredentialKind.ADMIN, "prod:happy-otter-123|eyJ2"
        )
        credentials = parse_authorization(
            "Convex prod:happy-otter-123|eyJ2:"
            + acting_as_b64({"tokenIdentifier": "t"}, urlsafe=True)
        )
        assert credentials.token == "prod:happy-otter-123|eyJ2"
        assert credentials.acting_as == {"tokenIdentifier": "t"}

    def test_anything_else_is_a_bearer_token(self) -> None:
        assert parse_authorization("eyJraw.token.here") == Credentials(
            CredentialKind.USER, "eyJraw.token.here"
        )
        assert parse_authorization("Basic dXNlcjpwYXNz") == Credentials(
            CredentialKind.USER, "Basic dXNlcjpwYXNz"
        )

    def test_admin_key_query_parameter_only_without_a_header(self) -> None:
        assert parse_authorization(None, admin_key_param="k") == Credentials(
            CredentialKind.ADMIN, "k"
        )
        assert parse_authorization("Bearer t", admin_key_param="k") == Credentials(
            CredentialKind.USER, "t"
        )

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("Bearer", r"Bearer credential is empty"),
            ("Bearer    ", r"Bearer credential is empty"),
            ("Convex ", r"Convex credential is empty"),
            ("Convex :" + acting_as_b64({"tokenIdentifier": "t"}), r"admin key is empty"),
            ("Convex key:!!!notbase64", r"not base64-encoded JSON"),
            ("Convex key:" + base64.b64encode(b"not json").decode(), r"not base64-encoded JSON"),
            ("Convex key:" + acting_as_b64(["a"]), r"must be a JSON object, got list"),  # type: ignore[arg-type]
            ("Convex key:" + acting_as_b64({"subject": "s"}), r"needs `tokenIdentifier`"),
        ],
    )
    def test_malformed_headers(self, header: str, message: str) -> None:
        with pytest.raises(AuthenticationError, match=message) as info:
            parse_authorization(header)
        assert info.value.reason == "InvalidAuthHeader"
        assert info.value.code == "Unauthenticated"


class TestCredentialsFromAuthenticate:
    def test_variants(self) -> None:
        assert Credentials.from_authenticate("None", None) == Credentials.none()
        assert Credentials.from_authenticate("User", "jwt") == Credentials.user("jwt")
        assert Credentials.from_authenticate("Admin", "k") == Credentials.admin("k")
        admin = Credentials.from_authenticate("Admin", "k", {"issuer": "i", "subject": "s"})
        assert admin.acting_as == {"issuer": "i", "subject": "s", "tokenIdentifier": "i|s"}

    @pytest.mark.parametrize(
        ("token_type", "value", "message"),
        [
            ("User", "", r"has an empty value"),
            ("Admin", None, r"has an empty value"),
            ("Robot", "x", r"Unknown tokenType"),
        ],
    )
    def test_errors(self, token_type: str, value: str | None, message: str) -> None:
        with pytest.raises(AuthenticationError, match=message):
            Credentials.from_authenticate(token_type, value)
