"""SystemRuntime: the real clock, sleep and randomness behind the ``Runtime`` protocol."""

from __future__ import annotations

import asyncio
import time

import pytest

from reactor.core.runtime import Runtime, SystemRuntime


def test_now_ns_is_the_wall_clock_in_nanoseconds() -> None:
    runtime: Runtime = SystemRuntime()

    before = time.time_ns()
    now = runtime.now_ns()
    after = time.time_ns()

    assert isinstance(now, int)
    assert before <= now <= after


def test_random_is_a_float_in_the_unit_interval() -> None:
    runtime = SystemRuntime()

    draws = [runtime.random() for _ in range(200)]

    assert all(isinstance(x, float) and 0.0 <= x < 1.0 for x in draws)
    assert len(set(draws)) > 1


@pytest.mark.anyio
async def test_sleep_yields_to_other_tasks() -> None:
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.create_task(other())
    await SystemRuntime().sleep(0)

    assert ran == ["other"]
    await task


@pytest.mark.anyio
async def test_timeout_bounds_a_block_on_the_real_clock() -> None:
    runtime = SystemRuntime()

    with pytest.raises(TimeoutError):
        async with runtime.timeout(0.001):
            await asyncio.Event().wait()

    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    async with runtime.timeout(None):
        await event.wait()
    assert event.is_set()
