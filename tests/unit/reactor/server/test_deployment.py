"""``Deployment``, the composition root: its parts share their collaborators from construction
on, it restarts on its data, ``start(background=False)`` starts no background work, and it
swaps in reloaded code and environment variables while serving.

Real deployments of a small app on SQLite in ``tmp_path``; sessions are ``Sink`` queues awaited
with a bound, and a reload's background work is awaited by its tasks, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from functions.loader import load_app
from reactor.core.runtime import SystemRuntime
from reactor.engine.transaction import SYSTEM_INDEXES
from reactor.server.deployment import ENV_GLOBAL, SCHEDULER_LEASE, Deployment
from reactor.server.outcomes import outcome_of
from reactor.storage.sqlite import SqlitePersistence
from reactor.sync.protocol import QuerySuccess
from reactor.testing import ManualClock, call, running_deployment, write_app
from schema.values import loads

pytestmark = pytest.mark.anyio

TIMEOUT = 5.0
BACKGROUND_TASKS = {"scheduler", "retention", f"lease {SCHEDULER_LEASE}"}

SCHEMA = """
    from schema import define_schema, define_table, v
    schema = define_schema({
        "tasks": define_table({"owner": v.string(), "n": v.float64()}).index("by_owner", ["owner"]),
    })
"""
TASKS = """
    from functions import mutation, query
    from schema import v

    @mutation(args={"owner": v.string(), "n": v.float64()})
    async def add(ctx, owner, n):
        return await ctx.db.insert("tasks", {"owner": owner, "n": n})

    @query(args={"id": v.id("tasks")})
    async def get(ctx, id):
        return (await ctx.db.get(id))["n"]

    @query
    async def greeting(ctx):
        return ctx.env.get("GREETING")

    @query
    async def version(ctx):
        return 1
"""
# After an edit: ``version`` changed, ``get`` is gone, a query on a new index appeared.
SCHEMA_V2 = SCHEMA.replace(
    '.index("by_owner", ["owner"])', '.index("by_owner", ["owner"]).index("by_n", ["n"])'
)
TASKS_V2 = """
    from functions import mutation, query
    from schema import v

    @mutation(args={"owner": v.string(), "n": v.float64()})
    async def add(ctx, owner, n):
        return await ctx.db.insert("tasks", {"owner": owner, "n": n})

    @query
    async def version(ctx):
        return 2

    @query
    async def by_n(ctx):
        return [t["n"] for t in await ctx.db.query("tasks").with_index("by_n").collect()]
"""


class Sink:
    """A session as live queries see it: a queue of the snapshots delivered to it."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[dict[int, Any]] = asyncio.Queue()

    def deliver(self, ts: int, outcomes: Mapping[int, Any]) -> None:
        self.deliveries.put_nowait(dict(outcomes))

    async def next_value(self, query_id: int) -> Any:
        outcome = (await asyncio.wait_for(self.deliveries.get(), TIMEOUT))[query_id]
        assert isinstance(outcome, QuerySuccess), outcome
        return None if outcome.value_json is None else loads(outcome.value_json)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", {"schema.py": SCHEMA, "tasks.py": TASKS})


@pytest.fixture
async def deployment(app_dir: Path, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running_deployment(app_dir, tmp_path / "data") as running:
        yield running


async def value(deployment: Deployment, path: str, args: dict[str, Any] | None = None) -> Any:
    result = await call(deployment, path, args)
    assert result.success, result.error_message
    return result.value


def running_task_names() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks() if not task.done()}


async def reload_settled() -> None:
    """Wait for the background work ``Deployment.reload`` started (schema, auth, crons), if
    it has not finished already (a test awaiting a re-run first may find it done)."""
    this = asyncio.current_task()
    pending = [
        task
        for task in asyncio.all_tasks()
        if task is not this
        and getattr(task.get_coro(), "__qualname__", "").startswith("Deployment._reload")
    ]
    await asyncio.wait_for(asyncio.gather(*pending), TIMEOUT)


class TestConstruction:
    async def test_every_part_gets_the_shared_collaborators(
        self, app_dir: Path, tmp_path: Path
    ) -> None:
        clock = ManualClock()
        persistence = SqlitePersistence.open(tmp_path / "data")
        d = Deployment(load_app(app_dir), persistence, runtime=clock)
        try:
            assert d.persistence is persistence
            assert d.runtime is clock
            assert d.publisher.write_log is d.write_log
            assert d.publisher.runtime is clock
            feed: Any = d.feed
            assert feed.sink is d.publisher  # the engine's feed delivers to our publisher

            committer = d.committer
            assert committer.persistence is persistence
            assert committer.publisher is d.publisher
            assert committer.write_log is d.write_log
            assert committer.tables is d.tables
            assert committer.feed is d.feed
            assert committer.runtime is clock

            database = d.database
            assert database.persistence is persistence
            assert database.committer is committer
            assert database.tables is d.tables
            assert database.served is d.served
            assert database.runtime is clock

            assert d.executor.database is database
            assert d.executor.committer is committer
            assert d.executor.persistence is persistence
            assert d.executor.runtime is clock
            assert d.executor.registry is d.registry
            assert d.subscriptions.write_log is d.write_log
            assert d.subscriptions.processed_ts == d.publisher.published_ts
            assert d.query_cache.executor is d.executor
            assert d.query_cache.subscriptions is d.subscriptions
            assert d.query_cache.encode is outcome_of

            assert d.scheduler.database is database
            assert d.scheduler.served is d.served
            assert d.files.database is database
            assert d.files.blobs is d.blobs
            assert d.jobs.scheduler is d.scheduler
            assert d.jobs.executor is d.executor
            assert d.crons.scheduler is d.scheduler
            assert d.retention.database is database
            assert d.retention.scheduler is d.scheduler
            assert d.leadership.persistence is persistence
            assert d.leadership.runtime is clock
            assert d.auth.persistence is persistence

            assert d.app is d.served.app
            assert d.registry is d.served.registry
            assert "tasks" in d.tables.unpersisted()  # schema tables are numbered up front
        finally:
            await persistence.aclose()

    async def test_the_runtime_defaults_to_the_system_clock(
        self, app_dir: Path, tmp_path: Path
    ) -> None:
        persistence = SqlitePersistence.open(tmp_path / "data")
        try:
            d = Deployment(load_app(app_dir), persistence)
            assert isinstance(d.runtime, SystemRuntime)
            assert d.committer.runtime is d.runtime
        finally:
            await persistence.aclose()

    async def test_blobs_live_beside_the_data(self, app_dir: Path, tmp_path: Path) -> None:
        persistence = SqlitePersistence.open(tmp_path / "data")
        try:
            d = Deployment(load_app(app_dir), persistence)
            assert d.blobs.directory == tmp_path / "data" / "blobs"
        finally:
            await persistence.aclose()


class TestLifecycle:
    async def test_a_restart_on_the_same_data_keeps_it(self, app_dir: Path, tmp_path: Path) -> None:
        keys: list[str] = []
        async with running_deployment(
            app_dir, tmp_path / "data", on_admin_key=keys.append
        ) as first:
            doc_id = await value(first, "tasks:add", {"owner": "ann", "n": 7})
            last_ts = first.publisher.published_ts
        assert len(keys) == 1  # created on the first start
        async with running_deployment(
            app_dir, tmp_path / "data", on_admin_key=keys.append
        ) as second:
            assert second.publisher.published_ts >= last_ts
            assert await value(second, "tasks:get", {"id": doc_id}) == 7.0
            added = await call(second, "tasks:add", {"owner": "bob", "n": 8})
            assert added.ts > last_ts
            assert second.tables.table_of_id(added.value) == "tasks"
        assert len(keys) == 1  # not created again

    async def test_background_false_starts_no_job_worker_or_lease(
        self, app_dir: Path, tmp_path: Path
    ) -> None:
        persistence = SqlitePersistence.open(tmp_path / "data")
        d = Deployment(load_app(app_dir), persistence)
        await d.start(background=False)
        try:
            assert not d.leadership.leading
            assert not BACKGROUND_TASKS & running_task_names()
            assert {"committer", "live-queries"} <= running_task_names()
            # Nobody holds the scheduler lease: another process could take it.
            assert await persistence.acquire_lease(SCHEDULER_LEASE, "someone else", 30.0)
            assert await value(d, "tasks:version") == 1
        finally:
            await d.stop()
        assert not {"committer", "live-queries"} & running_task_names()

    async def test_background_true_leads_and_runs_the_job_worker(
        self, deployment: Deployment
    ) -> None:
        assert deployment.leadership.leading
        assert BACKGROUND_TASKS <= running_task_names()
        assert not await deployment.persistence.acquire_lease(SCHEDULER_LEASE, "other", 30.0)


class TestReload:
    async def test_reload_swaps_the_served_app(self, deployment: Deployment, app_dir: Path) -> None:
        await value(deployment, "tasks:add", {"owner": "ann", "n": 2})
        await value(deployment, "tasks:add", {"owner": "ann", "n": 1})
        old_app = deployment.app
        write_app(app_dir, {"schema.py": SCHEMA_V2, "tasks.py": TASKS_V2})
        new_app = load_app(app_dir)
        deployment.reload(new_app)
        await reload_settled()
        assert deployment.app is new_app is not old_app
        assert deployment.executor.registry is new_app.registry
        assert await value(deployment, "tasks:version") == 2
        assert deployment.registry.get("tasks:get") is None
        assert await value(deployment, "tasks:by_n") == [1.0, 2.0]  # the new index is built
        assert deployment.table_indexes()["tasks"] == {"by_owner": ("owner",), "by_n": ("n",)}

    async def test_reload_reruns_live_queries_under_the_new_code(
        self, deployment: Deployment, app_dir: Path
    ) -> None:
        sink = Sink()
        deployment.query_cache.add(sink, 1, deployment.registry.resolve("tasks:version"), {})
        assert await sink.next_value(1) == 1
        write_app(app_dir, {"tasks.py": TASKS_V2})
        deployment.reload(load_app(app_dir))
        assert await sink.next_value(1) == 2
        await reload_settled()


class TestEnvironment:
    async def test_set_env_reruns_live_queries_and_persists(
        self, app_dir: Path, tmp_path: Path
    ) -> None:
        async with running_deployment(app_dir, tmp_path / "data") as d:
            sink = Sink()
            d.query_cache.add(sink, 1, d.registry.resolve("tasks:greeting"), {})
            assert await sink.next_value(1) is None
            updated = await d.set_env({"GREETING": "hello"})
            assert updated["GREETING"] == "hello"
            assert d.env is updated
            assert await sink.next_value(1) == "hello"
            assert await d.persistence.get_global(ENV_GLOBAL) == {"GREETING": "hello"}
            await d.set_env({"GREETING": None})
            assert await sink.next_value(1) is None
            await d.set_env({"GREETING": "again"})
        async with running_deployment(app_dir, tmp_path / "data") as restarted:
            assert await value(restarted, "tasks:greeting") == "again"


class TestTableIndexes:
    async def test_system_and_schema_tables_with_their_indexes(
        self, deployment: Deployment
    ) -> None:
        indexes = deployment.table_indexes()
        assert indexes == {**SYSTEM_INDEXES, "tasks": {"by_owner": ("owner",)}}
        indexes["_storage"]["extra"] = ("x",)  # a copy: the caller may change it
        assert "extra" not in deployment.table_indexes()["_storage"]
        assert "extra" not in SYSTEM_INDEXES["_storage"]

    async def test_an_app_without_a_schema_has_only_system_tables(self, tmp_path: Path) -> None:
        app = write_app(tmp_path / "bare", {"tasks.py": TASKS})
        async with running_deployment(app, tmp_path / "data") as d:
            assert d.table_indexes() == SYSTEM_INDEXES
