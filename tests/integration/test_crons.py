"""Cron jobs under a manual clock: the right UTC minute, no overlap, overdue runs skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reactor.server.deployment import Deployment
from reactor.testing import ManualClock, call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "work.py": """
        import asyncio
        from functions import internal_action, internal_mutation, query

        @internal_mutation
        async def tick(ctx):
            await ctx.db.insert("ticks", {"at": 1.0})

        @internal_action
        async def slow(ctx):
            await asyncio.sleep(0.5)

        @query
        async def ticks(ctx):
            return len(await ctx.db.query("ticks").collect())

        @query
        async def jobs(ctx):
            return [(j["name"], j["scheduledTime"], j["state"]["kind"])
                    for j in await ctx.db.system.query("_scheduled_functions").collect()]
    """,
    "crons.py": """
        from functions.crons import cron_jobs
        from . import work

        crons = cron_jobs()
        crons.hourly("hourly tick", work.tick, minute_utc=30)
        crons.cron("slow every minute", "* * * * *", work.slow)
    """,
}


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1e9)


async def settle(
    deployment: Deployment, predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0
) -> None:
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never held")


async def test_crons_fire_at_the_right_minute_without_overlap(tmp_path: Path) -> None:
    clock = ManualClock(ns("2026-03-01T09:59:10"))
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data", runtime=clock) as deployment:
        runner = deployment.crons
        await runner.stop()  # drive it by hand with the manual clock
        assert await runner.tick() is not None
        assert (await call(deployment, "work:jobs")).value == []

        clock.ns = ns("2026-03-01T10:00:00")  # the every-minute job is due; hourly is not
        await runner.tick()
        jobs = (await call(deployment, "work:jobs")).value
        assert [(name, kind) for name, _, kind in jobs] == [("work:slow", jobs[0][2])]
        assert jobs[0][1] == ns("2026-03-01T10:00:00") / 1e6

        clock.ns = ns("2026-03-01T10:01:00")  # the previous slow run is still going: skipped
        await runner.tick()
        assert len((await call(deployment, "work:jobs")).value) == 1
        assert runner.skipped == 1

        async def slow_done() -> bool:
            return all(
                kind == "success" for _, _, kind in (await call(deployment, "work:jobs")).value
            )

        await settle(deployment, slow_done)
        clock.ns = ns("2026-03-01T10:30:00")  # hourly at :30, and the minute job again
        await runner.tick()
        names = sorted(name for name, _, _ in (await call(deployment, "work:jobs")).value)
        assert names == ["work:slow", "work:slow", "work:tick"]

        async def ticked() -> bool:
            ticks: float = (await call(deployment, "work:ticks")).value
            return ticks == 1

        await settle(deployment, ticked)

        await settle(deployment, slow_done)
        clock.ns = ns("2026-03-01T13:45:00")  # hours later: one run, the overdue ones skipped
        skipped = runner.skipped
        await runner.tick()
        jobs = (await call(deployment, "work:jobs")).value
        assert sorted(name for name, _, _ in jobs).count("work:tick") == 2
        assert runner.skipped > skipped
        nxt = runner.state["hourly tick"]["next"]
        assert nxt == ns("2026-03-01T14:30:00") / 1e6


async def test_cron_state_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(ns("2026-03-01T10:10:00"))
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data", runtime=clock) as deployment:
        await deployment.crons.stop()
        first = dict(deployment.crons.state["hourly tick"])
    clock.ns = ns("2026-03-01T10:20:00")
    async with running_deployment(app, tmp_path / "data", runtime=clock) as deployment:
        await deployment.crons.stop()
        assert deployment.crons.state["hourly tick"]["next"] == first["next"]
