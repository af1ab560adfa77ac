"""Transaction against a real SQLite file: what it reads, what it records as read, what it
writes, and the limits of one function execution.

A transaction is built as ``reactor.engine.database.Database.begin`` builds it. Data is put in
place by committing a transaction's own records (``prepare_commit().build(ts)``) with
``Persistence.write``, so no committer runs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from functions.store import UNDEFINED, Bound, IndexRange, Order, PaginationOptions
from reactor.core.index_keys import id_key, index_key, index_key_prefixes, range_interval
from reactor.core.intervals import Interval
from reactor.core.persistence import IndexEntry
from reactor.core.system_tables import TableRegistry
from reactor.engine import transaction as transaction_module
from reactor.engine.transaction import Transaction, add_index_writes
from reactor.storage.sqlite import SqlitePersistence
from schema import define_schema, define_table, tables as tables_module, v
from schema.errors import (
    DocumentNotFound,
    InvalidCursor,
    ReadOnlyTransactionError,
    SchemaError,
    TransactionLimitExceeded,
    ValidationError,
)
from schema.ids import encode_id, new_internal_id
from schema.values import Int64, loads

pytestmark = pytest.mark.anyio

SCHEMA = define_schema(
    {
        "messages": define_table(
            {"author": v.string(), "n": v.number(), "body": v.optional(v.string())}
        )
        .index("by_author", ["author", "n"])
        .index("by_n", ["n"]),
    }
)
BY_N = ("n",)
NOW_MS = 1_700_000_000_000.0


class Db:
    """A SQLite engine, its table registry, and the timestamp of its latest commit."""

    def __init__(self, storage: SqlitePersistence) -> None:
        self.storage = storage
        self.tables = TableRegistry(storage.table_numbers())
        self.ts = 0

    def begin(
        self,
        ts: int | None = None,
        *,
        writable: bool = False,
        schema: Any = SCHEMA,
        journal: str | None = None,
    ) -> Transaction:
        return Transaction(
            self.storage,
            self.ts if ts is None else ts,
            schema=schema,
            tables=self.tables,
            writable=writable,
            now_ms=NOW_MS,
            journal=journal,
        )

    async def commit(self, txn: Transaction) -> int:
        request = txn.prepare_commit()
        self.ts += 1
        commit = request.build(self.ts)
        await self.storage.write([commit])
        self.tables.mark_persisted(commit.tables)
        return self.ts

    async def seed(self, *ns: float, author: str = "ada") -> list[str]:
        """Commit one message per ``n``; returns their ids."""
        txn = self.begin(writable=True)
        ids = [await txn.insert("messages", {"author": author, "n": n}) for n in ns]
        await self.commit(txn)
        return ids


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    storage = SqlitePersistence.open(tmp_path / "data")
    try:
        yield Db(storage)
    finally:
        await storage.aclose()


async def _take(
    docs: AsyncIterator[dict[str, Any]], count: int | None = None
) -> list[dict[str, Any]]:
    """Up to ``count`` documents of a scan (all when None), closing the scan afterwards."""
    taken: list[dict[str, Any]] = []
    generator = cast(AsyncGenerator[dict[str, Any], None], docs)
    async with contextlib.aclosing(generator):
        async for doc in generator:
            taken.append(doc)
            if count is not None and len(taken) >= count:
                break
    return taken


def _ns(docs: list[dict[str, Any]]) -> list[float]:
    return [doc["n"] for doc in docs]


EVERYTHING = IndexRange()


def _by_n(
    txn: Transaction, order: Order = Order.ASC, rng: IndexRange = EVERYTHING
) -> AsyncIterator[dict[str, Any]]:
    return txn.scan("messages", "by_n", rng, order)


def _reads(txn: Transaction) -> list[tuple[str, Interval]]:
    return sorted(txn.read_set().items())


def _missing_id(db: Db, table: str = "messages") -> str:
    return encode_id(db.tables.number_for(table), new_internal_id())


# -- reads and the read set --------------------------------------------------------------------


class TestGet:
    async def test_a_stored_document_is_returned_and_its_id_recorded(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin()

        doc = await txn.get(doc_id)

        assert doc == {"_id": doc_id, "_creationTime": NOW_MS, "author": "ada", "n": 1.0}
        assert _reads(txn) == [("messages.by_id", Interval.point(id_key(doc_id)))]

    async def test_a_missing_document_is_none_and_its_id_is_still_recorded(self, db: Db) -> None:
        await db.seed(1.0)
        missing = _missing_id(db)
        txn = db.begin()

        assert await txn.get(missing) is None
        assert _reads(txn) == [("messages.by_id", Interval.point(id_key(missing)))]

    async def test_the_snapshot_decides_what_is_seen(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        writer = db.begin(writable=True)
        await writer.patch(doc_id, {"n": 2.0})
        await db.commit(writer)
        deleter = db.begin(writable=True)
        await deleter.delete(doc_id)
        await db.commit(deleter)

        seen = [await db.begin(ts).get(doc_id) for ts in (0, 1, 2, 3)]

        assert [None if doc is None else doc["n"] for doc in seen] == [None, 1.0, 2.0, None]

    async def test_the_returned_document_is_a_copy(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin()
        first = await txn.get(doc_id)
        assert first is not None

        first["n"] = 99.0

        assert (await txn.get(doc_id) or {})["n"] == 1.0

    async def test_an_id_of_an_unknown_table_is_none(self, db: Db) -> None:
        txn = db.begin()

        assert await txn.get(encode_id(20_000, new_internal_id())) is None

    @pytest.mark.parametrize("bad", ["not-an-id", "x" * 32])
    async def test_a_string_that_is_no_id_is_refused(self, db: Db, bad: str) -> None:
        with pytest.raises(ValidationError, match="Invalid argument `id` for `db.get`"):
            await db.begin().get(bad)

    async def test_a_non_string_is_refused(self, db: Db) -> None:
        with pytest.raises(ValidationError, match="db.get expects an id string, got int"):
            await db.begin().get(5)  # type: ignore[arg-type]


class TestScan:
    async def test_documents_come_in_index_order(self, db: Db) -> None:
        await db.seed(3.0, 1.0, 2.0)

        assert _ns(await _take(_by_n(db.begin()))) == [1.0, 2.0, 3.0]
        assert _ns(await _take(_by_n(db.begin(), Order.DESC))) == [3.0, 2.0, 1.0]

    async def test_a_range_selects_its_documents(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)
        await db.seed(2.5, author="bob")
        rng = IndexRange(
            eq=(("author", "ada"),), lower=Bound("n", 2.0, False), upper=Bound("n", 4.0, True)
        )

        docs = await _take(db.begin().scan("messages", "by_author", rng, Order.ASC))

        assert _ns(docs) == [3.0, 4.0]

    async def test_an_exhausted_scan_records_its_whole_range(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0)
        rng = IndexRange(lower=Bound("n", 1.5, True))
        txn = db.begin()

        assert _ns(await _take(_by_n(txn, rng=rng))) == [2.0, 3.0]

        whole = range_interval(rng, (*BY_N, "_creationTime"), index="messages.by_n")
        assert _reads(txn) == [("messages.by_n", whole)]

    async def test_an_empty_scan_records_its_whole_range(self, db: Db) -> None:
        txn = db.begin()

        assert await _take(_by_n(txn)) == []
        assert _reads(txn) == [("messages.by_n", Interval(b"", None))]

    async def test_a_stopped_scan_records_up_to_the_last_key_consumed(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)
        txn = db.begin()

        docs = await _take(_by_n(txn), 2)

        last = index_key(docs[-1], BY_N)
        assert _reads(txn) == [("messages.by_n", Interval(b"", last + b"\x00"))]
        assert not txn.read_set().contains("messages.by_n", index_key(docs[-1] | {"n": 3.0}, BY_N))

    async def test_a_stopped_descending_scan_records_from_the_last_key_consumed(
        self, db: Db
    ) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)
        txn = db.begin()

        docs = await _take(_by_n(txn, Order.DESC), 2)

        assert _ns(docs) == [4.0, 3.0]
        assert _reads(txn) == [("messages.by_n", Interval(index_key(docs[-1], BY_N), None))]

    async def test_a_scan_read_past_one_storage_batch_records_what_it_consumed(
        self, db: Db
    ) -> None:
        await db.seed(*(float(n) for n in range(100)))
        txn = db.begin()

        docs = await _take(_by_n(txn), 70)

        assert _ns(docs) == [float(n) for n in range(70)]
        assert _reads(txn) == [
            ("messages.by_n", Interval(b"", index_key(docs[-1], BY_N) + b"\x00"))
        ]

    @pytest.mark.parametrize("order", [Order.ASC, Order.DESC])
    @pytest.mark.parametrize("count", [1, 31, 32, 33, 70, 100, None])
    async def test_a_scan_of_storage_alone_answers_as_the_merging_scan(
        self, db: Db, order: Order, count: int | None
    ) -> None:
        # A transaction that wrote nothing in the table reads storage alone; one that rewrote
        # a document with the same values merges its own version in: same documents, same
        # read set, across storage batches, stopped or exhausted.
        ids = await db.seed(*(float(n) for n in range(100)))
        plain = db.begin(writable=True)
        await plain.system_insert("_storage", {"size": 1.0})
        merging = db.begin(writable=True)
        await merging.patch(ids[40], {"n": 40.0})

        assert await _take(_by_n(plain, order), count) == await _take(_by_n(merging, order), count)
        by_n = [read for read in _reads(merging) if read[0] == "messages.by_n"]
        assert _reads(plain) == by_n

    async def test_a_scan_never_iterated_records_nothing(self, db: Db) -> None:
        await db.seed(1.0)
        txn = db.begin()

        scan = cast(AsyncGenerator[dict[str, Any], None], _by_n(txn))

        assert _reads(txn) == []
        await scan.aclose()

    async def test_by_creation_time_orders_by_insertion(self, db: Db) -> None:
        await db.seed(3.0, 1.0, 2.0)

        docs = await _take(db.begin().scan("messages", "by_creation_time", IndexRange(), Order.ASC))

        assert _ns(docs) == [3.0, 1.0, 2.0]

    async def test_an_unknown_index_is_refused(self, db: Db) -> None:
        with pytest.raises(SchemaError, match=r"Index messages\.by_nothing not found"):
            await _take(db.begin().scan("messages", "by_nothing", IndexRange(), Order.ASC))

    async def test_by_id_cannot_be_scanned(self, db: Db) -> None:
        with pytest.raises(ValidationError, match=r"messages\.by_id cannot be scanned"):
            await _take(db.begin().scan("messages", "by_id", IndexRange(), Order.ASC))

    async def test_system_tables_are_read_through_the_system_store(self, db: Db) -> None:
        txn = db.begin()

        with pytest.raises(ValidationError, match="'_storage' is a system table"):
            await _take(txn.scan("_storage", "by_creation_time", IndexRange(), Order.ASC))
        with pytest.raises(ValidationError, match="'messages' is not a system table"):
            await _take(txn.system_store().scan("messages", "by_n", IndexRange(), Order.ASC))


# -- read-your-writes --------------------------------------------------------------------------


class TestOwnWrites:
    async def test_a_transaction_reads_its_own_inserts(self, db: Db) -> None:
        txn = db.begin(writable=True)

        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0})

        assert await txn.get(doc_id) == {
            "_id": doc_id,
            "_creationTime": NOW_MS,
            "author": "ada",
            "n": 1.0,
        }
        assert db.tables.table_of_id(doc_id) == "messages"

    async def test_each_insert_gets_a_later_creation_time(self, db: Db) -> None:
        txn = db.begin(writable=True)

        first = await txn.get(await txn.insert("messages", {"author": "a", "n": 1.0}))
        second = await txn.get(await txn.insert("messages", {"author": "a", "n": 1.0}))

        assert first is not None and second is not None
        assert first["_creationTime"] == NOW_MS
        assert second["_creationTime"] == math.nextafter(NOW_MS, math.inf)

    async def test_scans_merge_stored_documents_with_own_writes(self, db: Db) -> None:
        one, two, three = await db.seed(1.0, 2.0, 3.0)
        txn = db.begin(writable=True)
        await txn.insert("messages", {"author": "ada", "n": 1.5})
        await txn.patch(three, {"n": 0.5})
        await txn.delete(two)

        assert _ns(await _take(_by_n(txn))) == [0.5, 1.0, 1.5]
        assert _ns(await _take(_by_n(txn, Order.DESC))) == [1.5, 1.0, 0.5]
        assert await txn.get(two) is None
        assert (await txn.get(one) or {})["n"] == 1.0

    async def test_own_writes_outside_the_range_are_not_scanned(self, db: Db) -> None:
        await db.seed(1.0)
        txn = db.begin(writable=True)
        await txn.insert("messages", {"author": "ada", "n": 5.0})

        docs = await _take(_by_n(txn, rng=IndexRange(upper=Bound("n", 2.0, False))))

        assert _ns(docs) == [1.0]

    async def test_a_stored_document_is_not_read_twice(
        self, db: Db, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)
        await _take(_by_n(txn))
        monkeypatch.setattr(transaction_module, "MAX_READ_ROWS", 1)

        await txn.get(doc_id)
        await txn.patch(doc_id, {"n": 2.0})

        assert (await txn.get(doc_id) or {})["n"] == 2.0


# -- writes ------------------------------------------------------------------------------------


class TestWrites:
    async def test_a_query_cannot_write(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=False)

        with pytest.raises(ReadOnlyTransactionError, match=r"db\.insert is not allowed in a query"):
            await txn.insert("messages", {"author": "ada", "n": 1.0})
        with pytest.raises(ReadOnlyTransactionError, match=r"db\.patch is not allowed"):
            await txn.patch(doc_id, {"n": 2.0})
        with pytest.raises(ReadOnlyTransactionError, match=r"db\.delete is not allowed"):
            await txn.delete(doc_id)
        assert not txn.has_writes

    async def test_documents_are_validated_against_the_schema(self, db: Db) -> None:
        txn = db.begin(writable=True)

        with pytest.raises(ValidationError, match="does not match the schema"):
            await txn.insert("messages", {"author": "ada", "n": "one"})
        with pytest.raises(SchemaError, match="Table `other` is not defined in the schema"):
            await txn.insert("other", {"x": 1.0})
        with pytest.raises(ValidationError, match="Invalid table name"):
            await txn.insert("no such table", {"x": 1.0})
        assert not txn.has_writes

    async def test_fields_starting_with_an_underscore_are_refused(self, db: Db) -> None:
        txn = db.begin(writable=True, schema=None)

        with pytest.raises(ValidationError, match="'_secret' starts with '_'"):
            await txn.insert("notes", {"_secret": 1.0})

    async def test_plain_ints_are_stored_and_read_back_as_floats(self, db: Db) -> None:
        txn = db.begin(writable=True, schema=None)
        doc_id = await txn.insert("notes", {"n": 1, "big": Int64(7), "nested": [2, {"x": 3}]})
        await db.commit(txn)

        own = await txn.get(doc_id)
        stored = await db.begin().get(doc_id)

        assert own == stored
        assert stored is not None
        assert type(stored["n"]) is float
        assert type(stored["nested"][0]) is float and type(stored["nested"][1]["x"]) is float
        assert isinstance(stored["big"], Int64)

    async def test_a_document_over_the_size_limit_is_refused(self, db: Db) -> None:
        txn = db.begin(writable=True, schema=None)

        with pytest.raises(ValidationError, match="Document is too large"):
            await txn.insert("notes", {"text": "x" * (1 << 20)})

    async def test_patch_merges_fields_and_undefined_removes_one(self, db: Db) -> None:
        txn = db.begin(writable=True)
        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0, "body": "hi"})

        await txn.patch(doc_id, {"n": 2.0, "body": UNDEFINED, "_id": doc_id})

        assert await txn.get(doc_id) == {
            "_id": doc_id,
            "_creationTime": NOW_MS,
            "author": "ada",
            "n": 2.0,
        }

    async def test_patch_cannot_change_system_fields(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)

        with pytest.raises(ValidationError, match="System field '_creationTime' cannot be changed"):
            await txn.patch(doc_id, {"_creationTime": 5.0})
        with pytest.raises(ValidationError, match="does not match the schema"):
            await txn.patch(doc_id, {"n": "two"})
        with pytest.raises(ValidationError, match="db.patch expects an object of fields"):
            await txn.patch(doc_id, ["n"])  # type: ignore[arg-type]
        assert not txn.has_writes

    async def test_replace_replaces_every_user_field(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)

        await txn.replace(doc_id, {"author": "bob", "n": 5.0, "_id": doc_id})

        assert await txn.get(doc_id) == {
            "_id": doc_id,
            "_creationTime": NOW_MS,
            "author": "bob",
            "n": 5.0,
        }
        with pytest.raises(ValidationError, match="System field '_id' cannot be changed"):
            await txn.replace(doc_id, {"author": "bob", "n": 5.0, "_id": _missing_id(db)})

    async def test_changing_a_missing_document_is_refused(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        missing = _missing_id(db)
        txn = db.begin(writable=True)
        await txn.delete(doc_id)

        with pytest.raises(DocumentNotFound, match=f"^Patch on nonexistent document ID {missing}"):
            await txn.patch(missing, {"n": 1.0})
        with pytest.raises(DocumentNotFound, match="Replace on nonexistent document ID"):
            await txn.replace(doc_id, {"author": "a", "n": 1.0})
        with pytest.raises(DocumentNotFound, match="Delete on nonexistent document ID"):
            await txn.delete(doc_id)
        with pytest.raises(DocumentNotFound, match="Delete on nonexistent document ID"):
            await txn.delete("not-an-id")

    async def test_system_documents_are_written_only_by_the_runtime(self, db: Db) -> None:
        txn = db.begin(writable=True)
        file_id = await txn.system_insert("_storage", {"sha256": "abc", "size": 3})

        with pytest.raises(ValidationError, match="system table '_storage' cannot be changed"):
            await txn.patch(file_id, {"size": 4.0})
        with pytest.raises(ValidationError, match="system table '_storage' cannot be changed"):
            await txn.delete(file_id)
        with pytest.raises(ValueError, match="system_insert into user table 'messages'"):
            await txn.system_insert("messages", {})

        await txn.system_patch(file_id, {"size": 4})
        assert (await txn.system_store().get(file_id) or {})["size"] == 4.0
        await txn.system_delete(file_id)
        assert await txn.system_store().get(file_id) is None

    async def test_the_system_store_reads_system_tables_only(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)
        store = txn.system_store()

        with pytest.raises(ValidationError, match="is not an id of a system table"):
            await store.get(doc_id)
        with pytest.raises(ReadOnlyTransactionError, match="System tables are read-only"):
            await store.insert("_storage", {})
        assert store.table_for_id(None, doc_id) is None


# -- limits ------------------------------------------------------------------------------------


class TestLimits:
    async def test_too_many_writes(self, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(transaction_module, "MAX_WRITES", 3)
        txn = db.begin(writable=True)
        for n in range(3):
            await txn.insert("messages", {"author": "ada", "n": float(n)})

        with pytest.raises(TransactionLimitExceeded, match=r"Too many writes .*\(limit: 3\)"):
            await txn.insert("messages", {"author": "ada", "n": 3.0})

    async def test_too_many_bytes_written(self, db: Db) -> None:
        """Convex's 16 MiB per mutation: 17 documents of ~1 MB are refused at commit."""
        txn = db.begin(writable=True)
        for n in range(17):
            await txn.insert("messages", {"author": "x" * 1_000_000, "n": float(n)})
        with pytest.raises(TransactionLimitExceeded, match=r"Too many bytes written .*16777216"):
            txn.prepare_commit()
        small = db.begin(writable=True)
        for n in range(15):
            await small.insert("messages", {"author": "x" * 1_000_000, "n": float(n)})
        assert len(small.prepare_commit().writes) == 15

    async def test_too_many_documents_read(self, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
        ids = await db.seed(1.0, 2.0, 3.0)
        monkeypatch.setattr(transaction_module, "MAX_READ_ROWS", 2)
        txn = db.begin()

        assert len(await _take(_by_n(txn), 2)) == 2
        with pytest.raises(TransactionLimitExceeded, match=r"Too many documents read .*limit: 2"):
            await txn.get(ids[2])

    async def test_too_many_index_ranges(self, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
        await db.seed(1.0)
        monkeypatch.setattr(transaction_module, "MAX_READ_INTERVALS", 2)
        txn = db.begin()
        for n in (1.0, 2.0):
            await _take(_by_n(txn, rng=IndexRange(eq=(("n", n),))))

        with pytest.raises(TransactionLimitExceeded, match=r"Too many index ranges .*limit: 2"):
            await _take(_by_n(txn, rng=IndexRange(eq=(("n", 3.0),))))

    async def test_the_default_limits_are_convex_s(self) -> None:
        assert transaction_module.MAX_READ_ROWS == 32_000
        assert transaction_module.MAX_READ_INTERVALS == 4_096
        assert transaction_module.MAX_WRITES == 16_000
        assert transaction_module.MAX_WRITE_BYTES == 16 * 1024 * 1024


# -- pagination --------------------------------------------------------------------------------


async def _page(
    db: Db, options: PaginationOptions, *, order: Order = Order.ASC, txn: Transaction | None = None
) -> Any:
    txn = txn or db.begin()
    return await txn.paginate("messages", "by_n", IndexRange(), order, None, options)


class TestPaginate:
    async def test_pages_follow_each_other_to_the_end(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0, 5.0)

        first = await _page(db, PaginationOptions(2))
        second = await _page(db, PaginationOptions(2, cursor=first.continue_cursor))
        third = await _page(db, PaginationOptions(2, cursor=second.continue_cursor))
        after = await _page(db, PaginationOptions(2, cursor=third.continue_cursor))

        assert [(_ns(p.page), p.is_done) for p in (first, second, third, after)] == [
            ([1.0, 2.0], False),
            ([3.0, 4.0], False),
            ([5.0], True),
            ([], True),
        ]

    async def test_a_page_records_only_the_keys_it_covered(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0)
        txn = db.begin()

        result = await _page(db, PaginationOptions(2), txn=txn)

        end = index_key(result.page[-1], BY_N) + b"\x00"
        assert _reads(txn) == [("messages.by_n", Interval(b"", end))]
        assert txn.journal == result.continue_cursor

    async def test_the_last_page_records_the_rest_of_the_range(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0)
        first = await _page(db, PaginationOptions(2))
        txn = db.begin()

        await _page(db, PaginationOptions(2, cursor=first.continue_cursor), txn=txn)

        start = index_key(first.page[-1], BY_N) + b"\x00"
        assert _reads(txn) == [("messages.by_n", Interval(start, None))]

    async def test_descending_pages(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0)

        first = await _page(db, PaginationOptions(2), order=Order.DESC)
        second = await _page(
            db, PaginationOptions(2, cursor=first.continue_cursor), order=Order.DESC
        )

        assert (_ns(first.page), _ns(second.page), second.is_done) == ([3.0, 2.0], [1.0], True)

    async def test_a_predicate_filters_without_moving_the_end(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)

        result = await db.begin().paginate(
            "messages",
            "by_n",
            IndexRange(),
            Order.ASC,
            lambda doc: doc["n"] % 2 == 0,
            PaginationOptions(1),
        )

        assert _ns(result.page) == [2.0]
        assert not result.is_done

    async def test_a_pinned_end_re_covers_exactly_the_same_keys(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)
        first = await _page(db, PaginationOptions(2))
        await db.seed(1.5, 9.0)

        rerun = await _page(db, PaginationOptions(2, end_cursor=first.continue_cursor))
        journaled = await _page(
            db, PaginationOptions(2), txn=db.begin(journal=first.continue_cursor)
        )

        assert _ns(rerun.page) == [1.0, 1.5, 2.0]
        assert rerun.continue_cursor == first.continue_cursor
        assert _ns(journaled.page) == [1.0, 1.5, 2.0]

    async def test_a_pinned_page_past_the_row_limit_asks_for_a_split(self, db: Db) -> None:
        await db.seed(1.0, 2.0, 3.0, 4.0)
        whole = await _page(db, PaginationOptions(4))

        result = await _page(
            db, PaginationOptions(4, end_cursor=whole.continue_cursor, maximum_rows_read=2)
        )

        assert _ns(result.page) == [1.0, 2.0]
        assert result.page_status == "SplitRequired"
        assert result.split_cursor == result.continue_cursor
        assert not result.is_done

    async def test_zero_items_reads_nothing(self, db: Db) -> None:
        await db.seed(1.0)
        txn = db.begin()

        result = await _page(db, PaginationOptions(0), txn=txn)

        assert (result.page, result.is_done) == ([], False)
        assert _reads(txn) == []
        assert _ns((await _page(db, PaginationOptions(1, cursor=result.continue_cursor))).page) == [
            1.0
        ]

    async def test_one_paginate_per_function(self, db: Db) -> None:
        txn = db.begin()
        await _page(db, PaginationOptions(1), txn=txn)

        with pytest.raises(ValidationError, match="more than one paginated query"):
            await _page(db, PaginationOptions(1), txn=txn)

    @pytest.mark.parametrize("num_items", [-1, 32_001, True, "2", None])
    async def test_num_items_must_be_a_number_in_range(self, db: Db, num_items: Any) -> None:
        with pytest.raises(ValidationError, match="numItems must be a number from 0 to 32000"):
            await _page(db, PaginationOptions(num_items))

    async def test_a_cursor_of_another_index_is_refused(self, db: Db) -> None:
        await db.seed(1.0, 2.0)
        first = await _page(db, PaginationOptions(1))

        with pytest.raises(InvalidCursor, match="belongs to a different query"):
            await db.begin().paginate(
                "messages",
                "by_creation_time",
                IndexRange(),
                Order.ASC,
                None,
                PaginationOptions(1, cursor=first.continue_cursor),
            )
        with pytest.raises(InvalidCursor, match="belongs to a different query"):
            await _page(db, PaginationOptions(1, cursor=first.continue_cursor), order=Order.DESC)


# -- prepare_commit ----------------------------------------------------------------------------


class TestPrepareCommit:
    async def test_an_insert_writes_every_index_of_its_table(self, db: Db) -> None:
        txn = db.begin(writable=True)
        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0})
        doc = await txn.get(doc_id)
        assert doc is not None

        request = txn.prepare_commit()
        commit = request.build(7)

        assert request.write_keys == {
            "messages.by_id": [id_key(doc_id)],
            "messages.by_creation_time": [index_key(doc, ())],
            "messages.by_author": [index_key(doc, ("author", "n"))],
            "messages.by_n": [index_key(doc, BY_N)],
        }
        assert request.table == "messages"
        assert request.writes == [("messages", doc_id, doc)]
        assert commit.ts == 7
        assert [(d.id, d.table, loads(d.value or b"")) for d in commit.documents] == [
            (doc_id, "messages", doc)
        ]
        assert sorted(e.index_id for e in commit.indexes) == [
            "messages.by_author",
            "messages.by_creation_time",
            "messages.by_n",
        ]
        assert commit.tables == {"messages": 10_001}

    async def test_a_changed_key_writes_the_old_one_as_a_tombstone(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)
        old = await txn.get(doc_id)
        await txn.patch(doc_id, {"n": 2.0})
        new = await txn.get(doc_id)
        assert old is not None and new is not None

        request = txn.prepare_commit()
        by_n = [e for e in request.build(2).indexes if e.index_id == "messages.by_n"]

        assert request.write_keys["messages.by_n"] == [index_key(old, BY_N), index_key(new, BY_N)]
        assert request.write_keys["messages.by_creation_time"] == [index_key(old, ())]
        assert [(e.key, e.value is None) for e in by_n] == [
            (index_key(old, BY_N), True),
            (index_key(new, BY_N), False),
        ]
        assert request.build(2).tables == {}

    async def test_a_delete_writes_tombstones(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)
        await txn.delete(doc_id)

        commit = txn.prepare_commit().build(2)

        assert [(d.id, d.value) for d in commit.documents] == [(doc_id, None)]
        assert {e.value for e in commit.indexes} == {None}

    async def test_an_insert_deleted_in_the_same_transaction_writes_nothing(self, db: Db) -> None:
        txn = db.begin(writable=True)
        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0})
        await txn.delete(doc_id)

        request = txn.prepare_commit()

        assert txn.has_writes
        assert request.write_keys == {}
        assert request.build(1).documents == []
        assert request.table is None

    async def test_the_request_carries_the_read_set_and_snapshot(self, db: Db) -> None:
        await db.seed(1.0, 2.0)
        txn = db.begin(writable=True)
        await _take(_by_n(txn), 1)
        await txn.insert("messages", {"author": "ada", "n": 3.0})

        request = txn.prepare_commit()

        assert request.begin_ts == 1
        assert sorted(request.read_set.items()) == _reads(txn)
        assert request.read_set.interval_count() == 1

    async def test_a_committed_transaction_is_read_back(self, db: Db) -> None:
        txn = db.begin(writable=True)
        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0})
        written = await txn.get(doc_id)
        ts = await db.commit(txn)

        assert await db.begin(ts).get(doc_id) == written
        assert await db.begin(ts - 1).get(doc_id) is None
        assert _ns(await _take(_by_n(db.begin(ts)))) == [1.0]
        assert db.storage.table_numbers() == {"messages": 10_001}


# -- the cheaper patch and commit paths answer as the full ones ---------------------------------

# A table whose validator is flat (scalar fields: only the size is left to check after it) and
# one whose validator is not (nested values, v.any()): both take different paths in
# SchemaDefinition.validate_document.
MIXED_SCHEMA = define_schema(
    {
        "messages": define_table(
            {"author": v.string(), "n": v.number(), "body": v.optional(v.string())}
        ),
        "things": define_table(
            {"n": v.number(), "data": v.optional(v.any()), "tags": v.optional(v.array(v.string()))}
        ),
    }
)


def _deep(depth: int) -> Any:
    value: Any = 1.0
    for _ in range(depth):
        value = {"a": value}
    return value


# Patches of a stored {"n": 1.0, "author"/"data": ...} document: good ones and every kind of
# bad input (names, reserved names, values, schema, nesting, the 1 MiB limit with and without
# the system fields).
PATCHES: list[dict[Any, Any]] = [
    {"n": 2},
    {"n": 2.0, "body": "hi"},
    {"body": UNDEFINED},
    {"author": UNDEFINED},
    {"n": UNDEFINED, "$bad": UNDEFINED},
    {"$bad": 1.0},
    {"_hidden": 1.0},
    {"x" * 65: 1.0},
    {"ctl\x01": 1.0},
    {"é": 1.0},
    {5: 1.0},
    {"n": "two"},
    {"extra": 1.0},
    {"n": 1 << 60},
    {"n": "two", "$bad": 1.0},
    {"n": "two", "extra": 1.0},
    {"extra": 1.0, "n": "two"},
    {"data": {"$x": 1.0}},
    {"data": {"ok": [1, {"bad\x02": 2}]}},
    {"data": _deep(16)},
    {"data": _deep(17)},
    {"data": [0.0] * 8193},
    {"tags": ["a", 5]},
    {"data": "x" * (1 << 20)},
    {"body": "x" * ((1 << 20) - 40)},
    {"data": "x" * ((1 << 20) - 40)},
    {"body": "x" * ((1 << 20) - 80)},
    {"data": "x" * ((1 << 20) - 80)},
    {"n": 3.0, "data": Int64(4), "tags": ("a", "b")},
    {"data": {"nested": bytearray(b"b"), "list": (1, 2)}},
]


class TestPatchChecks:
    """``patch`` checks only the fields it changes (the stored ones were checked when written)
    plus what the merged document needs: the outcome, error or document, is the same as the
    whole merged document checked like a new one."""

    @staticmethod
    def _outcome(exc: BaseException) -> tuple[Any, ...]:
        return (type(exc), str(exc), getattr(exc, "path", None))

    async def _patched(self, db: Db, schema: Any, doc_id: str, fields: dict[Any, Any]) -> Any:
        txn = db.begin(writable=True, schema=schema)
        try:
            await txn.patch(doc_id, fields)
        except Exception as exc:
            return self._outcome(exc)
        return await txn.get(doc_id)

    async def _reference(
        self,
        db: Db,
        schema: Any,
        table: str,
        doc_id: str,
        fields: dict[Any, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> Any:
        txn = db.begin(writable=True, schema=schema)
        current = await txn.get(doc_id)
        assert current is not None
        merged = {k: value for k, value in current.items() if k not in ("_id", "_creationTime")}
        for name, value in fields.items():
            if value is UNDEFINED:
                merged.pop(name, None)
            else:
                merged[name] = value
        with monkeypatch.context() as patched:
            # No shortcut: every name and value checked, check_document after the validator.
            patched.setattr(tables_module, "_is_flat", lambda validator: False)
            try:
                user = txn._validate(table, merged)
                doc = {"_id": doc_id, "_creationTime": current["_creationTime"], **user}
                txn._check_size(doc)
            except Exception as exc:
                return self._outcome(exc)
        return doc

    @pytest.mark.parametrize("fields", PATCHES, ids=range(len(PATCHES)))
    @pytest.mark.parametrize(
        ("schema", "table", "stored"),
        [
            (MIXED_SCHEMA, "messages", {"author": "ada", "n": 1.0}),
            (MIXED_SCHEMA, "things", {"n": 1.0, "data": {"k": [1.0, "v"]}}),
            (None, "notes", {"author": "ada", "n": 1.0, "data": {"k": [1.0, "v"]}}),
        ],
        ids=["flat", "nested", "schemaless"],
    )
    async def test_patch_answers_as_checking_the_merged_document(
        self,
        db: Db,
        monkeypatch: pytest.MonkeyPatch,
        schema: Any,
        table: str,
        stored: dict[str, Any],
        fields: dict[Any, Any],
    ) -> None:
        txn = db.begin(writable=True, schema=schema)
        doc_id = await txn.insert(table, stored)
        await db.commit(txn)

        expected = await self._reference(db, schema, table, doc_id, fields, monkeypatch)
        assert await self._patched(db, schema, doc_id, fields) == expected

    async def test_a_bad_name_is_reported_even_where_the_value_is_bad_too(self, db: Db) -> None:
        txn = db.begin(writable=True, schema=MIXED_SCHEMA)
        doc_id = await txn.insert("messages", {"author": "ada", "n": 1.0})

        with pytest.raises(ValidationError, match=r"Field name '\$bad' starts with '\$'"):
            await txn.patch(doc_id, {"n": "two", "$bad": 1.0})
        with pytest.raises(ValidationError, match="Expected `number`, got `string`"):
            await txn.patch(doc_id, {"n": "two"})


def _reference_index_writes(
    table: str,
    indexes: dict[str, tuple[str, ...]],
    doc_id: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    encoded: bytes | None,
) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]], list[Any]]:
    """What add_index_writes adds, computed with index_key_prefixes for every key."""
    write_keys: dict[str, list[bytes]] = {}
    write_prefixes: dict[str, list[bytes]] = {}
    entries: list[Any] = []
    for name, fields in indexes.items():
        iid = f"{table}.{name}"
        keys = write_keys.setdefault(iid, [])
        prefixes = write_prefixes.setdefault(iid, [])
        old_key = new_key = None
        if old is not None:
            old_key, old_prefixes = index_key_prefixes(old, fields)
            keys.append(old_key)
            prefixes.extend(old_prefixes)
        if new is not None:
            new_key, new_prefixes = index_key_prefixes(new, fields)
            if new_key != old_key:
                keys.append(new_key)
                prefixes.extend(new_prefixes)
        if old_key is not None and old_key != new_key:
            entries.append(IndexEntry(iid, old_key, doc_id, None))
        if new_key is not None:
            entries.append(IndexEntry(iid, new_key, doc_id, encoded))
    return write_keys, write_prefixes, entries


class TestIndexWrites:
    INDEXES = {
        "by_creation_time": (),
        "by_a": ("a",),
        "by_a_b": ("a", "b"),
        "by_nested": ("o.x", "a"),
        "by_missing": ("nothing",),
    }

    @pytest.mark.parametrize(
        "change",
        ["insert", "delete", "same", "a_moves", "b_moves", "nested_moves", "equal_copies"],
    )
    def test_add_index_writes_matches_index_key_prefixes(self, change: str) -> None:
        shared = {"x": [1.0, "s"]}
        old: dict[str, Any] | None = {
            "_id": "doc1",
            "_creationTime": 5.0,
            "a": 1.0,
            "b": "two",
            "o": shared,
        }
        assert old is not None
        new: dict[str, Any] | None = dict(old)
        assert new is not None
        if change == "insert":
            old = None
        elif change == "delete":
            new = None
        elif change == "a_moves":
            new["a"] = -0.0
        elif change == "b_moves":
            new["b"] = Int64(2)
        elif change == "nested_moves":
            new["o"] = {"x": [1.0, "t"]}
        elif change == "equal_copies":
            # Equal but not the same objects: 0.0 == -0.0 must still encode apart.
            new.update({"a": True, "_creationTime": 5.0, "o": {"x": [1.0, "s"]}})
            old["a"] = 1.0
        expected = _reference_index_writes("t", self.INDEXES, "doc1", old, new, b"{}")

        write_keys: dict[str, list[bytes]] = {}
        write_prefixes: dict[str, list[bytes]] = {}
        entries: list[Any] = []
        add_index_writes(
            "t", self.INDEXES, "doc1", old, new, b"{}", write_keys, write_prefixes, entries
        )

        assert (write_keys, write_prefixes, entries) == expected

    async def test_a_commit_writes_the_keys_of_every_index(self, db: Db) -> None:
        [doc_id] = await db.seed(1.0)
        txn = db.begin(writable=True)
        await txn.patch(doc_id, {"author": "bob"})
        request = txn.prepare_commit()
        commit = request.build(db.ts + 1)
        stored = await db.begin().get(doc_id)
        patched = await txn.get(doc_id)
        assert stored is not None and patched is not None

        expected: dict[str, list[bytes]] = {"messages.by_id": [id_key(doc_id)]}
        keys, _prefixes, entries = _reference_index_writes(
            "messages",
            {"by_creation_time": (), "by_author": ("author", "n"), "by_n": ("n",)},
            doc_id,
            stored,
            patched,
            commit.documents[0].value,
        )
        expected.update(keys)
        assert request.write_keys == expected
        assert commit.indexes == entries
