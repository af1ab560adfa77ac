"""System queries are live: a subscription to ``_system/cli/tableData`` follows the table's
writes (its read set), and one to ``_system/cli/tables`` sees a table that a commit creates
(a table list reads no document, so table creation re-runs the live queries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from functions.decorators import FunctionKind
from reactor.server.deployment import Deployment
from reactor.sync.protocol import QueryOutcome, QuerySuccess
from reactor.testing import call, running_deployment, write_app
from schema.values import loads

pytestmark = pytest.mark.anyio

APP = {  # no schema: any table may be created by a write
    "notes.py": """
        from functions import mutation
        from schema import v

        @mutation(args={"table": v.string(), "body": v.string()})
        async def add(ctx, table, body):
            return await ctx.db.insert(table, {"body": body})
    """,
}
PAGE = {"paginationOpts": {"numItems": 100, "cursor": None}}


class Sink:
    """A session as live queries see it: the newest value of each query."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self.changed = asyncio.Event()

    def deliver(self, ts: int, outcomes: Mapping[int, QueryOutcome]) -> None:
        for query_id, outcome in outcomes.items():
            assert isinstance(outcome, QuerySuccess), outcome
            self.values[query_id] = (
                None if outcome.value_json is None else loads(outcome.value_json)
            )
        self.changed.set()

    async def until(self, query_id: int, check: Any) -> Any:
        async with asyncio.timeout(10):
            while query_id not in self.values or not check(self.values[query_id]):
                self.changed.clear()
                await self.changed.wait()
        return self.values[query_id]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running_deployment(write_app(tmp_path / "app", APP), tmp_path / "data") as d:
        yield d


def subscribe(deployment: Deployment, sink: Sink, query_id: int, path: str, **args: Any) -> None:
    spec = deployment.resolve(path, kind=FunctionKind.QUERY, is_admin=True)
    deployment.query_cache.add(sink, query_id, spec, {**PAGE, **args})


def names(value: Any) -> list[str]:
    return [table["name"] for table in value["page"]]


async def add(deployment: Deployment, table: str, body: str) -> None:
    result = await call(deployment, "notes:add", {"table": table, "body": body})
    assert result.success, result.error_message


async def test_table_list_and_table_data_follow_the_writes(deployment: Deployment) -> None:
    await add(deployment, "notes", "first")
    sink = Sink()
    subscribe(deployment, sink, 1, "_system/cli/tables")
    subscribe(deployment, sink, 2, "_system/cli/tableData", table="notes", order="asc")
    assert names(await sink.until(1, lambda v: True)) == ["notes"]
    await sink.until(2, lambda v: [d["body"] for d in v["page"]] == ["first"])

    await add(deployment, "notes", "second")
    await sink.until(2, lambda v: [d["body"] for d in v["page"]] == ["first", "second"])

    await add(deployment, "fresh", "a new table")
    assert names(await sink.until(1, lambda v: "fresh" in names(v))) == ["fresh", "notes"]
