"""Authenticator: credentials to a Principal, the stored admin key, and auth_config providers.

Storage is an in-memory stand-in for the two ``globals`` calls the authenticator makes; user
tokens are signed with a real key and verified against an inline (``data:``) JWKS, so nothing
is fetched.
"""

from __future__ import annotations

import time
import types
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from reactor.auth import (
    ADMIN_KEY_PREFIX,
    AdminKeyStore,
    AuthConfigError,
    AuthenticationError,
    CredentialKind,
    Credentials,
    CustomJwtProvider,
)
from reactor.auth.authenticator import (
    ADMIN_KEY_RECORD,
    Authenticator,
    Principal,
    load_providers,
)
from reactor.core.persistence import Persistence
from schema.errors import SchemaError

from .conftest import SigningKey, data_uri, jwks_of

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.example.com"


class Globals:
    """The deployment's stored globals, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def get_global(self, key: str) -> Any:
        return self.values.get(key)

    async def set_global(self, key: str, value: Any) -> None:
        self.values[key] = value


def _providers(key: SigningKey) -> list[dict[str, Any]]:
    jwks = data_uri(jwks_of(key))
    return [{"type": "customJwt", "issuer": ISSUER, "jwks": jwks, "algorithm": key.algorithm}]


def _app(**modules: object) -> Any:
    return types.SimpleNamespace(modules=modules, declared=None)


@pytest.fixture
def storage() -> Globals:
    return Globals()


@pytest.fixture
async def authenticator(storage: Globals, ec_key: SigningKey) -> AsyncIterator[Authenticator]:
    made = Authenticator(
        load_providers(_app(auth_config=_module(_providers(ec_key)))), _as(storage)
    )
    made.admin_keys = AdminKeyStore(n=2**10)  # the cheapest scrypt cost: these tests hash a lot
    yield made
    await made.aclose()


def _module(providers: object) -> types.ModuleType:
    module = types.ModuleType("auth_config")
    module.providers = providers  # type: ignore[attr-defined]
    return module


def _as(storage: Globals) -> Persistence:
    return cast(Persistence, storage)


def _token(key: SigningKey, **claims: Any) -> tuple[str, int]:
    now = int(time.time())
    exp = now + 3600
    body = {"iss": ISSUER, "sub": "user|42", "iat": now, "exp": exp, **claims}
    return key.sign(body), exp


class TestLoadProviders:
    def test_an_app_without_auth_config_has_no_providers(self) -> None:
        assert load_providers(_app(tasks=types.ModuleType("tasks"))) == []

    def test_providers_are_parsed(self, ec_key: SigningKey) -> None:
        providers = load_providers(_app(auth_config=_module(_providers(ec_key))))

        assert len(providers) == 1
        assert isinstance(providers[0], CustomJwtProvider)
        assert providers[0].issuer == ISSUER

    def test_an_auth_config_without_providers_is_refused(self) -> None:
        with pytest.raises(SchemaError, match=r"auth_config\.py must define `providers = \[...\]`"):
            load_providers(_app(auth_config=types.ModuleType("auth_config")))

    def test_invalid_providers_are_refused(self) -> None:
        with pytest.raises(AuthConfigError, match="must be a list"):
            load_providers(_app(auth_config=_module("not a list")))


class TestAdminKey:
    async def test_the_first_start_makes_a_key_and_stores_only_its_record(
        self, authenticator: Authenticator, storage: Globals
    ) -> None:
        key = await authenticator.ensure_admin_key()

        assert key is not None and key.startswith(ADMIN_KEY_PREFIX)
        record = storage.values[ADMIN_KEY_RECORD]
        assert record["kdf"] == "scrypt"
        assert key not in repr(record)
        assert key[len(ADMIN_KEY_PREFIX) :] not in repr(record)
        assert await authenticator.is_admin_key(key)

    async def test_later_starts_keep_the_key_and_show_nothing(
        self, authenticator: Authenticator, storage: Globals
    ) -> None:
        key = await authenticator.ensure_admin_key()
        record = storage.values[ADMIN_KEY_RECORD]

        assert await authenticator.ensure_admin_key() is None

        assert storage.values[ADMIN_KEY_RECORD] == record
        assert key is not None and await authenticator.is_admin_key(key)

    async def test_no_key_is_an_admin_key_before_one_is_made(
        self, authenticator: Authenticator
    ) -> None:
        assert not await authenticator.is_admin_key(ADMIN_KEY_PREFIX + "x" * 40)

    async def test_a_wrong_key_is_not_the_admin_key(self, authenticator: Authenticator) -> None:
        key = await authenticator.ensure_admin_key()
        assert key is not None

        assert not await authenticator.is_admin_key(key + "x")
        assert not await authenticator.is_admin_key("")

    async def test_rotation_replaces_the_key(self, authenticator: Authenticator) -> None:
        old = await authenticator.ensure_admin_key()
        assert old is not None

        new = await authenticator.rotate_admin_key()

        assert new != old and new.startswith(ADMIN_KEY_PREFIX)
        assert await authenticator.is_admin_key(new)
        assert not await authenticator.is_admin_key(old)

    async def test_a_key_stored_by_another_process_is_recognised(
        self, authenticator: Authenticator, storage: Globals
    ) -> None:
        key = await authenticator.ensure_admin_key()
        assert key is not None
        other = Authenticator([], _as(storage))
        other.admin_keys = AdminKeyStore(n=2**10)
        try:
            assert await other.ensure_admin_key() is None
            assert await other.is_admin_key(key)
        finally:
            await other.aclose()


class TestAuthenticate:
    async def test_no_credentials_is_anonymous(self, authenticator: Authenticator) -> None:
        principal = await authenticator.authenticate(Credentials.none())

        assert principal == Principal()
        assert (principal.identity, principal.is_admin, principal.valid_until) == (
            None,
            False,
            None,
        )

    async def test_the_admin_key_makes_an_admin(self, authenticator: Authenticator) -> None:
        key = await authenticator.ensure_admin_key()
        assert key is not None

        principal = await authenticator.authenticate(Credentials.admin(key))

        assert principal == Principal(identity=None, is_admin=True)

    async def test_an_admin_may_act_as_a_user(self, authenticator: Authenticator) -> None:
        key = await authenticator.ensure_admin_key()
        assert key is not None
        acting_as = {"issuer": ISSUER, "subject": "user|7", "name": "Ada"}

        principal = await authenticator.authenticate(Credentials.admin(key, acting_as))

        assert principal.is_admin
        assert principal.identity == {**acting_as, "tokenIdentifier": f"{ISSUER}|user|7"}

    async def test_a_wrong_admin_key_is_refused(self, authenticator: Authenticator) -> None:
        await authenticator.ensure_admin_key()

        with pytest.raises(AuthenticationError, match="^The admin key is invalid$") as caught:
            await authenticator.authenticate(Credentials.admin(ADMIN_KEY_PREFIX + "wrong"))

        assert caught.value.reason == "BadAdminKey"

    async def test_admin_credentials_without_a_key_are_refused(
        self, authenticator: Authenticator
    ) -> None:
        await authenticator.ensure_admin_key()

        with pytest.raises(AuthenticationError, match="admin key is invalid") as caught:
            await authenticator.authenticate(Credentials(CredentialKind.ADMIN))

        assert caught.value.reason == "BadAdminKey"

    async def test_a_user_token_gives_its_identity_and_expiry(
        self, authenticator: Authenticator, ec_key: SigningKey
    ) -> None:
        token, exp = _token(ec_key, email="ada@example.com")

        principal = await authenticator.authenticate(Credentials.user(token))

        assert not principal.is_admin
        assert principal.valid_until == exp + authenticator.verifier.leeway_s
        assert principal.identity is not None
        assert principal.identity["tokenIdentifier"] == f"{ISSUER}|user|42"
        assert principal.identity["email"] == "ada@example.com"

    async def test_a_token_signed_by_another_key_is_refused(
        self, authenticator: Authenticator, ec_key_2: SigningKey
    ) -> None:
        token, _ = _token(SigningKey(ec_key_2.private, "ES256", "ec-1", ec_key_2.jwk))

        with pytest.raises(AuthenticationError) as caught:
            await authenticator.authenticate(Credentials.user(token))

        assert caught.value.reason == "InvalidSignature"

    async def test_a_token_of_an_unknown_issuer_is_refused(
        self, authenticator: Authenticator, ec_key: SigningKey
    ) -> None:
        token, _ = _token(ec_key, iss="https://elsewhere.example.com")

        with pytest.raises(AuthenticationError, match="No auth provider found") as caught:
            await authenticator.authenticate(Credentials.user(token))

        assert caught.value.reason == "NoAuthProvider"

    async def test_an_admin_key_is_not_a_user_token(self, authenticator: Authenticator) -> None:
        key = await authenticator.ensure_admin_key()
        assert key is not None

        with pytest.raises(AuthenticationError) as caught:
            await authenticator.authenticate(Credentials.user(key))

        assert caught.value.reason == "InvalidAuthHeader"
