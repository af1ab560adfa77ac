"""``ManualClock``: time that moves only when the test moves it. Sleepers and timeouts wait
for ``advance``, which wakes them in deadline order at their own deadlines; ``autojump``
keeps the instant sleeps of retry backoffs."""

from __future__ import annotations

import asyncio

import pytest

from reactor.core.runtime import Runtime
from reactor.testing import ManualClock

pytestmark = pytest.mark.anyio

START = 1_000 * 10**9
S = 10**9


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


async def sleep_then_record(clock: ManualClock, name: str, seconds: float, log: list[str]) -> None:
    await clock.sleep(seconds)
    log.append(f"{name} at +{(clock.ns - START) / S:g}")


def test_it_is_a_runtime() -> None:
    runtime: Runtime = ManualClock(START)

    assert runtime.now_ns() == runtime.monotonic_ns() == START
    assert runtime.random() == 0.5


class TestSleep:
    async def test_a_sleeper_waits_until_the_clock_reaches_its_deadline(
        self, clock: ManualClock
    ) -> None:
        log: list[str] = []
        task = asyncio.create_task(sleep_then_record(clock, "a", 5, log))
        await asyncio.sleep(0)
        assert clock.deadlines() == [START + 5 * S]

        await clock.advance(4.999)
        assert log == [] and not task.done()

        await clock.advance(0.001)
        assert log == ["a at +5"]
        assert task.done() and clock.deadlines() == []

    async def test_a_task_just_started_reaches_its_sleep_before_time_moves(
        self, clock: ManualClock
    ) -> None:
        log: list[str] = []
        task = asyncio.create_task(sleep_then_record(clock, "a", 1, log))  # not yet running

        await clock.advance(1)

        assert log == ["a at +1"]
        await task

    async def test_advance_wakes_sleepers_in_deadline_order_each_at_its_deadline(
        self, clock: ManualClock
    ) -> None:
        log: list[str] = []
        tasks = [
            asyncio.create_task(sleep_then_record(clock, name, seconds, log))
            for name, seconds in [("a", 3), ("b", 1), ("c", 2), ("d", 1), ("e", 60)]
        ]
        await asyncio.sleep(0)

        await clock.advance(10)

        assert log == ["b at +1", "d at +1", "c at +2", "a at +3"]  # equal deadlines: FIFO
        assert clock.ns == START + 10 * S
        assert clock.deadlines() == [START + 60 * S]
        tasks[-1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def test_a_loop_that_sleeps_runs_once_per_period_instead_of_spinning(
        self, clock: ManualClock
    ) -> None:
        ticks: list[int] = []

        async def loop() -> None:
            for _ in range(100):  # bounded, so a clock whose sleeps do not wait fails the test
                await clock.sleep(1)
                ticks.append(clock.ns - START)

        task = asyncio.create_task(loop())
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            assert ticks == []

            await clock.advance(3.5)

            assert ticks == [1 * S, 2 * S, 3 * S]
            assert clock.deadlines() == [START + 4 * S]  # asleep again, from its own deadline
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @pytest.mark.parametrize("seconds", [0, -1])
    async def test_sleeping_zero_or_less_only_yields(
        self, clock: ManualClock, seconds: float
    ) -> None:
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        task = asyncio.create_task(other())
        await clock.sleep(seconds)

        assert ran == ["other"]
        assert clock.ns == START and clock.deadlines() == []
        await task

    async def test_a_cancelled_sleeper_leaves_no_deadline(self, clock: ManualClock) -> None:
        task = asyncio.create_task(clock.sleep(5))
        await asyncio.sleep(0)
        assert clock.deadlines() == [START + 5 * S]

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert clock.deadlines() == []
        await clock.advance(10)

    async def test_setting_ns_wakes_nobody_until_the_next_advance(self, clock: ManualClock) -> None:
        log: list[str] = []
        task = asyncio.create_task(sleep_then_record(clock, "a", 5, log))
        await asyncio.sleep(0)

        clock.ns = START + 7 * S
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == []

        await clock.advance(0)
        assert log == ["a at +7"]
        await task

    async def test_advancing_backwards_is_refused(self, clock: ManualClock) -> None:
        with pytest.raises(ValueError, match="cannot advance by a negative time"):
            await clock.advance(-1)
        assert clock.ns == START


class TestTimeout:
    async def test_a_timeout_expires_when_the_clock_passes_it(self, clock: ManualClock) -> None:
        async def wait_forever() -> None:
            async with clock.timeout(2):
                await asyncio.Event().wait()

        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0)

        await clock.advance(1.999)
        assert not task.done()

        await clock.advance(0.001)
        assert task.done()
        with pytest.raises(TimeoutError):
            task.result()
        assert clock.deadlines() == []

    async def test_a_block_that_finishes_in_time_leaves_no_deadline(
        self, clock: ManualClock
    ) -> None:
        event = asyncio.Event()
        asyncio.get_running_loop().call_soon(event.set)

        async with clock.timeout(2):
            await event.wait()

        assert clock.deadlines() == []

    async def test_a_timeout_of_zero_expires_at_the_first_wait(self, clock: ManualClock) -> None:
        with pytest.raises(TimeoutError):
            async with clock.timeout(0):
                await asyncio.Event().wait()

    async def test_no_timeout_never_expires(self, clock: ManualClock) -> None:
        event = asyncio.Event()

        async def wait() -> None:
            async with clock.timeout(None):
                await event.wait()

        task = asyncio.create_task(wait())
        await clock.advance(10**6)
        assert not task.done() and clock.deadlines() == []

        event.set()
        await task

    async def test_a_cancellation_from_outside_stays_a_cancellation(
        self, clock: ManualClock
    ) -> None:
        async def wait_forever() -> None:
            async with clock.timeout(2):
                await asyncio.Event().wait()

        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0)
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.deadlines() == []


class TestAutojump:
    async def test_a_sleep_moves_the_clock_at_once_without_yielding(self) -> None:
        clock = ManualClock(START, autojump=True)
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        task = asyncio.create_task(other())
        async with asyncio.timeout(1):  # a guard in real time: a sleep that waited would hang
            await clock.sleep(2.5)

        assert clock.ns == START + 2_500_000_000
        assert ran == []  # no yield: the sleep was free
        await task

    async def test_an_autojumping_sleep_expires_the_timeouts_it_passes(self) -> None:
        clock = ManualClock(START, autojump=True)

        async def wait_forever() -> None:
            async with clock.timeout(2):
                await asyncio.Event().wait()

        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0)

        async with asyncio.timeout(1):
            await clock.sleep(5)
        for _ in range(5):
            await asyncio.sleep(0)

        assert clock.ns == START + 5 * S
        assert task.done()
        with pytest.raises(TimeoutError):
            task.result()
