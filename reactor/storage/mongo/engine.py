"""The MongoDB engine: one collection per table, snapshot reads, serializable commits across
processes.

Layout (database named by the URL's path, ``reactor`` when it has none):

* ``<table>``: one document per Convex document, latest version only, as
  ``reactor.storage.mongo.bson_values`` encodes it, plus ``_rx.k.<index>``: the document's
  order-preserving index key (``reactor.core.index_keys``) in lowercase hex, for every index of the
  table (``by_id``, ``by_creation_time`` and the schema's). MongoDB's own order differs from
  Convex's (int64 and float64 interleave, ``-0 == 0``, type brackets), so Reactor scans these
  key fields, each with its own MongoDB index; the schema's indexes are also created on the
  document fields themselves (fields, then ``_creationTime``, then ``_id``) for other programs.
* ``_reactor_meta``: the sequence document ``{_id: "seq", ts, trimmed}``: every commit updates
  it, so MongoDB's write-conflict detection serializes committers of every process.
* ``_reactor_commits``: ``{_id: ts, keys, prefixes, table, deleted}``, the written index keys
  (and deleted documents) of each commit; a committer checks its read set against every entry
  after its snapshot, and the polling feed publishes them.
* ``_reactor_tables``, ``_reactor_mutations`` (idempotency records), ``_reactor_globals``
  (admin key, environment variables, cron state, resume points), ``_reactor_leases``.

Snapshot reads: all reads at one published timestamp go through one MongoDB snapshot session
(``readConcern: snapshot``); its first read is the sequence document, which says which commits
the snapshot holds. This module does not decide what is published when
(``reactor.storage.mongo.feed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.int64 import Int64 as BsonInt64
from bson.timestamp import Timestamp
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, MongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.operations import DeleteOne, ReplaceOne, UpdateOne
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from reactor.core.determinism import runtime_io
from reactor.core.index_keys import BY_CREATION_TIME, BY_ID, id_key
from reactor.core.persistence import (
    ChangeFeed,
    Commit,
    CommitRequest,
    CommitResult,
    FeedSink,
    IndexDefinitions,
    IndexRow,
)
from reactor.core.system_tables import SYSTEM_TABLES
from reactor.core.write_log import WriteLog
from reactor.storage.mongo.bson_values import decode_document, encode_document
from reactor.storage.mongo.commit_log import decode_key_map, encode_key_map
from schema.errors import OptimisticConcurrencyError, StorageUnavailable
from schema.ids import decode_id
from schema.ordering import Order
from schema.values import dumps, loads

__all__ = [
    "MongoPersistence",
    "parse_mongo_url",
]

log = logging.getLogger("reactor.mongo")

META = "_reactor_meta"
COMMITS = "_reactor_commits"
TABLES = "_reactor_tables"
MUTATIONS = "_reactor_mutations"
GLOBALS = "_reactor_globals"
LEASES = "_reactor_leases"
SEQ = "seq"
KEY_FIELD = "_rx.k"
DEFAULT_DATABASE = "reactor"
FEED_MODES = ("change_stream", "poll")
TRANSACTION_ATTEMPTS = 6
WRITE_CONFLICT = 112
SNAPSHOT_KEEP_S = 120.0  # a superseded snapshot stays usable this long (longer transactions fail)
SNAPSHOT_CATCH_UP_S = 5.0  # how long a snapshot for a commit waits for the commit to show
MAX_EXPECTED = 256  # the ts -> commit floors a function runner remembers (``expect_commit``)
COMMIT_LOG_RETENTION_NS = 15 * 60 * 10**9
MUTATION_RECORD_RETENTION_NS = 14 * 24 * 3600 * 10**9
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(document_class=dict, tz_aware=True)
_T = TypeVar("_T")
_M = TypeVar("_M", bound=Callable[..., Awaitable[Any]])


def parse_mongo_url(url: str) -> tuple[str, str, str]:
    """(client URL, database name, feed mode) of
    ``mongodb://host[:port][,host...]/db?options``. Reactor's own option ``reactorFeed``
    (``change_stream``, the default, or ``poll``) is taken out of the client's options."""
    parts = urlsplit(url)
    if parts.scheme not in ("mongodb", "mongodb+srv"):
        raise ValueError(f"Not a MongoDB URL: {url!r}")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if any(ch in database for ch in '/\\. "$') or len(database) > 63:
        raise ValueError(f"Invalid MongoDB database name {database!r} in {url!r}")
    options = parse_qsl(parts.query, keep_blank_values=True)
    feed = "change_stream"
    kept = []
    for key, value in options:
        if key == "reactorFeed":
            if value not in FEED_MODES:
                raise ValueError(
                    f"Invalid reactorFeed={value!r} in {url!r}: use one of {', '.join(FEED_MODES)}"
                )
            feed = value
        else:
            kept.append((key, value))
    query = urlencode(kept, safe=",:")
    return urlunsplit((parts.scheme, parts.netloc, "/", query, "")), database, feed


def _runtime_io(method: _M) -> _M:
    """Run an engine method as the runtime's I/O, allowed inside queries and mutations."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with runtime_io():
            return await method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unlabelled_conflict(exc: PyMongoError) -> bool:
    return isinstance(exc, OperationFailure) and (
        exc.code == WRITE_CONFLICT or "write conflict" in str(exc).lower()
    )


def _hex_key(field_path: str) -> str:
    return f"{KEY_FIELD}.{field_path}"


class _Snapshot:
    __slots__ = ("ready", "reactor_ts", "session", "superseded_at")

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.session: AsyncClientSession | None = None
        self.reactor_ts = 0
        self.superseded_at: float | None = None


class MongoPersistence:
    """Persistence on a MongoDB replica set. Open with ``MongoPersistence.open(url)``."""

    single_process = False
    visible_before_durable = False

    def __init__(
        self,
        url: str,
        database: str,
        *,
        tables: dict[str, int],
        max_ts: int,
        feed_mode: str = "change_stream",
        reader: bool = False,
    ) -> None:
        self.url = url
        self.reader = reader
        self.database_name = database
        self.feed_mode = feed_mode
        self._tables = {**tables, **SYSTEM_TABLES}
        self._names = {number: name for name, number in self._tables.items()}  # ids -> table
        self._max_ts = max_ts
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._snapshots: dict[int, _Snapshot] = {}
        self._expected: dict[int, int] = {}  # ts -> the commit its snapshot must hold
        self._ensured: set[str] = set()
        self._closed = False

    @classmethod
    def open(cls, url: str, *, timeout_s: float = 10.0, reader: bool = False) -> MongoPersistence:
        """Connect (synchronously, once, at startup), create the system collections, load
        table numbers and the last commit timestamp. A ``reader`` (a function runner's own
        connection, beside the server that opened the database) writes nothing: it only
        loads them."""
        client_url, database, feed_mode = parse_mongo_url(url)
        try:
            client: MongoClient[dict[str, Any]]
            with MongoClient(client_url, serverSelectionTimeoutMS=int(timeout_s * 1000)) as client:
                db: Any = client[database]
                hello = db.command("hello")
                if feed_mode == "change_stream" and not (
                    hello.get("setName") or hello.get("msg") == "isdbgrid"
                ):
                    raise StorageUnavailable(
                        f"The MongoDB server of {url!r} is not a replica set: Reactor needs "
                        "transactions and change streams (start mongod with --replSet rs0 and "
                        "run rs.initiate() once; a single-node replica set is enough)"
                    )
                if not reader:
                    db[META].update_one(
                        {"_id": SEQ},
                        {"$setOnInsert": {"ts": BsonInt64(0), "trimmed": BsonInt64(0)}},
                        upsert=True,
                    )
                    db[TABLES].create_index([("number", ASCENDING)], unique=True)
                    db[MUTATIONS].create_index([("s", ASCENDING), ("r", ASCENDING)])
                    db[MUTATIONS].create_index([("ts", ASCENDING)])
                tables = {d["_id"]: int(d["number"]) for d in db[TABLES].find({})}
                seq = db[META].find_one({"_id": SEQ}) or {}
        except PyMongoError as exc:
            raise StorageUnavailable(f"Cannot open MongoDB storage {url!r}: {exc}") from exc
        return cls(
            client_url,
            database,
            tables=tables,
            max_ts=int(seq.get("ts") or 0),
            feed_mode=feed_mode,
            reader=reader,
        )

    # -- connection --------------------------------------------------------------------------

    @property
    def client(self) -> AsyncMongoClient[dict[str, Any]]:
        if self._closed:
            raise StorageUnavailable("The MongoDB storage is closed")
        if self._client is None:
            self._client = AsyncMongoClient(self.url, document_class=dict, tz_aware=True)
        return self._client

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.client.get_database(self.database_name, codec_options=_CODEC)

    @_runtime_io
    async def operation_time(self) -> Timestamp | None:
        """The cluster's current operation time (where a first change stream starts)."""
        reply = await self._io("read", self.db.command("hello"))
        value = reply.get("operationTime")
        return value if isinstance(value, Timestamp) else None

    async def _io(self, what: str, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except PyMongoError as exc:
            raise StorageUnavailable(f"MongoDB {what} failed: {exc}") from exc

    @property
    def reader_url(self) -> str:
        """The URL a function runner opens this engine with: the same database and feed."""
        parts = urlsplit(self.url)
        options = parse_qsl(parts.query, keep_blank_values=True)
        options.append(("reactorFeed", self.feed_mode))
        query = urlencode(options, safe=",:")
        return urlunsplit((parts.scheme, parts.netloc, f"/{self.database_name}", query, ""))

    @property
    def local_directory(self) -> None:
        """A networked engine keeps nothing on this machine."""
        return None

    def open_feed(
        self,
        sink: FeedSink,
        *,
        indexes: Callable[[str], Mapping[str, Sequence[str]]],
        checkpoint_key: str,
    ) -> ChangeFeed:
        from reactor.storage.mongo.feed import ClusterFeed

        return ClusterFeed(self, sink, index_definitions=indexes, checkpoint_key=checkpoint_key)

    # -- simple reads --------------------------------------------------------------------------

    def max_ts(self) -> int:
        return self._max_ts

    def table_numbers(self) -> dict[str, int]:
        return dict(self._tables)

    async def _table_of(self, id: str) -> str | None:
        try:
            number = decode_id(id).table_number
        except Exception:
            return None
        name = self._names.get(number)
        if name is not None:
            return name
        async for doc in self.db[TABLES].find({"number": number}):  # made by another process
            self._learn_table(str(doc["_id"]), number)
            return str(doc["_id"])
        return None

    def _learn_table(self, name: str, number: int) -> None:
        if name not in self._tables:
            self._tables[name] = number
            self._names[number] = name

    @_runtime_io
    async def lookup_mutation(self, session_id: str, request_id: int) -> tuple[int, bytes] | None:
        doc = await self._io(
            "read", self.db[MUTATIONS].find_one({"s": session_id, "r": BsonInt64(request_id)})
        )
        return None if doc is None else (int(doc["ts"]), bytes(doc["result"]))

    @_runtime_io
    async def max_request_id(self, session_id: str) -> int | None:
        cursor = self.db[MUTATIONS].find({"s": session_id}).sort("r", DESCENDING).limit(1)
        docs = await self._io("read", cursor.to_list(1))
        return int(docs[0]["r"]) if docs else None

    @_runtime_io
    async def get_global(self, key: str) -> Any:
        doc = await self._io("read", self.db[GLOBALS].find_one({"_id": key}))
        return None if doc is None else json.loads(doc["value"])

    @_runtime_io
    async def set_global(self, key: str, value: Any) -> None:
        await self._io(
            "write",
            self.db[GLOBALS].replace_one(
                {"_id": key}, {"_id": key, "value": json.dumps(value)}, upsert=True
            ),
        )

    # -- snapshots -------------------------------------------------------------------------------

    async def snapshot(self, ts: int) -> _Snapshot:
        """The snapshot for published timestamp ``ts``, made on first use."""
        snap = self._snapshots.get(ts)
        if snap is None:
            snap = self._snapshots[ts] = _Snapshot()
            holds = self._expected.get(ts, ts)
            try:
                deadline = time.monotonic() + SNAPSHOT_CATCH_UP_S
                while True:
                    session = self.client.start_session(snapshot=True)
                    seq = await session.client[self.database_name][META].find_one(
                        {"_id": SEQ}, session=session
                    )
                    snap.reactor_ts = int((seq or {}).get("ts") or 0)
                    # Another process (a function runner) may be handed ``ts`` before its own
                    # snapshots hold that commit: read at a newer snapshot, never an older one.
                    # A ts no commit has (a tick of an idle feed) needs only the newest commit
                    # below it (``expect_commit``).
                    if snap.reactor_ts >= holds or time.monotonic() > deadline:
                        break
                    await session.end_session()
                    await asyncio.sleep(0.002)
                if snap.reactor_ts < holds:
                    await session.end_session()
                    raise PyMongoError(f"no snapshot holds commit {holds} yet")
                snap.session = session
                snap.ready.set_result(None)
            except PyMongoError as exc:
                del self._snapshots[ts]
                error = StorageUnavailable(f"MongoDB snapshot read failed: {exc}")
                snap.ready.set_exception(error)
                snap.ready.exception()  # retrieved: concurrent waiters get it too
                raise error from exc
            if self.reader:  # no feed retires a function runner's snapshots: newer ones do
                await self.retire_snapshots(ts)
        elif not snap.ready.done():
            await snap.ready
        return snap

    def expect_commit(self, ts: int, holds: int) -> None:
        """A snapshot of ``ts`` must hold the commit at ``holds`` (at most ``ts``; below it when
        ``ts`` is a tick no commit has): what a function runner is told with each call."""
        expected = self._expected
        expected[ts] = min(ts, holds)
        if len(expected) > MAX_EXPECTED:
            del expected[next(iter(expected))]  # the oldest

    def visible_reactor_ts(self, ts: int) -> int | None:
        """The newest Reactor commit the snapshot of ``ts`` holds (None: never read at ts)."""
        snap = self._snapshots.get(ts)
        if snap is None or not snap.ready.done() or snap.ready.exception() is not None:
            return None
        return snap.reactor_ts

    async def retire_snapshots(self, published_ts: int) -> None:
        """Forget snapshots superseded more than ``SNAPSHOT_KEEP_S`` ago."""
        now = time.monotonic()
        for ts, snap in list(self._snapshots.items()):
            if ts >= published_ts:
                continue
            if snap.superseded_at is None:
                snap.superseded_at = now
            elif now - snap.superseded_at > SNAPSHOT_KEEP_S and snap.ready.done():
                del self._snapshots[ts]
                if snap.session is not None:
                    await snap.session.end_session()

    @_runtime_io
    async def get_document(self, id: str, ts: int) -> tuple[str, bytes] | None:
        table = await self._table_of(id)
        if table is None:
            return None
        snap = await self.snapshot(ts)
        raw = await self._io("read", self.db[table].find_one({"_id": id}, session=snap.session))
        if raw is None:
            return None
        return table, dumps(decode_document(raw))

    @_runtime_io
    async def scan(
        self,
        index_id: str,
        start: bytes,
        end: bytes | None,
        ts: int,
        order: Order,
        limit: int,
    ) -> list[IndexRow]:
        table, _, index = index_id.rpartition(".")
        field = _hex_key(index)
        bounds: dict[str, str] = {"$gte": start.hex()}
        if end is not None:
            bounds["$lt"] = end.hex()
        snap = await self.snapshot(ts)
        direction = ASCENDING if order is Order.ASC else DESCENDING
        cursor = (
            self.db[table]
            .find({field: bounds}, session=snap.session)
            .sort(field, direction)
            .limit(limit)
            .batch_size(min(limit, 1000))
        )
        rows = []
        async for raw in cursor:
            doc = decode_document(raw)
            rows.append(IndexRow(bytes.fromhex(raw["_rx"]["k"][index]), doc["_id"], dumps(doc)))
        return rows

    # -- schema ----------------------------------------------------------------------------------

    @_runtime_io
    async def prepare(self, indexes: IndexDefinitions) -> None:
        """Create each table's collection (with pre- and post-images for change events) and its
        MongoDB indexes: the key field of every index and, for schema indexes, the fields."""
        db = self.db
        existing = set(await self._io("read", db.list_collection_names()))
        for table, table_indexes in indexes.items():
            if table not in existing:
                try:
                    await db.create_collection(
                        table, changeStreamPreAndPostImages={"enabled": True}
                    )
                except OperationFailure as exc:
                    log.warning("collection %s: no pre-images (%s)", table, exc)
                    try:
                        await db.create_collection(table)
                    except OperationFailure:
                        pass  # made meanwhile by another process
            names = {BY_ID: (), BY_CREATION_TIME: (), **table_indexes}
            for name, fields in names.items():
                await self._ensure_index(table, name, tuple(fields))

    async def _ensure_index(self, table: str, name: str, fields: tuple[str, ...]) -> None:
        marker = f"{table}.{name}"
        if marker in self._ensured:
            return
        coll = self.db[table]
        await self._io(
            "index creation", coll.create_index([(_hex_key(name), ASCENDING)], name=f"_rx_{name}")
        )
        if fields and name not in (BY_ID, BY_CREATION_TIME):
            keys = [(f, ASCENDING) for f in fields] + [
                ("_creationTime", ASCENDING),
                ("_id", ASCENDING),
            ]
            try:
                await coll.create_index(keys, name=name)
            except OperationFailure as exc:  # an older definition under this name
                log.warning("index %s.%s on the fields not (re)created: %s", table, name, exc)
        self._ensured.add(marker)

    # -- commits -----------------------------------------------------------------------------

    @_runtime_io
    async def write(self, commits: Sequence[Commit]) -> None:
        """Store commits unconditionally (no conflict check): tools and tests only; the
        server commits through ``commit`` (``reactor.storage.mongo.feed``'s committer)."""

        async def apply(session: AsyncClientSession) -> None:
            for commit in commits:
                await self._apply(session, commit)
            await self.db[META].update_one(
                {"_id": SEQ}, {"$max": {"ts": BsonInt64(commits[-1].ts)}}, session=session
            )

        if commits:
            await self._transaction("write", apply)
            self._max_ts = max(self._max_ts, *(commit.ts for commit in commits))

    @_runtime_io
    async def commit(
        self,
        requests: Sequence[CommitRequest],
        *,
        write_log: WriteLog,
        next_ts: Callable[[], int],
    ) -> list[CommitResult]:
        """Commit a batch in one MongoDB transaction: each request is checked against every
        commit (of any process) after its snapshot and the earlier requests of the batch.
        Returns, per request, its timestamp or the conflict that refused it."""
        sequence = 0  # the sequence as the successful attempt left it

        async def attempt(session: AsyncClientSession) -> list[int | OptimisticConcurrencyError]:
            nonlocal sequence
            db = self.db
            # Taking the sequence document first makes concurrent committers conflict at once.
            seq = await db[META].find_one_and_update(
                {"_id": SEQ}, {"$inc": {"n": 1}}, session=session, upsert=True
            )
            last = int((seq or {}).get("ts") or 0)
            trimmed = int((seq or {}).get("trimmed") or 0)
            begins = []
            for request in requests:
                reads = next(iter(request.read_set.items()), None) is not None
                if not reads:
                    begins.append(last)
                    continue
                # Read here: the commit its snapshot held. Read in a runner's snapshot: at
                # least ``begin_ts`` (checking from there is conservative, never unsafe).
                visible = self.visible_reactor_ts(request.begin_ts)
                begins.append(request.begin_ts if visible is None else visible)
            log_ = WriteLog()
            oldest = min((b for b in begins if b is not None), default=last)
            if oldest < last:
                async for entry in (
                    db[COMMITS]
                    .find({"_id": {"$gt": BsonInt64(oldest)}}, session=session)
                    .sort("_id", ASCENDING)
                ):
                    log_.append(
                        int(entry["_id"]),
                        decode_key_map(entry.get("keys")),
                        entry.get("table"),
                        decode_key_map(entry.get("prefixes")),
                    )
            results: list[int | OptimisticConcurrencyError] = []
            for request, begin in zip(requests, begins, strict=True):
                conflict = None
                if begin != last:
                    if begin is None or begin < trimmed:
                        results.append(
                            OptimisticConcurrencyError(table=request.table, write_ts=last)
                        )
                        continue
                    conflict = log_.find_conflict(request.read_set, begin)
                if conflict is not None:
                    results.append(
                        OptimisticConcurrencyError(table=conflict.table, write_ts=conflict.ts)
                    )
                    continue
                ts = max(next_ts(), last + 1)
                last = ts
                log_.append(ts, request.write_keys, request.table, request.write_prefixes)
                commit = request.build(ts)
                commit.mutations = request.mutations
                await self._apply(session, commit)
                await db[COMMITS].insert_one(
                    {
                        "_id": BsonInt64(ts),
                        "ts": BsonInt64(ts),
                        "table": request.table,
                        "deleted": [[d.table, d.id] for d in commit.documents if d.value is None],
                        "keys": encode_key_map(request.write_keys),
                        "prefixes": encode_key_map(request.write_prefixes),
                    },
                    session=session,
                )
                results.append(ts)
            await db[META].update_one(
                {"_id": SEQ}, {"$set": {"ts": BsonInt64(last)}}, session=session
            )
            sequence = last
            return results

        results = await self._transaction("commit", attempt)
        self._max_ts = max(self._max_ts, sequence)
        return results

    async def _transaction(
        self, what: str, body: Callable[[AsyncClientSession], Awaitable[_T]]
    ) -> _T:
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                async with self.client.start_session() as session:
                    return await session.with_transaction(
                        body,
                        read_concern=ReadConcern("snapshot"),
                        write_concern=WriteConcern("majority"),
                    )
            except PyMongoError as exc:
                # with_transaction retries what MongoDB labels transient; a write conflict
                # reported without the label (emulators) is retried here.
                if _unlabelled_conflict(exc) and attempt + 1 < TRANSACTION_ATTEMPTS:
                    await asyncio.sleep(0.002 * (2**attempt))
                    continue
                raise StorageUnavailable(f"MongoDB {what} failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def _apply(self, session: AsyncClientSession, commit: Commit) -> None:
        """The writes of one commit: documents replaced or deleted with their index keys,
        key changes of documents the commit did not rewrite (index back-fills), records."""
        db = self.db
        keys: dict[str, dict[str, str | None]] = {}
        for entry in commit.indexes:
            table, _, index = entry.index_id.rpartition(".")
            by_doc = keys.setdefault(entry.document_id, {})
            if entry.value is not None or index not in by_doc:
                by_doc[index] = None if entry.value is None else entry.key.hex()
        ops: dict[str, list[Any]] = {}
        for doc in commit.documents:
            if doc.value is None:
                ops.setdefault(doc.table, []).append(DeleteOne({"_id": doc.id}))
                keys.pop(doc.id, None)
                continue
            stored = encode_document(loads(doc.value), ts=commit.ts)
            index_keys = {k: v for k, v in keys.pop(doc.id, {}).items() if v is not None}
            index_keys[BY_ID] = id_key(doc.id).hex()
            stored["_rx"]["k"] = index_keys
            ops.setdefault(doc.table, []).append(ReplaceOne({"_id": doc.id}, stored, upsert=True))
        for doc_id, changes in keys.items():  # back-filled entries of untouched documents
            owner = await self._table_of(doc_id)
            if owner is None:
                continue
            table = owner
            sets = {_hex_key(i): k for i, k in changes.items() if k is not None}
            unsets = {_hex_key(i): "" for i, k in changes.items() if k is None}
            update: dict[str, Any] = {}
            if sets:
                update["$set"] = sets
            if unsets:
                update["$unset"] = unsets
            ops.setdefault(table, []).append(UpdateOne({"_id": doc_id}, update))
        for table, table_ops in ops.items():
            await db[table].bulk_write(table_ops, ordered=True, session=session)
        for name, number in commit.tables.items():
            await db[TABLES].update_one(
                {"_id": name}, {"$setOnInsert": {"number": number}}, upsert=True, session=session
            )
            self._learn_table(name, number)
        for record in commit.mutations:
            await db[MUTATIONS].replace_one(
                {"_id": f"{record.session_id}:{record.request_id}"},
                {
                    "s": record.session_id,
                    "r": BsonInt64(record.request_id),
                    "ts": BsonInt64(commit.ts),
                    "result": Binary(record.result),
                },
                upsert=True,
                session=session,
            )

    @_runtime_io
    async def commits_after(self, ts: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Commit-log entries after ``ts`` in order (the polling feed)."""
        cursor = self.db[COMMITS].find({"_id": {"$gt": BsonInt64(ts)}}).sort("_id", ASCENDING)
        return await self._io("read", cursor.limit(limit).to_list(limit))

    # -- retention, leases -----------------------------------------------------------------

    @_runtime_io
    async def prune(self, previous: int, cutoff: int) -> int:
        """Trim the commit log (transactions older than what is left fail their conflict
        check) and idempotency records past their retention. Documents keep one version."""
        horizon = min(cutoff, time.time_ns() - COMMIT_LOG_RETENTION_NS)
        db = self.db
        removed = (
            await self._io("trim", db[COMMITS].delete_many({"_id": {"$lte": BsonInt64(horizon)}}))
        ).deleted_count
        await self._io(
            "trim", db[META].update_one({"_id": SEQ}, {"$max": {"trimmed": BsonInt64(horizon)}})
        )
        removed += (
            await self._io(
                "trim",
                db[MUTATIONS].delete_many(
                    {"ts": {"$lt": BsonInt64(cutoff - MUTATION_RECORD_RETENTION_NS)}}
                ),
            )
        ).deleted_count
        return int(removed)

    @_runtime_io
    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = time.time_ns()
        try:
            doc = await self.db[LEASES].find_one_and_update(
                {"_id": name, "$or": [{"holder": holder}, {"expires_ns": {"$lt": now}}]},
                {"$set": {"holder": holder, "expires_ns": now + int(ttl_s * 1e9)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # held by another holder: the upsert collided with its document
        except PyMongoError as exc:
            raise StorageUnavailable(f"MongoDB lease {name!r} failed: {exc}") from exc
        return doc is not None and doc.get("holder") == holder

    @_runtime_io
    async def release_lease(self, name: str, holder: str) -> None:
        await self._io("lease release", self.db[LEASES].delete_one({"_id": name, "holder": holder}))

    async def aclose(self) -> None:
        """Close the client (the server calls this at shutdown, on its event loop)."""
        client, self._client = self._client, None
        snapshots, self._snapshots = self._snapshots, {}
        for snap in snapshots.values():
            if snap.session is not None:
                with contextlib.suppress(PyMongoError):
                    await snap.session.end_session()
        if client is not None:
            await client.close()
        self._closed = True

    def close(self) -> None:
        """Forget the client; ``aclose`` closes it properly when a loop is running."""
        self._closed = True
