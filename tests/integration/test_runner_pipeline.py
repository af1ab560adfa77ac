"""A query runner holds the next call while it runs one (no idle gap between calls), yet each
call's deadline starts only when the call before it ends, a call queued behind a slow one runs
on another runner instead, and a call queued behind one that got its runner killed runs again
on a fresh runner instead of failing.

Real runner processes on a real SQLite file, driven through the deployment's executor.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from functions.loader import load_app
from reactor.runners import pool
from reactor.runners.pool import RunnerSettings
from reactor.server.deployment import Deployment
from reactor.storage import open_storage

pytestmark = pytest.mark.anyio

TIMEOUT_S = 0.6

APP = """
    import time

    from functions import query
    from schema import v

    @query(args={"seconds": v.float64()})
    async def busy(ctx, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        return seconds

    @query(args={})
    async def spin(ctx):
        while True:
            pass

    @query(args={})
    async def fast(ctx):
        return "fast"
"""


@pytest.fixture
def query_runners() -> int:
    return 1


@pytest.fixture
async def deployment(tmp_path: Path, query_runners: int) -> AsyncIterator[Deployment]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "work.py").write_text(textwrap.dedent(APP))
    settings = RunnerSettings(
        query_runners=query_runners, action_runners=1, function_timeout_s=TIMEOUT_S
    )
    served = Deployment(load_app(app_dir), open_storage(None, tmp_path / "data"), runners=settings)
    await served.start(background=False)
    try:
        yield served
    finally:
        await served.stop()
        await served.persistence.aclose()


async def _dispatched(deployment: Deployment, calls: int) -> None:
    """Wait until ``calls`` calls have been sent to the one query runner."""
    assert deployment.pools is not None
    for _ in range(100):
        if sum(r.load for r in deployment.pools.queries.runners) >= calls:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{calls} calls were never sent to the runner together")


async def test_a_call_queued_behind_a_killed_one_runs_again(deployment: Deployment) -> None:
    spin = deployment.registry.get("work:spin")
    fast = deployment.registry.get("work:fast")
    assert spin is not None and fast is not None
    runaway = asyncio.ensure_future(deployment.executor.run_query(spin, {}))
    queued = asyncio.ensure_future(deployment.executor.run_query(fast, {}))
    await _dispatched(deployment, 2)  # both on the one runner: the fast one queued
    first, second = await asyncio.wait_for(asyncio.gather(runaway, queued), TIMEOUT_S + 20)
    assert not first.success
    assert "timed out" in first.error_message
    assert second.success, second.error_message
    assert second.value == "fast"


async def test_deadline_starts_when_the_call_before_ends(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "RESCUE_AFTER_S", 60.0)  # the second stays queued behind
    busy = deployment.registry.get("work:busy")
    assert busy is not None
    # Each runs 0.4 s of a 0.6 s budget; the second is queued behind the first, so it ends
    # about 0.8 s after it was sent: timed from its send, it would have been killed.
    calls = [
        asyncio.ensure_future(deployment.executor.run_query(busy, {"seconds": 0.4}))
        for _ in range(2)
    ]
    await _dispatched(deployment, 2)
    results = await asyncio.wait_for(asyncio.gather(*calls), 20)
    assert [r.success for r in results] == [True, True], [r.error_message for r in results]


@pytest.mark.parametrize("query_runners", [2])
async def test_a_call_queued_behind_a_slow_one_runs_elsewhere(deployment: Deployment) -> None:
    spin = deployment.registry.get("work:spin")
    busy = deployment.registry.get("work:busy")
    fast = deployment.registry.get("work:fast")
    assert spin is not None and busy is not None and fast is not None
    loop = asyncio.get_running_loop()
    runaway = asyncio.ensure_future(deployment.executor.run_query(spin, {}))
    short = asyncio.ensure_future(deployment.executor.run_query(busy, {"seconds": 0.1}))
    start = loop.time()
    queued = asyncio.ensure_future(deployment.executor.run_query(fast, {}))
    await _dispatched(deployment, 3)  # both runners busy: the fast one queued behind one
    answer = await asyncio.wait_for(queued, 20)
    took = loop.time() - start
    assert answer.success and answer.value == "fast", answer.error_message
    # Served once the 0.1 s call ended, not after the runaway's 0.6 s deadline.
    assert took < TIMEOUT_S - 0.15, took
    assert (await short).success
    assert not (await runaway).success


async def test_runners_see_new_environment_variables_at_once(tmp_path: Path) -> None:
    """Runners loaded before an environment change read the new values in their next call,
    even when the app then fails to reload with them and the old code keeps serving."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "config.py").write_text(
        textwrap.dedent(
            """
            from functions import env, query

            if env.get("BREAK") == "yes":
                raise RuntimeError("module code refused to load")

            @query(args={})
            async def live(ctx):
                return env.get("GREETING")
            """
        )
    )
    settings = RunnerSettings(query_runners=1, action_runners=1)
    served = Deployment(load_app(app_dir), open_storage(None, tmp_path / "data"), runners=settings)
    await served.start(background=False)
    try:
        live = served.registry.get("config:live")
        assert live is not None
        assert (await served.executor.run_query(live, {})).value is None
        await served.set_env({"GREETING": "hello", "BREAK": "yes"})  # the reload fails
        result = await served.executor.run_query(live, {})
        assert result.success and result.value == "hello", result.error_message
    finally:
        await served.stop()
        await served.persistence.aclose()


async def test_a_call_taken_back_is_not_run_twice(deployment: Deployment) -> None:
    """The copy of a call taken back from behind a slow one is skipped by its runner, so the
    runner is free for the call again as soon as the slow one ends."""
    busy = deployment.registry.get("work:busy")
    assert busy is not None
    loop = asyncio.get_running_loop()
    head = asyncio.ensure_future(deployment.executor.run_query(busy, {"seconds": 0.15}))
    start = loop.time()
    taken_back = asyncio.ensure_future(deployment.executor.run_query(busy, {"seconds": 0.3}))
    await _dispatched(deployment, 2)  # queued behind the head, then taken back after 5 ms
    result = await asyncio.wait_for(taken_back, 20)
    took = loop.time() - start
    assert result.success, result.error_message
    assert (await head).success
    # 0.15 s behind the head, then its own 0.3 s; run twice it would end after 0.75 s.
    assert took < 0.65, took
