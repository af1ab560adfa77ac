"""Who is calling: turns credentials (a websocket ``Authenticate``, an ``Authorization`` header)
into a ``Principal`` — an identity for ``ctx.auth`` and whether internal functions are allowed.

Owns loading the app's ``auth_config.py`` providers, the deployment's admin key (made at first
start, shown once, stored only as a salted hash), the rule that internal functions need the
admin key, and the one path every transport checks an admin key through (:meth:`is_admin_key`:
a remembered right key at once; otherwise a per-client failure budget, then scrypt in a worker
thread, a bounded number at a time, so a flood of wrong keys never blocks the event loop).
Token cryptography lives in ``reactor.auth``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
from reactor.auth.failure_budget import FailureBudget
from reactor.core.persistence import Persistence
from reactor.errors import TooManyFailedAdminKeyAttempts

__all__ = ["ADMIN_KEY_RECORD", "Authenticator", "Principal", "load_providers"]

log = logging.getLogger("reactor.auth")

ADMIN_KEY_RECORD = "admin_key"


@dataclass(frozen=True, slots=True)
class Principal:
    identity: dict[str, Any] | None = None
    is_admin: bool = False
    # The last instant a user token is accepted (Unix seconds): its ``exp`` plus the verifier's
    # leeway, ``VerifiedToken.valid_until``; the websocket ends the identity then.
    valid_until: float | None = None


ANONYMOUS = Principal()


def load_providers(app: Any) -> list[Any]:
    if app.declared is not None:
        config = app.declared.auth_config
        if config is None:
            return []
        raw = config["providers"]
    else:
        module = app.modules.get("auth_config")
        if module is None:
            return []
        raw = getattr(module, "providers", None)
    if raw is None:
        from schema.errors import SchemaError

        raise SchemaError("auth_config.py must define `providers = [...]`")
    return parse_providers(raw)


class Authenticator:
    """Credentials in, ``Principal`` out, for every transport.

    Admin keys: at most ``admin_key_checks`` scrypt checks run at once (in worker threads) and
    at most ``admin_key_queue`` wait for one; each client (``peer``, an IP address) may fail
    ``admin_key_failures.burst`` checks at once, then one per ``refill_s``. A client over its
    budget, or a full queue, gets ``TooManyFailedAdminKeyAttempts`` before any hashing; a
    remembered right key is accepted before either is looked at.
    """

    def __init__(
        self,
        providers: list[Any],
        persistence: Persistence,
        *,
        admin_key_failures: FailureBudget | None = None,
        admin_key_checks: int = 1,
        admin_key_queue: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = AuthVerifier(providers)
        self.persistence = persistence
        self.admin_keys = AdminKeyStore()
        self.admin_key_failures = admin_key_failures or FailureBudget()
        self._admin_key_checks = admin_key_checks
        self._admin_key_queue = admin_key_queue
        self._checking: asyncio.Semaphore | None = None
        self._waiting = 0
        self._clock = clock

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

    async def is_admin_key(self, key: str, *, peer: str | None = None) -> bool:
        """Whether ``key`` is the deployment's admin key; the only admin key check.

        Args:
            key: the key the client sent.
            peer: who sent it (the client's IP address), for the failure budget; None for an
                in-process caller (they share one budget).

        Raises:
            TooManyFailedAdminKeyAttempts: the key was not checked: ``peer`` has no failures
                left in its budget, or too many checks are queued.
        """
        record = await self.persistence.get_global(ADMIN_KEY_RECORD)
        if record is None or not isinstance(key, str) or not key:
            return False
        store = self.admin_keys
        if store.recall(key, record):
            return True
        client = peer or "in-process"
        retry_after_s = self.admin_key_failures.reserve(client, self._clock())
        if retry_after_s:
            raise TooManyFailedAdminKeyAttempts(
                f"Too many failed admin key attempts from {client}: try again in "
                f"{retry_after_s:.1f} s",
                retry_after_s=retry_after_s,
            )
        if self._waiting >= self._admin_key_queue:
            # Not this client's failure: give its token back.
            self.admin_key_failures.release(client, self._clock())
            raise TooManyFailedAdminKeyAttempts(
                f"Too many admin key checks are in progress ({self._waiting} waiting): try "
                "again in 1 s",
                retry_after_s=1.0,
            )
        if self._checking is None:
            self._checking = asyncio.Semaphore(self._admin_key_checks)
        self._waiting += 1
        try:
            async with self._checking:
                is_right = await asyncio.to_thread(store.verify, key, record)
        finally:
            self._waiting -= 1
        if is_right:
            self.admin_key_failures.release(client, self._clock())
        return is_right

    async def authenticate(self, credentials: Credentials, *, peer: str | None = None) -> Principal:
        """The principal ``credentials`` stand for; ``peer`` is the client's address (for the
        admin key failure budget).

        Raises:
            AuthenticationError: with a message for the client; its subclass
                ``TooManyFailedAdminKeyAttempts`` when an admin key was refused unchecked.
        """
        if credentials.kind is CredentialKind.NONE:
            return ANONYMOUS
        if credentials.kind is CredentialKind.ADMIN:
            if credentials.token is None or not await self.is_admin_key(
                credentials.token, peer=peer
            ):
                raise AuthenticationError("The admin key is invalid", reason="BadAdminKey")
            return Principal(identity=credentials.acting_as, is_admin=True)
        assert credentials.token is not None
        verified = await self.verifier.verify_token(credentials.token)
        return Principal(identity=dict(verified.identity), valid_until=verified.valid_until)

    async def aclose(self) -> None:
        await self.verifier.aclose()
