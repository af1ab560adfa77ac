"""The embedded engine: an MVCC log of documents and index entries in one SQLite file.

Rows are never updated in place: every commit appends document versions and index-entry
versions at its timestamp, and a read at snapshot ``ts`` takes the newest version at or below it.
Reads run on the caller's thread (the event loop) on their own connection; batches of commits
are written with a second connection, in one SQLite transaction each (group commit): a small
batch on the event loop itself, a large one on a worker thread.

A written batch is readable at once (new snapshots, a function runner's connection) but durable
only once its WAL frames are fsynced: ``commit`` returns after the write, and the change feed
(``_DurableFeed``) fsyncs the WAL on another thread, many batches at a time, and only then
publishes them (acknowledgements, subscriptions). A mutation re-run after a conflict can so read
the commit that beat it while that commit's fsync runs, and the next batch is written during
the fsync of the last: contended documents change once per write instead of once per fsync.
Nothing acknowledged is lost: an answer waits for the fsync, and a commit that read a
not-yet-durable one comes after it in the WAL, so a crash keeps both or the newer one not.
One process at a time holds the data directory, so the in-process write log (published
commits) and the feed's log of written-not-yet-durable ones see every recent commit: ``commit``
checks conflicts against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reactor.core.persistence import (
    Commit,
    CommitRequest,
    CommitResult,
    DocumentLogEntry,
    FeedSink,
    IndexDefinitions,
    IndexRow,
    PublishedCommit,
)
from reactor.core.tasks import start_task
from reactor.core.write_log import WriteLog
from schema.errors import OptimisticConcurrencyError, StorageUnavailable
from schema.ordering import Order

__all__ = ["MUTATION_RECORD_RETENTION_NS", "SqlitePersistence"]

log = logging.getLogger("reactor.storage.sqlite")

MUTATION_RECORD_RETENTION_NS = 14 * 24 * 3600 * 10**9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    value BLOB,
    deleted INTEGER NOT NULL,
    prev_ts INTEGER,
    PRIMARY KEY (id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_by_ts ON documents (ts);
CREATE TABLE IF NOT EXISTS indexes (
    index_id TEXT NOT NULL,
    key BLOB NOT NULL,
    ts INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    document_id TEXT NOT NULL,
    value BLOB,
    PRIMARY KEY (index_id, key, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS indexes_by_ts ON indexes (ts);
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS mutations (
    session_id TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    result BLOB NOT NULL,
    PRIMARY KEY (session_id, request_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mutations_by_ts ON mutations (ts);
CREATE TABLE IF NOT EXISTS globals (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ns INTEGER NOT NULL
);
"""

# A scan takes, per key, the newest index version at or below the snapshot (``g``), then the
# document's newest version at or below it: index rows do not carry the document (older data
# directories have a copy in ``indexes.value``; it is never read), and a write that leaves a
# key where it was writes no new index version.
_SCAN = (
    "SELECT g.key, g.deleted, g.document_id, "
    "(SELECT d.value FROM documents d WHERE d.id = g.document_id AND d.ts <= ?4 "
    "ORDER BY d.ts DESC LIMIT 1) "
    "FROM (SELECT key, MAX(ts), deleted, document_id FROM indexes "
    "WHERE index_id = ?1 AND key >= ?2 {hi}AND ts <= ?4 "
    "GROUP BY key ORDER BY key {order} LIMIT ?5) g ORDER BY g.key {order}"
)
_SCAN_ASC = _SCAN.format(hi="AND key < ?3 ", order="ASC")
_SCAN_ASC_OPEN = _SCAN.format(hi="", order="ASC")
_SCAN_DESC = _SCAN.format(hi="AND key < ?3 ", order="DESC")
_SCAN_DESC_OPEN = _SCAN.format(hi="", order="DESC")


# The write path's bytes (issue #15). A commit writes each page it changes whole into the WAL,
# and its rows land at random places of the B-trees (document ids, idempotency records), so
# smaller pages write fewer bytes per commit. The size applies to a new database only (an
# existing file keeps its own).
PAGE_SIZE = 1024
# A checkpoint copies every page changed since the last one into the database file, once:
# a longer WAL lets the pages that commits keep changing (the hot documents, the ends of the
# ts indexes, each session's idempotency records) be copied once for many commits.
WAL_CHECKPOINT_BYTES = 16 * 2**20
WAL_SIZE_LIMIT_BYTES = 2 * WAL_CHECKPOINT_BYTES  # the WAL file is cut back to this after a spike
# A batch of at most this many rows (document and index versions) is written on the event loop
# itself: two thread hand-offs cost more than the write. Larger ones go to a worker thread.
INLINE_WRITE_ROWS = 256
# The wal-index header at the start of the -shm file holds ``mxFrame``, the number of frames
# in the WAL since it last restarted, at this offset (SQLite's WAL file format).
_SHM_MX_FRAME = struct.Struct("=I")
_SHM_MX_FRAME_OFFSET = 16


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    # Checkpoints are run on the change feed's thread (``_checkpoint``), never by a commit,
    # which may be written on the event loop.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    # Commits are made durable by fsyncing the WAL ourselves (``_sync_wal``), after they are
    # readable; SQLite syncs at checkpoints only.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


class SqlitePersistence:
    """Persistence on one SQLite file. Open with ``SqlitePersistence.open(directory)``."""

    FILE_NAME = "reactor.sqlite3"
    # The directory lock (``open``) keeps every other process out.
    single_process = True
    visible_before_durable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._feed: _DurableFeed | None = None
        self._directory_synced = False
        self._shm_fd: int | None = None
        try:
            self._reader = _connect(path)
            self._reader.executescript(_SCHEMA)
            self._writer = _connect(path)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"Cannot open SQLite database {path}: {exc}") from exc
        self._write_lock = threading.RLock()
        self._page_size = int(self._writer.execute("PRAGMA page_size").fetchone()[0])
        self._closed = False
        self._lock: Any = None
        self.wall_clock_ns: Callable[[], int] = time.time_ns  # lease expiry; tests replace it

    @classmethod
    def open(cls, directory: str | Path) -> SqlitePersistence:
        """Open (creating) the engine in ``directory``, locked against a second process.

        The committer checks conflicts in memory, so two processes writing one SQLite file
        would break serializability: the second one is refused with a clear error.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / "LOCK", "a+")  # held open for the engine's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StorageUnavailable(
                f"The data directory {directory} is in use by another Reactor process "
                "(a running server?). Stop it, or talk to it with --url."
            ) from None
        engine = cls(directory / cls.FILE_NAME)
        engine._lock = lock
        # Leases left in the file belong to a process that is gone (it no longer holds the
        # lock): a restart after a crash must not wait for them to expire.
        engine._clear_leases_sync()
        return engine

    @classmethod
    def open_reader(cls, directory: str | Path) -> SqlitePersistence:
        """The engine in ``directory`` for reading alone, beside the process holding it (a
        function runner's connection): read-only, no lock. Reads at a published timestamp
        see every commit at or below it (MVCC), whoever wrote it."""
        path = Path(directory) / cls.FILE_NAME
        engine = cls.__new__(cls)
        engine.path = path
        engine._feed = None
        engine._directory_synced = False
        engine._shm_fd = None
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"Cannot open SQLite database {path}: {exc}") from exc
        engine._reader = engine._writer = conn
        engine._write_lock = threading.RLock()
        engine._closed = False
        engine._lock = None
        engine.wall_clock_ns = time.time_ns
        return engine

    @property
    def local_directory(self) -> Path:
        return self.path.parent

    @property
    def reader_url(self) -> str:
        return f"sqlite:{self.path.parent}"

    async def prepare(self, indexes: IndexDefinitions) -> None:
        """Nothing to create: every index lives in the one ``indexes`` table."""

    def open_feed(
        self,
        sink: FeedSink,
        *,
        indexes: Callable[[str], Mapping[str, Sequence[str]]],
        checkpoint_key: str,
    ) -> _DurableFeed:
        self._feed = _DurableFeed(sink, self._sync_wal, self._checkpoint_due, self._checkpoint)
        return self._feed

    # -- reads (caller's thread) -------------------------------------------------------------

    def max_ts(self) -> int:
        """The newest commit timestamp stored: the newest row of the log tables (each has an
        index on ts), the ``max_ts`` global (written by a batch whose last commit left no such
        row, and by earlier versions with every batch) and ``pruned_through`` (pruning may
        remove the newest rows, tombstones, at or below it)."""
        newest = [
            self._reader.execute(f"SELECT MAX(ts) FROM {table}").fetchone()[0] or 0
            for table in ("documents", "indexes", "mutations")
        ]
        stored = [int(self.read_global(key) or 0) for key in ("max_ts", "pruned_through")]
        return max(*newest, *stored)

    def table_numbers(self) -> dict[str, int]:
        return dict(self._reader.execute("SELECT name, number FROM tables"))

    async def get_document(self, id: str, ts: int) -> tuple[str, bytes] | None:
        row = self._reader.execute(
            "SELECT table_name, value, deleted FROM documents "
            "WHERE id = ? AND ts <= ? ORDER BY ts DESC LIMIT 1",
            (id, ts),
        ).fetchone()
        if row is None or row[2]:
            return None
        return row[0], row[1]

    async def scan(
        self,
        index_id: str,
        start: bytes,
        end: bytes | None,
        ts: int,
        order: Order,
        limit: int,
    ) -> list[IndexRow]:
        out: list[IndexRow] = []
        lo, hi = start, end
        execute = self._reader.execute
        while len(out) < limit:
            want = limit - len(out)
            batch = want + 8 if want < 1000 else want
            params = (index_id, lo, hi, ts, batch)
            if order is Order.ASC:
                rows = execute(_SCAN_ASC_OPEN if hi is None else _SCAN_ASC, params).fetchall()
            else:
                rows = execute(_SCAN_DESC_OPEN if hi is None else _SCAN_DESC, params).fetchall()
            for key, deleted, document_id, value in rows:
                if not deleted and value is not None:
                    out.append(IndexRow(key, document_id, value))
                    if len(out) == limit:
                        return out
            if len(rows) < batch:
                return out
            last = rows[-1][0]
            if order is Order.ASC:
                lo = last + b"\x00"
            else:
                hi = last
        return out

    async def load_documents(
        self, after_ts: int, until_ts: int, *, table: str | None, limit: int
    ) -> tuple[list[tuple[int, DocumentLogEntry]], bool]:
        """The document versions (deletes as ``value=None``) written in ``(after_ts, until_ts]``
        to user tables (or to ``table``), in (ts, id) order: whole commits, about ``limit``
        versions (more when one commit alone is larger), and whether more remain. For
        streaming export (``reactor.operations.streaming_export``); versions older than the
        retention window (``pruned_through``) may be gone."""
        params: tuple[str, ...] = ()
        if table is None:
            where = "table_name NOT LIKE '\\_%' ESCAPE '\\'"
        else:
            where, params = "table_name = ?", (table,)
        query = (
            "SELECT ts, id, table_name, value, deleted FROM documents "
            f"WHERE ts > ? AND ts <= ? AND {where} ORDER BY ts, id"
        )
        rows = self._reader.execute(
            query + " LIMIT ?", (after_ts, until_ts, *params, limit + 1)
        ).fetchall()
        more = len(rows) > limit
        if more:
            boundary = rows[limit][0]  # the commit the page would split: left for the next page
            rows = [row for row in rows if row[0] < boundary]
            if not rows:  # one commit larger than a page: all of it
                rows = self._reader.execute(query, (boundary - 1, boundary, *params)).fetchall()
        return [
            (ts, DocumentLogEntry(id, table_name, None if deleted else value, None))
            for ts, id, table_name, value, deleted in rows
        ], more

    async def lookup_mutation(self, session_id: str, request_id: int) -> tuple[int, bytes] | None:
        row = self._reader.execute(
            "SELECT ts, result FROM mutations WHERE session_id = ? AND request_id = ?",
            (session_id, request_id),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    async def max_request_id(self, session_id: str) -> int | None:
        row = self._reader.execute(
            "SELECT MAX(request_id) FROM mutations WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else row[0]

    async def get_global(self, key: str) -> Any:
        return self.read_global(key)

    def read_global(self, key: str) -> Any:
        row = self._reader.execute("SELECT value FROM globals WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- writes (a worker thread, or the loop for a small batch) ------------------------------

    async def write(self, commits: Sequence[Commit]) -> None:
        await asyncio.to_thread(self._write_sync, commits, durable=True)

    async def commit(
        self,
        requests: Sequence[CommitRequest],
        *,
        write_log: WriteLog,
        next_ts: Callable[[], int],
    ) -> list[CommitResult]:
        if self._feed is None:
            raise RuntimeError("SqlitePersistence.commit() called before open_feed()")
        feed = self._feed
        results, accepted = check_batch(requests, write_log, next_ts, feed.unsynced)
        if accepted:
            commits = [commit for _, commit in accepted]
            rows = sum(len(c.documents) + len(c.indexes) for c in commits)
            # On the loop only if no other write holds the connection (pruning, a checkpoint):
            # the loop must never wait for one.
            if rows <= INLINE_WRITE_ROWS and self._write_lock.acquire(blocking=False):
                try:
                    self._write_sync(commits, durable=False)
                finally:
                    self._write_lock.release()
            else:
                await asyncio.to_thread(self._write_sync, commits, durable=False)
            feed.written([request.published(commit.ts) for request, commit in accepted])
        return results

    async def set_global(self, key: str, value: Any) -> None:
        await asyncio.to_thread(self._set_global_sync, key, value)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        return await asyncio.to_thread(self._acquire_lease_sync, name, holder, ttl_s)

    async def release_lease(self, name: str, holder: str) -> None:
        await asyncio.to_thread(self._release_lease_sync, name, holder)

    @contextlib.contextmanager
    def _write_transaction(
        self, what: str, *, durable: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """The writer connection inside BEGIN IMMEDIATE, committed on success and rolled back
        (raising ``StorageUnavailable``) on any SQLite error; fsynced before returning when
        ``durable`` (else the change feed's fsync makes it durable)."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageUnavailable(f"SQLite {what} failed: {exc}") from exc
        if durable:
            self._sync_wal()

    def _checkpoint_due(self) -> bool:
        """Whether the WAL holds ``WAL_CHECKPOINT_BYTES`` since it last restarted."""
        end = _SHM_MX_FRAME_OFFSET + _SHM_MX_FRAME.size
        try:
            if self._shm_fd is None:  # kept open: the file lives as long as our connections
                self._shm_fd = os.open(self.path.with_name(self.path.name + "-shm"), os.O_RDONLY)
            header = os.pread(self._shm_fd, end, 0)
        except OSError:
            return False
        if len(header) < end:
            return False
        (frames,) = _SHM_MX_FRAME.unpack_from(header, _SHM_MX_FRAME_OFFSET)
        return bool(frames * (self._page_size + 24) >= WAL_CHECKPOINT_BYTES)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file (what SQLite's automatic checkpoint does, on
        the change feed's thread when ``_checkpoint_due``). Writers wait meanwhile, so it
        catches up with the WAL and the next write restarts the WAL."""
        with self._write_lock:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # a later one tries again
                log.warning("SQLite checkpoint failed: %s", exc)

    def _sync_wal(self) -> None:
        """Make every commit written so far durable: fdatasync the WAL file (and, the first
        time, the directory holding it). Runs on a worker thread, beside the next write."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            if not self._directory_synced:
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._directory_synced = True
        except OSError as exc:
            raise StorageUnavailable(f"Cannot fsync the SQLite WAL {wal}: {exc}") from exc

    def _set_global_sync(self, key: str, value: Any) -> None:
        with self._write_transaction("write") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO globals (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )

    def _acquire_lease_sync(self, name: str, holder: str, ttl_s: float) -> bool:
        with self._write_transaction("lease") as conn:
            now = self.wall_clock_ns()
            conn.execute(
                "INSERT INTO leases (name, holder, expires_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_ns = excluded.expires_ns "
                "WHERE leases.holder = excluded.holder OR leases.expires_ns <= ?",
                (name, holder, now + int(ttl_s * 1e9), now),
            )
            row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == holder

    def _clear_leases_sync(self) -> None:
        with self._write_transaction("lease") as conn:
            conn.execute("DELETE FROM leases")

    def _release_lease_sync(self, name: str, holder: str) -> None:
        with self._write_transaction("lease") as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def _write_sync(self, commits: Sequence[Commit], *, durable: bool) -> None:
        documents: list[tuple[Any, ...]] = []
        indexes: list[tuple[Any, ...]] = []
        tables: list[tuple[str, int]] = []
        mutations: list[tuple[Any, ...]] = []
        for commit in commits:
            ts = commit.ts
            for doc in commit.documents:
                documents.append((doc.id, ts, doc.table, doc.value, doc.value is None, doc.prev_ts))
            for entry in commit.indexes:
                indexes.append(
                    (entry.index_id, entry.key, ts, entry.value is None, entry.document_id)
                )
            tables.extend(commit.tables.items())
            for record in commit.mutations:
                mutations.append((record.session_id, record.request_id, ts, record.result))
        with self._write_transaction("write", durable=durable) as conn:
            if tables:
                conn.executemany(
                    "INSERT OR IGNORE INTO tables (name, number) VALUES (?, ?)", tables
                )
            conn.executemany(
                "INSERT INTO documents (id, ts, table_name, value, deleted, prev_ts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                documents,
            )
            changed = _changed_entries(conn, indexes)
            conn.executemany(
                "INSERT INTO indexes (index_id, key, ts, deleted, document_id) "
                "VALUES (?, ?, ?, ?, ?)",
                changed,
            )
            if mutations:
                conn.executemany(
                    "INSERT OR REPLACE INTO mutations (session_id, request_id, ts, result) "
                    "VALUES (?, ?, ?, ?)",
                    mutations,
                )
            # ``max_ts`` reads the newest row back; a global (one more page per batch) only
            # when the last commit left none.
            last = commits[-1].ts if commits else 0
            stored = (
                (documents and documents[-1][1])
                or (changed and changed[-1][2])
                or (mutations and mutations[-1][2])
            )
            if last and stored != last:
                conn.execute(
                    "INSERT OR REPLACE INTO globals (key, value) VALUES ('max_ts', ?)",
                    (json.dumps(last),),
                )

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, previous: int, cutoff: int) -> int:
        """Forget versions no snapshot at or after ``cutoff`` can see; returns rows removed.

        Incremental: only keys written in ``(previous, cutoff]`` can have newly superseded
        versions. A version is superseded when a newer one of the same key exists at or below
        the cutoff; a tombstone with nothing older left is then redundant too.
        """
        return await asyncio.to_thread(self._prune_sync, previous, cutoff)

    def _prune_sync(self, previous: int, cutoff: int) -> int:
        window = (previous, cutoff)
        with self._write_transaction("pruning") as conn:
            removed = conn.execute(
                "DELETE FROM indexes WHERE (index_id, key, ts) IN ("
                " SELECT o.index_id, o.key, o.ts FROM indexes n JOIN indexes o"
                " ON o.index_id = n.index_id AND o.key = n.key AND o.ts < n.ts"
                " WHERE n.ts > ? AND n.ts <= ?)",
                window,
            ).rowcount
            removed += conn.execute(
                "DELETE FROM indexes WHERE deleted = 1 AND ts > ? AND ts <= ?", window
            ).rowcount
            removed += conn.execute(
                "DELETE FROM documents WHERE (id, ts) IN ("
                " SELECT o.id, o.ts FROM documents n JOIN documents o"
                " ON o.id = n.id AND o.ts < n.ts WHERE n.ts > ? AND n.ts <= ?)",
                window,
            ).rowcount
            removed += conn.execute(
                "DELETE FROM documents WHERE deleted = 1 AND ts > ? AND ts <= ?", window
            ).rowcount
            # Idempotency records outlive any client's reconnect attempts (two weeks, as
            # Convex keeps session records).
            removed += conn.execute(
                "DELETE FROM mutations WHERE ts < ?", (cutoff - MUTATION_RECORD_RETENTION_NS,)
            ).rowcount
            conn.execute(
                "INSERT OR REPLACE INTO globals (key, value) VALUES ('pruned_through', ?)",
                (json.dumps(cutoff),),
            )
        return removed

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._writer.close()
        self._reader.close()
        if self._shm_fd is not None:
            os.close(self._shm_fd)
        if self._lock is not None:
            self._lock.close()


def _changed_entries(
    conn: sqlite3.Connection, entries: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The index versions of ``entries`` (index_id, key, ts, deleted, document_id; in ts
    order) that change what the index holds: a key that already holds the same document (a
    write that did not move it) keeps its older version, since scans take the value from
    ``documents``. Skipping those is most of the write path's saving: a random-key insert
    costs a whole page in the WAL and again at the checkpoint."""
    latest: dict[tuple[str, bytes], tuple[int, str]] = {}  # this batch's own versions
    out: list[tuple[Any, ...]] = []
    current = conn.execute
    for entry in entries:
        index_id, key, _ts, deleted, document_id = entry
        state = latest.get((index_id, key))
        if state is None:
            row = current(
                "SELECT deleted, document_id FROM indexes WHERE index_id = ? AND key = ? "
                "ORDER BY ts DESC LIMIT 1",
                (index_id, key),
            ).fetchone()
            state = None if row is None else (row[0], row[1])
        if not deleted and state is not None and not state[0] and state[1] == document_id:
            continue
        latest[index_id, key] = (int(deleted), document_id)
        out.append(entry)
    return out


def check_batch(
    requests: Sequence[CommitRequest],
    write_log: WriteLog,
    next_ts: Callable[[], int],
    unsynced: WriteLog | None = None,
) -> tuple[list[CommitResult], list[tuple[CommitRequest, Commit]]]:
    """The conflict check of a single-process engine: each request against the commits after
    its snapshot in ``write_log`` (published) and ``unsynced`` (written, not yet durable) and
    against the requests accepted before it in this batch. Returns the result per request and
    the accepted requests with their records."""
    batch = WriteLog()  # the accepted requests of this batch, not yet published
    results: list[CommitResult] = []
    accepted: list[tuple[CommitRequest, Commit]] = []
    for request in requests:
        conflict = write_log.find_conflict(request.read_set, request.begin_ts)
        if conflict is None and unsynced:
            conflict = unsynced.find_conflict(request.read_set, request.begin_ts)
        if conflict is None and accepted:
            conflict = batch.find_conflict(request.read_set, 0)
        if conflict is not None:
            results.append(OptimisticConcurrencyError(table=conflict.table, write_ts=conflict.ts))
            continue
        ts = next_ts()
        batch.append(ts, request.write_keys, request.table, request.write_prefixes)
        commit = request.build(ts)
        commit.mutations = request.mutations
        accepted.append((request, commit))
        results.append(ts)
    return results, accepted


class _DurableFeed:
    """The embedded engine's change feed: hands each written commit to the sink once it is
    durable. ``written`` queues a batch; one flush at a time fsyncs the WAL (``sync``, on a
    worker thread) and publishes every batch written before the fsync began, in order, so one
    fsync covers all the batches written while the previous one ran. Until published, a
    commit is in ``unsynced`` for the conflict check of later ones. After publishing, it runs
    the WAL's checkpoint when one is due (commits never do: they may be written on the loop).

    No task runs while nothing waits: a flush starts with the first batch written and ends
    when none is left. ``stop`` waits for the flush, so every written commit is published.
    A failed fsync leaves the written commits in doubt (an fsync error may have dropped the
    pages it did not write, and a second fsync would not report it): the process exits, and
    its restart recovers what the WAL holds, as a crash would.
    """

    def __init__(
        self,
        sink: FeedSink,
        sync: Callable[[], None],
        checkpoint_due: Callable[[], bool],
        checkpoint: Callable[[], None],
    ) -> None:
        self.sink = sink
        self._sync = sync
        self._checkpoint_due = checkpoint_due
        self._checkpoint = checkpoint
        self.unsynced = WriteLog(max_entries=2**62)  # released as published, never trimmed
        self._written: list[PublishedCommit] = []
        self._flush: asyncio.Task[None] | None = None

    def start(self) -> None:
        pass

    def poke(self) -> None:
        pass

    def written(self, commits: Sequence[PublishedCommit]) -> None:
        for commit in commits:
            self.unsynced.append(commit.ts, commit.write_keys, commit.table, commit.write_prefixes)
        self._written.extend(commits)
        if self._flush is None or self._flush.done():
            self._flush = start_task(self._flush_all(), name="sqlite-fsync")

    async def _flush_all(self) -> None:
        written = self._written
        while written:
            count = len(written)  # the batches this fsync covers; later ones wait for the next
            try:
                await asyncio.to_thread(self._sync)
            except StorageUnavailable as exc:
                log.critical("%s; exiting: acknowledged commits cannot be promised", exc)
                os._exit(70)  # EX_SOFTWARE
            for commit in written[:count]:
                self.sink.publish(commit)
            self.unsynced.release_through(written[count - 1].ts)
            del written[:count]
            if self._checkpoint_due():
                await asyncio.to_thread(self._checkpoint)

    async def stop(self) -> None:
        flush = self._flush
        if flush is not None:
            await asyncio.shield(flush)
