"""``ctx.run_query``/``ctx.run_mutation`` inside queries and mutations: nested calls in the
caller's own transaction (Convex's sub-transactions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reactor.server.deployment import Deployment
from reactor.testing import call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({
            "notes": define_table({"text": v.string()}),
            "counters": define_table({"name": v.string(), "n": v.float64()}),
        })
    """,
    "notes.py": """
        from functions import AppError, internal_mutation, internal_query, mutation, query
        from schema import v

        @query
        async def texts(ctx):
            return sorted(d["text"] for d in await ctx.db.query("notes").collect())

        @internal_query
        async def hidden_texts(ctx):
            return sorted(d["text"] for d in await ctx.db.query("notes").collect())

        @internal_mutation(args={"text": v.string()}, returns=v.id("notes"))
        async def add(ctx, text):
            return await ctx.db.insert("notes", {"text": text})

        @mutation(args={"text": v.string()})
        async def add_then_fail(ctx, text):
            await ctx.db.insert("notes", {"text": text})
            raise AppError({"code": "NESTED_FAILED"})

        @mutation
        async def write_then_read(ctx):
            await ctx.db.insert("notes", {"text": "outer"})
            return await ctx.run_query("notes:hidden_texts")

        @mutation
        async def outer_and_nested(ctx):
            await ctx.db.insert("notes", {"text": "outer"})
            nested_id = await ctx.run_mutation("notes:add", {"text": "nested"})
            return nested_id

        @mutation
        async def nested_then_fail(ctx):
            await ctx.run_mutation("notes:add", {"text": "nested"})
            raise AppError("outer failed")

        @mutation
        async def catch_nested_failure(ctx):
            await ctx.db.insert("notes", {"text": "before"})
            try:
                await ctx.run_mutation("notes:add_then_fail", {"text": "doomed"})
            except AppError as exc:
                caught = exc.data
            await ctx.db.insert("notes", {"text": "after"})
            return caught

        @mutation
        async def bad_args(ctx):
            await ctx.run_mutation("notes:add", {"text": 5})

        @query
        async def query_runs_mutation(ctx):
            return await ctx.run_query("notes:add", {"text": "x"})

        @query
        async def query_has_run_mutation(ctx):
            return hasattr(ctx, "run_mutation")

        @query(args={"n": v.float64()})
        async def recurse(ctx, n):
            return await ctx.run_query("notes:recurse", {"n": n + 1})
    """,
    "counter.py": """
        from functions import internal_mutation, internal_query, mutation
        from schema import v

        @internal_query
        async def get(ctx):
            doc = await ctx.db.query("counters").first()
            return 0 if doc is None else doc["n"]

        @internal_mutation(args={"n": v.float64()})
        async def put(ctx, n):
            doc = await ctx.db.query("counters").first()
            if doc is None:
                await ctx.db.insert("counters", {"name": "c", "n": n})
            else:
                await ctx.db.patch(doc["_id"], {"n": n})

        @mutation
        async def bump(ctx):
            n = await ctx.run_query("counter:get")
            await ctx.run_mutation("counter:put", {"n": n + 1})
    """,
}


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as s:
        yield s


async def texts(deployment: Deployment) -> list[str]:
    result = await call(deployment, "notes:texts")
    assert result.success, result.error_message
    value: list[str] = result.value
    return value


async def test_a_nested_query_sees_the_callers_writes(deployment: Deployment) -> None:
    result = await call(deployment, "notes:write_then_read")
    assert result.success, result.error_message
    assert result.value == ["outer"]


async def test_a_nested_mutations_writes_commit_with_the_callers(deployment: Deployment) -> None:
    result = await call(deployment, "notes:outer_and_nested")
    assert result.success, result.error_message
    assert isinstance(result.value, str)
    assert await texts(deployment) == ["nested", "outer"]


async def test_a_failing_caller_commits_nothing_of_its_nested_calls(
    deployment: Deployment,
) -> None:
    result = await call(deployment, "notes:nested_then_fail")
    assert not result.success
    assert await texts(deployment) == []


async def test_a_caught_failing_nested_mutation_leaves_no_writes(deployment: Deployment) -> None:
    result = await call(deployment, "notes:catch_nested_failure")
    assert result.success, result.error_message
    assert result.value == {"code": "NESTED_FAILED"}  # the error reached the caller unchanged
    assert await texts(deployment) == ["after", "before"]


async def test_nested_arguments_are_validated(deployment: Deployment) -> None:
    result = await call(deployment, "notes:bad_args")
    assert not result.success
    assert "ArgumentValidationError" in result.error_message


async def test_a_query_cannot_run_a_mutation(deployment: Deployment) -> None:
    result = await call(deployment, "notes:query_runs_mutation")
    assert not result.success
    assert "as query, but it is defined as mutation" in result.error_message.lower()
    has_it = await call(deployment, "notes:query_has_run_mutation")
    assert has_it.value is False
    assert await texts(deployment) == []


async def test_nesting_is_limited(deployment: Deployment) -> None:
    result = await call(deployment, "notes:recurse", {"n": 0})
    assert not result.success
    assert "nested more than 8 deep" in result.error_message


async def test_a_conflict_in_nested_reads_reruns_the_whole_outer_mutation(
    deployment: Deployment,
) -> None:
    conflicts_before = deployment.committer.conflicts
    first, second = await asyncio.gather(
        call(deployment, "counter:bump"), call(deployment, "counter:bump")
    )
    assert first.success and second.success, (first, second)
    assert sorted([first.attempts, second.attempts]) == [1, 2]
    assert deployment.committer.conflicts == conflicts_before + 1
    total = await deployment.executor.run_query(
        deployment.registry.resolve("counter:get", allow_internal=True), {}
    )
    assert total.value == 2
