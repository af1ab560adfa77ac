"""``LiveQueries`` on a real ``Deployment`` of a small app: what sessions receive (the injected
``encode``), de-duplication of identical results, and ``rebind`` after a reload.

Precise invalidation and sharing among many sessions are ``tests/integration/
test_invalidation.py``'s. Here a session is a ``Sink`` with a queue of deliveries, awaited with
a bound: nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from functions.loader import load_app
from reactor.engine.executor import Executor, FunctionResult
from reactor.engine.query_cache import EARLY_RUN_MAX_SESSIONS, Entry, LiveQueries
from reactor.engine.subscriptions import SubscriptionManager
from reactor.server.deployment import Deployment
from reactor.sync.protocol import QueryFailure, QuerySuccess
from reactor.testing import ManualClock, call, running_deployment, write_app
from reactor.testing.storage import HeldFsyncSqlite, held_fsync_deployment
from schema.values import loads

pytestmark = pytest.mark.anyio

TIMEOUT = 5.0

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({
            "tasks": define_table(
                {"owner": v.string(), "n": v.float64(), "label": v.string()}
            ).index("by_owner", ["owner"]),
        })
    """,
    "tasks.py": """
        from functions import mutation, query
        from schema import v

        @query(args={"owner": v.string()})
        async def mine(ctx, owner):
            q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
            return sorted(t["n"] for t in await q.collect())

        @query
        async def version(ctx):
            return 1

        @query
        async def doomed(ctx):
            return "still here"

        @mutation(args={"owner": v.string(), "n": v.float64()})
        async def add(ctx, owner, n):
            return await ctx.db.insert("tasks", {"owner": owner, "n": n, "label": ""})

        @mutation(args={"id": v.id("tasks"), "label": v.string()})
        async def relabel(ctx, id, label):
            await ctx.db.patch(id, {"label": label})
    """,
}

# The same module after an edit: ``version`` changed, ``doomed`` became a mutation.
TASKS_V2 = """
    from functions import mutation, query
    from schema import v

    @query(args={"owner": v.string()})
    async def mine(ctx, owner):
        return ["v2"]

    @query
    async def version(ctx):
        return 2

    @mutation
    async def doomed(ctx):
        return None
"""


class Sink:
    """A session as live queries see it: a queue of the snapshots delivered to it."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[tuple[int, dict[int, Any]]] = asyncio.Queue()

    def deliver(self, ts: int, outcomes: Mapping[int, Any]) -> None:
        self.deliveries.put_nowait((ts, dict(outcomes)))

    async def next(self) -> tuple[int, dict[int, Any]]:
        return await asyncio.wait_for(self.deliveries.get(), TIMEOUT)


def value_of(outcome: Any) -> Any:
    assert isinstance(outcome, QuerySuccess), outcome
    return None if outcome.value_json is None else loads(outcome.value_json)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data", runtime=ManualClock()) as running:
        yield running


def subscribe(
    live: LiveQueries, sink: Sink, query_id: int, path: str, args: dict[str, Any] | None = None
) -> None:
    spec = live.executor.registry.resolve(path)
    live.add(sink, query_id, spec, dict(args or {}))


@dataclass(frozen=True)
class Encoded:
    """An outcome of our own making: what the injected ``encode`` returns."""

    fingerprint: object
    result: FunctionResult


class TestEncode:
    async def test_sessions_receive_exactly_what_encode_returns(
        self, deployment: Deployment
    ) -> None:
        made: list[Encoded] = []

        def encode(result: FunctionResult) -> Encoded:
            made.append(Encoded(("mine", result.value_json), result))
            return made[-1]

        subscriptions: SubscriptionManager[Entry] = SubscriptionManager(
            deployment.write_log, processed_ts=deployment.publisher.published_ts
        )
        live = LiveQueries(deployment.executor, subscriptions, encode=encode)
        deployment.publisher.subscribe(live.on_commit, invalidate_all=live.invalidate_all)
        live.start()
        try:
            sink = Sink()
            subscribe(live, sink, 3, "tasks:mine", {"owner": "ann"})
            ts, outcomes = await sink.next()
            assert outcomes == {3: made[0]}
            assert outcomes[3] is made[0]
            assert made[0].result.value == []
            assert made[0].result.ts == ts

            await call(deployment, "tasks:add", {"owner": "ann", "n": 5})
            _, outcomes = await sink.next()
            assert len(made) == 2
            assert outcomes[3] is made[1]
            assert made[1].result.value == [5.0]
        finally:
            await live.stop()

    async def test_the_deployment_encodes_for_the_sync_protocol(
        self, deployment: Deployment
    ) -> None:
        sink = Sink()
        subscribe(deployment.query_cache, sink, 1, "tasks:version")
        _, outcomes = await sink.next()
        assert value_of(outcomes[1]) == 1


class TestDeduplication:
    async def test_an_identical_rerun_keeps_the_same_outcome_object(
        self, deployment: Deployment
    ) -> None:
        live = deployment.query_cache
        added = await call(deployment, "tasks:add", {"owner": "ann", "n": 1})
        sink = Sink()
        subscribe(live, sink, 0, "tasks:mine", {"owner": "ann"})
        first_ts, outcomes = await sink.next()
        first = outcomes[0]
        assert value_of(first) == [1.0]
        reruns = live.reruns

        # The write is inside the query's read set but does not change its result.
        await call(deployment, "tasks:relabel", {"id": added.value, "label": "x"})
        ts, outcomes = await sink.next()
        assert live.reruns == reruns + 1
        assert ts > first_ts
        assert outcomes[0] is first

        await call(deployment, "tasks:add", {"owner": "ann", "n": 2})
        _, outcomes = await sink.next()
        assert outcomes[0] is not first
        assert value_of(outcomes[0]) == [1.0, 2.0]


class TestRebind:
    async def test_entries_point_at_the_reloaded_functions_and_rerun(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        live = deployment.query_cache
        sink = Sink()
        subscribe(live, sink, 1, "tasks:version")
        subscribe(live, sink, 2, "tasks:mine", {"owner": "ann"})
        subscribe(live, sink, 3, "tasks:doomed")
        _, outcomes = await sink.next()
        assert value_of(outcomes[1]) == 1
        assert value_of(outcomes[3]) == "still here"
        reruns = live.reruns

        reloaded = load_app(write_app(tmp_path / "v2", {**APP, "tasks.py": TASKS_V2}))
        deployment.served.swap(reloaded)  # as Deployment.reload does: runners run the new code
        live.rebind(reloaded.registry)
        _, outcomes = await sink.next()
        assert live.reruns == reruns + 3
        assert value_of(outcomes[1]) == 2
        assert value_of(outcomes[2]) == ["v2"]
        failure = outcomes[3]  # now a mutation: a query subscription to it fails, as Convex says
        assert isinstance(failure, QueryFailure)
        assert "tasks:doomed as Query, but it is defined as Mutation" in failure.message

    async def test_a_rebound_entry_reruns_on_later_writes_too(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        live = deployment.query_cache
        sink = Sink()
        subscribe(live, sink, 1, "tasks:mine", {"owner": "bob"})
        await sink.next()
        source = APP["tasks.py"].replace('sorted(t["n"]', 'sorted(-t["n"]')
        assert source != APP["tasks.py"]
        reloaded = load_app(write_app(tmp_path / "v2", {**APP, "tasks.py": source}))
        deployment.served.swap(reloaded)  # as Deployment.reload does: runners run the new code
        live.rebind(reloaded.registry)
        _, outcomes = await sink.next()
        assert value_of(outcomes[1]) == []
        await call(deployment, "tasks:add", {"owner": "bob", "n": 4})
        _, outcomes = await sink.next()
        assert value_of(outcomes[1]) == [-4.0]  # the reloaded function ran, subscribed anew


class TestLifecycle:
    async def test_a_removed_query_is_not_rerun(self, deployment: Deployment) -> None:
        live = deployment.query_cache
        gone, kept = Sink(), Sink()
        subscribe(live, gone, 1, "tasks:mine", {"owner": "ann"})
        subscribe(live, kept, 1, "tasks:mine", {"owner": "ann"})
        subscribe(live, kept, 2, "tasks:version")
        await gone.next()
        await kept.next()
        live.remove_session(gone)
        assert len(live) == 2  # the entry lives on for the other session
        await call(deployment, "tasks:add", {"owner": "ann", "n": 1})
        _, outcomes = await kept.next()
        assert value_of(outcomes[1]) == [1.0]
        assert gone.deliveries.empty()

        live.remove(kept, 1)
        assert len(live) == 1
        reruns = live.reruns
        live.invalidate_all()
        _, outcomes = await kept.next()
        assert live.reruns == reruns + 1  # only tasks:version is left
        assert set(outcomes) == {2}


class _CommitsDuringTheFirstRun:
    """The deployment's executor, except that a commit into the query's read set lands while
    its first run is under way (after its snapshot, before its outcome): a real mutation at
    the moment a slow runner would let one through."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.inner = deployment.executor
        self.registry = deployment.executor.registry
        self.committed = False

    def snapshot_ts(self) -> int:
        return self.inner.snapshot_ts()

    async def run_query(self, *args: Any, **kwargs: Any) -> FunctionResult:
        result = await self.inner.run_query(*args, **kwargs)
        if not self.committed:
            self.committed = True
            await call(self.deployment, "tasks:add", {"owner": "ann", "n": 7})
        return result


class TestBornInvalid:
    async def test_an_outcome_stale_when_it_ends_reruns_without_another_commit(
        self, deployment: Deployment
    ) -> None:
        subscriptions: SubscriptionManager[Entry] = SubscriptionManager(
            deployment.write_log, processed_ts=deployment.publisher.published_ts
        )
        executor = cast(Executor, _CommitsDuringTheFirstRun(deployment))
        live = LiveQueries(executor, subscriptions, encode=deployment.query_cache.encode)
        deployment.publisher.subscribe(live.on_commit, invalidate_all=live.invalidate_all)
        live.start()
        try:
            sink = Sink()
            subscribe(live, sink, 1, "tasks:mine", {"owner": "ann"})
            _, outcomes = await sink.next()
            assert value_of(outcomes[1]) == []  # the snapshot it ran at, before the write
            # No commit follows: the re-run comes because the outcome was stale as it ended.
            _, outcomes = await sink.next()
            assert value_of(outcomes[1]) == [7.0]
            assert live.reruns == 2
        finally:
            await live.stop()


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[tuple[Deployment, HeldFsyncSqlite]]:
    """A deployment (real time) whose WAL fsyncs the test can hold back."""
    app = write_app(tmp_path / "app", APP)
    async with held_fsync_deployment(app, tmp_path / "data") as running:
        yield running


async def until(condition: Any) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.001)


class TestRunsDuringTheFsync:
    """A commit's invalidated live queries re-run once it is written, during its fsync; their
    outcomes reach sessions only once it is published, and need no second run then."""

    async def test_the_rerun_starts_at_the_write_and_is_delivered_at_publication(
        self, held: tuple[Deployment, HeldFsyncSqlite]
    ) -> None:
        deployment, persistence = held
        live = deployment.query_cache
        sink = Sink()
        subscribe(live, sink, 1, "tasks:mine", {"owner": "ann"})
        _, outcomes = await sink.next()
        assert value_of(outcomes[1]) == []
        reruns = live.reruns
        persistence.hold()
        add = asyncio.ensure_future(call(deployment, "tasks:add", {"owner": "ann", "n": 1}))
        await until(persistence.held.is_set)
        entry = live._sessions[sink][1]
        await until(lambda: entry.ts > deployment.publisher.published_ts)  # ran, not durable
        assert live.reruns == reruns + 1
        await asyncio.sleep(0.05)
        assert sink.deliveries.empty() and not add.done()  # nothing shown before it is durable
        persistence.release()
        written = await asyncio.wait_for(add, TIMEOUT)
        ts, outcomes = await sink.next()
        assert value_of(outcomes[1]) == [1.0]
        assert ts >= entry.ts and deployment.publisher.published_ts >= ts
        assert written.success
        assert live.reruns == reruns + 1  # its publication did not run it again

    async def test_a_widely_watched_query_reruns_at_publication(
        self, held: tuple[Deployment, HeldFsyncSqlite]
    ) -> None:
        deployment, persistence = held
        live = deployment.query_cache
        sinks = [Sink() for _ in range(EARLY_RUN_MAX_SESSIONS + 1)]
        for sink in sinks:
            subscribe(live, sink, 1, "tasks:mine", {"owner": "ann"})
            await sink.next()
        reruns = live.reruns
        persistence.hold()
        add = asyncio.ensure_future(call(deployment, "tasks:add", {"owner": "ann", "n": 1}))
        await until(persistence.held.is_set)
        await asyncio.sleep(0.05)
        assert live.reruns == reruns  # its fan-out would go out ahead of the mutation's answer
        persistence.release()
        await asyncio.wait_for(add, TIMEOUT)
        for sink in sinks:
            _, outcomes = await sink.next()
            assert value_of(outcomes[1]) == [1.0]
        assert live.reruns == reruns + 1
