"""Mutations read at the newest written commit, durable or not; every answer waits until what
it read is durable, and queries read only durable commits. On a real ``Deployment`` of a small
app over ``HeldFsyncSqlite``, whose WAL fsyncs the test holds back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactor.server.deployment import Deployment
from reactor.testing import call, write_app
from reactor.testing.storage import HeldFsyncSqlite, held_fsync_deployment

pytestmark = pytest.mark.anyio

TIMEOUT = 5.0
UNANSWERED_S = 0.3  # how long an answer that must wait is watched not to come

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"counters": define_table({"n": v.float64()})})
    """,
    "counters.py": """
        from functions import AppError, mutation, query
        from schema import v

        @mutation
        async def create(ctx):
            return await ctx.db.insert("counters", {"n": 0.0})

        @mutation(args={"id": v.id("counters")})
        async def bump(ctx, id):
            n = (await ctx.db.get(id))["n"]
            await ctx.db.patch(id, {"n": n + 1})
            return n + 1

        @mutation(args={"id": v.id("counters")})
        async def peek(ctx, id):
            return (await ctx.db.get(id))["n"]

        @mutation(args={"id": v.id("counters")})
        async def refuse_odd(ctx, id):
            n = (await ctx.db.get(id))["n"]
            if n % 2:
                raise AppError(f"odd: {n:g}")
            return n

        @query(args={"id": v.id("counters")})
        async def get(ctx, id):
            return (await ctx.db.get(id))["n"]
    """,
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Deployment, HeldFsyncSqlite]]:
    app = write_app(tmp_path / "app", APP)
    async with held_fsync_deployment(app, tmp_path / "data") as held:
        yield held


async def value(deployment: Deployment, path: str, args: dict[str, Any]) -> Any:
    result = await call(deployment, path, args)
    assert result.success, result.error_message
    return result.value


def start(deployment: Deployment, path: str, args: dict[str, Any]) -> asyncio.Future[Any]:
    return asyncio.ensure_future(call(deployment, path, args))


async def unanswered(*calls: asyncio.Future[Any]) -> None:
    await asyncio.sleep(UNANSWERED_S)
    assert not any(c.done() for c in calls)


async def test_a_mutation_reads_a_commit_still_awaiting_its_fsync(
    engine: tuple[Deployment, HeldFsyncSqlite],
) -> None:
    deployment, persistence = engine
    doc = await value(deployment, "counters:create", {})
    persistence.hold()
    first = start(deployment, "counters:bump", {"id": doc})
    async with asyncio.timeout(TIMEOUT):
        await asyncio.to_thread(persistence.held.wait)
    second = start(deployment, "counters:bump", {"id": doc})
    # The second bump reads the first one's write while it awaits its fsync (its own commit
    # then waits for that fsync to end, to share a batch); queries read durable commits only.
    assert deployment.committer.visible_ts > deployment.publisher.published_ts
    assert await value(deployment, "counters:get", {"id": doc}) == 0.0
    await unanswered(first, second)
    persistence.release()
    results = await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert [r.value for r in results] == [1.0, 2.0]
    assert [r.attempts for r in results] == [1, 1]  # at the published snapshot: a conflict
    assert await value(deployment, "counters:get", {"id": doc}) == 2.0


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("counters:peek", (True, 1.0)),
        ("counters:refuse_odd", (False, "Uncaught ConvexError: odd: 1")),
    ],
)
async def test_an_answer_that_commits_nothing_waits_until_what_it_read_is_durable(
    engine: tuple[Deployment, HeldFsyncSqlite], path: str, answer: tuple[bool, Any]
) -> None:
    deployment, persistence = engine
    doc = await value(deployment, "counters:create", {})
    persistence.hold()
    bump = start(deployment, "counters:bump", {"id": doc})
    async with asyncio.timeout(TIMEOUT):
        await asyncio.to_thread(persistence.held.wait)
    read = start(deployment, path, {"id": doc})
    await unanswered(bump, read)
    persistence.release()
    result = await asyncio.wait_for(read, TIMEOUT)
    got = result.value if result.success else result.error_message
    assert (result.success, got) == answer
    assert deployment.publisher.published_ts >= result.ts
