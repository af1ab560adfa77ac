"""An action past its deadline fails only itself (issue #9): its runner cancels its task and
runs on with the other actions; only a runner that cannot cancel it (its event loop blocked,
or the action swallows the cancellation) is killed after a grace period, and the actions it
was running then fail with an error naming the one that got it killed (never run again).

Real runner processes (one action runner, so every action shares it) on a real SQLite file,
driven through the deployment's executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactor.engine.invocation import FunctionResult, HttpCall
from reactor.runners import pool
from reactor.runners.pool import RunnerSettings
from reactor.server.deployment import Deployment
from reactor.testing import running_deployment, write_app

pytestmark = pytest.mark.anyio

TIMEOUT_S = 1.2
GRACE_S = 0.3
TIMED_OUT = f"Function execution timed out (maximum duration: {TIMEOUT_S:g}s)"

HTTP = """
    import asyncio

    from functions import http_action
    from functions.http_router import http_router

    @http_action
    async def hang(ctx, request):
        print("hanging")
        await asyncio.sleep(3600)

    http = http_router()
    http.route(path="/hang", method="GET", handler=hang)
"""

APP = """
    import asyncio
    import os

    from functions import action
    from schema import v

    @action(args={"seconds": v.float64()})
    async def nap(ctx, seconds):
        await asyncio.sleep(seconds)
        return os.getpid()

    @action(args={})
    async def pid(ctx):
        return os.getpid()

    @action(args={})
    async def sleep_forever(ctx):
        print("going to sleep")
        await asyncio.sleep(3600)

    @action(args={})
    async def hog(ctx):
        raise MemoryError

    @action(args={})
    async def spin(ctx):
        while True:
            pass

    @action(args={})
    async def stubborn(ctx):
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass
"""


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    monkeypatch.setattr(pool, "CANCEL_GRACE_S", GRACE_S)
    app = write_app(tmp_path / "app", {"work.py": APP, "http.py": HTTP})
    settings = RunnerSettings(query_runners=1, action_runners=1, action_timeout_s=TIMEOUT_S)
    async with running_deployment(
        app, tmp_path / "data", background=False, runners=settings
    ) as served:
        yield served


def _start(deployment: Deployment, name: str, **args: Any) -> asyncio.Future[FunctionResult]:
    spec = deployment.registry.get(f"work:{name}")
    assert spec is not None
    return asyncio.ensure_future(deployment.executor.run_action(spec, args))


async def _pid(deployment: Deployment) -> int:
    result = await asyncio.wait_for(_start(deployment, "pid"), 20)
    assert result.success, result.error_message
    return int(result.value)


async def _running(deployment: Deployment, calls: int) -> None:
    """Wait until the one action runner holds ``calls`` calls."""
    assert deployment.pools is not None
    for _ in range(2000):
        if sum(r.load for r in deployment.pools.actions.runners) >= calls:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"the action runner never held {calls} calls")


async def test_a_timed_out_action_is_cancelled_and_its_runner_runs_on(
    deployment: Deployment,
) -> None:
    loop = asyncio.get_running_loop()
    before = await _pid(deployment)
    start = loop.time()
    forever = _start(deployment, "sleep_forever")
    await _running(deployment, 1)
    await asyncio.sleep(TIMEOUT_S / 2)  # a second action, still running at the deadline
    second = _start(deployment, "nap", seconds=TIMEOUT_S * 0.8)
    timed_out = await asyncio.wait_for(forever, 20)
    took = loop.time() - start
    assert not second.done()
    assert not timed_out.success
    assert timed_out.error_message == TIMED_OUT
    assert timed_out.error_code == "FunctionTimeout"
    assert timed_out.log_lines and "going to sleep" in timed_out.log_lines[0]
    assert took < TIMEOUT_S + GRACE_S, took  # answered by the runner, not killed after grace
    survivor = await asyncio.wait_for(second, 20)
    assert survivor.success, survivor.error_message
    assert survivor.value == before  # the same runner process ran it to the end
    assert await _pid(deployment) == before


async def test_a_cpu_bound_action_gets_its_runner_killed_and_says_so(
    deployment: Deployment,
) -> None:
    assert deployment.pools is not None
    loop = asyncio.get_running_loop()
    before = await _pid(deployment)
    start = loop.time()
    runaway = _start(deployment, "spin")
    await _running(deployment, 1)
    await asyncio.sleep(TIMEOUT_S / 2)
    bystander = _start(deployment, "nap", seconds=30.0)  # sent to the blocked runner
    await _running(deployment, 2)
    # Past the runaway's deadline, within the grace: a new action is kept off the runner
    # that may be killed, and runs on its replacement.
    while not any(r.expiring for r in deployment.pools.actions.runners):
        assert loop.time() - start < TIMEOUT_S + 5, "the runaway's deadline never passed"
        await asyncio.sleep(0.01)
    newcomer = _start(deployment, "pid")
    result = await asyncio.wait_for(runaway, 20)
    took = loop.time() - start
    assert not result.success
    assert result.error_message == TIMED_OUT
    assert TIMEOUT_S + GRACE_S - 0.05 <= took < TIMEOUT_S + GRACE_S + 1.0, took
    stopped = await asyncio.wait_for(bystander, 20)
    assert not stopped.success
    assert stopped.error_message.startswith(
        "Action runner restarted: action `work:spin` on the same runner exceeded its time "
        f"limit ({TIMEOUT_S:g} s) and did not stop when cancelled"
    ), stopped.error_message
    assert "this action was stopped after 0." in stopped.error_message
    assert stopped.error_message.endswith("is not run again")
    fresh = await asyncio.wait_for(newcomer, 20)
    assert fresh.success, fresh.error_message
    assert fresh.value != before
    assert await _pid(deployment) == fresh.value


async def test_an_action_swallowing_its_cancellation_still_ends(deployment: Deployment) -> None:
    loop = asyncio.get_running_loop()
    before = await _pid(deployment)
    start = loop.time()
    result = await asyncio.wait_for(_start(deployment, "stubborn"), 20)
    took = loop.time() - start
    assert not result.success
    assert result.error_message == TIMED_OUT
    assert took < TIMEOUT_S + GRACE_S + 1.0, took
    assert await _pid(deployment) != before  # it kept its slot until its runner was killed


async def test_a_timed_out_http_action_is_cancelled_too(deployment: Deployment) -> None:
    before = await _pid(deployment)
    reply = await asyncio.wait_for(
        deployment.runner.http_action(
            HttpCall("GET", "/hang", b"", [], b""),
            identity=None,
            auth_error=None,
            services=deployment.executor.services,
        ),
        20,
    )
    assert reply.status == 500
    assert reply.failure is not None
    assert reply.failure.error_message == TIMED_OUT
    assert "hanging" in reply.failure.log_lines[0]
    assert await _pid(deployment) == before


async def test_actions_stopped_by_a_neighbour_out_of_memory_say_so(deployment: Deployment) -> None:
    before = await _pid(deployment)
    bystander = _start(deployment, "nap", seconds=30.0)
    await _running(deployment, 1)
    result = await asyncio.wait_for(_start(deployment, "hog"), 20)
    assert result.error_message == "Function execution ran out of memory (MemoryError)"
    stopped = await asyncio.wait_for(bystander, 20)
    assert not stopped.success
    assert stopped.error_message.startswith(
        "Action runner restarted: action `work:hog` on the same runner ran out of memory; "
        "this action was stopped after "
    ), stopped.error_message
    assert await _pid(deployment) != before
