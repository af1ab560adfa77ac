"""A websocket mutation runs once per (session, request) id: across resends, concurrent
resends and a restart of the server on the same data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reactor.engine.executor import FunctionResult
from reactor.server.deployment import Deployment
from reactor.testing import running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "counter.py": """
        import asyncio
        from functions import mutation, query

        @mutation
        async def bump(ctx, delay=0.0):
            rows = await ctx.db.query("counters").collect()
            await asyncio.sleep(delay)
            if rows:
                await ctx.db.patch(rows[0]["_id"], {"n": rows[0]["n"] + 1})
                return rows[0]["n"] + 1
            await ctx.db.insert("counters", {"n": 1.0})
            return 1.0

        @query
        async def value(ctx):
            rows = await ctx.db.query("counters").collect()
            return rows[0]["n"] if rows else 0.0
    """,
}


async def bump(
    deployment: Deployment, session: str, request: int, delay: float = 0.0
) -> FunctionResult:
    spec = deployment.registry.resolve("counter:bump")
    return await deployment.executor.run_mutation(
        spec, {"delay": delay}, idempotency_key=(session, request)
    )


async def value(deployment: Deployment) -> Any:
    spec = deployment.registry.resolve("counter:value")
    return (await deployment.executor.run_query(spec, {})).value


async def test_resends_return_the_first_result(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        first = await bump(deployment, "s1", 0)
        again = await bump(deployment, "s1", 0)
        assert (first.value, again.value, again.ts) == (1.0, 1.0, first.ts)
        # A resend arriving while the first run is still going waits for that very run.
        slow, resent = await asyncio.gather(
            bump(deployment, "s1", 1, delay=0.05), bump(deployment, "s1", 1)
        )
        assert slow.value == resent.value == 2.0
        assert await value(deployment) == 2.0


async def test_pipelined_requests_are_not_rerun_after_a_restart(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as deployment:
        for request in (5, 6, 7):
            await bump(deployment, "s2", request)
        assert await value(deployment) == 3.0
    async with running_deployment(app, tmp_path / "data") as deployment:
        results = [await bump(deployment, "s2", request) for request in (5, 6, 7)]
        assert [r.value for r in results] == [1.0, 2.0, 3.0]
        assert await value(deployment) == 3.0
        assert (await bump(deployment, "s2", 8)).value == 4.0
