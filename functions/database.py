"""``ctx.db``: ``DatabaseReader``/``DatabaseWriter`` and the ``db.query(...)`` builder over a store.

Owns the app-facing database API (Convex's verbs in snake_case), the index range builder of
``with_index``, query chaining rules, terminators (``collect``/``take``/``first``/``unique``/
``paginate``/``async for``) and the per-call ``QueryJournal`` that pins a page's end. It does not
read or write documents itself, check index fields against the schema, record read sets or
encode cursors: the ``DocumentStore`` (the runtime's transaction) does all of that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.errors import QueryNotUnique
from functions.filters import Expression, FilterBuilder, Predicate, build_filter, compile_filter
from functions.store import (
    UNDEFINED,
    Bound,
    DocumentStore,
    IndexRange,
    Order,
    PaginationOptions,
)
from schema.errors import ReadOnlyTransactionError, ValidationError
from schema.validators import ObjectV, v
from schema.values import check_value

__all__ = [
    "DEFAULT_INDEX",
    "MAX_PAGE_SIZE",
    "DatabaseReader",
    "DatabaseWriter",
    "IndexRangeBuilder",
    "Query",
    "QueryInitializer",
    "QueryJournal",
    "QueryStream",
    "pagination_opts_validator",
]

DEFAULT_INDEX = "by_creation_time"
MAX_PAGE_SIZE = 32_000
_NO: Any = object()

# Convex's ``paginationOptsValidator``: the argument validator of a paginated query's
# ``paginationOpts``. ``id`` is the cache-busting number ``usePaginatedQuery`` sends.
pagination_opts_validator: ObjectV = v.object(
    {
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.number()),
        "maximumRowsRead": v.optional(v.number()),
        "maximumBytesRead": v.optional(v.number()),
    }
)
_PAGINATION_KEYS = set(pagination_opts_validator.fields)
_EVERYTHING = IndexRange()  # immutable: every query without a range shares it


@dataclass(slots=True)
class QueryJournal:
    """What one execution of a query remembers for its next run (Convex's ``QueryJournal``).

    The executor builds it from the journal the client echoed (``end_cursor`` None on a first
    run), passes it to the ``DatabaseReader``, and after the run sends ``end_cursor`` back:
    ``paginate`` uses it as the page's end when the call gives no ``endCursor``, then records the
    page's actual end there, so re-runs cover the same fixed range.
    """

    end_cursor: str | None = None


class IndexRangeBuilder:
    """The ``q`` of ``with_index(name, lambda q: q.eq(...).gt(...).lt(...))``.

    Zero or more ``eq``, then at most one of ``gt``/``gte``, then at most one of ``lt``/``lte``
    on the same field. Whether the fields follow the index's declared order is checked by the
    store, which knows the schema.
    """

    __slots__ = ("_eq", "_lower", "_upper")

    def __init__(self) -> None:
        self._eq: list[tuple[str, Any]] = []
        self._lower: Bound | None = None
        self._upper: Bound | None = None

    def eq(self, field: str, value: Any) -> IndexRangeBuilder:
        _check_field(field, "eq")
        if self._lower is not None or self._upper is not None:
            raise ValueError(
                f"with_index: .eq({field!r}, ...) after a range bound; equalities come first: "
                "q.eq(...).eq(...).gt(...).lt(...)"
            )
        self._eq.append((field, _range_value(value, "eq", field)))
        return self

    def _lower_bound(self, op: str, field: str, value: Any, inclusive: bool) -> IndexRangeBuilder:
        _check_field(field, op)
        if self._upper is not None:
            raise ValueError(
                f"with_index: .{op}({field!r}, ...) after an upper bound; the lower bound "
                "(gt/gte) comes before the upper bound (lt/lte)"
            )
        if self._lower is not None:
            raise ValueError(f"with_index: .{op}({field!r}, ...) is a second lower bound")
        self._lower = Bound(field, _range_value(value, op, field), inclusive)
        return self

    def _upper_bound(self, op: str, field: str, value: Any, inclusive: bool) -> IndexRangeBuilder:
        _check_field(field, op)
        if self._upper is not None:
            raise ValueError(f"with_index: .{op}({field!r}, ...) is a second upper bound")
        if self._lower is not None and self._lower.field != field:
            raise ValueError(
                f"with_index: .{op}({field!r}, ...) bounds another field than the lower bound "
                f"on {self._lower.field!r}; both bounds must be on the same field"
            )
        self._upper = Bound(field, _range_value(value, op, field), inclusive)
        return self

    def gt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._lower_bound("gt", field, value, False)

    def gte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._lower_bound("gte", field, value, True)

    def lt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._upper_bound("lt", field, value, False)

    def lte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._upper_bound("lte", field, value, True)

    def build(self) -> IndexRange:
        return IndexRange(eq=tuple(self._eq), lower=self._lower, upper=self._upper)


def _check_field(field: Any, op: str) -> None:
    if not isinstance(field, str) or not field:
        raise TypeError(f"with_index: .{op}() expects a field name string, got {field!r}")


def _range_value(value: Any, op: str, field: str) -> Any:
    kind = type(value)
    if value is UNDEFINED or kind is float or kind is str or kind is bool or value is None:
        return value  # UNDEFINED: a missing field, q.eq("f", UNDEFINED); scalars always pass
    check_value(value, f"with_index .{op}({field!r})")
    return value


class QueryStream:
    """An async iterator over a query's matching documents.

    It pulls from the store's scan only as far as it is consumed, and ``aclose`` closes the
    scan so the store can finish recording what was read.
    """

    __slots__ = ("_predicate", "_source")

    def __init__(self, source: AsyncIterator[dict[str, Any]], predicate: Predicate | None) -> None:
        self._source = source
        self._predicate = predicate

    def __aiter__(self) -> QueryStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        predicate = self._predicate
        while True:
            doc = await self._source.__anext__()
            if predicate is None or predicate(doc):
                return doc

    async def aclose(self) -> None:
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()


class Query:
    """``ctx.db.query(table)`` and everything chained on it. Each step returns a new query.

    Rules (Convex's): ``with_index`` (or ``full_table_scan``) only first, directly on
    ``db.query``; ``order`` at most once; any number of ``filter`` calls (they AND together).
    """

    __slots__ = ("_db", "_filters", "_index", "_order", "_range", "_table")

    def __init__(
        self,
        db: DatabaseReader,
        table: str,
        *,
        index: str | None = None,
        range: IndexRange | None = None,
        order: Order | None = None,
        filters: tuple[Expression, ...] = (),
    ) -> None:
        self._db = db
        self._table = table
        self._index = index
        self._range = range if range is not None else _EVERYTHING
        self._order = order
        self._filters = filters

    def _derive(
        self, *, index: Any = _NO, range: Any = _NO, order: Any = _NO, filters: Any = _NO
    ) -> Query:
        return Query(
            self._db,
            self._table,
            index=self._index if index is _NO else index,
            range=self._range if range is _NO else range,
            order=self._order if order is _NO else order,
            filters=self._filters if filters is _NO else filters,
        )

    def _check_initial(self, method: str) -> None:
        if self._index is not None or self._order is not None or self._filters:
            raise ValueError(
                f"{method} must come first, directly on db.query({self._table!r}), before "
                "order() and filter(), and only once"
            )

    def with_index(
        self, name: str, range: Callable[[IndexRangeBuilder], IndexRangeBuilder] | None = None
    ) -> Query:
        """Scan index ``name``, restricted by ``range`` (``lambda q: q.eq("owner", x)``)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"with_index() expects an index name, got {name!r}")
        self._check_initial(f"with_index({name!r})")
        if range is None:
            return self._derive(index=name)
        if not callable(range):
            raise TypeError(f"with_index({name!r}, ...) expects a function of q, got {range!r}")
        builder = IndexRangeBuilder()
        if range(builder) is not builder:
            raise TypeError(
                f"with_index({name!r}, ...): the range function must return the chain on q, "
                "e.g. lambda q: q.eq('owner', owner)"
            )
        return self._derive(index=name, range=builder.build())

    def full_table_scan(self) -> Query:
        """Scan the whole table in creation order (what a query without ``with_index`` does)."""
        self._check_initial("full_table_scan()")
        return self._derive(index=DEFAULT_INDEX)

    def order(self, order: str | Order) -> Query:
        """``"asc"`` (the default) or ``"desc"`` index order."""
        if self._order is not None:
            raise ValueError("order() was already called on this query")
        if isinstance(order, Order):
            return self._derive(order=order)
        if order not in ("asc", "desc"):
            raise ValueError(f'order() expects "asc" or "desc", got {order!r}')
        return self._derive(order=Order(order))

    def filter(self, predicate: Callable[[FilterBuilder], Any]) -> Query:
        """Keep documents for which ``predicate(q)`` is true; does not narrow the scan."""
        return self._derive(filters=(*self._filters, build_filter(predicate)))

    def _scan_args(self) -> tuple[str, str, IndexRange, Order]:
        return (
            self._table,
            self._index if self._index is not None else DEFAULT_INDEX,
            self._range,
            self._order if self._order is not None else Order.ASC,
        )

    def __aiter__(self) -> QueryStream:
        source = self._db.store.scan(*self._scan_args())
        return QueryStream(source, compile_filter(self._filters))

    async def _take(self, limit: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if limit == 0:
            return out
        # What iterating a QueryStream does, without its extra layer per document.
        source = self._db.store.scan(*self._scan_args())
        predicate = compile_filter(self._filters)
        try:
            async for doc in source:
                if predicate is not None and not predicate(doc):
                    continue
                out.append(doc)
                if limit is not None and len(out) >= limit:
                    break
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        return out

    async def collect(self) -> list[dict[str, Any]]:
        """Every matching document."""
        return await self._take(None)

    async def take(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` matching documents; reads no further than the ``n``-th."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"take() expects a non-negative integer, got {n!r}")
        return await self._take(n)

    async def first(self) -> dict[str, Any] | None:
        """The first matching document, or None."""
        docs = await self._take(1)
        return docs[0] if docs else None

    async def unique(self) -> dict[str, Any] | None:
        """The only matching document, or None.

        Raises:
            QueryNotUnique: more than one document matches.
        """
        docs = await self._take(2)
        if len(docs) > 1:
            ids = ", ".join(str(doc.get("_id")) for doc in docs)
            raise QueryNotUnique(
                f"unique() query returned more than one result from table {self._table}:\n"
                f" [{ids}, ...]"
            )
        return docs[0] if docs else None

    async def paginate(
        self,
        options: Mapping[str, Any] | PaginationOptions | None = None,
        /,
        **keywords: Any,
    ) -> dict[str, Any]:
        """One page: ``{"page", "isDone", "continueCursor", ("splitCursor", "pageStatus")}``.

        ``options`` is Convex's ``paginationOpts`` object (``{"numItems": 10, "cursor": None}``,
        also ``endCursor``/``maximumRowsRead``), a ``PaginationOptions``, or the same keys as
        keywords. One paginated query per function call.

        Raises:
            ValidationError: malformed options (they usually come from the client).
            RuntimeError: a second ``paginate`` in the same function call.
        """
        if options is None:
            options = keywords
        elif keywords:
            raise TypeError("paginate() takes an options object or keywords, not both")
        opts = _pagination_options(options)
        journal = self._db.journal
        if opts.end_cursor is None and journal is not None and journal.end_cursor is not None:
            opts = PaginationOptions(
                opts.num_items, opts.cursor, journal.end_cursor, opts.maximum_rows_read
            )
        self._db._claim_pagination()
        result = await self._db.store.paginate(
            *self._scan_args(), compile_filter(self._filters), opts
        )
        if journal is not None:
            journal.end_cursor = result.continue_cursor
        return result.to_value()

    def __repr__(self) -> str:
        table, index, range, order = self._scan_args()
        return f"<Query {table} {index} {range} {order.value} filters={len(self._filters)}>"


QueryInitializer = Query
"""What ``db.query(table)`` returns (Convex's name); chaining returns the same class."""


def _integer_option(options: Mapping[str, Any], key: str, *, required: bool) -> int | None:
    value: Any = options.get(key)
    if value is None and not required:
        return None
    # JS numbers arrive as floats: accept 10.0, reject 10.5, NaN, infinities and booleans.
    is_integer = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )
    if not is_integer or value < 0:
        raise ValidationError(
            f"Invalid pagination options: {key} must be a non-negative integer, got {value!r}"
        )
    return int(value)


def _pagination_options(options: Any) -> PaginationOptions:
    if isinstance(options, PaginationOptions):
        options = {
            "numItems": options.num_items,
            "cursor": options.cursor,
            "endCursor": options.end_cursor,
            "maximumRowsRead": options.maximum_rows_read,
        }
    if not isinstance(options, Mapping):
        raise ValidationError(
            f"Invalid pagination options: expected an object like "
            f'{{"numItems": 10, "cursor": None}}, got {options!r}'
        )
    unknown = sorted(set(options) - _PAGINATION_KEYS)
    if unknown:
        raise ValidationError(f"Invalid pagination options: unknown field(s) {unknown}")
    num_items = _integer_option(options, "numItems", required=True)
    assert num_items is not None
    if num_items > MAX_PAGE_SIZE:
        raise ValidationError(
            f"Invalid pagination options: numItems {num_items} is larger than the maximum "
            f"page size {MAX_PAGE_SIZE}"
        )
    for key in ("cursor", "endCursor"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise ValidationError(
                f"Invalid pagination options: {key} must be a string or null, got {options[key]!r}"
            )
    return PaginationOptions(
        num_items=num_items,
        cursor=options.get("cursor"),
        end_cursor=options.get("endCursor"),
        maximum_rows_read=_integer_option(options, "maximumRowsRead", required=False),
    )


class DatabaseReader:
    """``ctx.db`` of a query: ``get``, ``query``, ``normalize_id``.

    ``get`` (and the writer's ``patch``/``replace``/``delete``) also take Convex's newer
    table-first form, ``db.get("tasks", id)``, which checks the id belongs to that table.
    """

    __slots__ = ("_paginated", "journal", "store")

    def __init__(self, store: DocumentStore, *, journal: QueryJournal | None = None) -> None:
        self.store = store
        self.journal = journal
        self._paginated = False

    def _claim_pagination(self) -> None:
        if self._paginated:
            raise RuntimeError(
                "This function ran more than one paginated query; only one paginate() call "
                "is supported per query or mutation"
            )
        self._paginated = True

    def _target(self, op: str, table: Any, id: Any) -> str:
        if not isinstance(id, str):
            raise ValidationError(f"db.{op}(): expected an id string, got {id!r}")
        if table is not None:
            if not isinstance(table, str):
                raise TypeError(f"db.{op}(): expected a table name, got {table!r}")
            if self.store.table_for_id(table, id) is None:
                raise ValidationError(f'db.{op}(): id "{id}" is not an id of table "{table}"')
        return id

    async def get(self, table_or_id: str, id: str = _NO, /) -> dict[str, Any] | None:
        """The document with this id, or None when it does not exist (a read of that point)."""
        table, id = (None, table_or_id) if id is _NO else (table_or_id, id)
        return await self.store.get(self._target("get", table, id))

    def query(self, table: str) -> Query:
        """Start a query on ``table``.

        Chain ``with_index``/``order``/``filter``, then a terminator.
        """
        if not isinstance(table, str) or not table:
            raise TypeError(f"db.query() expects a table name, got {table!r}")
        return Query(self, table)

    def normalize_id(self, table: str, id: str) -> str | None:
        """``id`` if it is a well-formed id of ``table``, else None (reads nothing)."""
        if not isinstance(id, str):
            return None
        return id if self.store.table_for_id(table, id) is not None else None

    def table_of_id(self, id: str) -> str | None:
        """The table a well-formed id belongs to (used by ``v.id`` checks), else None."""
        return self.store.table_for_id(None, id)

    @property
    def system(self) -> DatabaseReader:
        """``ctx.db.system``: read-only access to system tables (``_scheduled_functions``,
        ``_storage``): ``get`` and ``query``."""
        system_store = getattr(self.store, "system_store", None)
        if system_store is None:
            raise RuntimeError("this database has no system tables")
        return DatabaseReader(system_store())


def _read_only(operation: str) -> Any:
    async def refuse(self: DatabaseReader, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyTransactionError(
            f"db.{operation} is not allowed in a query: queries are read-only; "
            "write from a mutation instead"
        )

    refuse.__name__ = operation
    return refuse


for _operation in ("insert", "patch", "replace", "delete"):
    setattr(DatabaseReader, _operation, _read_only(_operation))


class DatabaseWriter(DatabaseReader):
    """``ctx.db`` of a mutation: the reader plus ``insert``, ``patch``, ``replace``, ``delete``."""

    __slots__ = ()

    async def insert(self, table: str, value: Mapping[str, Any]) -> str:
        """Insert a document; returns its new ``_id``."""
        if not isinstance(table, str) or not table:
            raise TypeError(f"db.insert() expects a table name, got {table!r}")
        return await self.store.insert(table, _document("insert", value))

    async def patch(self, a: str, b: Any, c: Any = _NO, /) -> None:
        """``patch(id, fields)`` or ``patch(table, id, fields)``: shallow-merge ``fields``.

        A field set to ``UNDEFINED`` is removed.
        """
        table, id, fields = (None, a, b) if c is _NO else (a, b, c)
        await self.store.patch(self._target("patch", table, id), _document("patch", fields))

    async def replace(self, a: str, b: Any, c: Any = _NO, /) -> None:
        """``replace(id, value)`` or ``replace(table, id, value)``: swap the whole document."""
        table, id, value = (None, a, b) if c is _NO else (a, b, c)
        await self.store.replace(self._target("replace", table, id), _document("replace", value))

    async def delete(self, table_or_id: str, id: str = _NO, /) -> None:
        """``delete(id)`` or ``delete(table, id)``."""
        table, id = (None, table_or_id) if id is _NO else (table_or_id, id)
        await self.store.delete(self._target("delete", table, id))


def _document(op: str, value: Any) -> dict[str, Any]:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValidationError(f"db.{op}(): expected an object, got {value!r}")
    return dict(value)
