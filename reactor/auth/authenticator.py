"""Who is calling: turns credentials (a websocket ``Authenticate``, an ``Authorization`` header)
into a ``Principal`` — an identity for ``ctx.auth`` and whether internal functions are allowed.

Owns loading the app's ``auth_config.py`` providers, the deployment's admin key (made at first
start, shown once, stored only as a salted hash) and the rule that internal functions need the
admin key. Token cryptography lives in ``reactor.auth``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from reactor.auth import (
    AdminKeyStore,
    AuthenticationError,
    AuthVerifier,
    CredentialKind,
    Credentials,
    parse_providers,
)
from reactor.core.persistence import Persistence

__all__ = ["ADMIN_KEY_RECORD", "Authenticator", "Principal", "load_providers"]

log = logging.getLogger("reactor.auth")

ADMIN_KEY_RECORD = "admin_key"


@dataclass(frozen=True, slots=True)
class Principal:
    identity: dict[str, Any] | None = None
    is_admin: bool = False
    expires_at: float | None = None  # a user token's expiry (seconds since the epoch)


ANONYMOUS = Principal()


def load_providers(app: Any) -> list[Any]:
    module = app.modules.get("auth_config")
    if module is None:
        return []
    raw = getattr(module, "providers", None)
    if raw is None:
        from schema.errors import SchemaError

        raise SchemaError("auth_config.py must define `providers = [...]`")
    return parse_providers(raw)


class Authenticator:
    def __init__(self, providers: list[Any], persistence: Persistence) -> None:
        self.verifier = AuthVerifier(providers)
        self.persistence = persistence
        self.admin_keys = AdminKeyStore()

    async def ensure_admin_key(self) -> str | None:
        """Create the admin key on first start; returns it then (and only then)."""
        if await self.persistence.get_global(ADMIN_KEY_RECORD) is not None:
            return None
        key, record = self.admin_keys.generate()
        await self.persistence.set_global(ADMIN_KEY_RECORD, record)
        return key

    async def rotate_admin_key(self) -> str:
        key, record = self.admin_keys.generate()
        await self.persistence.set_global(ADMIN_KEY_RECORD, record)
        return key

    async def is_admin_key(self, key: str) -> bool:
        record = await self.persistence.get_global(ADMIN_KEY_RECORD)
        return record is not None and self.admin_keys.verify(key, record)

    async def authenticate(self, credentials: Credentials) -> Principal:
        """Raises ``AuthenticationError`` with a message for the client."""
        if credentials.kind is CredentialKind.NONE:
            return ANONYMOUS
        if credentials.kind is CredentialKind.ADMIN:
            if credentials.token is None or not await self.is_admin_key(credentials.token):
                raise AuthenticationError("The admin key is invalid", reason="BadAdminKey")
            return Principal(identity=credentials.acting_as, is_admin=True)
        assert credentials.token is not None
        verified = await self.verifier.verify_token(credentials.token)
        return Principal(identity=dict(verified.identity), expires_at=verified.expires_at)

    async def aclose(self) -> None:
        await self.verifier.aclose()
