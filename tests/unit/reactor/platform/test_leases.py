"""Leadership over an in-memory lease: gaining, keeping, losing and giving up leadership.

``Leadership`` runs on a ``ManualClock``: with a TTL of 9 s it renews at +3 s, +6 s, ... and a
renewal still pending 6 s after the start of the last successful one counts as lost, exactly
when the test advances the clock there; nothing sleeps. Leadership over the SQLite engine's
lease is covered by ``tests/integration/test_leases.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from reactor.core.persistence import Persistence
from reactor.core.runtime import SystemRuntime
from reactor.platform.leases import DEFAULT_TTL_S, Leadership
from reactor.testing import ManualClock

pytestmark = pytest.mark.anyio

TTL = 9.0
RENEW = TTL / 3  # the renewal period
VALID = TTL * 2 / 3  # how long after a successful renewal began the leader counts itself leader


class FakeLeases:
    """The two lease calls of a storage engine, in memory; a test decides who holds it."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.acquired: list[tuple[str, str, float]] = []
        self.released: list[tuple[str, str]] = []
        self.acquire_error: Exception | None = None
        self.release_error: Exception | None = None
        self.gate: asyncio.Event | None = None  # while set, acquire waits for it

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        self.acquired.append((name, holder, ttl_s))
        if self.gate is not None:
            await self.gate.wait()
        if self.acquire_error is not None:
            raise self.acquire_error
        if self.holder in (None, holder):
            self.holder = holder
            return True
        return False

    async def release_lease(self, name: str, holder: str) -> None:
        self.released.append((name, holder))
        if self.release_error is not None:
            raise self.release_error
        if self.holder == holder:
            self.holder = None


class Events:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.gain_error: Exception | None = None
        self.lose_error: Exception | None = None

    async def on_gain(self) -> None:
        self.log.append("gain")
        if self.gain_error is not None:
            raise self.gain_error

    async def on_lose(self) -> None:
        self.log.append("lose")
        if self.lose_error is not None:
            raise self.lose_error


@pytest.fixture
def leases() -> FakeLeases:
    return FakeLeases()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def leadership(leases: FakeLeases, events: Events, clock: ManualClock) -> Leadership:
    return Leadership(
        cast(Persistence, leases),
        "jobs",
        "me",
        on_gain=events.on_gain,
        on_lose=events.on_lose,
        ttl_s=TTL,
        runtime=clock,
    )


def test_renewal_is_every_third_of_the_ttl(leadership: Leadership) -> None:
    assert leadership.ttl_s == TTL
    assert leadership.renew_every_s == 3.0


def test_by_default_it_has_the_default_ttl_on_the_real_clock(
    leases: FakeLeases, events: Events
) -> None:
    leadership = Leadership(
        cast(Persistence, leases), "n", "h", on_gain=events.on_gain, on_lose=events.on_lose
    )

    assert leadership.ttl_s == DEFAULT_TTL_S
    assert isinstance(leadership.runtime, SystemRuntime)


class TestStart:
    async def test_a_free_lease_is_taken_before_start_returns(
        self, leadership: Leadership, leases: FakeLeases, events: Events
    ) -> None:
        await leadership.start()
        try:
            assert leadership.leading
            assert events.log == ["gain"]
            assert leases.acquired == [("jobs", "me", TTL)]
        finally:
            await leadership.stop()

    async def test_a_lease_held_by_another_process_is_not_taken(
        self, leadership: Leadership, leases: FakeLeases, events: Events
    ) -> None:
        leases.holder = "other"

        await leadership.start()
        try:
            assert not leadership.leading
            assert events.log == []
        finally:
            await leadership.stop()

    async def test_a_failing_storage_means_not_leading(
        self, leadership: Leadership, leases: FakeLeases, events: Events
    ) -> None:
        leases.acquire_error = ConnectionError("database down")

        await leadership.start()
        try:
            assert not leadership.leading
            assert events.log == []
        finally:
            await leadership.stop()

    async def test_if_starting_the_work_fails_leadership_is_given_up(
        self,
        leadership: Leadership,
        leases: FakeLeases,
        events: Events,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        events.gain_error = RuntimeError("scheduler would not start")

        with caplog.at_level(logging.ERROR, logger="reactor.platform.leases"):
            await leadership.start()
        try:
            assert not leadership.leading
            assert events.log == ["gain", "lose"]
            assert leases.released == [("jobs", "me")]
            assert leases.holder is None
            assert "starting work as holder of the 'jobs' lease failed" in caplog.text
        finally:
            await leadership.stop()


class TestStop:
    async def test_stopping_a_leader_ends_its_work_and_releases_the_lease(
        self, leadership: Leadership, leases: FakeLeases, events: Events
    ) -> None:
        await leadership.start()

        await leadership.stop()

        assert not leadership.leading
        assert events.log == ["gain", "lose"]
        assert leases.released == [("jobs", "me")]
        assert leases.holder is None

    async def test_stopping_a_follower_releases_without_ending_work(
        self, leadership: Leadership, leases: FakeLeases, events: Events
    ) -> None:
        leases.holder = "other"
        await leadership.start()

        await leadership.stop()

        assert events.log == []
        assert leases.released == [("jobs", "me")]
        assert leases.holder == "other"

    async def test_a_failed_release_is_logged_not_raised(
        self, leadership: Leadership, leases: FakeLeases, caplog: pytest.LogCaptureFixture
    ) -> None:
        await leadership.start()
        leases.release_error = ConnectionError("database down")

        with caplog.at_level(logging.WARNING, logger="reactor.platform.leases"):
            await leadership.stop()

        assert not leadership.leading
        assert "could not release the 'jobs' lease" in caplog.text

    async def test_a_failing_on_lose_still_ends_leadership(
        self,
        leadership: Leadership,
        leases: FakeLeases,
        events: Events,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        await leadership.start()
        events.lose_error = RuntimeError("stuck")

        with caplog.at_level(logging.ERROR, logger="reactor.platform.leases"):
            await leadership.stop()

        assert not leadership.leading
        assert leases.released == [("jobs", "me")]
        assert "stopping work after losing the 'jobs' lease failed" in caplog.text

    async def test_no_attempt_is_made_after_stop(
        self, leadership: Leadership, leases: FakeLeases, clock: ManualClock
    ) -> None:
        await leadership.start()
        await leadership.stop()

        await clock.advance(10 * TTL)

        assert len(leases.acquired) == 1
        assert clock.deadlines() == []


class TestRenewal:
    async def test_a_leader_renews_every_third_of_the_ttl_and_stays_leader(
        self, leadership: Leadership, leases: FakeLeases, events: Events, clock: ManualClock
    ) -> None:
        await leadership.start()
        try:
            await clock.advance(RENEW - 0.001)
            assert len(leases.acquired) == 1

            await clock.advance(0.001)
            assert len(leases.acquired) == 2

            await clock.advance(3 * RENEW)
            assert len(leases.acquired) == 5
            assert leadership.leading
            assert events.log == ["gain"]
        finally:
            await leadership.stop()

    async def test_a_follower_takes_the_lease_once_it_is_free(
        self, leadership: Leadership, leases: FakeLeases, events: Events, clock: ManualClock
    ) -> None:
        leases.holder = "other"
        await leadership.start()
        try:
            await clock.advance(RENEW)
            assert len(leases.acquired) == 2
            assert not leadership.leading

            leases.holder = None
            await clock.advance(RENEW - 0.001)
            assert not leadership.leading  # it tries again only at its next renewal time

            await clock.advance(0.001)
            assert leadership.leading
            assert events.log == ["gain"]
        finally:
            await leadership.stop()

    async def test_a_leader_whose_lease_was_taken_stops_its_work(
        self, leadership: Leadership, leases: FakeLeases, events: Events, clock: ManualClock
    ) -> None:
        await leadership.start()
        try:
            leases.holder = "other"
            await clock.advance(RENEW)

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
        finally:
            await leadership.stop()
        assert events.log == ["gain", "lose"]

    async def test_a_leader_whose_renewal_fails_stops_its_work(
        self,
        leadership: Leadership,
        leases: FakeLeases,
        events: Events,
        clock: ManualClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        await leadership.start()
        try:
            leases.acquire_error = ConnectionError("database down")
            with caplog.at_level(logging.INFO, logger="reactor.platform.leases"):
                await clock.advance(RENEW)

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
            assert "renewal failed: ConnectionError('database down')" in caplog.text
        finally:
            await leadership.stop()

    async def test_a_renewal_still_pending_at_its_deadline_counts_as_lost(
        self,
        leadership: Leadership,
        leases: FakeLeases,
        events: Events,
        clock: ManualClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        await leadership.start()  # renewed at +0: leader until +6 s
        gate = leases.gate = asyncio.Event()  # the storage stops answering
        try:
            with caplog.at_level(logging.INFO, logger="reactor.platform.leases"):
                await clock.advance(RENEW)  # the renewal at +3 s hangs
                assert len(leases.acquired) == 2
                await clock.advance(VALID - RENEW - 0.001)
                assert leadership.leading

                await clock.advance(0.001)  # +6 s, a third of the ttl before the lease expires

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
            assert "renewal failed: TimeoutError()" in caplog.text
        finally:
            gate.set()
            await leadership.stop()
