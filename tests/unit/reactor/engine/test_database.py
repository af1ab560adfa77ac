"""``Database``: transactions at the newest published snapshot, under the served schema, and
``run_system`` committing the runtime's own bookkeeping through conflicts.

Real parts on a SQLite file in ``tmp_path`` (wired as ``Deployment`` wires them), with a
``ManualClock(autojump=True)``: the retry backoff then sleeps no real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.loader import App
from functions.registry import Registry
from reactor.core.system_tables import TableRegistry
from reactor.core.write_log import WriteLog
from reactor.engine.committer import Committer
from reactor.engine.database import Database
from reactor.engine.feed import Publisher
from reactor.engine.served_app import ServedApp
from reactor.engine.transaction import Transaction
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import ManualClock
from schema import define_schema, define_table, v
from schema.errors import ReadOnlyTransactionError
from schema.tables import SchemaDefinition

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000_000_000_000
TIMEOUT = 5.0
SCHEMA = define_schema({"items": define_table({"n": v.float64()})})


def app_with(directory: Path, schema: SchemaDefinition | None) -> App:
    return App(directory=directory, package="_test_app", schema=schema, registry=Registry())


@dataclass
class Parts:
    clock: ManualClock
    persistence: SqlitePersistence
    publisher: Publisher
    committer: Committer
    served: ServedApp
    database: Database


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = ManualClock(NOW, autojump=True)  # retry backoffs pass at once
    persistence = SqlitePersistence.open(tmp_path / "data")
    write_log = WriteLog()
    tables = TableRegistry(persistence.table_numbers())
    publisher = Publisher(write_log, published_ts=persistence.max_ts(), runtime=clock)
    feed = persistence.open_feed(publisher, indexes=lambda table: {}, checkpoint_key="resume:t")
    committer = Committer(persistence, write_log, tables, publisher, feed, runtime=clock)
    served = ServedApp(app_with(tmp_path, SCHEMA))
    database = Database(persistence, committer, tables, served, runtime=clock)
    committer.start()
    try:
        yield Parts(clock, persistence, publisher, committer, served, database)
    finally:
        await committer.stop()
        persistence.close()


async def insert(database: Database, value: dict[str, Any]) -> str:
    async def body(txn: Transaction) -> str:
        return await txn.insert("items", value)

    return await asyncio.wait_for(database.run_system(body), TIMEOUT)


class TestBegin:
    async def test_it_reads_at_the_newest_published_snapshot(self, parts: Parts) -> None:
        assert parts.database.begin(writable=False).ts == 0
        doc_id = await insert(parts.database, {"n": 1.0})
        txn = parts.database.begin(writable=False)
        assert txn.ts == parts.publisher.published_ts > 0
        assert parts.database.snapshot_ts() == txn.ts
        doc = await txn.get(doc_id)
        assert doc is not None and doc["n"] == 1.0

    async def test_an_explicit_ts_reads_that_snapshot(self, parts: Parts) -> None:
        doc_id = await insert(parts.database, {"n": 1.0})
        old = parts.database.begin(parts.publisher.published_ts - 1, writable=False)
        assert await old.get(doc_id) is None

    async def test_it_uses_the_served_schema_at_the_time(
        self, parts: Parts, tmp_path: Path
    ) -> None:
        assert parts.database.begin(writable=True).schema is SCHEMA
        other = define_schema({"items": define_table({"n": v.string()})})
        parts.served.swap(app_with(tmp_path, other))
        assert parts.database.begin(writable=True).schema is other

    async def test_a_read_only_transaction_refuses_writes(self, parts: Parts) -> None:
        txn = parts.database.begin(writable=False)
        with pytest.raises(ReadOnlyTransactionError):
            await txn.insert("items", {"n": 1.0})

    async def test_creation_times_come_from_the_runtime_clock(self, parts: Parts) -> None:
        await parts.clock.advance(3)
        assert parts.database.now_ms() == (NOW + 3_000_000_000) / 1e6
        doc_id = await insert(parts.database, {"n": 1.0})
        doc = await parts.database.begin(writable=False).get(doc_id)
        assert doc is not None and doc["_creationTime"] == parts.database.now_ms()

    async def test_journal_is_passed_on(self, parts: Parts) -> None:
        assert parts.database.begin(writable=False, journal="j1").journal == "j1"


class TestRunSystem:
    async def test_a_body_without_writes_commits_nothing(self, parts: Parts) -> None:
        async def body(txn: Transaction) -> str:
            return "read only"

        assert await parts.database.run_system(body) == "read only"
        assert parts.publisher.published_commits == 0
        assert parts.committer.commits == 0

    async def test_a_body_with_writes_is_committed_before_it_returns(self, parts: Parts) -> None:
        doc_id = await insert(parts.database, {"n": 2.0})
        assert parts.committer.commits == 1
        doc = await parts.database.begin(writable=False).get(doc_id)
        assert doc is not None and doc["n"] == 2.0

    async def test_a_conflicting_body_is_rerun_until_it_commits(self, parts: Parts) -> None:
        database = parts.database
        doc_id = await insert(database, {"n": 0.0})
        runs: list[tuple[int, float]] = []

        async def increment(txn: Transaction) -> float:
            doc = await txn.get(doc_id)
            assert doc is not None
            runs.append((txn.ts, doc["n"]))
            if len(runs) < 3:
                # Another writer changes what this run read, after its snapshot.
                other = database.begin(writable=True)
                await other.patch(doc_id, {"n": 100.0 * len(runs)})
                await parts.committer.commit(other.prepare_commit())
            await txn.patch(doc_id, {"n": doc["n"] + 1})
            return float(doc["n"])

        assert await asyncio.wait_for(database.run_system(increment), TIMEOUT) == 200.0
        assert [n for _, n in runs] == [0.0, 100.0, 200.0]
        assert runs[0][0] < runs[1][0] < runs[2][0]  # each re-run reads a newer snapshot
        assert parts.committer.conflicts == 2
        doc = await database.begin(writable=False).get(doc_id)
        assert doc is not None and doc["n"] == 201.0

    async def test_an_error_in_the_body_propagates_and_commits_nothing(self, parts: Parts) -> None:
        async def broken(txn: Transaction) -> None:
            await txn.insert("items", {"n": 1.0})
            raise LookupError("bookkeeping bug")

        with pytest.raises(LookupError):
            await parts.database.run_system(broken)
        assert parts.committer.commits == 0
        assert parts.publisher.published_ts == 0
