"""Leadership over an in-memory lease: gaining, keeping, losing and giving up leadership.

``Leadership`` times itself with the real clock (``time.monotonic`` and ``asyncio.sleep``), not
an injected runtime, so a ``ManualClock`` cannot drive it. These tests use a TTL of zero, which
makes every wait zero-length (renew every ``ttl/3``, a renewal deadline of ``2*ttl/3``): the
renewal loop then runs one attempt per turn of the event loop and nothing sleeps. Real-time
behaviour on SQLite is covered by ``tests/integration/test_leases.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from reactor.core.persistence import Persistence
from reactor.platform.leases import DEFAULT_TTL_S, Leadership

pytestmark = pytest.mark.anyio

LONG_TTL = 3600.0  # the renewal task sleeps for 20 minutes: only the first attempt happens


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


def _leadership(leases: FakeLeases, events: Events, ttl_s: float = LONG_TTL) -> Leadership:
    return Leadership(
        cast(Persistence, leases),
        "jobs",
        "me",
        on_gain=events.on_gain,
        on_lose=events.on_lose,
        ttl_s=ttl_s,
    )


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_renewal_is_every_third_of_the_ttl(leases: FakeLeases, events: Events) -> None:
    leadership = _leadership(leases, events, ttl_s=9.0)

    assert leadership.renew_every_s == 3.0
    assert _leadership(leases, events).ttl_s == LONG_TTL
    assert (
        Leadership(
            cast(Persistence, leases), "n", "h", on_gain=events.on_gain, on_lose=events.on_lose
        ).ttl_s
        == DEFAULT_TTL_S
    )


class TestStart:
    async def test_a_free_lease_is_taken_before_start_returns(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leadership = _leadership(leases, events)

        await leadership.start()
        try:
            assert leadership.leading
            assert events.log == ["gain"]
            assert leases.acquired == [("jobs", "me", LONG_TTL)]
        finally:
            await leadership.stop()

    async def test_a_lease_held_by_another_process_is_not_taken(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leases.holder = "other"
        leadership = _leadership(leases, events)

        await leadership.start()
        try:
            assert not leadership.leading
            assert events.log == []
        finally:
            await leadership.stop()

    async def test_a_failing_storage_means_not_leading(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leases.acquire_error = ConnectionError("database down")
        leadership = _leadership(leases, events)

        await leadership.start()
        try:
            assert not leadership.leading
            assert events.log == []
        finally:
            await leadership.stop()

    async def test_if_starting_the_work_fails_leadership_is_given_up(
        self, leases: FakeLeases, events: Events, caplog: pytest.LogCaptureFixture
    ) -> None:
        events.gain_error = RuntimeError("scheduler would not start")
        leadership = _leadership(leases, events)

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
        self, leases: FakeLeases, events: Events
    ) -> None:
        leadership = _leadership(leases, events)
        await leadership.start()

        await leadership.stop()

        assert not leadership.leading
        assert events.log == ["gain", "lose"]
        assert leases.released == [("jobs", "me")]
        assert leases.holder is None

    async def test_stopping_a_follower_releases_without_ending_work(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leases.holder = "other"
        leadership = _leadership(leases, events)
        await leadership.start()

        await leadership.stop()

        assert events.log == []
        assert leases.released == [("jobs", "me")]
        assert leases.holder == "other"

    async def test_a_failed_release_is_logged_not_raised(
        self, leases: FakeLeases, events: Events, caplog: pytest.LogCaptureFixture
    ) -> None:
        leadership = _leadership(leases, events)
        await leadership.start()
        leases.release_error = ConnectionError("database down")

        with caplog.at_level(logging.WARNING, logger="reactor.platform.leases"):
            await leadership.stop()

        assert not leadership.leading
        assert "could not release the 'jobs' lease" in caplog.text

    async def test_a_failing_on_lose_still_ends_leadership(
        self, leases: FakeLeases, events: Events, caplog: pytest.LogCaptureFixture
    ) -> None:
        leadership = _leadership(leases, events)
        await leadership.start()
        events.lose_error = RuntimeError("stuck")

        with caplog.at_level(logging.ERROR, logger="reactor.platform.leases"):
            await leadership.stop()

        assert not leadership.leading
        assert leases.released == [("jobs", "me")]
        assert "stopping work after losing the 'jobs' lease failed" in caplog.text

    async def test_no_attempt_is_made_after_stop(self, leases: FakeLeases, events: Events) -> None:
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        await leadership.stop()
        attempts = len(leases.acquired)

        await _turns()

        assert len(leases.acquired) == attempts


class TestRenewal:
    async def test_a_leader_keeps_renewing_and_stays_leader(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        try:
            await _turns()

            assert len(leases.acquired) > 2
            assert leadership.leading
            assert events.log == ["gain"]
        finally:
            await leadership.stop()

    async def test_a_follower_takes_the_lease_once_it_is_free(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leases.holder = "other"
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        try:
            await _turns()
            assert not leadership.leading

            leases.holder = None
            await _turns()

            assert leadership.leading
            assert events.log == ["gain"]
        finally:
            await leadership.stop()

    async def test_a_leader_whose_lease_was_taken_stops_its_work(
        self, leases: FakeLeases, events: Events
    ) -> None:
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        try:
            leases.holder = "other"
            await _turns()

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
        finally:
            await leadership.stop()
        assert events.log == ["gain", "lose"]

    async def test_a_leader_whose_renewal_fails_stops_its_work(
        self, leases: FakeLeases, events: Events, caplog: pytest.LogCaptureFixture
    ) -> None:
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        try:
            leases.acquire_error = ConnectionError("database down")
            with caplog.at_level(logging.INFO, logger="reactor.platform.leases"):
                await _turns()

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
            assert "renewal failed: ConnectionError('database down')" in caplog.text
        finally:
            await leadership.stop()

    async def test_a_renewal_still_pending_at_its_deadline_counts_as_lost(
        self, leases: FakeLeases, events: Events, caplog: pytest.LogCaptureFixture
    ) -> None:
        leadership = _leadership(leases, events, ttl_s=0.0)
        await leadership.start()
        gate = leases.gate = asyncio.Event()  # the storage stops answering
        try:
            with caplog.at_level(logging.INFO, logger="reactor.platform.leases"):
                await _turns()

            assert not leadership.leading
            assert events.log == ["gain", "lose"]
            assert "renewal failed: TimeoutError()" in caplog.text
        finally:
            gate.set()
            await leadership.stop()
