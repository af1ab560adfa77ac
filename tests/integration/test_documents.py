"""Document semantics on the real engine: pagination (reactive, gapless), canonical values,
read-only queries, schema flags, and index back-fill after a schema change."""

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

SCHEMA = """
    from schema import define_schema, define_table, v
    schema = define_schema({
        "items": define_table({"n": v.float64(), "tag": v.string()}).index("by_n", ["n"]),
    }, strict_table_name_types=False)
"""

ITEMS = """
    from functions import mutation, query
    from schema import v

    @query(args={"numItems": v.float64(), "cursor": v.union(v.string(), v.null())})
    async def page(ctx, numItems, cursor):
        return await ctx.db.query("items").with_index("by_n").paginate(
            {"numItems": numItems, "cursor": cursor})

    @mutation(args={"n": v.float64()})
    async def add(ctx, n):
        return await ctx.db.insert("items", {"n": n, "tag": "t"})

    @mutation
    async def loose(ctx):
        doc_id = await ctx.db.insert("scratch", {"count": 1, "nested": {"k": [2]}})
        return await ctx.db.get(doc_id)

    @query
    async def sneaky_write(ctx):
        await ctx.db.insert("items", {"n": 1.0, "tag": "x"})

    @query(args={"tag": v.string()})
    async def by_tag(ctx, tag):
        return [d["n"] for d in await ctx.db.query("items").with_index(
            "by_tag", lambda r: r.eq("tag", tag)).collect()]
"""


class Sink:
    def __init__(self) -> None:
        self.latest: dict[int, Any] = {}
        self.journals: dict[int, str | None] = {}

    def deliver(self, ts: int, outcomes: Mapping[int, QueryOutcome]) -> None:
        for query_id, outcome in outcomes.items():
            assert isinstance(outcome, QuerySuccess), outcome
            value_json = outcome.value_json
            self.latest[query_id] = None if value_json is None else loads(value_json)
            self.journals[query_id] = outcome.journal


async def settle(deployment: Deployment) -> None:
    """Wait until the live-query loop has nothing left to do: no entry to run, no run under
    way (its outcome is delivered as it ends) and no session waiting for a snapshot."""
    live = deployment.query_cache
    for _ in range(2000):
        await asyncio.sleep(0.005)
        if not live._dirty and not live._pending and not live._running:
            return
    raise AssertionError("live queries never settled")


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", {"schema.py": SCHEMA, "items.py": ITEMS})
    async with running_deployment(app, tmp_path / "data") as s:
        yield s


async def test_reactive_pages_grow_and_never_leave_gaps(deployment: Deployment) -> None:
    for n in (10, 20, 30, 40, 50):
        await call(deployment, "items:add", {"n": n})
    first = (await call(deployment, "items:page", {"numItems": 2, "cursor": None})).value
    assert [d["n"] for d in first["page"]] == [10.0, 20.0]
    assert first["isDone"] is False
    sink = Sink()
    spec = deployment.registry.resolve("items:page")
    deployment.query_cache.add(sink, 1, spec, {"numItems": 2.0, "cursor": None})
    deployment.query_cache.add(sink, 2, spec, {"numItems": 2.0, "cursor": first["continueCursor"]})
    await settle(deployment)
    assert [d["n"] for d in sink.latest[2]["page"]] == [30.0, 40.0]
    await call(deployment, "items:add", {"n": 15})  # lands inside page 1's pinned range
    await call(deployment, "items:add", {"n": 35})  # lands inside page 2's range
    await settle(deployment)
    page1 = [d["n"] for d in sink.latest[1]["page"]]
    page2 = [d["n"] for d in sink.latest[2]["page"]]
    assert page1 == [10.0, 15.0, 20.0]  # grew instead of pushing 20 onto page 2
    assert page2 == [30.0, 35.0, 40.0]
    rest = (
        await call(
            deployment, "items:page", {"numItems": 10, "cursor": sink.latest[2]["continueCursor"]}
        )
    ).value
    assert [d["n"] for d in rest["page"]] == [50.0]
    assert rest["isDone"] is True
    done = (
        await call(deployment, "items:page", {"numItems": 10, "cursor": rest["continueCursor"]})
    ).value
    assert done["page"] == [] and done["isDone"] is True


async def test_a_new_subscriber_without_a_journal_gets_a_fresh_first_page(
    deployment: Deployment,
) -> None:
    for n in (100, 200, 300, 400):
        await call(deployment, "items:add", {"n": n})
    spec = deployment.registry.resolve("items:page")
    args = {"numItems": 3.0, "cursor": None}
    first = Sink()
    deployment.query_cache.add(first, 1, spec, args)
    await settle(deployment)
    assert [d["n"] for d in first.latest[1]["page"]] == [100.0, 200.0, 300.0]
    pinned = first.journals[1]
    assert pinned is not None
    for n in (1, 2, 3, 4, 5, 6):  # all inside the first page's pinned range
        await call(deployment, "items:add", {"n": n})
    await settle(deployment)
    assert len(first.latest[1]["page"]) == 9  # the live page grew
    fresh, same_journal = Sink(), Sink()
    deployment.query_cache.add(fresh, 1, spec, args)
    deployment.query_cache.add(same_journal, 1, spec, args, journal=pinned)
    await settle(deployment)
    assert [d["n"] for d in fresh.latest[1]["page"]] == [1.0, 2.0, 3.0]
    assert same_journal.latest[1] == first.latest[1]  # sharing a journal shares the page
    sessions = deployment.query_cache._sessions
    assert sessions[same_journal][1] is sessions[first][1]
    http = (await call(deployment, "items:page", {"numItems": 3, "cursor": None})).value
    assert http["page"] == fresh.latest[1]["page"]
    await call(deployment, "items:add", {"n": 0.5})  # both pages grow, each in its own range
    await settle(deployment)
    assert [d["n"] for d in fresh.latest[1]["page"]] == [0.5, 1.0, 2.0, 3.0]
    assert len(first.latest[1]["page"]) == len(same_journal.latest[1]["page"]) == 10


async def test_fresh_first_pages_that_pin_the_same_end_merge(deployment: Deployment) -> None:
    for n in (10, 20, 30):
        await call(deployment, "items:add", {"n": n})
    spec = deployment.registry.resolve("items:page")
    args = {"numItems": 2.0, "cursor": None}
    early, late = Sink(), Sink()
    deployment.query_cache.add(early, 1, spec, args)
    await settle(deployment)
    deployment.query_cache.add(late, 1, spec, args)  # nothing changed: the same page, same end
    await settle(deployment)
    assert late.journals[1] == early.journals[1] is not None
    assert len(deployment.query_cache) == 1
    assert deployment.query_cache._sessions[late][1] is deployment.query_cache._sessions[early][1]
    await call(deployment, "items:add", {"n": 15})
    await settle(deployment)
    assert [d["n"] for d in late.latest[1]["page"]] == [10.0, 15.0, 20.0]
    assert late.latest[1] == early.latest[1]
    deployment.query_cache.remove(early, 1)
    deployment.query_cache.remove(late, 1)
    assert len(deployment.query_cache) == 0


async def test_zero_items_and_foreign_cursors(deployment: Deployment) -> None:
    await call(deployment, "items:add", {"n": 1})
    empty = (await call(deployment, "items:page", {"numItems": 0, "cursor": None})).value
    assert empty["page"] == [] and empty["isDone"] is False
    after = (
        await call(deployment, "items:page", {"numItems": 5, "cursor": empty["continueCursor"]})
    ).value
    assert [d["n"] for d in after["page"]] == [1.0]
    bad = await call(deployment, "items:page", {"numItems": 5, "cursor": "bm90LWEtY3Vyc29y"})
    assert not bad.success and "Invalid cursor" in bad.error_message


async def test_own_writes_read_back_in_canonical_form_and_loose_tables(
    deployment: Deployment,
) -> None:
    result = await call(deployment, "items:loose")
    assert result.success, result.error_message
    assert result.value["count"] == 1.0 and isinstance(result.value["count"], float)
    assert result.value["nested"] == {"k": [2.0]}


async def test_queries_cannot_write(deployment: Deployment) -> None:
    result = await call(deployment, "items:sneaky_write")
    assert not result.success
    assert "queries are read-only" in result.error_message


async def test_an_index_added_later_is_back_filled(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"schema.py": SCHEMA, "items.py": ITEMS})
    async with running_deployment(app, tmp_path / "data") as deployment:
        for n in (1, 2, 3):
            await call(deployment, "items:add", {"n": n})
    (app / "schema.py").write_text(
        (app / "schema.py")
        .read_text()
        .replace('.index("by_n", ["n"])', '.index("by_n", ["n"]).index("by_tag", ["tag"])')
    )
    async with running_deployment(app, tmp_path / "data") as deployment:
        found = await call(deployment, "items:by_tag", {"tag": "t"})
        assert found.success, found.error_message
        assert found.value == [1.0, 2.0, 3.0]
        await call(deployment, "items:add", {"n": 4})
        assert (await call(deployment, "items:by_tag", {"tag": "t"})).value == [1.0, 2.0, 3.0, 4.0]


async def test_pruning_forgets_superseded_versions_but_not_current_data(tmp_path: Path) -> None:
    import sqlite3

    app = write_app(
        tmp_path / "app",
        {
            "schema.py": SCHEMA,
            "items.py": ITEMS
            + """
    @mutation(args={"id": v.id("items"), "n": v.float64()})
    async def move(ctx, id, n):
        await ctx.db.patch(id, {"n": n})

    @mutation(args={"id": v.id("items")})
    async def drop(ctx, id):
        await ctx.db.delete(id)
""",
        },
    )
    async with running_deployment(app, tmp_path / "data") as deployment:
        keep = (await call(deployment, "items:add", {"n": 1})).value
        gone = (await call(deployment, "items:add", {"n": 2})).value
        for n in range(10, 20):
            await call(deployment, "items:move", {"id": keep, "n": n})
        await call(deployment, "items:drop", {"id": gone})
        db = tmp_path / "data" / "reactor.sqlite3"
        rows_before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM indexes").fetchone()[0]
        deployment.retention.retention_s = 0.0
        removed = await deployment.retention.prune_versions()
        rows_after = sqlite3.connect(db).execute("SELECT COUNT(*) FROM indexes").fetchone()[0]
        assert removed > 0 and rows_after < rows_before
        page = (await call(deployment, "items:page", {"numItems": 10, "cursor": None})).value
        assert [d["n"] for d in page["page"]] == [19.0]
        await call(deployment, "items:move", {"id": keep, "n": 5})
        assert (await deployment.retention.prune_versions()) > 0
        page = (await call(deployment, "items:page", {"numItems": 10, "cursor": None})).value
        assert [(d["_id"], d["n"]) for d in page["page"]] == [(keep, 5.0)]


async def test_a_reload_back_fills_an_index_while_serving(tmp_path: Path) -> None:
    from functions.loader import load_app

    app = write_app(tmp_path / "app", {"schema.py": SCHEMA, "items.py": ITEMS})
    async with running_deployment(app, tmp_path / "data") as deployment:
        for n in (1, 2):
            await call(deployment, "items:add", {"n": n})
        (app / "schema.py").write_text(
            (app / "schema.py")
            .read_text()
            .replace('.index("by_n", ["n"])', '.index("by_n", ["n"]).index("by_tag", ["tag"])')
        )
        deployment.reload(load_app(app))
        for _ in range(100):
            found = await call(deployment, "items:by_tag", {"tag": "t"})
            if found.success and found.value == [1.0, 2.0]:
                break
            await asyncio.sleep(0.02)
        assert found.value == [1.0, 2.0]
        await call(deployment, "items:add", {"n": 3})
        assert (await call(deployment, "items:by_tag", {"tag": "t"})).value == [1.0, 2.0, 3.0]
