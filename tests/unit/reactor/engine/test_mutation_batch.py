"""``FunctionRunner.mutation_batch``: several mutations in one transaction, in order, each seeing
the writes of those before it, a failed one leaving none, and one commit of them all; in the
server's process and through a function runner (the wire both ways)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactor.engine import invocation, transaction
from reactor.engine.invocation import MutationBatch, MutationCall
from reactor.runners.pool import RunnerSettings
from reactor.server.deployment import Deployment
from reactor.testing import call, running_deployment, write_app
from schema.errors import OptimisticConcurrencyError

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({
            "counters": define_table({"n": v.float64()}),
            "notes": define_table({"k": v.float64()}),
        })
    """,
    "counters.py": """
        from functions import mutation, query
        from schema import v

        @mutation
        async def create(ctx):
            return await ctx.db.insert("counters", {"n": 0.0})

        @mutation(args={"id": v.id("counters"), "fail": v.optional(v.boolean())})
        async def bump(ctx, id, fail=False):
            doc = await ctx.db.get(id)
            await ctx.db.patch(id, {"n": doc["n"] + 1})
            if fail:
                raise ValueError("refused after its write")
            print("bumped from", doc["n"])
            return doc["n"]

        @mutation(args={"count": v.float64()})
        async def notes(ctx, count):
            for k in range(int(count)):
                await ctx.db.insert("notes", {"k": float(k)})

        @mutation(args={"id": v.id("counters")})
        async def crash(ctx, id):
            import os

            os._exit(3)

        @query(args={"id": v.id("counters")})
        async def get(ctx, id):
            return (await ctx.db.get(id))["n"]
    """,
}


@pytest.fixture(params=["in-process", "runner"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    options: dict[str, Any] = {}
    if request.param == "runner":
        options["runners"] = RunnerSettings(query_runners=1, action_runners=1)
    async with running_deployment(app, tmp_path / "data", background=False, **options) as running:
        yield running


async def create(deployment: Deployment) -> str:
    result = await call(deployment, "counters:create")
    assert result.success, result.error_message
    doc_id: str = result.value
    return doc_id


async def run_batch(deployment: Deployment, calls: list[MutationCall]) -> tuple[MutationBatch, int]:
    ts = deployment.database.mutation_snapshot_ts()
    return await deployment.executor.runner.mutation_batch(calls, ts=ts), ts


def bumps(doc: str, *fails: bool) -> list[MutationCall]:
    return [MutationCall("counters:bump", {"id": doc, "fail": fail}) for fail in fails]


async def test_each_sees_the_writes_before_it_and_a_failed_one_leaves_none(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    batch, ts = await run_batch(deployment, bumps(doc, False, True, False, False))
    results = batch.results
    assert [r.success for r in results] == [True, False, True, True]
    assert [r.value for r in results if r.success] == [0.0, 1.0, 2.0]
    assert "refused after its write" in (results[1].traceback or "")
    assert [r.log_lines for r in results if r.success] == [
        (f"[LOG] bumped from {n}",) for n in ("0.0", "1.0", "2.0")
    ]
    assert [r.documents_written for r in results] == [1, 0, 1, 1]
    assert all(r.ts == ts for r in results)
    assert batch.commit is not None
    await deployment.committer.commit(batch.commit)
    result = await call(deployment, "counters:get", {"id": doc})
    assert result.value == 3.0


async def test_the_commit_carries_every_read(deployment: Deployment) -> None:
    doc = await create(deployment)
    batch, _ = await run_batch(deployment, bumps(doc, True, False))
    assert batch.commit is not None
    await call(deployment, "counters:bump", {"id": doc})  # a write to what the batch read
    with pytest.raises(OptimisticConcurrencyError):
        await deployment.committer.commit(batch.commit)
    assert (await call(deployment, "counters:get", {"id": doc})).value == 1.0


async def test_a_batch_where_none_succeeds_has_no_commit(deployment: Deployment) -> None:
    doc = await create(deployment)
    batch, _ = await run_batch(deployment, bumps(doc, True, True))
    assert [r.success for r in batch.results] == [False, False]
    assert batch.commit is None


@pytest.mark.parametrize("deployment", ["in-process"], indirect=True)
async def test_a_mutation_over_a_limit_the_others_used_up_in_part_does_not_run(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transaction, "MAX_WRITES", 5)
    notes = [MutationCall("counters:notes", {"count": 3.0}) for _ in range(3)]
    batch, _ = await run_batch(deployment, notes)
    assert [r.success for r in batch.results] == [True]  # the second would write 6 of 5
    assert batch.commit is not None and len(batch.commit.writes) == 3
    alone, _ = await run_batch(deployment, [MutationCall("counters:notes", {"count": 6.0})])
    assert [r.success for r in alone.results] == [False]  # over the limit alone: it fails
    assert "Too many" in (alone.results[0].traceback or alone.results[0].error_message)


@pytest.mark.parametrize("deployment", ["in-process"], indirect=True)
async def test_a_batch_starts_no_mutation_after_its_time(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = await create(deployment)
    monkeypatch.setattr(invocation, "BATCH_TIME_S", -1.0)
    batch, _ = await run_batch(deployment, bumps(doc, False, False, False))
    assert [r.value for r in batch.results] == [0.0]  # the first always runs


@pytest.mark.parametrize("deployment", ["runner"], indirect=True)
async def test_a_batch_whose_runner_died_has_no_outcome(deployment: Deployment) -> None:
    doc = await create(deployment)
    calls = [*bumps(doc, False), MutationCall("counters:crash", {"id": doc}), *bumps(doc, False)]
    batch, _ = await run_batch(deployment, calls)
    assert batch == MutationBatch([], None)  # each runs again: nothing committed
    batch, _ = await run_batch(deployment, bumps(doc, False))  # on the runner replacing it
    assert [r.value for r in batch.results] == [0.0]


async def test_one_stopped_at_a_hot_read_leaves_no_write_and_the_others_go_on(
    deployment: Deployment,
) -> None:
    doc, hot = await create(deployment), await create(deployment)
    calls = [*bumps(doc, False), *bumps(hot, False), *bumps(doc, False)]
    ts = deployment.database.mutation_snapshot_ts()
    batch = await deployment.executor.runner.mutation_batch(calls, ts=ts, hot=frozenset([hot]))
    assert [(r.success, r.deferred) for r in batch.results] == [
        (True, None),
        (False, hot),
        (True, None),
    ]
    assert [r.value for r in batch.results if r.success] == [0.0, 1.0]
    assert batch.commit is not None
    assert [doc_id for _, doc_id, _ in batch.commit.writes] == [doc]
