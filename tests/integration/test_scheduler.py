"""Scheduled functions on the real engine: transactional scheduling, exactly-once mutations,
actions, cancel, failures, and the _scheduled_functions system table. A delayed job runs on a
``ManualClock``, so waiting for its time takes no real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from reactor.server.deployment import Deployment
from reactor.testing import ManualClock, call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "jobs.py": """
        import asyncio
        from functions import AppError, action, internal_mutation, mutation, query
        from schema import v

        async def _bump(ctx, name):
            rows = await (
                ctx.db.query("counters").filter(lambda q: q.eq(q.field("name"), name)).collect()
            )
            if rows:
                await ctx.db.patch(rows[0]["_id"], {"n": rows[0]["n"] + 1})
            else:
                await ctx.db.insert("counters", {"name": name, "n": 1.0})

        @internal_mutation(args={"name": v.string()})
        async def bump(ctx, name):
            await _bump(ctx, name)

        @internal_mutation(args={"name": v.string()})
        async def bump_then_fail(ctx, name):
            await _bump(ctx, name)
            raise AppError({"code": "NOPE"})

        @mutation(args={"name": v.string(), "delay": v.float64()})
        async def schedule_bump(ctx, name, delay):
            return await ctx.scheduler.run_after(delay, bump, {"name": name})

        @mutation(args={"name": v.string()})
        async def schedule_by_path_then_fail(ctx, name):
            await ctx.scheduler.run_after(0, "jobs:bump", {"name": name})
            raise AppError("rolled back")

        @mutation(args={"name": v.string()})
        async def schedule_failing(ctx, name):
            return await ctx.scheduler.run_after(0, bump_then_fail, {"name": name})

        @mutation(args={"id": v.id("_scheduled_functions")})
        async def cancel(ctx, id):
            await ctx.scheduler.cancel(id)

        @action(args={"name": v.string()})
        async def act(ctx, name):
            await ctx.run_mutation(bump, {"name": name})
            return await ctx.run_query("jobs:count", {"name": name})

        @action(args={"name": v.string()})
        async def schedule_from_action(ctx, name):
            job = await ctx.scheduler.run_after(0, act, {"name": name})
            raise AppError("the action fails, the job stays")

        @query(args={"name": v.string()})
        async def count(ctx, name):
            rows = await (
                ctx.db.query("counters").filter(lambda q: q.eq(q.field("name"), name)).collect()
            )
            return rows[0]["n"] if rows else 0.0

        @query(args={"id": v.id("_scheduled_functions")})
        async def job(ctx, id):
            return await ctx.db.system.get(id)

        @query
        async def jobs(ctx):
            return await ctx.db.system.query("_scheduled_functions").collect()

        @query
        async def sneaky(ctx):
            return await ctx.db.query("_scheduled_functions").collect()
    """,
}


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as s:
        yield s


async def wait_for_state(
    deployment: Deployment,
    job_id: str,
    kinds: tuple[str, ...] = ("success", "failed", "canceled"),
    timeout: float = 5,
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await call(deployment, "jobs:job", {"id": job_id})).value
        if job["state"]["kind"] in kinds:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job still {job['state']}")
        await asyncio.sleep(0.02)


async def test_a_scheduled_mutation_runs_once_and_records_success(deployment: Deployment) -> None:
    job_id = (await call(deployment, "jobs:schedule_bump", {"name": "a", "delay": 0})).value
    job = await wait_for_state(deployment, job_id)
    assert job["state"] == {"kind": "success"}
    assert job["name"] == "jobs:bump" and job["args"] == [{"name": "a"}]
    assert job["completedTime"] >= job["scheduledTime"]
    await asyncio.sleep(0.1)
    assert (await call(deployment, "jobs:count", {"name": "a"})).value == 1.0


async def test_scheduling_is_part_of_the_mutation_transaction(deployment: Deployment) -> None:
    result = await call(deployment, "jobs:schedule_by_path_then_fail", {"name": "b"})
    assert not result.success
    await asyncio.sleep(0.1)
    assert (await call(deployment, "jobs:jobs")).value == []
    assert (await call(deployment, "jobs:count", {"name": "b"})).value == 0.0


async def test_a_failing_scheduled_mutation_is_marked_failed_and_writes_nothing(
    deployment: Deployment,
) -> None:
    job_id = (await call(deployment, "jobs:schedule_failing", {"name": "c"})).value
    job = await wait_for_state(deployment, job_id)
    assert job["state"]["kind"] == "failed"
    assert "ConvexError" in job["state"]["error"]
    assert (await call(deployment, "jobs:count", {"name": "c"})).value == 0.0


async def test_cancel_before_it_runs(deployment: Deployment) -> None:
    job_id = (await call(deployment, "jobs:schedule_bump", {"name": "d", "delay": 30})).value
    pending = (await call(deployment, "jobs:job", {"id": job_id})).value
    assert pending["state"] == {"kind": "pending"}
    await call(deployment, "jobs:cancel", {"id": job_id})
    job = await wait_for_state(deployment, job_id)
    assert job["state"] == {"kind": "canceled"}
    assert (await call(deployment, "jobs:count", {"name": "d"})).value == 0.0


async def eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


async def test_a_delayed_job_waits_for_its_time(tmp_path: Path) -> None:
    clock = ManualClock()
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data", runtime=clock) as deployment:
        job_id = (await call(deployment, "jobs:schedule_bump", {"name": "e", "delay": 7})).value
        due_ns = clock.ns + 7 * 10**9
        await eventually(lambda: due_ns in clock.deadlines())  # the worker waits for it

        await clock.advance(6.999)
        job = (await call(deployment, "jobs:job", {"id": job_id})).value
        assert job["state"]["kind"] == "pending"

        await clock.advance(0.001)
        job = await wait_for_state(deployment, job_id)
        assert job["state"]["kind"] == "success"
        assert job["completedTime"] == job["scheduledTime"] == due_ns / 1e6


async def test_actions_run_functions_and_schedule_immediately(deployment: Deployment) -> None:
    spec = deployment.registry.resolve("jobs:act")
    result = await deployment.executor.run_action(spec, {"name": "f"})
    assert result.success and result.value == 1.0
    spec = deployment.registry.resolve("jobs:schedule_from_action")
    failed = await deployment.executor.run_action(spec, {"name": "g"})
    assert not failed.success
    for _ in range(100):
        if (await call(deployment, "jobs:count", {"name": "g"})).value == 1.0:
            break
        await asyncio.sleep(0.02)
    assert (await call(deployment, "jobs:count", {"name": "g"})).value == 1.0
    jobs = (await call(deployment, "jobs:jobs")).value
    assert [j["state"]["kind"] for j in jobs if j["name"] == "jobs:act"] == ["success"]


async def test_system_tables_are_read_only_and_separate(deployment: Deployment) -> None:
    sneaky = await call(deployment, "jobs:sneaky")
    assert not sneaky.success and "ctx.db.system.query" in sneaky.error_message


async def test_finished_jobs_are_purged_after_the_retention(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reactor.platform import scheduler as scheduler_module

    job_id = (await call(deployment, "jobs:schedule_bump", {"name": "old", "delay": 0})).value
    await wait_for_state(deployment, job_id)
    pending = (await call(deployment, "jobs:schedule_bump", {"name": "later", "delay": 60})).value
    assert await deployment.scheduler.purge_completed() == 0  # too recent
    monkeypatch.setattr(scheduler_module, "COMPLETED_RETENTION_S", -1.0)
    assert await deployment.scheduler.purge_completed() == 1
    names = [(j["_id"], j["state"]["kind"]) for j in (await call(deployment, "jobs:jobs")).value]
    assert names == [(pending, "pending")]
