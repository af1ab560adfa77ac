"""The committer on a real SQLite engine in ``tmp_path``, wired as ``Deployment`` wires it (the
engine's feed opened on a ``Publisher``), with a ``ManualClock`` so timestamps are exact.

Commit requests are built by hand: one document per request, its id doubling as the written
key, so that reads and writes are easy to aim at each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from reactor.core.persistence import (
    Commit,
    CommitRequest,
    CommitResult,
    DocumentLogEntry,
    MutationRecord,
    PublishedCommit,
)
from reactor.core.reads import ReadSet
from reactor.core.system_tables import TableRegistry
from reactor.core.write_log import WriteLog
from reactor.engine.committer import Committer
from reactor.engine.feed import Publisher
from reactor.storage import sqlite
from reactor.testing import ManualClock
from reactor.testing.storage import HeldFsyncSqlite
from schema.errors import OptimisticConcurrencyError, StorageUnavailable

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000_000_000_000
INDEX = "tasks.by_id"
TIMEOUT = 5.0


class RecordingSqlite(HeldFsyncSqlite):
    """The SQLite engine, remembering the size of every batch it was asked to commit."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    async def commit(
        self,
        requests: Sequence[CommitRequest],
        *,
        write_log: WriteLog,
        next_ts: Callable[[], int],
    ) -> list[CommitResult]:
        self.batches.append(len(requests))
        return await super().commit(requests, write_log=write_log, next_ts=next_ts)


@dataclass
class Parts:
    clock: ManualClock
    persistence: RecordingSqlite
    tables: TableRegistry
    publisher: Publisher
    committer: Committer
    published: list[PublishedCommit]


def build(data_dir: Path, clock: ManualClock, *, published_ts: int | None = None) -> Parts:
    persistence = RecordingSqlite.open(data_dir)
    assert isinstance(persistence, RecordingSqlite)
    write_log = WriteLog()
    tables = TableRegistry(persistence.table_numbers())
    publisher = Publisher(
        write_log,
        published_ts=persistence.max_ts() if published_ts is None else published_ts,
        runtime=clock,
    )
    feed = persistence.open_feed(publisher, indexes=lambda table: {}, checkpoint_key="resume:t")
    committer = Committer(persistence, write_log, tables, publisher, feed, runtime=clock)
    published: list[PublishedCommit] = []
    publisher.subscribe(published.append)
    return Parts(clock, persistence, tables, publisher, committer, published)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    built = build(tmp_path / "data", ManualClock(NOW))
    built.committer.start()
    try:
        yield built
    finally:
        await built.committer.stop()
        built.persistence.close()


def request(
    begin_ts: int,
    doc_id: str,
    *,
    reads: Iterable[str] = (),
    tables: dict[str, int] | None = None,
) -> CommitRequest:
    """A transaction that read the keys ``reads`` at ``begin_ts`` and wrote document ``doc_id``."""
    read_set = ReadSet()
    for key in reads:
        read_set.add_point(INDEX, key.encode())
    value = f'{{"_id":"{doc_id}"}}'.encode()

    def build_commit(ts: int) -> Commit:
        return Commit(ts, [DocumentLogEntry(doc_id, "tasks", value, None)], [], dict(tables or {}))

    return CommitRequest(
        begin_ts,
        read_set,
        {INDEX: [doc_id.encode()]},
        build_commit,
        "tasks",
        tables=dict(tables or {}),
    )


async def commit(parts: Parts, req: CommitRequest) -> int:
    return await asyncio.wait_for(parts.committer.commit(req), TIMEOUT)


class TestCommit:
    async def test_it_returns_the_ts_once_durable_and_published(self, parts: Parts) -> None:
        ts = await commit(parts, request(0, "a"))
        assert ts == NOW  # the clock's time: nothing was committed before
        assert parts.publisher.published_ts == ts
        assert [c.ts for c in parts.published] == [ts]
        assert await parts.persistence.get_document("a", ts) == ("tasks", b'{"_id":"a"}')
        assert await parts.persistence.get_document("a", ts - 1) is None
        assert parts.persistence.max_ts() == ts
        assert parts.committer.commits == 1
        assert parts.committer.conflicts == 0

    async def test_timestamps_follow_the_runtime_clock_and_strictly_increase(
        self, parts: Parts
    ) -> None:
        first = await commit(parts, request(0, "a"))
        second = await commit(parts, request(first, "b"))  # the clock did not move
        await parts.clock.advance(2)
        third = await commit(parts, request(second, "c"))
        assert (first, second, third) == (NOW, NOW + 1, NOW + 2_000_000_000)

    async def test_the_mutation_record_is_stored_with_the_commit(self, parts: Parts) -> None:
        record = MutationRecord("session", 7, b'"done"')
        ts = await asyncio.wait_for(parts.committer.commit(request(0, "a"), [record]), TIMEOUT)
        assert await parts.persistence.lookup_mutation("session", 7) == (ts, b'"done"')

    async def test_new_tables_are_marked_persisted(self, parts: Parts) -> None:
        number = parts.tables.number_for("tasks")
        assert parts.tables.unpersisted() == {"tasks": number}
        await commit(parts, request(0, "a", tables=parts.tables.unpersisted()))
        assert parts.tables.unpersisted() == {}
        assert parts.persistence.table_numbers()["tasks"] == number

    async def test_concurrent_commits_go_in_one_batch(self, parts: Parts) -> None:
        requests = [request(0, f"doc{i}") for i in range(5)]
        results = await asyncio.wait_for(
            asyncio.gather(*(parts.committer.commit(r) for r in requests)), TIMEOUT
        )
        assert results == [NOW + i for i in range(5)]
        assert parts.persistence.batches == [5]
        assert [c.ts for c in parts.published] == results
        assert parts.committer.commits == 5

    async def test_a_caller_that_went_away_does_not_stop_the_committer(self, parts: Parts) -> None:
        abandoned = asyncio.create_task(parts.committer.commit(request(0, "a")))
        await asyncio.sleep(0)  # queued
        abandoned.cancel()
        ts = await commit(parts, request(0, "b"))
        assert ts == NOW + 1  # the abandoned commit still happened, first
        assert await parts.persistence.get_document("a", ts) is not None


class TestConflicts:
    async def test_a_write_after_the_snapshot_to_a_key_read_conflicts(self, parts: Parts) -> None:
        written = await commit(parts, request(0, "a"))
        with pytest.raises(OptimisticConcurrencyError) as info:
            await commit(parts, request(written - 1, "b", reads=["a"]))
        assert info.value.write_ts == written
        assert info.value.table == "tasks"
        assert parts.committer.conflicts == 1
        assert parts.committer.commits == 1
        assert await parts.persistence.get_document("b", NOW + 100) is None
        assert parts.publisher.published_ts == written

    async def test_a_write_at_or_before_the_snapshot_does_not(self, parts: Parts) -> None:
        written = await commit(parts, request(0, "a"))
        ts = await commit(parts, request(written, "b", reads=["a"]))
        assert ts > written
        assert parts.committer.conflicts == 0

    async def test_a_conflict_within_one_batch(self, parts: Parts) -> None:
        first, second = await asyncio.wait_for(
            asyncio.gather(
                parts.committer.commit(request(0, "x", reads=["x"])),
                parts.committer.commit(request(0, "y", reads=["x"])),
                return_exceptions=True,
            ),
            TIMEOUT,
        )
        assert parts.persistence.batches == [2]
        assert first == NOW
        assert isinstance(second, OptimisticConcurrencyError)
        assert second.write_ts == NOW
        assert parts.committer.conflicts == 1
        assert await parts.persistence.get_document("y", NOW + 100) is None


class TestNextTs:
    async def test_it_strictly_increases_under_a_stopped_clock(self, tmp_path: Path) -> None:
        parts = build(tmp_path, ManualClock(NOW))
        try:
            assert [parts.committer.next_ts() for _ in range(3)] == [NOW, NOW + 1, NOW + 2]
            await parts.clock.advance(1)
            assert parts.committer.next_ts() == NOW + 1_000_000_000
        finally:
            parts.persistence.close()

    def test_it_stays_above_a_published_ts_ahead_of_the_clock(self, tmp_path: Path) -> None:
        # A restart on a machine whose clock is behind the last stored commit.
        parts = build(tmp_path, ManualClock(NOW), published_ts=NOW + 1_000)
        try:
            assert parts.committer.next_ts() == NOW + 1_001
            parts.publisher.tick()
            parts.publisher.tick()
            assert parts.committer.next_ts() == NOW + 1_003
        finally:
            parts.persistence.close()

    async def test_it_continues_after_the_stored_max_ts_on_restart(self, tmp_path: Path) -> None:
        clock = ManualClock(NOW)
        first = build(tmp_path, clock)
        first.committer.start()
        try:
            await clock.advance(10)
            last = await commit(first, request(0, "a"))
        finally:
            await first.committer.stop()
            first.persistence.close()
        clock.ns = NOW  # the clock went back
        second = build(tmp_path, clock)
        try:
            assert second.committer.published_ts == last
            assert second.committer.next_ts() == last + 1
        finally:
            second.persistence.close()


class TestLifecycle:
    async def test_commit_before_start_raises(self, tmp_path: Path) -> None:
        parts = build(tmp_path, ManualClock(NOW))
        try:
            with pytest.raises(RuntimeError, match="before Committer.start"):
                await parts.committer.commit(request(0, "a"))
            assert parts.persistence.batches == []
        finally:
            parts.persistence.close()

    async def test_commit_after_stop_raises(self, parts: Parts) -> None:
        await parts.committer.stop()
        with pytest.raises(RuntimeError):
            await parts.committer.commit(request(0, "a"))

    async def test_start_twice_keeps_one_writer(self, parts: Parts) -> None:
        parts.committer.start()
        results = await asyncio.wait_for(
            asyncio.gather(*(parts.committer.commit(request(0, f"d{i}")) for i in range(3))),
            TIMEOUT,
        )
        assert results == [NOW, NOW + 1, NOW + 2]
        assert parts.persistence.batches == [3]


class TestStorageFailure:
    async def test_a_failed_write_fails_the_whole_batch_and_the_committer_goes_on(
        self, parts: Parts
    ) -> None:
        # A version of "dup" is already stored at the ts the next commit will get: the
        # engine's INSERT hits the primary key and SQLite refuses the whole transaction.
        await parts.persistence.write(
            [Commit(NOW, [DocumentLogEntry("dup", "tasks", b"{}", None)])]
        )
        results = await asyncio.wait_for(
            asyncio.gather(
                parts.committer.commit(request(0, "dup")),
                parts.committer.commit(request(0, "innocent")),
                return_exceptions=True,
            ),
            TIMEOUT,
        )
        assert parts.persistence.batches == [2]
        assert all(isinstance(r, StorageUnavailable) for r in results), results
        assert parts.publisher.published_ts == 0
        assert parts.published == []
        assert parts.committer.commits == 0
        assert await parts.persistence.get_document("innocent", NOW + 100) is None

        ts = await commit(parts, request(0, "after"))
        assert ts > NOW + 1  # timestamps handed to the failed batch are not reused
        assert parts.publisher.published_ts == ts
        assert await parts.persistence.get_document("after", ts) is not None
        assert parts.committer.commits == 1

    async def test_a_closed_engine_fails_with_storage_unavailable(self, parts: Parts) -> None:
        parts.persistence.close()
        with pytest.raises(StorageUnavailable):
            await commit(parts, request(0, "a"))
        assert parts.publisher.published_ts == 0
        with pytest.raises(StorageUnavailable):  # still answering, not wedged
            await commit(parts, request(0, "b"))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.001)


class TestReadableBeforeDurable:
    """A written batch is readable (``visible_ts``) at once, answered only after the fsync of
    the WAL that holds it, and checked against by later commits meanwhile."""

    async def test_a_commit_is_readable_during_its_fsync_and_answered_after(
        self, parts: Parts
    ) -> None:
        syncs = parts.persistence.syncs  # opening the engine synced its own writes
        parts.persistence.hold()
        pending = asyncio.ensure_future(parts.committer.commit(request(0, "a")))
        await until(parts.persistence.held.is_set)
        ts = parts.committer.visible_ts
        assert ts > parts.publisher.published_ts
        assert await parts.persistence.get_document("a", ts) == ("tasks", b'{"_id":"a"}')
        assert not pending.done() and parts.published == []
        parts.persistence.release()
        assert await asyncio.wait_for(pending, TIMEOUT) == ts
        assert parts.publisher.published_ts == ts == parts.committer.visible_ts
        assert parts.persistence.syncs == syncs + 1

    async def test_a_commit_conflicts_with_one_not_yet_durable(self, parts: Parts) -> None:
        parts.persistence.hold()
        before = parts.publisher.published_ts
        first = asyncio.ensure_future(parts.committer.commit(request(0, "a")))
        await until(parts.persistence.held.is_set)
        # Re-runs after a conflict (``priority``) are written at once, during "a"'s fsync.
        with pytest.raises(OptimisticConcurrencyError) as info:
            await asyncio.wait_for(
                parts.committer.commit(request(before, "b", reads=["a"]), priority=True), TIMEOUT
            )
        assert info.value.write_ts == parts.committer.visible_ts
        # Read at the written snapshot, the same transaction commits, before "a" is durable.
        later = asyncio.ensure_future(
            parts.committer.commit(
                request(parts.committer.visible_ts, "b", reads=["a"]), priority=True
            )
        )
        await until(lambda: parts.persistence.batches == [1, 1, 1])
        beaten = info.value.write_ts
        assert beaten is not None
        await until(lambda: parts.committer.visible_ts > beaten)
        assert not first.done() and not later.done()
        parts.persistence.release()
        a, b = await asyncio.wait_for(asyncio.gather(first, later), TIMEOUT)
        assert a < b
        assert [c.ts for c in parts.published] == [a, b]

    async def test_a_batch_written_during_an_fsync_waits_for_the_next_one(
        self, parts: Parts
    ) -> None:
        synced_at: dict[int, int] = {}
        syncs = parts.persistence.syncs

        def record(published: PublishedCommit) -> None:
            synced_at.setdefault(published.ts, parts.persistence.syncs - syncs)

        parts.publisher.subscribe(record)
        parts.persistence.hold()
        first = asyncio.ensure_future(parts.committer.commit(request(0, "a")))
        await until(parts.persistence.held.is_set)
        second = asyncio.ensure_future(parts.committer.commit(request(0, "b"), priority=True))
        await until(lambda: parts.persistence.batches == [1, 1])
        await until(lambda: parts.committer.visible_ts == NOW + 1)
        parts.persistence.release()
        a, b = await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
        # "b" was written after the first fsync began: published only after a second one.
        assert synced_at == {a: 1, b: 2}

    async def test_commits_arriving_during_an_fsync_gather_until_it_ends(
        self, parts: Parts
    ) -> None:
        parts.persistence.hold()
        first = asyncio.ensure_future(parts.committer.commit(request(0, "a")))
        await until(parts.persistence.held.is_set)
        waiting = [asyncio.ensure_future(parts.committer.commit(request(0, doc))) for doc in "bc"]
        await asyncio.sleep(0.05)
        assert parts.persistence.batches == [1]  # nothing gained by writing them now
        parts.persistence.release()
        await asyncio.wait_for(asyncio.gather(first, *waiting), TIMEOUT)
        assert parts.persistence.batches == [1, 2]

    async def test_an_urgent_commit_does_not_wait_for_the_fsync(self, parts: Parts) -> None:
        parts.persistence.hold()
        first = asyncio.ensure_future(parts.committer.commit(request(0, "a")))
        await until(parts.persistence.held.is_set)
        waiting = asyncio.ensure_future(parts.committer.commit(request(0, "b")))
        await asyncio.sleep(0.01)
        urgent = asyncio.ensure_future(parts.committer.commit(request(0, "c"), priority=True))
        # Written during "a"'s fsync, taking the commit that was gathering with it.
        await until(lambda: parts.persistence.batches == [1, 2])
        assert not urgent.done()
        parts.persistence.release()
        a, b, c = await asyncio.wait_for(asyncio.gather(first, waiting, urgent), TIMEOUT)
        assert a < c < b  # the urgent one first in its batch


async def test_the_feed_checkpoints_the_wal_once_it_is_due(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "WAL_CHECKPOINT_BYTES", 64 * 1024)
    database = parts.persistence.path
    wal = database.with_name(database.name + "-wal")

    def padded(doc: str) -> Callable[[int], Commit]:
        value = b'{"_id":"%s","pad":"%s"}' % (doc.encode(), b"x" * 2000)
        return lambda ts: Commit(ts, [DocumentLogEntry(doc, "tasks", value, None)])

    for i in range(60):  # ~2 KiB documents: several times the WAL's threshold
        req = request(0, f"doc{i}")
        req.build = padded(f"doc{i}")
        await commit(parts, req)
    # Without checkpoints every page would stay in the WAL (SQLite's own are off, as commits
    # may be written on the event loop): they reached the database file, and the WAL
    # restarted instead of growing past the threshold by much.
    assert database.stat().st_size > 100 * 1024
    assert wal.stat().st_size < 3 * 64 * 1024
