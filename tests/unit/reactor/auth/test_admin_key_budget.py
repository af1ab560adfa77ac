"""The one admin key check (``Authenticator.is_admin_key``) under hostile use: a per-client
failure budget checked before any hashing, a bounded queue of scrypt checks, and the right key
accepted at once from memory, even from a client that just used up its budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest

from reactor.auth import ADMIN_KEY_PREFIX, AdminKeyStore, AuthenticationError, Credentials
from reactor.auth.authenticator import Authenticator
from reactor.auth.failure_budget import FailureBudget
from reactor.core.persistence import Persistence
from reactor.errors import TooManyFailedAdminKeyAttempts

from .test_authenticator import Globals

pytestmark = pytest.mark.anyio

WRONG = ADMIN_KEY_PREFIX + "w" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _authenticator(storage: Globals, clock: Clock, **options: object) -> Authenticator:
    made = Authenticator(
        [],
        cast(Persistence, storage),
        admin_key_failures=FailureBudget(burst=2, refill_s=10.0),
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    made.admin_keys = AdminKeyStore(n=2**10)
    return made


@pytest.fixture
async def storage() -> AsyncIterator[Globals]:
    yield Globals()


async def test_a_client_past_its_budget_is_refused_before_hashing(storage: Globals) -> None:
    clock = Clock()
    auth = _authenticator(storage, clock)
    key = await auth.ensure_admin_key()
    assert key is not None

    assert not await auth.is_admin_key(WRONG, peer="10.0.0.1")
    assert not await auth.is_admin_key(WRONG, peer="10.0.0.1")
    with pytest.raises(TooManyFailedAdminKeyAttempts, match="from 10.0.0.1: try again in 10.0 s"):
        await auth.is_admin_key(WRONG, peer="10.0.0.1")

    # An AuthenticationError for the transports, with its own code.
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate(Credentials.admin(WRONG), peer="10.0.0.1")
    assert caught.value.code == "TooManyFailedAdminKeyAttempts"
    assert isinstance(caught.value, TooManyFailedAdminKeyAttempts)
    assert caught.value.retry_after_s == pytest.approx(10.0)

    # The right key works at once from the same client; other clients are unaffected.
    assert await auth.is_admin_key(key, peer="10.0.0.1")
    assert not await auth.is_admin_key(WRONG, peer="10.0.0.2")

    clock.now += 10.0  # one failure refilled
    assert not await auth.is_admin_key(WRONG, peer="10.0.0.1")
    with pytest.raises(TooManyFailedAdminKeyAttempts):
        await auth.is_admin_key(WRONG, peer="10.0.0.1")


async def test_a_key_not_yet_remembered_is_hashed_and_a_success_costs_nothing(
    storage: Globals,
) -> None:
    key = await _authenticator(storage, Clock()).ensure_admin_key()
    assert key is not None
    restarted = _authenticator(storage, Clock())  # a new process: nothing remembered
    record = storage.values["admin_key"]
    assert not restarted.admin_keys.recall(key, record)

    for _ in range(5):  # more than the burst: right keys spend no budget
        assert await restarted.is_admin_key(key, peer="10.0.0.1")
    assert restarted.admin_keys.recall(key, record)
    assert restarted.admin_key_failures.remaining("10.0.0.1", 100.0) == 2


async def test_a_full_queue_refuses_and_spends_no_budget(storage: Globals) -> None:
    clock = Clock()
    auth = _authenticator(storage, clock, admin_key_queue=0)
    key = await auth.ensure_admin_key()
    assert key is not None

    with pytest.raises(TooManyFailedAdminKeyAttempts, match="checks are in progress"):
        await auth.is_admin_key(WRONG, peer="10.0.0.1")
    assert auth.admin_key_failures.remaining("10.0.0.1", clock.now) == 2
    assert await auth.is_admin_key(key, peer="10.0.0.1")  # remembered: no queue
