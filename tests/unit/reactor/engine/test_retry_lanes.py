"""The executor's retry lanes: after a conflict, re-runs of mutations that write the same
document take turns, re-runs about other documents go on beside them, and while re-runs queue
on a document a newcomer writing it joins the queue instead of beating them to it.

Conflicts are made deterministic as in ``test_executor``: the app's mutation awaits hooks
between its read and its write, per document; tests commit conflicting writes there, or hold
a re-run at a gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reactor.engine.executor import FunctionResult
from reactor.server.deployment import Deployment
from reactor.testing import ManualClock, call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"counters": define_table({"n": v.float64()})})
    """,
    "counters.py": """
        from functions import mutation, query
        from schema import v

        # id -> hooks awaited between the read and the write of ``bump`` of that document.
        HOOKS = {}

        @mutation
        async def create(ctx):
            return await ctx.db.insert("counters", {"n": 0.0})

        @mutation(args={"id": v.id("counters"), "fail": v.optional(v.boolean())})
        async def bump(ctx, id, fail=False):
            doc = await ctx.db.get(id)
            for hook in list(HOOKS.get(id, [])):
                await hook()
            await ctx.db.patch(id, {"n": doc["n"] + 1})
            if fail:
                raise ValueError("refused after its write")
            return doc["n"]

        # The tags of the runs of ``bump_tagged`` that got past their read.
        RUNS = []

        @mutation(args={"id": v.id("counters"), "tag": v.string(), "swallow": v.boolean()})
        async def bump_tagged(ctx, id, tag, swallow):
            try:
                doc = await ctx.db.get(id)
            except BaseException:
                if not swallow:
                    raise
                doc = {"n": -1000.0}  # what a careless handler might go on with
            RUNS.append(tag)
            await ctx.db.patch(id, {"n": doc["n"] + 1})
            return doc["n"]

        @query(args={"id": v.id("counters")})
        async def get(ctx, id):
            return (await ctx.db.get(id))["n"]
    """,
}

Hook = Callable[[], Awaitable[None]]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    clock = ManualClock(autojump=True)
    async with running_deployment(
        app, tmp_path / "data", runtime=clock, background=False
    ) as running:
        yield running


async def create(deployment: Deployment) -> str:
    result = await call(deployment, "counters:create")
    assert result.success, result.error_message
    doc_id: str = result.value
    return doc_id


def hooks(deployment: Deployment, doc_id: str) -> list[Hook]:
    table: dict[str, list[Hook]] = deployment.app.modules["counters"].HOOKS
    return table.setdefault(doc_id, [])


def conflict_once(deployment: Deployment, doc_id: str) -> Hook:
    """Commits ``n = n + 100`` to ``doc_id`` the first time it is awaited."""
    done = [False]

    async def write() -> None:
        if done[0]:
            return
        done[0] = True
        txn = deployment.database.begin(writable=True)
        doc = await txn.get(doc_id)
        assert doc is not None
        await txn.patch(doc_id, {"n": doc["n"] + 100})
        await deployment.committer.commit(txn.prepare_commit())

    return write


def gate_on_rerun(gate: asyncio.Event, held: asyncio.Event) -> Hook:
    """From its second await on (the re-run), says it is ``held`` and waits for ``gate``."""
    calls = [0]

    async def wait() -> None:
        calls[0] += 1
        if calls[0] >= 2:
            held.set()
            await gate.wait()

    return wait


def bump(
    deployment: Deployment, doc_id: str, *, fail: bool = False, key: tuple[str, int] | None = None
) -> asyncio.Task[FunctionResult]:
    args: dict[str, Any] = {"id": doc_id, "fail": fail}
    if key is None:
        return asyncio.ensure_future(call(deployment, "counters:bump", args))
    spec = deployment.registry.resolve("counters:bump")
    return asyncio.ensure_future(deployment.executor.run_mutation(spec, args, idempotency_key=key))


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def queued_lanes(deployment: Deployment) -> int:
    """Lanes with a holder and at least one waiter."""
    lanes: Any = deployment.executor._lanes._lanes
    return sum(1 for lane in lanes.values() if lane.users > 1)


async def queue_two_reruns(
    deployment: Deployment, doc: str, gate: asyncio.Event
) -> tuple[asyncio.Task[FunctionResult], asyncio.Task[FunctionResult]]:
    """Two bumps of ``doc`` that conflicted: the first one's re-run holds the lane, waiting
    for ``gate``; the second one's waits for the lane (a queue). The hooks are left empty."""
    held = asyncio.Event()
    hooks(deployment, doc).extend([conflict_once(deployment, doc), gate_on_rerun(gate, held)])
    first = bump(deployment, doc)
    await asyncio.wait_for(held.wait(), 10)
    hooks(deployment, doc).clear()
    hooks(deployment, doc).append(conflict_once(deployment, doc))
    second = bump(deployment, doc)
    await until(lambda: queued_lanes(deployment) == 1)
    hooks(deployment, doc).clear()
    return first, second


async def test_reruns_about_other_documents_do_not_wait_for_each_other(
    deployment: Deployment,
) -> None:
    a, b = await create(deployment), await create(deployment)
    gate, held = asyncio.Event(), asyncio.Event()
    hooks(deployment, a).extend([conflict_once(deployment, a), gate_on_rerun(gate, held)])
    hooks(deployment, b).append(conflict_once(deployment, b))
    first = bump(deployment, a)
    await asyncio.wait_for(held.wait(), 10)  # a's re-run holds a's lane, at the gate
    other = await asyncio.wait_for(bump(deployment, b), 10)  # one lane for all would wait
    assert (other.success, other.attempts, other.value) == (True, 2, 100.0)
    assert not first.done()
    gate.set()
    result = await asyncio.wait_for(first, 10)
    assert (result.success, result.attempts, result.value) == (True, 2, 100.0)
    assert [await call_get(deployment, doc) for doc in (a, b)] == [101.0, 101.0]


async def test_a_newcomer_joins_the_queue_of_reruns_on_its_document(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    commits = deployment.committer.commits
    newcomer = bump(deployment, doc)  # runs without conflict, but must not commit first
    for _ in range(200):
        await asyncio.sleep(0)
    assert not newcomer.done() and deployment.committer.commits == commits
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, newcomer)]
    assert all(r.success for r in results), [r.error_message for r in results]
    # The first re-run read before the second conflicting write (made while it waited at the
    # gate), so it ran a third time; the newcomer's one run that did not commit counts too.
    assert [r.attempts for r in results] == [3, 2, 2]
    # Two conflicting writes of 100 and three bumps, each applied once, in turn.
    assert await call_get(deployment, doc) == 203.0
    assert sorted(r.value for r in results) == [200.0, 201.0, 202.0]


async def test_a_single_rerun_still_races_newcomers(deployment: Deployment) -> None:
    doc = await create(deployment)
    gate, held = asyncio.Event(), asyncio.Event()
    hooks(deployment, doc).extend([conflict_once(deployment, doc), gate_on_rerun(gate, held)])
    first = bump(deployment, doc)
    await asyncio.wait_for(held.wait(), 10)
    hooks(deployment, doc).clear()
    newcomer = await asyncio.wait_for(bump(deployment, doc), 10)  # nobody queues: it commits
    assert (newcomer.success, newcomer.attempts) == (True, 1)
    gate.set()
    result = await asyncio.wait_for(first, 10)
    assert (result.success, result.attempts) == (True, 3)  # its re-run conflicted once more
    assert await call_get(deployment, doc) == 102.0


async def call_get(deployment: Deployment, doc_id: str) -> float:
    result = await call(deployment, "counters:get", {"id": doc_id})
    assert result.success, result.error_message
    value: float = result.value
    return value


@pytest.mark.parametrize("swallow", [False, True])
async def test_a_first_run_reading_a_queued_document_stops_at_that_read(
    deployment: Deployment, swallow: bool
) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    args = {"id": doc, "tag": "newcomer", "swallow": swallow}
    newcomer = asyncio.ensure_future(call(deployment, "counters:bump_tagged", args))
    for _ in range(200):
        await asyncio.sleep(0)
    runs: list[str] = deployment.app.modules["counters"].RUNS
    # Stopped at its read; a handler that caught that went on, but its outcome is dropped.
    assert runs == (["newcomer"] if swallow else [])
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, newcomer)]
    assert all(r.success for r in results), [r.error_message for r in results]
    assert runs.count("newcomer") == len(runs) == (2 if swallow else 1)  # then, in its turn
    assert (results[2].attempts, results[2].deferred_runs) == (2, 1)
    assert await call_get(deployment, doc) == 203.0
    assert sorted(r.value for r in results) == [200.0, 201.0, 202.0]


async def queue_newcomers(
    deployment: Deployment, tasks: list[asyncio.Task[FunctionResult]]
) -> list[asyncio.Task[FunctionResult]]:
    """Wait until each of ``tasks`` (first runs while re-runs queue) waits in the lane."""
    lanes: Any = deployment.executor._lanes._lanes
    await until(lambda: sum(lane.users for lane in lanes.values()) == 2 + len(tasks))
    assert not any(task.done() for task in tasks)
    return tasks


async def test_the_reruns_waiting_for_a_turn_ride_along_in_one_transaction(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    newcomers = await queue_newcomers(deployment, [bump(deployment, doc) for _ in range(3)])
    commits = deployment.committer.commits
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, *newcomers)]
    assert all(r.success for r in results), [r.error_message for r in results]
    # The first re-run conflicted once more (the second's conflicting write), then ran the
    # four waiting after it in the same transaction, in their order: one commit for five.
    assert [r.batched for r in results] == [5] * 5
    assert [r.value for r in results] == [200.0, 201.0, 202.0, 203.0, 204.0]
    assert len({r.ts for r in results}) == 1
    assert deployment.committer.commits == commits + 1
    assert [r.documents_written for r in results] == [1] * 5
    assert await call_get(deployment, doc) == 205.0


async def test_a_rider_that_fails_leaves_no_write_and_the_others_commit(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    failing, last = await queue_newcomers(
        deployment, [bump(deployment, doc, fail=True), bump(deployment, doc)]
    )
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, failing, last)]
    assert [r.success for r in results] == [True, True, False, True]
    assert "refused after its write" in (results[2].traceback or "")
    assert [r.value for r in results if r.success] == [200.0, 201.0, 202.0]
    assert await call_get(deployment, doc) == 203.0


async def test_riders_leave_their_idempotency_records(deployment: Deployment) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    keyed = await queue_newcomers(
        deployment, [bump(deployment, doc, key=("session", n)) for n in (1, 2)]
    )
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, *keyed)]
    assert [r.batched for r in results] == [4] * 4
    for n, result in zip((1, 2), results[2:], strict=True):
        stored = await deployment.persistence.lookup_mutation("session", n)
        assert stored == (result.ts, result.value_json)


async def test_a_rider_of_another_function_waits_for_its_own_turn(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    args = {"id": doc, "tag": "other", "swallow": False}
    other = asyncio.ensure_future(call(deployment, "counters:bump_tagged", args))
    other, same = await queue_newcomers(deployment, [other, bump(deployment, doc)])
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, same, other)]
    assert all(r.success for r in results), [r.error_message for r in results]
    assert [r.batched for r in results] == [3, 3, 3, 0]
    assert await call_get(deployment, doc) == 204.0


async def test_riders_of_a_rerun_whose_client_left_get_their_outcomes_once(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    gate, paused, resume = asyncio.Event(), asyncio.Event(), asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    (newcomer,) = await queue_newcomers(deployment, [bump(deployment, doc)])

    async def pause_once() -> None:
        if not paused.is_set():
            paused.set()
            await resume.wait()

    hooks(deployment, doc).append(pause_once)
    gate.set()  # the first re-run conflicts once more, then runs the others along: paused
    await asyncio.wait_for(paused.wait(), 10)
    first.cancel()  # its client left while the batch runs
    resume.set()
    results = [await asyncio.wait_for(task, 10) for task in (second, newcomer)]
    assert [(r.success, r.batched) for r in results] == [(True, 3), (True, 3)]
    assert [r.value for r in results] == [201.0, 202.0]
    # The batch committed, the cancelled head's bump with it; no rider ran twice.
    assert await call_get(deployment, doc) == 203.0
    assert first.cancelled()


class Crowded:
    """The deployment's function runner with no room for a call until ``free`` is set (as
    runners all busy): first runs gather meanwhile."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.free = asyncio.Event()
        self.batches: list[int] = []

    def has_room(self, path: str) -> bool:
        return self.free.is_set()

    async def room(self, path: str) -> None:
        await self.free.wait()

    async def mutation_batch(self, calls: list[Any], *, ts: int, hot: Any = None) -> Any:
        self.batches.append(len(calls))
        return await self.inner.mutation_batch(calls, ts=ts, hot=hot)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def crowd(deployment: Deployment) -> Crowded:
    crowded = Crowded(deployment.executor.runner)
    deployment.executor.runner = crowded
    return crowded


async def gathered(deployment: Deployment, count: int) -> None:
    gatherings: dict[str, list[Any]] = deployment.executor._gatherings
    await until(lambda: sum(len(g) for g in gatherings.values()) == count)


async def test_first_runs_gather_while_the_runners_have_no_room(deployment: Deployment) -> None:
    docs = [await create(deployment) for _ in range(4)]
    crowded = crowd(deployment)
    commits = deployment.committer.commits
    tasks = [bump(deployment, doc, key=("session", n)) for n, doc in enumerate(docs)]
    await gathered(deployment, 4)
    assert not any(task.done() for task in tasks)
    crowded.free.set()
    results = [await asyncio.wait_for(task, 10) for task in tasks]
    assert all(r.success for r in results), [r.error_message for r in results]
    assert crowded.batches == [4]
    assert [(r.batched, r.attempts, r.value) for r in results] == [(4, 1, 0.0)] * 4
    assert deployment.committer.commits == commits + 1
    for n, result in enumerate(results):
        stored = await deployment.persistence.lookup_mutation("session", n)
        assert stored == (result.ts, result.value_json)
    assert [await call_get(deployment, doc) for doc in docs] == [1.0] * 4


async def test_a_gathering_whose_commit_conflicts_runs_each_again_alone(
    deployment: Deployment,
) -> None:
    doc = await create(deployment)
    crowded = crowd(deployment)
    tasks = [bump(deployment, doc) for _ in range(3)]
    await gathered(deployment, 3)
    hooks(deployment, doc).append(conflict_once(deployment, doc))  # during the batch's run
    crowded.free.set()
    results = [await asyncio.wait_for(task, 10) for task in tasks]
    assert all(r.success for r in results), [r.error_message for r in results]
    assert crowded.batches == [3]  # then each alone: their commits take turns
    assert all(r.attempts >= 2 and r.batched == 0 for r in results)
    assert sorted(r.value for r in results) == [100.0, 101.0, 102.0]
    assert await call_get(deployment, doc) == 103.0


async def test_a_first_run_leaving_a_gathering_is_not_run(deployment: Deployment) -> None:
    docs = [await create(deployment) for _ in range(3)]
    crowded = crowd(deployment)
    tasks = [bump(deployment, doc) for doc in docs]
    await gathered(deployment, 3)
    tasks[1].cancel()
    crowded.free.set()
    results = [await asyncio.wait_for(tasks[n], 10) for n in (0, 2)]
    assert [(r.success, r.batched) for r in results] == [(True, 2), (True, 2)]
    assert [await call_get(deployment, doc) for doc in docs] == [1.0, 0.0, 1.0]


async def test_gathered_first_runs_stop_at_hot_reads_and_the_others_commit(
    deployment: Deployment,
) -> None:
    doc, other = await create(deployment), await create(deployment)
    gate = asyncio.Event()
    first, second = await queue_two_reruns(deployment, doc, gate)
    crowded = crowd(deployment)
    hot, cold = bump(deployment, doc), bump(deployment, other)
    await gathered(deployment, 2)
    crowded.free.set()
    result = await asyncio.wait_for(cold, 10)
    assert (result.success, result.batched, result.deferred_runs) == (True, 2, 0)
    assert crowded.batches == [2]
    assert not hot.done()  # stopped at its read of ``doc``: waiting for its turn
    gate.set()
    results = [await asyncio.wait_for(task, 10) for task in (first, second, hot)]
    assert all(r.success for r in results), [r.error_message for r in results]
    assert results[2].deferred_runs == 1
    assert await call_get(deployment, doc) == 203.0
    assert await call_get(deployment, other) == 1.0
