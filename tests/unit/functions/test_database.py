"""ctx.db over an in-memory DocumentStore test double: index ranges, chaining, terminators."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from functions import (
    UNDEFINED,
    Auth,
    DatabaseReader,
    DatabaseWriter,
    IndexRange,
    IndexRangeBuilder,
    MutationCtx,
    Order,
    PaginationOptions,
    PaginationResult,
    QueryCtx,
    QueryJournal,
    QueryNotUnique,
    pagination_opts_validator,
)
from functions.store import Bound
from schema.errors import ReadOnlyTransactionError, SchemaError, ValidationError
from schema.ids import decode_id, encode_id, new_internal_id
from schema.ordering import UNDEFINED as ORDERING_UNDEFINED, compare_values

pytestmark = pytest.mark.anyio


class FakeStore:
    """A list-backed DocumentStore: the runtime's Transaction stand-in for unit tests.

    It records how far each scan was consumed and whether it was closed, and the arguments
    of the last paginate call. Cursors are the ``_id`` of a page's last document.
    """

    def __init__(self, indexes: dict[tuple[str, str], tuple[str, ...]] | None = None) -> None:
        self.indexes = indexes or {}
        self.tables: dict[str, int] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.clock = 1000.0
        self.scans: list[dict[str, Any]] = []
        self.paginate_calls: list[tuple[Any, ...]] = []

    def _number(self, table: str) -> int:
        return self.tables.setdefault(table, 10_001 + len(self.tables))

    def table_for_id(self, table: str | None, id: str) -> str | None:
        try:
            number = decode_id(id).table_number
        except ValidationError:
            return None
        names = [name for name, n in self.tables.items() if n == number]
        if not names or (table is not None and names[0] != table):
            return None
        return names[0]

    async def get(self, id: str) -> dict[str, Any] | None:
        doc = self.docs.get(id)
        return None if doc is None else dict(doc)

    def _fields(self, table: str, index: str) -> tuple[str, ...]:
        if index in ("by_creation_time", "by_id"):
            return ()
        if (table, index) not in self.indexes:
            raise SchemaError(f"Index {table}.{index} not found")
        return self.indexes[(table, index)]

    def _sorted(
        self, table: str, index: str, range: IndexRange, order: Order
    ) -> list[dict[str, Any]]:
        fields = self._fields(table, index)
        used = [field for field, _ in range.eq]
        bounded = {b.field for b in (range.lower, range.upper) if b is not None}
        if used != list(fields[: len(used)]) or (
            bounded and bounded != {fields[len(used) : len(used) + 1][0]}
        ):
            raise SchemaError(f"Range fields {used} {bounded} do not match index {fields}")

        def value(doc: dict[str, Any], path: str) -> Any:
            current: Any = doc
            for part in path.split("."):
                if not isinstance(current, dict) or part not in current:
                    return ORDERING_UNDEFINED
                current = current[part]
            return current

        def plain(v: Any) -> Any:
            return ORDERING_UNDEFINED if v is UNDEFINED else v

        def matches(doc: dict[str, Any]) -> bool:
            for field, expected in range.eq:
                if compare_values(value(doc, field), plain(expected)) != 0:
                    return False
            for bound, sign in ((range.lower, 1), (range.upper, -1)):
                if bound is not None:
                    c = compare_values(value(doc, bound.field), plain(bound.value)) * sign
                    if c < 0 or (c == 0 and not bound.inclusive):
                        return False
            return True

        def key(doc: dict[str, Any]) -> list[Any]:
            return [value(doc, f) for f in fields] + [doc["_creationTime"], doc["_id"]]

        def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
            for x, y in zip(key(a), key(b), strict=True):
                c = compare_values(x, y)
                if c:
                    return c
            return 0

        docs = [d for d in self.docs.values() if self.table_for_id(table, d["_id"]) and matches(d)]
        docs.sort(key=functools.cmp_to_key(cmp), reverse=order is Order.DESC)
        return docs

    def scan(
        self, table: str, index: str, range: IndexRange, order: Order
    ) -> AsyncIterator[dict[str, Any]]:
        docs = self._sorted(table, index, range, order)
        record: dict[str, Any] = {"consumed": 0, "closed": False, "exhausted": False}
        self.scans.append(record)

        async def generate() -> AsyncIterator[dict[str, Any]]:
            try:
                for doc in docs:
                    record["consumed"] += 1
                    yield dict(doc)
                record["exhausted"] = True
            finally:
                record["closed"] = True

        return generate()

    async def paginate(
        self,
        table: str,
        index: str,
        index_range: IndexRange,
        order: Order,
        predicate: Callable[[dict[str, Any]], bool] | None,
        options: PaginationOptions,
    ) -> PaginationResult:
        self.paginate_calls.append((table, index, index_range, order, predicate, options))
        docs = self._sorted(table, index, index_range, order)
        ids = [d["_id"] for d in docs]
        start = ids.index(options.cursor) + 1 if options.cursor else 0
        if options.end_cursor is not None:
            stop = ids.index(options.end_cursor) + 1
            window = docs[start:stop]
            page = [d for d in window if predicate is None or predicate(d)]
            return PaginationResult(page, stop >= len(docs), options.end_cursor)
        page, last = [], start
        for position in range(start, len(docs)):
            last = position + 1
            if predicate is None or predicate(docs[position]):
                page.append(docs[position])
                if len(page) == options.num_items:
                    break
        cursor = ids[last - 1] if last > 0 else "start"
        return PaginationResult(page, last >= len(docs), cursor)

    async def insert(self, table: str, value: dict[str, Any]) -> str:
        id = encode_id(self._number(table), new_internal_id())
        self.clock += 1
        self.docs[id] = {**value, "_id": id, "_creationTime": self.clock}
        return id

    async def patch(self, id: str, fields: dict[str, Any]) -> None:
        doc = self.docs[id]
        for key, value in fields.items():
            if value is UNDEFINED:
                doc.pop(key, None)
            else:
                doc[key] = value

    async def replace(self, id: str, value: dict[str, Any]) -> None:
        old = self.docs[id]
        self.docs[id] = {**value, "_id": id, "_creationTime": old["_creationTime"]}

    async def delete(self, id: str) -> None:
        del self.docs[id]


async def seeded(n: int = 6) -> tuple[FakeStore, DatabaseWriter, list[str]]:
    store = FakeStore({("tasks", "by_owner"): ("owner", "n"), ("tasks", "by_n"): ("n",)})
    db = DatabaseWriter(store)
    ids = []
    for i in range(n):
        owner = "ann" if i % 2 == 0 else "bob"
        ids.append(await db.insert("tasks", {"owner": owner, "n": float(i), "done": i % 3 == 0}))
    return store, db, ids


def ns(docs: list[dict[str, Any]]) -> list[float]:
    return [doc["n"] for doc in docs]


class TestTerminators:
    async def test_collect_defaults_to_creation_order(self) -> None:
        store, db, _ = await seeded()
        assert ns(await db.query("tasks").collect()) == [0, 1, 2, 3, 4, 5]
        assert ns(await db.query("tasks").order("desc").collect()) == [5, 4, 3, 2, 1, 0]
        assert store.scans[-1]["closed"] and store.scans[-1]["exhausted"]

    async def test_take_stops_consuming_and_closes_the_scan(self) -> None:
        store, db, _ = await seeded()
        assert ns(await db.query("tasks").take(2)) == [0, 1]
        assert store.scans[-1] == {"consumed": 2, "closed": True, "exhausted": False}

    async def test_take_with_filter_reads_only_up_to_the_nth_match(self) -> None:
        store, db, _ = await seeded()
        docs = await db.query("tasks").filter(lambda q: q.eq(q.field("owner"), "bob")).take(2)
        assert ns(docs) == [1, 3]
        assert store.scans[-1]["consumed"] == 4 and store.scans[-1]["closed"]

    async def test_take_zero_scans_nothing(self) -> None:
        store, db, _ = await seeded()
        assert await db.query("tasks").take(0) == []
        assert store.scans == []

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
    async def test_take_rejects_non_counts(self, bad: Any) -> None:
        _, db, _ = await seeded()
        with pytest.raises(ValueError, match="take\\(\\) expects a non-negative integer"):
            await db.query("tasks").take(bad)

    async def test_first(self) -> None:
        store, db, _ = await seeded()
        first = await db.query("tasks").order("desc").first()
        assert first is not None and first["n"] == 5
        assert store.scans[-1] == {"consumed": 1, "closed": True, "exhausted": False}
        none = await db.query("tasks").filter(lambda q: q.eq(q.field("owner"), "zed")).first()
        assert none is None

    async def test_unique(self) -> None:
        _, db, ids = await seeded()
        doc = await db.query("tasks").with_index("by_n", lambda q: q.eq("n", 3.0)).unique()
        assert doc is not None and doc["_id"] == ids[3]
        assert (
            await db.query("tasks").with_index("by_n", lambda q: q.eq("n", 99.0)).unique() is None
        )
        with pytest.raises(QueryNotUnique, match="more than one result from table tasks"):
            await db.query("tasks").with_index("by_owner", lambda q: q.eq("owner", "ann")).unique()

    async def test_async_for(self) -> None:
        _, db, _ = await seeded()
        seen = [doc["n"] async for doc in db.query("tasks").filter(lambda q: q.gt(q.field("n"), 3))]
        assert seen == [4, 5]

    async def test_terminators_are_repeatable_on_one_query(self) -> None:
        _, db, _ = await seeded()
        base = db.query("tasks").order("desc")
        assert ns(await base.take(1)) == [5]
        assert ns(await base.take(2)) == [5, 4]

    async def test_an_error_in_the_consumer_still_closes_the_scan(self) -> None:
        store, db, _ = await seeded()

        def boom(q: Any) -> Any:
            return q.eq(q.add(q.field("n"), q.field("owner")), 1)

        with pytest.raises(TypeError, match="operands must be numbers"):
            await db.query("tasks").filter(boom).collect()
        assert store.scans[-1]["closed"]


class TestWithIndex:
    async def test_eq_prefix_and_bounds_build_an_index_range(self) -> None:
        store, db, _ = await seeded()
        docs = await (
            db.query("tasks")
            .with_index("by_owner", lambda q: q.eq("owner", "ann").gt("n", 0).lte("n", 4))
            .collect()
        )
        assert ns(docs) == [2, 4]
        query = db.query("tasks").with_index("by_owner", lambda q: q.eq("owner", "ann").gte("n", 2))
        assert query._range == IndexRange(
            eq=(("owner", "ann"),), lower=Bound("n", 2, True), upper=None
        )

    async def test_upper_bound_alone_and_desc(self) -> None:
        _, db, _ = await seeded()
        q = db.query("tasks").with_index("by_n", lambda q: q.lt("n", 3)).order("desc")
        assert ns(await q.collect()) == [2, 1, 0]

    async def test_index_without_range_and_full_table_scan(self) -> None:
        _, db, _ = await seeded()
        docs = await db.query("tasks").with_index("by_owner").collect()
        assert [d["owner"] for d in docs] == ["ann"] * 3 + ["bob"] * 3
        assert ns(await db.query("tasks").full_table_scan().collect()) == [0, 1, 2, 3, 4, 5]

    async def test_eq_undefined_matches_missing_fields(self) -> None:
        store, db, _ = await seeded(2)
        await db.insert("tasks", {"n": 9.0})
        for missing in (UNDEFINED, ORDERING_UNDEFINED):

            def by_owner(q: IndexRangeBuilder, m: Any = missing) -> IndexRangeBuilder:
                return q.eq("owner", m)

            q = db.query("tasks").with_index("by_owner", by_owner)
            assert ns(await q.collect()) == [9]
            assert q._range.eq == (("owner", UNDEFINED),)

    @pytest.mark.parametrize(
        ("build", "message"),
        [
            (lambda q: q.gt("n", 1).eq("owner", "a"), "after a range bound"),
            (lambda q: q.gt("n", 1).gte("n", 2), "second lower bound"),
            (lambda q: q.lt("n", 1).lte("n", 2), "second upper bound"),
            (lambda q: q.lt("n", 5).gt("n", 1), "lower bound \\(gt/gte\\) comes before"),
            (lambda q: q.gt("n", 1).lt("m", 5), "both bounds must be on the same field"),
        ],
    )
    async def test_structural_misuse_is_rejected(self, build: Any, message: str) -> None:
        _, db, _ = await seeded(1)
        with pytest.raises(ValueError, match=message):
            db.query("tasks").with_index("by_n", build)

    async def test_range_function_must_return_the_builder(self) -> None:
        _, db, _ = await seeded(1)
        with pytest.raises(TypeError, match="must return the chain on q"):
            db.query("tasks").with_index("by_n", lambda q: None)  # type: ignore[arg-type, return-value]
        with pytest.raises(TypeError, match="field name string"):
            db.query("tasks").with_index("by_n", lambda q: q.eq(3, 1))  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="not a supported Convex value"):
            db.query("tasks").with_index("by_n", lambda q: q.eq("n", object()))

    async def test_field_order_is_the_stores_business(self) -> None:
        _, db, _ = await seeded(1)
        query = db.query("tasks").with_index("by_owner", lambda q: q.eq("n", 1.0))
        with pytest.raises(SchemaError, match="do not match index"):
            await query.collect()

    async def test_chaining_rules(self) -> None:
        _, db, _ = await seeded(1)
        with pytest.raises(ValueError, match="must come first"):
            db.query("tasks").filter(lambda q: True).with_index("by_n")
        with pytest.raises(ValueError, match="must come first"):
            db.query("tasks").order("desc").with_index("by_n")
        with pytest.raises(ValueError, match="must come first"):
            db.query("tasks").with_index("by_n").with_index("by_owner")
        with pytest.raises(ValueError, match="already called"):
            db.query("tasks").order("asc").order("desc")
        with pytest.raises(ValueError, match='"asc" or "desc"'):
            db.query("tasks").order("ascending")
        assert db.query("tasks").order(Order.DESC)._order is Order.DESC
        with pytest.raises(TypeError, match="table name"):
            db.query("")


class TestFilterChaining:
    async def test_filters_and_together_and_order_may_follow(self) -> None:
        _, db, _ = await seeded()
        docs = await (
            db.query("tasks")
            .filter(lambda q: q.eq(q.field("owner"), "ann"))
            .filter(lambda q: q.gt(q.field("n"), 0))
            .order("desc")
            .collect()
        )
        assert ns(docs) == [4, 2]

    async def test_filter_callback_must_build_an_expression(self) -> None:
        _, db, _ = await seeded(1)
        with pytest.raises(TypeError, match="callback returned None"):
            db.query("tasks").filter(lambda q: None)
        assert len(await db.query("tasks").filter(lambda q: True).collect()) == 1


class TestPaginate:
    async def test_pages_are_gapless_and_the_result_is_convex_shaped(self) -> None:
        store, db, ids = await seeded()
        first = await db.query("tasks").paginate({"numItems": 4.0, "cursor": None})
        assert set(first) == {"page", "isDone", "continueCursor"}
        assert ns(first["page"]) == [0, 1, 2, 3] and first["isDone"] is False
        reader = DatabaseReader(store)
        second = await reader.query("tasks").paginate(numItems=4, cursor=first["continueCursor"])
        assert ns(second["page"]) == [4, 5] and second["isDone"] is True

    async def test_options_forms_and_filter_is_passed_to_the_store(self) -> None:
        store, _, _ = await seeded()
        reader = DatabaseReader(store)
        page = await (
            reader.query("tasks")
            .with_index("by_owner", lambda q: q.eq("owner", "bob"))
            .order("desc")
            .filter(lambda q: q.neq(q.field("n"), 3))
            .paginate(PaginationOptions(num_items=5, maximum_rows_read=100))
        )
        assert ns(page["page"]) == [5, 1]
        table, index, range, order, predicate, options = store.paginate_calls[-1]
        assert (table, index, order) == ("tasks", "by_owner", Order.DESC)
        assert predicate is not None and options.maximum_rows_read == 100

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"cursor": None}, "numItems must be a non-negative integer"),
            ({"numItems": -1, "cursor": None}, "numItems must be a non-negative integer"),
            ({"numItems": 2.5, "cursor": None}, "numItems must be a non-negative integer"),
            ({"numItems": float("nan"), "cursor": None}, "numItems"),
            ({"numItems": True, "cursor": None}, "numItems"),
            ({"numItems": 40_000, "cursor": None}, "larger than the maximum page size"),
            ({"numItems": 1, "cursor": 5}, "cursor must be a string or null"),
            ({"numItems": 1, "cursor": None, "bogus": 1}, "unknown field"),
            ([1], "expected an object"),
        ],
    )
    async def test_bad_options(self, options: Any, message: str) -> None:
        store, _, _ = await seeded(1)
        with pytest.raises(ValidationError, match=message):
            await DatabaseReader(store).query("tasks").paginate(options)

    async def test_react_hook_fields_are_accepted(self) -> None:
        store, _, _ = await seeded(2)
        options = {"numItems": 1, "cursor": None, "id": 3.0, "maximumBytesRead": 10}
        page = await DatabaseReader(store).query("tasks").paginate(options)
        assert len(page["page"]) == 1

    async def test_pagination_opts_validator_is_convexs(self) -> None:
        # convex-js src/server/pagination.ts ``paginationOptsValidator``, field for field
        optional_number = {"fieldType": {"type": "number"}, "optional": True}
        string_or_null = {"type": "union", "value": [{"type": "string"}, {"type": "null"}]}
        assert pagination_opts_validator.to_json() == {
            "type": "object",
            "value": {
                "numItems": {"fieldType": {"type": "number"}, "optional": False},
                "cursor": {"fieldType": string_or_null, "optional": False},
                "endCursor": {"fieldType": string_or_null, "optional": True},
                "id": optional_number,
                "maximumRowsRead": optional_number,
                "maximumBytesRead": optional_number,
            },
        }
        with pytest.raises(ValidationError, match="extra field .bogus."):
            pagination_opts_validator.validate({"numItems": 1, "cursor": None, "bogus": 1})
        store, _, _ = await seeded(3)
        sent = {"numItems": 2, "cursor": None, "endCursor": None, "id": 7, "maximumRowsRead": 50}
        options = pagination_opts_validator.validate(sent)
        page = await DatabaseReader(store).query("tasks").paginate(options)
        assert len(page["page"]) == 2

    async def test_options_and_keywords_together_are_rejected(self) -> None:
        store, _, _ = await seeded(1)
        with pytest.raises(TypeError, match="not both"):
            await DatabaseReader(store).query("tasks").paginate({"numItems": 1}, cursor=None)

    async def test_one_paginate_per_call(self) -> None:
        store, _, _ = await seeded(2)
        reader = DatabaseReader(store)
        await reader.query("tasks").paginate(numItems=1)
        with pytest.raises(RuntimeError, match="more than one paginated query"):
            await reader.query("tasks").paginate(numItems=1)

    async def test_journal_pins_the_page_end_across_reruns(self) -> None:
        store, db, _ = await seeded(4)
        journal = QueryJournal()
        first = await DatabaseReader(store, journal=journal).query("tasks").paginate(numItems=2)
        assert journal.end_cursor == first["continueCursor"]
        assert store.paginate_calls[-1][-1].end_cursor is None
        # A document lands inside the page's range; the re-run (same journal) keeps the end.
        await db.patch(first["page"][0]["_id"], {"n": 0.5})
        rerun = QueryJournal(end_cursor=journal.end_cursor)
        again = await DatabaseReader(store, journal=rerun).query("tasks").paginate(numItems=2)
        assert store.paginate_calls[-1][-1].end_cursor == journal.end_cursor
        assert again["continueCursor"] == first["continueCursor"]
        # An explicit endCursor wins over the journal's.
        explicit = QueryJournal(end_cursor="ignored")
        reader = DatabaseReader(store, journal=explicit)
        await reader.query("tasks").paginate(numItems=2, endCursor=first["continueCursor"])
        assert store.paginate_calls[-1][-1].end_cursor == first["continueCursor"]


class TestReaderWriter:
    async def test_get_and_table_first_forms(self) -> None:
        store, db, ids = await seeded(2)
        first = await db.get(ids[0])
        assert first is not None and first["n"] == 0
        second = await db.get("tasks", ids[1])
        assert second is not None and second["n"] == 1
        other = await db.insert("users", {"name": "x"})
        with pytest.raises(ValidationError, match='is not an id of table "tasks"'):
            await db.get("tasks", other)
        with pytest.raises(ValidationError, match="expected an id string"):
            await db.get(42)  # type: ignore[arg-type]

    async def test_normalize_id(self) -> None:
        store, db, ids = await seeded(1)
        assert db.normalize_id("tasks", ids[0]) == ids[0]
        assert db.normalize_id("users", ids[0]) is None
        assert db.normalize_id("tasks", "nonsense") is None
        assert db.normalize_id("tasks", 5) is None  # type: ignore[arg-type]
        assert db.table_of_id(ids[0]) == "tasks"

    async def test_writes(self) -> None:
        store, db, ids = await seeded(1)
        await db.patch(ids[0], {"done": UNDEFINED, "extra": 1.0})
        assert "done" not in store.docs[ids[0]] and store.docs[ids[0]]["extra"] == 1.0
        await db.patch("tasks", ids[0], {"n": 7.0})
        assert store.docs[ids[0]]["n"] == 7.0
        await db.replace(ids[0], {"owner": "zed"})
        assert {k for k in store.docs[ids[0]] if not k.startswith("_")} == {"owner"}
        await db.replace("tasks", ids[0], {"owner": "amy"})
        await db.delete("tasks", ids[0])
        assert await db.get(ids[0]) is None
        new = await db.insert("tasks", {"n": 1.0})
        await db.delete(new)
        assert store.docs == {}

    async def test_write_argument_errors(self) -> None:
        _, db, ids = await seeded(1)
        with pytest.raises(ValidationError, match="expected an object"):
            await db.insert("tasks", [1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="table name"):
            await db.insert(3, {})  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="expected an object"):
            await db.patch(ids[0], None)
        with pytest.raises(ValidationError, match='not an id of table "users"'):
            await db.delete("users", ids[0])

    async def test_reader_refuses_writes_with_a_clear_error(self) -> None:
        store, _, ids = await seeded(1)
        reader = DatabaseReader(store)
        for call in (
            reader.insert("t", {}),  # type: ignore[attr-defined]
            reader.patch(ids[0], {}),  # type: ignore[attr-defined]
            reader.replace(ids[0], {}),  # type: ignore[attr-defined]
            reader.delete(ids[0]),  # type: ignore[attr-defined]
        ):
            with pytest.raises(ReadOnlyTransactionError, match="queries are read-only"):
                await call


class TestContexts:
    async def test_query_and_mutation_ctx_for_store(self) -> None:
        store, _, ids = await seeded(1)
        journal = QueryJournal()
        qctx = QueryCtx.for_store(store, identity={"subject": "u1"}, journal=journal)
        assert isinstance(qctx.db, DatabaseReader) and not isinstance(qctx.db, DatabaseWriter)
        assert qctx.db.journal is journal
        assert qctx.auth.was_read is False
        assert (await qctx.auth.get_user_identity()) == {"subject": "u1"}
        assert qctx.auth.was_read is True
        mctx = MutationCtx.for_store(store, scheduler=None)
        assert isinstance(mctx.db, DatabaseWriter)
        assert await mctx.auth.get_user_identity() is None and mctx.auth.was_read

    async def test_identity_is_copied(self) -> None:
        auth = Auth({"subject": "u1", "nested": {"a": 1.0}})
        identity = await auth.get_user_identity()
        assert identity is not None
        identity["nested"]["a"] = 2.0
        again = await auth.get_user_identity()
        assert again is not None and again["nested"]["a"] == 1.0
