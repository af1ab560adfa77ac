"""``backfill_indexes``: building the entries of indexes a schema gained or redefined, recording
what is built, and starting over when a concurrent write conflicts.

Real parts on a SQLite file in ``tmp_path``; documents are inserted through transactions under
the schema served at the time, as a running deployment would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.loader import App
from functions.registry import Registry
from reactor.core.index_keys import index_id
from reactor.core.persistence import IndexRow
from reactor.core.system_tables import TableRegistry
from reactor.core.write_log import WriteLog
from reactor.engine.backfill import BUILT_INDEXES, backfill_indexes
from reactor.engine.committer import Committer
from reactor.engine.database import Database
from reactor.engine.feed import Publisher
from reactor.engine.served_app import ServedApp
from reactor.engine.transaction import Transaction
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import ManualClock
from schema import define_schema, define_table, v
from schema.ordering import Order
from schema.tables import SchemaDefinition
from schema.values import loads

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000_000_000_000
TIMEOUT = 5.0
BY_N = index_id("items", "by_n")
FIELDS = {"n": v.float64(), "m": v.float64()}
PLAIN = define_schema({"items": define_table(FIELDS)})
WITH_BY_N = define_schema({"items": define_table(FIELDS).index("by_n", ["n"])})
BY_N_ON_M = define_schema({"items": define_table(FIELDS).index("by_n", ["m"])})


class InterleavingSqlite(SqlitePersistence):
    """The SQLite engine, running ``before_first_scan`` once, at the start of the first scan:
    a write that lands while a back-fill is reading."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.before_first_scan: Callable[[], Awaitable[None]] | None = None
        self.scans = 0

    async def scan(
        self, index_id: str, start: bytes, end: bytes | None, ts: int, order: Order, limit: int
    ) -> list[IndexRow]:
        self.scans += 1
        hook, self.before_first_scan = self.before_first_scan, None
        if hook is not None:
            await hook()
        return await super().scan(index_id, start, end, ts, order, limit)


@dataclass
class Parts:
    persistence: InterleavingSqlite
    publisher: Publisher
    committer: Committer
    served: ServedApp
    database: Database
    directory: Path

    def serve(self, schema: SchemaDefinition) -> None:
        self.served.swap(
            App(directory=self.directory, package="_t", schema=schema, registry=Registry())
        )

    async def insert(self, value: dict[str, Any]) -> str:
        async def body(txn: Transaction) -> str:
            return await txn.insert("items", value)

        return await asyncio.wait_for(self.database.run_system(body), TIMEOUT)

    async def by_n(self) -> list[float]:
        """The ``n`` of every document in the ``by_n`` index, in index order."""
        rows = await self.persistence.scan(
            BY_N, b"", None, self.publisher.published_ts, Order.ASC, 100
        )
        return [loads(row.value)["n"] for row in rows]

    async def backfill(self, schema: SchemaDefinition | None) -> int:
        return await asyncio.wait_for(
            backfill_indexes(self.persistence, self.committer, schema), TIMEOUT
        )


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = ManualClock(NOW)
    persistence = InterleavingSqlite.open(tmp_path / "data")
    assert isinstance(persistence, InterleavingSqlite)
    write_log = WriteLog()
    tables = TableRegistry(persistence.table_numbers())
    publisher = Publisher(write_log, published_ts=persistence.max_ts(), runtime=clock)
    feed = persistence.open_feed(publisher, indexes=lambda table: {}, checkpoint_key="resume:t")
    committer = Committer(persistence, write_log, tables, publisher, feed, runtime=clock)
    served = ServedApp(App(directory=tmp_path, package="_t", schema=PLAIN, registry=Registry()))
    database = Database(persistence, committer, tables, served, runtime=clock)
    committer.start()
    try:
        yield Parts(persistence, publisher, committer, served, database, tmp_path)
    finally:
        await committer.stop()
        persistence.close()


async def test_no_schema_builds_nothing(parts: Parts) -> None:
    await parts.insert({"n": 1.0, "m": 0.0})
    assert await parts.backfill(None) == 0
    assert await parts.persistence.get_global(BUILT_INDEXES) is None


async def test_a_new_index_gets_an_entry_per_document_in_one_commit(parts: Parts) -> None:
    for n in (3.0, 1.0, 2.0):
        await parts.insert({"n": n, "m": 0.0})
    commits = parts.committer.commits
    assert await parts.by_n() == []
    assert await parts.backfill(WITH_BY_N) == 3
    assert parts.committer.commits == commits + 1
    assert await parts.by_n() == [1.0, 2.0, 3.0]
    assert await parts.persistence.get_global(BUILT_INDEXES) == {BY_N: ["n"]}


async def test_an_index_on_an_empty_table_is_recorded_without_a_commit(parts: Parts) -> None:
    assert await parts.backfill(WITH_BY_N) == 0
    assert parts.committer.commits == 0
    assert await parts.persistence.get_global(BUILT_INDEXES) == {BY_N: ["n"]}


async def test_nothing_changed_does_nothing(parts: Parts) -> None:
    await parts.insert({"n": 1.0, "m": 0.0})
    await parts.backfill(WITH_BY_N)
    parts.serve(WITH_BY_N)
    await parts.insert({"n": 2.0, "m": 0.0})  # indexed by its own transaction
    published, scans = parts.publisher.published_ts, parts.persistence.scans
    assert await parts.backfill(WITH_BY_N) == 0
    assert parts.publisher.published_ts == published
    assert parts.persistence.scans == scans  # nothing was even read
    assert await parts.by_n() == [1.0, 2.0]


async def test_a_redefined_index_is_rebuilt_on_its_new_fields(parts: Parts) -> None:
    for n, m in ((1.0, 20.0), (2.0, 10.0)):
        await parts.insert({"n": n, "m": m})
    await parts.backfill(WITH_BY_N)
    assert await parts.by_n() == [1.0, 2.0]
    # Two tombstones for the old keys, two entries for the new ones.
    assert await parts.backfill(BY_N_ON_M) == 4
    assert await parts.by_n() == [2.0, 1.0]  # now ordered by m
    assert await parts.persistence.get_global(BUILT_INDEXES) == {BY_N: ["m"]}


async def test_a_dropped_index_is_forgotten_from_the_record(parts: Parts) -> None:
    await parts.backfill(WITH_BY_N)
    assert await parts.backfill(PLAIN) == 0
    assert await parts.persistence.get_global(BUILT_INDEXES) == {}


async def test_a_concurrent_write_makes_it_start_over(parts: Parts) -> None:
    for n in (1.0, 2.0):
        await parts.insert({"n": n, "m": 0.0})

    async def write_meanwhile() -> None:
        await parts.insert({"n": 3.0, "m": 0.0})  # under the served schema, without by_n

    parts.persistence.before_first_scan = write_meanwhile
    assert await parts.backfill(WITH_BY_N) == 3  # the second pass saw all three
    assert parts.committer.conflicts == 1
    assert await parts.by_n() == [1.0, 2.0, 3.0]


async def test_entries_already_written_under_the_new_schema_are_kept(parts: Parts) -> None:
    await parts.insert({"n": 1.0, "m": 0.0})
    parts.serve(WITH_BY_N)  # a reload: the new schema is served before the back-fill runs
    await parts.insert({"n": 2.0, "m": 0.0})  # indexed by its own transaction
    await parts.backfill(WITH_BY_N)
    assert await parts.by_n() == [1.0, 2.0]
    assert await parts.persistence.get_global(BUILT_INDEXES) == {BY_N: ["n"]}
