"""The SQLite engine's row layout: index rows do not carry the document and a write that leaves
an index key where it was writes no index version (the write path's bytes, issue #15), a data
directory written by the previous layout (every index version with its document copy, a
``max_ts`` global per batch) still opens and reads right, and ``max_ts`` survives without the
per-batch global."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reactor.core.persistence import Commit, DocumentLogEntry, IndexEntry, MutationRecord
from reactor.storage.sqlite import SqlitePersistence
from schema.ordering import Order

pytestmark = pytest.mark.anyio

BY_N = "accounts.by_n"
DOC = "j97account000000000000000000001"
OTHER = "j97account000000000000000000002"


def doc(balance: int) -> bytes:
    return json.dumps({"_id": DOC, "n": 1, "balance": balance}).encode()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def values(engine: SqlitePersistence, ts: int) -> list[tuple[bytes, str, bytes]]:
    found = await engine.scan(BY_N, b"", None, ts, Order.ASC, 10)
    return [(row.key, row.document_id, row.value) for row in found]


async def test_a_write_that_keeps_its_index_key_writes_no_index_version(tmp_path: Path) -> None:
    engine = SqlitePersistence.open(tmp_path)
    try:
        await engine.write(
            [
                Commit(
                    10,
                    [DocumentLogEntry(DOC, "accounts", doc(100), None)],
                    [IndexEntry(BY_N, b"k1", DOC, doc(100))],
                )
            ]
        )
        await engine.write(
            [
                Commit(
                    20,
                    [DocumentLogEntry(DOC, "accounts", doc(90), None)],
                    [IndexEntry(BY_N, b"k1", DOC, doc(90))],
                )
            ]
        )
        path = engine.path
        assert rows(path, "SELECT key, ts, deleted, value FROM indexes") == [(b"k1", 10, 0, None)]
        assert await values(engine, 10) == [(b"k1", DOC, doc(100))]
        assert await values(engine, 20) == [(b"k1", DOC, doc(90))]
        # A key that moves still writes its tombstone and its new entry; older snapshots keep
        # the old key.
        await engine.write(
            [
                Commit(
                    30,
                    [DocumentLogEntry(DOC, "accounts", doc(80), None)],
                    [IndexEntry(BY_N, b"k1", DOC, None), IndexEntry(BY_N, b"k2", DOC, doc(80))],
                )
            ]
        )
        assert await values(engine, 20) == [(b"k1", DOC, doc(90))]
        assert await values(engine, 30) == [(b"k2", DOC, doc(80))]
        # Moved back within one batch: each commit's entries count against the batch's own.
        await engine.write(
            [
                Commit(
                    40,
                    [DocumentLogEntry(DOC, "accounts", doc(70), None)],
                    [IndexEntry(BY_N, b"k2", DOC, None), IndexEntry(BY_N, b"k1", DOC, doc(70))],
                ),
                Commit(
                    41,
                    [DocumentLogEntry(DOC, "accounts", doc(60), None)],
                    [IndexEntry(BY_N, b"k1", DOC, None), IndexEntry(BY_N, b"k2", DOC, doc(60))],
                ),
            ]
        )
        assert await values(engine, 40) == [(b"k1", DOC, doc(70))]
        assert await values(engine, 41) == [(b"k2", DOC, doc(60))]
        assert await values(engine, 30) == [(b"k2", DOC, doc(80))]
    finally:
        engine.close()


async def test_a_data_directory_of_the_previous_layout_opens_and_reads(tmp_path: Path) -> None:
    path = tmp_path / SqlitePersistence.FILE_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")  # the previous version's (SQLite's default)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE first (x)")  # the file now exists, with 4 KiB pages
    conn.close()
    SqlitePersistence.open(tmp_path).close()  # the tables (unchanged between the layouts)
    conn = sqlite3.connect(path)
    with conn:
        # What the previous version wrote: every index version with a copy of the document,
        # and the max_ts global with every batch.
        for ts, balance in ((10, 100), (20, 90)):
            conn.execute(
                "INSERT INTO documents VALUES (?, ?, 'accounts', ?, 0, NULL)",
                (DOC, ts, doc(balance)),
            )
            conn.execute(
                "INSERT INTO indexes VALUES (?, ?, ?, 0, ?, ?)",
                (BY_N, b"k1", ts, DOC, doc(balance)),
            )
        conn.execute("INSERT INTO globals VALUES ('max_ts', '25')")
    conn.close()

    engine = SqlitePersistence.open(tmp_path)
    try:
        assert engine.max_ts() == 25
        assert await values(engine, 15) == [(b"k1", DOC, doc(100))]
        assert await values(engine, 25) == [(b"k1", DOC, doc(90))]
        # A new version keeps the key: the old row (with its now stale copy) stays the index
        # entry, and the scan reads the new document.
        await engine.write(
            [
                Commit(
                    30,
                    [DocumentLogEntry(DOC, "accounts", doc(80), None)],
                    [IndexEntry(BY_N, b"k1", DOC, doc(80))],
                )
            ]
        )
        assert await values(engine, 30) == [(b"k1", DOC, doc(80))]
        assert await values(engine, 25) == [(b"k1", DOC, doc(90))]
        assert len(rows(path, "SELECT * FROM indexes")) == 2
        assert engine.max_ts() == 30
        assert rows(path, "PRAGMA page_size") == [(4096,)]  # an existing file keeps its pages
    finally:
        engine.close()


async def test_max_ts_is_kept_without_a_global_per_batch(tmp_path: Path) -> None:
    engine = SqlitePersistence.open(tmp_path)
    try:
        entry = DocumentLogEntry(DOC, "accounts", doc(1), None)
        await engine.write([Commit(10, [entry], [IndexEntry(BY_N, b"k1", DOC, doc(1))])])
        assert rows(engine.path, "SELECT * FROM globals WHERE key = 'max_ts'") == []
        assert rows(engine.path, "PRAGMA page_size") == [(1024,)]  # a new file: small pages
        # A batch whose last commit left no row (an index entry already there) records it.
        await engine.write([Commit(20, [], [IndexEntry(BY_N, b"k1", DOC, doc(1))])])
        assert rows(engine.path, "SELECT value FROM globals WHERE key = 'max_ts'") == [("20",)]
        # Rows of any log table count: a commit that stored only an idempotency record.
        only_record = Commit(30, mutations=(MutationRecord("session", 1, b"null"),))
        other = DocumentLogEntry(OTHER, "accounts", doc(2), None)
        await engine.write([Commit(29, [other]), only_record])
        path = tmp_path
    finally:
        engine.close()
    reopened = SqlitePersistence.open(path)
    try:
        assert reopened.max_ts() == 30
        assert await reopened.get_document(DOC, 30) == ("accounts", doc(1))
    finally:
        reopened.close()
