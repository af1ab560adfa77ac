"""Precise invalidation: a write re-runs exactly the live queries whose read ranges it touched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reactor.server.deployment import Deployment
from reactor.sync.protocol import QueryOutcome, QuerySuccess
from reactor.testing import call, running_deployment, write_app
from schema.values import loads

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({
            "tasks": define_table({"owner": v.string(), "n": v.float64()}).index(
                "by_owner", ["owner", "n"]
            ),
            "other": define_table({"x": v.float64()}),
        })
    """,
    "tasks.py": """
        from functions import mutation, query
        from schema import v

        @query(args={"owner": v.string()})
        async def mine(ctx, owner):
            q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
            return [t["n"] for t in await q.collect()]

        @query(args={"owner": v.string(), "lo": v.float64(), "hi": v.float64()})
        async def between(ctx, owner, lo, hi):
            q = ctx.db.query("tasks").with_index(
                "by_owner", lambda r: r.eq("owner", owner).gt("n", lo).lt("n", hi))
            return [t["n"] for t in await q.collect()]

        @query(args={"owner": v.string(), "k": v.float64()})
        async def first_k(ctx, owner, k):
            q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
            return [t["n"] for t in await q.take(int(k))]

        @query
        async def count(ctx):
            return len(await ctx.db.query("tasks").collect())

        @mutation(args={"owner": v.string(), "n": v.float64()})
        async def add(ctx, owner, n):
            return await ctx.db.insert("tasks", {"owner": owner, "n": n})

        @mutation(args={"id": v.id("tasks"), "n": v.float64()})
        async def move(ctx, id, n):
            await ctx.db.patch(id, {"n": n})

        @mutation
        async def unrelated(ctx):
            await ctx.db.insert("other", {"x": 1.0})
    """,
}


class Sink:
    """A session as live queries see it: it records every snapshot delivered."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[int, dict[int, QueryOutcome]]] = []
        self.event = asyncio.Event()

    def deliver(self, ts: int, outcomes: Mapping[int, QueryOutcome]) -> None:
        self.snapshots.append((ts, dict(outcomes)))
        self.event.set()

    def value(self, query_id: int) -> Any:
        for _, outcomes in reversed(self.snapshots):
            if query_id in outcomes:
                return value_of(outcomes[query_id])
        raise KeyError(query_id)


def value_of(outcome: QueryOutcome) -> Any:
    """The decoded result of a query that succeeded."""
    assert isinstance(outcome, QuerySuccess), outcome
    return None if outcome.value_json is None else loads(outcome.value_json)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as s:
        yield s


async def settle(deployment: Deployment) -> None:
    """Wait until the live-query loop has nothing left to do: no entry to run, no run under
    way (its outcome is delivered as it ends) and no session waiting for a snapshot."""
    for _ in range(2000):
        await asyncio.sleep(0.005)
        live = deployment.query_cache
        if not live._dirty and not live._pending and not live._running:
            await asyncio.sleep(0.005)
            if not live._dirty and not live._pending and not live._running:
                return
    raise AssertionError("live queries never settled")


def subscribe(
    deployment: Deployment, sink: Sink, query_id: int, path: str, args: dict[str, Any]
) -> None:
    spec = deployment.registry.resolve(path)
    deployment.query_cache.add(sink, query_id, spec, args)


async def test_one_write_among_a_thousand_owners_reruns_exactly_one_query(
    deployment: Deployment,
) -> None:
    sinks = [Sink() for _ in range(1000)]
    for i, sink in enumerate(sinks):
        subscribe(deployment, sink, 0, "tasks:mine", {"owner": f"owner{i}"})
    await settle(deployment)
    assert len(deployment.query_cache) == 1000
    before = deployment.query_cache.reruns
    await call(deployment, "tasks:add", {"owner": "owner500", "n": 1})
    await settle(deployment)
    assert deployment.query_cache.reruns - before == 1
    assert sinks[500].value(0) == [1.0]
    assert len(sinks[499].snapshots) == 1  # only the initial result

    before = deployment.query_cache.reruns
    await call(deployment, "tasks:unrelated")
    await settle(deployment)
    assert deployment.query_cache.reruns == before


async def test_identical_queries_share_one_run(deployment: Deployment) -> None:
    sinks = [Sink() for _ in range(50)]
    for sink in sinks:
        subscribe(deployment, sink, 7, "tasks:mine", {"owner": "shared"})
    await settle(deployment)
    assert len(deployment.query_cache) == 1
    before = deployment.query_cache.reruns
    await call(deployment, "tasks:add", {"owner": "shared", "n": 3})
    await settle(deployment)
    assert deployment.query_cache.reruns - before == 1
    assert all(sink.value(7) == [3.0] for sink in sinks)


async def test_phantom_insert_inside_a_scanned_range_invalidates(deployment: Deployment) -> None:
    sink = Sink()
    subscribe(deployment, sink, 1, "tasks:between", {"owner": "a", "lo": 10, "hi": 20})
    await settle(deployment)
    assert sink.value(1) == []
    before = deployment.query_cache.reruns
    await call(deployment, "tasks:add", {"owner": "a", "n": 25})  # outside the range
    await call(deployment, "tasks:add", {"owner": "b", "n": 15})  # another owner
    await settle(deployment)
    assert deployment.query_cache.reruns == before
    await call(deployment, "tasks:add", {"owner": "a", "n": 15})  # a phantom inside it
    await settle(deployment)
    assert deployment.query_cache.reruns == before + 1
    assert sink.value(1) == [15.0]


async def test_take_depends_only_on_the_prefix_it_read(deployment: Deployment) -> None:
    for n in (1, 2, 3, 4, 5):
        await call(deployment, "tasks:add", {"owner": "p", "n": n})
    sink = Sink()
    subscribe(deployment, sink, 1, "tasks:first_k", {"owner": "p", "k": 2})
    await settle(deployment)
    assert sink.value(1) == [1.0, 2.0]
    before = deployment.query_cache.reruns
    await call(deployment, "tasks:add", {"owner": "p", "n": 9})  # beyond the prefix
    await settle(deployment)
    assert deployment.query_cache.reruns == before
    await call(deployment, "tasks:add", {"owner": "p", "n": 1.5})  # inside the prefix
    await settle(deployment)
    assert deployment.query_cache.reruns == before + 1
    assert sink.value(1) == [1.0, 1.5]


async def test_an_update_moving_a_document_out_of_a_range_invalidates(
    deployment: Deployment,
) -> None:
    created = await call(deployment, "tasks:add", {"owner": "m", "n": 12})
    sink = Sink()
    subscribe(deployment, sink, 1, "tasks:between", {"owner": "m", "lo": 10, "hi": 20})
    await settle(deployment)
    assert sink.value(1) == [12.0]
    await call(deployment, "tasks:move", {"id": created.value, "n": 50})  # old key in range
    await settle(deployment)
    assert sink.value(1) == []


async def test_all_queries_of_a_session_come_at_one_timestamp(deployment: Deployment) -> None:
    sink = Sink()
    subscribe(deployment, sink, 1, "tasks:mine", {"owner": "c"})
    subscribe(deployment, sink, 2, "tasks:count", {})
    await settle(deployment)
    for n in range(5):
        await call(deployment, "tasks:add", {"owner": "c", "n": n})
    await settle(deployment)
    # In every snapshot, the list and the count agree: they were computed at one ts.
    last: dict[int, Any] = {}
    for _ts, outcomes in sink.snapshots:
        for query_id, outcome in outcomes.items():
            last[query_id] = value_of(outcome)
        if 1 in last and 2 in last:
            assert len(last[1]) == last[2]
    assert last[2] == 5


async def test_results_are_shared_across_users_only_if_identity_was_not_read(
    tmp_path: Path,
) -> None:
    app = write_app(
        tmp_path / "whoapp",
        {
            "who.py": """
        from functions import query

        @query
        async def me(ctx):
            identity = await ctx.auth.get_user_identity()
            return None if identity is None else identity["subject"]

        @query
        async def plain(ctx):
            return 1
    """
        },
    )
    x = {"subject": "x", "tokenIdentifier": "i|x"}
    y = {"subject": "y", "tokenIdentifier": "i|y"}
    async with running_deployment(app, tmp_path / "whodata") as deployment:
        me, plain = deployment.registry.resolve("who:me"), deployment.registry.resolve("who:plain")
        a, b, c = Sink(), Sink(), Sink()
        deployment.query_cache.add(a, 0, me, {}, identity=x)
        deployment.query_cache.add(a, 1, plain, {}, identity=x)
        deployment.query_cache.add(b, 0, me, {}, identity=y)
        deployment.query_cache.add(b, 1, plain, {}, identity=y)
        deployment.query_cache.add(c, 0, me, {})
        await settle(deployment)
        assert (a.value(0), b.value(0), c.value(0)) == ("x", "y", None)
        assert a.value(1) == b.value(1) == 1.0
        assert len(deployment.query_cache) == 4  # one `plain` for everyone, one `me` per identity
