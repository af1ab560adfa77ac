"""A transaction: reads at one snapshot timestamp, records its read set, buffers its writes.

Implements ``functions.store.DocumentStore`` for ``ctx.db``: reads see the transaction's own
writes; every read records the index interval it depended on (CONVEX_SEMANTICS §1.2), a scan
only up to the last key it consumed. At the end, ``prepare_commit`` turns the writes into the
written index keys (for OCC and invalidation) and the storage records. Conflict checks and
timestamps belong to ``reactor.engine.committer``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from functions.store import (
    UNDEFINED,
    IndexRange,
    Order,
    PaginationOptions,
    PaginationResult,
)
from reactor.core.index_keys import (
    BY_CREATION_TIME,
    BY_ID,
    field_value,
    id_key,
    index_id,
    index_key,
    range_interval,
)
from reactor.core.intervals import Interval
from reactor.core.persistence import (
    Commit,
    CommitRequest,
    DocumentLogEntry,
    IndexEntry,
    Persistence,
)
from reactor.core.reads import ReadSet
from reactor.core.system_tables import TableRegistry, is_system_table
from reactor.engine.pagination import END_OF_RANGE, decode_cursor, encode_cursor
from schema.errors import (
    DocumentNotFound,
    ReadOnlyTransactionError,
    SchemaError,
    TransactionLimitExceeded,
    ValidationError,
)
from schema.ids import decode_id, encode_id, new_internal_id
from schema.ordering import encode_value
from schema.values import (
    MAX_DOCUMENT_SIZE,
    MAX_FIELDS,
    check_field_name,
    check_value,
    dumps,
    loads,
    value_size,
)

__all__ = ["SYSTEM_INDEXES", "HotDocumentRead", "Transaction"]

# Indexes of the system tables (the runtime's own schema; apps cannot change it).
SYSTEM_INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    "_scheduled_functions": {"by_state_time": ("state.kind", "scheduledTime")},
    "_storage": {},
}

MAX_READ_ROWS = 32_000
MAX_READ_INTERVALS = 4_096
MAX_WRITES = 16_000
MAX_WRITE_BYTES = 16 * 1024 * 1024  # Convex's TRANSACTION_MAX_USER_WRITE_SIZE_BYTES
MAX_PAGE_SIZE = 32_000
_SYSTEM_FIELDS = ("_id", "_creationTime")


def _canonical(value: Any) -> Any:
    """``value`` with every plain ``int`` as the float64 it is stored as (Int64 stays)."""
    kind = type(value)
    if kind is int:
        return float(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            item_kind = type(v)
            out[k] = v if item_kind is float or item_kind is str else _canonical(v)
        return out
    if kind is list or kind is tuple:
        return [_canonical(v) for v in value]
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    return value


@dataclass(slots=True)
class _SchemaCache:
    """What a schema says about indexes, looked up once per schema rather than per read or
    write (schemas are immutable; a new one is a new object)."""

    schema: Any
    scan_targets: dict[tuple[str, str], _ScanTarget]
    index_plans: dict[str, _IndexPlan]


@dataclass(frozen=True, slots=True)
class _ScanTarget:
    fields: tuple[str, ...]  # the index's user fields
    key_fields: tuple[str, ...]  # ... then _creationTime, as range_interval takes them
    index_id: str
    label: str  # "table.index", for error messages


@dataclass(frozen=True, slots=True)
class _IndexPlan:
    by_id: str
    indexes: tuple[tuple[str, Sequence[str]], ...]


_CACHE_LIMIT = 4096
# id(schema) -> its cache; the entry keeps the schema alive, so its id is not reused.
_SCHEMA_CACHES: dict[int, _SchemaCache] = {}


def _schema_cache(schema: Any) -> _SchemaCache:
    cache = _SCHEMA_CACHES.get(id(schema))
    if cache is None or cache.schema is not schema:
        if len(_SCHEMA_CACHES) >= 16:
            _SCHEMA_CACHES.clear()
        cache = _SCHEMA_CACHES[id(schema)] = _SchemaCache(schema, {}, {})
    return cache


@dataclass(slots=True)
class _Write:
    table: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(slots=True)
class _ScanState:
    index_id: str
    interval: Interval
    order: Order
    last_key: bytes | None = None
    exhausted: bool = False

    def consumed(self) -> Interval | None:
        if self.exhausted:
            return self.interval
        if self.last_key is None:
            return None
        if self.order is Order.ASC:
            return Interval(self.interval.start, self.last_key + b"\x00")
        return Interval(self.last_key, self.interval.end)


class HotDocumentRead(BaseException):
    """Stops a mutation's first run at its read of a document in ``Transaction.hot``: other
    mutations are queued to write it, so this run would conflict; it runs again in its turn.
    A BaseException, so app code catching ``Exception`` does not swallow it (and if it is
    swallowed anyway, ``Transaction.hot_read`` still says so)."""


class Transaction:
    def __init__(
        self,
        persistence: Persistence,
        ts: int,
        *,
        schema: Any,
        tables: TableRegistry,
        writable: bool,
        now_ms: float,
        journal: str | None = None,
    ) -> None:
        self.persistence = persistence
        self.ts = ts
        self.schema = schema
        self.tables = tables
        self.writable = writable
        self._reads = ReadSet()
        self._scans: list[_ScanState] = []
        self._writes: dict[str, _Write] = {}
        self._rows_read = 0
        self._next_creation = now_ms
        # Documents already read at this snapshot (immutable there), so db.get after a scan,
        # and patch after either, do not read storage again.
        self._seen: dict[str, dict[str, Any] | None] = {}
        self.journal = journal
        self.paginated = False
        self._schema_info: _SchemaCache | None = None
        # Documents other mutations are queued to write (``HotDocumentRead``), and the first
        # of them this transaction read.
        self.hot: frozenset[str] = frozenset()
        self.hot_read: str | None = None

    # -- read set --------------------------------------------------------------------------

    def read_set(self) -> ReadSet:
        for state in self._scans:
            interval = state.consumed()
            if interval is not None:
                self._reads.add(state.index_id, interval)
        self._scans = [s for s in self._scans if not s.exhausted]
        return self._reads

    @property
    def documents_read(self) -> int:
        """Documents read so far (the execution record's count)."""
        return self._rows_read

    def _stop_if_hot(self, doc_id: str) -> None:
        if doc_id in self.hot:
            self.hot_read = doc_id
            raise HotDocumentRead(doc_id)

    def _count_read(self) -> None:
        self._rows_read += 1
        if self._rows_read > MAX_READ_ROWS:
            raise TransactionLimitExceeded(
                f"Too many documents read in a single function execution (limit: {MAX_READ_ROWS})."
                " Consider using an index or pagination."
            )

    # -- schema helpers ----------------------------------------------------------------------

    def _info(self) -> _SchemaCache:
        info = self._schema_info
        if info is None or info.schema is not self.schema:
            info = self._schema_info = _schema_cache(self.schema)
        return info

    def _index_fields(self, table: str, index: str) -> tuple[str, ...]:
        return self._scan_target(table, index).fields

    def _scan_target(self, table: str, index: str) -> _ScanTarget:
        """What scanning ``table.index`` needs (raises as ``_lookup_index_fields`` does)."""
        cache = self._info().scan_targets
        target = cache.get((table, index))
        if target is None:
            fields = self._lookup_index_fields(table, index)
            target = _ScanTarget(
                fields, (*fields, "_creationTime"), index_id(table, index), f"{table}.{index}"
            )
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[(table, index)] = target
        return target

    def _lookup_index_fields(self, table: str, index: str) -> tuple[str, ...]:
        if index == BY_CREATION_TIME:
            return ()
        if is_system_table(table):
            fields = SYSTEM_INDEXES.get(table, {}).get(index)
            if fields is None:
                raise SchemaError(f"Index {table}.{index} not found.")
            return fields
        if index == BY_ID:
            raise ValidationError(
                f"Index {table}.by_id cannot be scanned; use ctx.db.get(id) to read by id"
            )
        if self.schema is None or table not in self.schema.tables:
            raise SchemaError(f"Index {table}.{index} not found.")
        return tuple(self.schema.index_fields(table, index))

    def _index_plan(self, table: str) -> _IndexPlan:
        """The ``by_id`` index id of ``table`` and (index id, fields) of its other indexes."""
        cache = self._info().index_plans
        plan = cache.get(table)
        if plan is None:
            plan = _IndexPlan(
                index_id(table, BY_ID),
                tuple(
                    (index_id(table, name), fields)
                    for name, fields in self._lookup_user_indexes(table).items()
                ),
            )
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[table] = plan
        return plan

    def _lookup_user_indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        indexes: dict[str, tuple[str, ...]] = {BY_CREATION_TIME: ()}
        if is_system_table(table):
            indexes.update(SYSTEM_INDEXES.get(table, {}))
        elif self.schema is not None and table in self.schema.tables:
            for name, fields in self.schema.tables[table].indexes.items():
                indexes[name] = tuple(fields)
        return indexes

    def table_for_id(self, table: str | None, id: str) -> str | None:
        name = self.tables.table_of_id(id) if isinstance(id, str) else None
        if name is None or (table is not None and name != table):
            return None
        return name

    def _validate(
        self, table: str, value: dict[str, Any], changed: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Check and canonicalise a user document. ``changed``: the fields a patch set; the
        others come from the stored document, whose names and values were checked when written
        (so only the changed fields' names and values are checked again; the schema and the
        size always see the whole document)."""
        if not isinstance(value, dict):
            raise ValidationError(f"Documents must be objects, got {type(value).__name__}")
        for name in value:
            if changed is not None and name not in changed:
                continue
            check_field_name(name, "$", top_level=True)
            if isinstance(name, str) and name.startswith("_"):
                raise ValidationError(
                    f"Field name {name!r} starts with '_', which is reserved for system fields",
                    path=f"$.{name}",
                )
        if self.schema is not None:
            value = self.schema.validate_document(
                table,
                value,
                resolve_id_table=lambda i: self.table_for_id(None, i),
                names_checked=True,
            )
        elif changed is None:
            check_value(value)
        else:
            # check_value(value) on the whole document, minus the stored fields it would pass.
            if len(value) > MAX_FIELDS:
                check_value(value)
            for name, item in value.items():
                if name in changed:
                    check_value(item, f"$.{name}", depth=1)
        # Stored values read back in canonical form (a plain int is float64): so must our own.
        canonical: dict[str, Any] = _canonical(value)
        return canonical

    def _check_size(self, doc: dict[str, Any]) -> None:
        size = value_size(doc)
        if size > MAX_DOCUMENT_SIZE:
            raise ValidationError(
                f"Document is too large ({size} bytes; the limit is {MAX_DOCUMENT_SIZE} bytes)"
            )

    # -- reads -------------------------------------------------------------------------------

    async def get(self, id: str) -> dict[str, Any] | None:
        if not isinstance(id, str):
            raise ValidationError(f"db.get expects an id string, got {type(id).__name__}")
        table = self.table_for_id(None, id)
        if table is None:
            try:
                decode_id(id)
            except ValidationError:
                raise ValidationError(
                    f"Invalid argument `id` for `db.get`: {id!r} is not an ID"
                ) from None
            return None
        return await self._get(table, id)

    async def _get(self, table: str, id: str) -> dict[str, Any] | None:
        """``get`` of an id known to belong to ``table``."""
        self._reads.add_point(self._index_plan(table).by_id, id_key(id))
        write = self._writes.get(id)
        if write is not None:
            return None if write.new is None else dict(write.new)
        if self.hot:
            self._stop_if_hot(id)
        if id in self._seen:
            seen = self._seen[id]
            return None if seen is None else dict(seen)
        self._count_read()
        found = await self.persistence.get_document(id, self.ts)
        doc = None if found is None else loads(found[1])
        self._seen[id] = doc
        return None if doc is None else dict(doc)

    def _overlay(
        self, table: str, fields: tuple[str, ...], interval: Interval, order: Order
    ) -> tuple[list[tuple[bytes, dict[str, Any]]], set[str]]:
        """This transaction's own writes to ``table`` inside ``interval``, in scan order, and
        the ids it wrote (their stored versions are superseded)."""
        touched: set[str] = set()
        items: list[tuple[bytes, dict[str, Any]]] = []
        for doc_id, write in self._writes.items():
            if write.table != table:
                continue
            touched.add(doc_id)
            if write.new is not None:
                key = index_key(write.new, fields)
                if interval.contains(key):
                    items.append((key, write.new))
        items.sort(key=lambda item: item[0], reverse=order is Order.DESC)
        return items, touched

    def _check_user_table(self, table: str, *, system: bool) -> None:
        if is_system_table(table) != system:
            if system:
                raise ValidationError(
                    f"{table!r} is not a system table: use ctx.db.query({table!r})"
                )
            raise ValidationError(
                f"{table!r} is a system table: read it with ctx.db.system.query({table!r})"
            )

    def system_store(self) -> SystemStore:
        """The read-only view of system tables behind ``ctx.db.system``."""
        return SystemStore(self)

    def scan(
        self, table: str, index: str, range: IndexRange, order: Order, *, system: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        # One generator, not one wrapping another: the checks run at its first step, as they
        # would in a generator of their own.
        return cast(
            AsyncIterator[dict[str, Any]],
            self._scan_interval(table, index, (), None, order, rng=range, system=system),
        )

    async def _scan_interval(
        self,
        table: str,
        index: str,
        fields: tuple[str, ...],
        interval: Interval | None,
        order: Order,
        state: _ScanState | None = None,
        *,
        rng: IndexRange | None = None,
        system: bool = False,
    ) -> AsyncIterator[Any]:
        """Yield ``(key, document)`` of ``interval``; for ``scan`` (``rng`` given: the fields
        and the interval come from it) the documents alone."""
        keyed = rng is None
        if rng is not None:
            self._check_user_table(table, system=system)
            target = self._scan_target(table, index)
            fields = target.fields
            interval = range_interval(rng, target.key_fields, index=target.label)
            iid = target.index_id
        else:
            iid = index_id(table, index)
        assert interval is not None
        if state is None:
            state = _ScanState(iid, interval, order)
            self._scans.append(state)
        if len(self._scans) + self._reads.interval_count() > MAX_READ_INTERVALS:
            raise TransactionLimitExceeded(
                f"Too many index ranges read in a single function execution "
                f"(limit: {MAX_READ_INTERVALS})."
            )
        lo, hi = interval.start, interval.end
        batch = 32
        asc = order is Order.ASC
        if self._writes:
            overlay, touched = self._overlay(table, fields, interval, order)
        else:
            overlay, touched = [], set()
        if not touched:
            # None of this transaction's own writes are in the table: storage alone, in order
            # (what the loop below does when it has no overlay, with less work per row).
            seen = self._seen
            hot = self.hot
            while True:
                rows = await self.persistence.scan(iid, lo, hi, self.ts, order, batch)
                for stored in rows:
                    if hot:
                        self._stop_if_hot(stored.document_id)
                    self._count_read()
                    key = stored.key
                    doc = loads(stored.value)
                    seen[stored.document_id] = doc
                    state.last_key = key
                    yield (key, dict(doc)) if keyed else dict(doc)
                if len(rows) < batch:
                    state.exhausted = True
                    return
                if asc:
                    lo = rows[-1].key + b"\x00"
                else:
                    hi = rows[-1].key
                batch = min(batch * 4, 1024)
        rows = []
        position = 0
        storage_done = False
        o_pos = 0
        while True:
            if position >= len(rows) and not storage_done:
                rows = await self.persistence.scan(iid, lo, hi, self.ts, order, batch)
                position = 0
                if len(rows) < batch:
                    storage_done = True
                if rows:
                    last = rows[-1].key
                    if asc:
                        lo = last + b"\x00"
                    else:
                        hi = last
                batch = min(batch * 4, 1024)
            row = rows[position] if position < len(rows) else None
            if row is not None and row.document_id in touched:
                position += 1
                continue
            item = overlay[o_pos] if o_pos < len(overlay) else None
            if row is None and item is None:
                state.exhausted = True
                return
            take_overlay = item is not None and (
                row is None or (item[0] < row.key if asc else item[0] > row.key)
            )
            if take_overlay:
                assert item is not None
                o_pos += 1
                key, doc = item[0], dict(item[1])
            else:
                assert row is not None
                position += 1
                if self.hot:
                    self._stop_if_hot(row.document_id)
                self._count_read()
                key, doc = row.key, loads(row.value)
                self._seen[row.document_id] = doc
                doc = dict(doc)
            state.last_key = key
            yield (key, doc) if keyed else doc

    async def paginate(
        self,
        table: str,
        index: str,
        range: IndexRange,
        order: Order,
        predicate: Callable[[dict[str, Any]], bool] | None,
        options: PaginationOptions,
        *,
        system: bool = False,
    ) -> PaginationResult:
        """One page of a query. A page's end is pinned by ``endCursor`` or the journal of an
        earlier run, so a re-run covers exactly ``(cursor, end]`` and pages never leave gaps."""
        if self.paginated:
            raise ValidationError(
                "This function ran more than one paginated query; "
                "only a single paginate() call is supported in each function"
            )
        self.paginated = True
        self._check_user_table(table, system=system)
        num_items = options.num_items
        if (
            isinstance(num_items, bool)
            or not isinstance(num_items, (int, float))
            or not (0 <= num_items <= MAX_PAGE_SIZE)
        ):
            raise ValidationError(
                f"paginate: numItems must be a number from 0 to {MAX_PAGE_SIZE}, got {num_items!r}"
            )
        fields = self._index_fields(table, index)
        full = range_interval(range, fields + ("_creationTime",), index=f"{table}.{index}")
        fingerprint = f"{table}.{index}:{order.value}"
        asc = order is Order.ASC
        start = decode_cursor(options.cursor, fingerprint) if options.cursor else None
        end_text = options.end_cursor or self.journal
        end = decode_cursor(end_text, fingerprint) if end_text else None
        if start is END_OF_RANGE:
            return PaginationResult([], True, encode_cursor(END_OF_RANGE, fingerprint))
        if num_items == 0 and end is None:
            # Nothing to read: the next page starts where this one would have.
            here = options.cursor or encode_cursor(b"" if asc else b"\xff", fingerprint)
            return PaginationResult([], False, here)
        lo, hi = full.start, full.end
        if isinstance(start, bytes):
            if asc:
                lo = max(lo, start + b"\x00")
            else:
                hi = start if hi is None else min(hi, start)
        if isinstance(end, bytes):
            if asc:
                hi = end + b"\x00" if hi is None else min(hi, end + b"\x00")
            else:
                lo = max(lo, end)
        if hi is not None and hi < lo:
            hi = lo
        interval = Interval(lo, hi)
        state = _ScanState(index_id(table, index), interval, order)
        self._scans.append(state)
        page: list[dict[str, Any]] = []
        rows = 0
        last_key: bytes | None = None
        limit_rows = options.maximum_rows_read
        gen = cast(
            AsyncGenerator[tuple[bytes, dict[str, Any]], None],
            self._scan_interval(table, index, fields, interval, order, state),
        )
        try:
            async for key, doc in gen:
                rows += 1
                last_key = key
                if predicate is None or predicate(doc):
                    page.append(doc)
                if end is None and len(page) >= num_items:
                    break
                if limit_rows is not None and rows >= limit_rows:
                    break
        finally:
            await gen.aclose()
        if end is not None:
            if not state.exhausted:
                # The pinned page outgrew the row limit: return what fits and ask for a split.
                assert last_key is not None
                split = encode_cursor(last_key, fingerprint)
                return PaginationResult(
                    page, False, split, split_cursor=split, page_status="SplitRequired"
                )
            assert end_text is not None
            return PaginationResult(page, end is END_OF_RANGE, end_text)
        if state.exhausted:
            self.journal = encode_cursor(END_OF_RANGE, fingerprint)
            return PaginationResult(page, True, self.journal)
        assert last_key is not None
        self.journal = encode_cursor(last_key, fingerprint)
        return PaginationResult(page, False, self.journal)

    # -- writes ------------------------------------------------------------------------------

    def _require_writable(self, op: str) -> None:
        if not self.writable:
            raise ReadOnlyTransactionError(
                f"db.{op} is not allowed in a query: queries are read-only"
            )
        if len(self._writes) >= MAX_WRITES:
            raise TransactionLimitExceeded(
                f"Too many writes in a single function execution (limit: {MAX_WRITES})."
            )

    def _creation_time(self) -> float:
        value = self._next_creation
        self._next_creation = math.nextafter(value, math.inf)
        return value

    async def insert(self, table: str, value: dict[str, Any]) -> str:
        self._require_writable("insert")
        self.tables.check_name(table)
        value = self._validate(table, value)
        return self._insert(table, value)

    def _insert(self, table: str, value: dict[str, Any]) -> str:
        number = self.tables.number_for(table)
        doc_id = encode_id(number, new_internal_id())
        doc = {"_id": doc_id, "_creationTime": self._creation_time(), **value}
        self._check_size(doc)
        self._writes[doc_id] = _Write(table, None, doc)
        return doc_id

    async def _existing(
        self, id: str, op: str, *, system: bool = False
    ) -> tuple[str, dict[str, Any]]:
        if not isinstance(id, str):
            raise ValidationError(f"db.{op} expects an id string, got {type(id).__name__}")
        table = self.table_for_id(None, id)
        if table is not None and is_system_table(table) and not system:
            raise ValidationError(
                f"Documents of the system table {table!r} cannot be changed by db.{op}"
            )
        current = await self._get(table, id) if table is not None else None
        if table is None or current is None:
            raise DocumentNotFound(f"{op.capitalize()} on nonexistent document ID {id}")
        return table, current

    # -- system writes (the runtime's own, never reachable from ctx.db) ----------------------

    async def system_insert(self, table: str, value: dict[str, Any]) -> str:
        if not is_system_table(table):
            raise ValueError(f"system_insert into user table {table!r}")
        self._require_writable("insert")
        return self._insert(table, _canonical(value))

    async def system_patch(self, id: str, fields: dict[str, Any]) -> None:
        self._require_writable("patch")
        table, current = await self._existing(id, "patch", system=True)
        doc = {**current, **_canonical(fields)}
        self._record(table, id, current, doc)

    async def system_delete(self, id: str) -> None:
        self._require_writable("delete")
        table, current = await self._existing(id, "delete", system=True)
        self._record(table, id, current, None)

    def _record(self, table: str, id: str, old: dict[str, Any], new: dict[str, Any] | None) -> None:
        previous = self._writes.get(id)
        if previous is not None:
            previous.new = new
        else:
            self._writes[id] = _Write(table, old, new)

    async def patch(self, id: str, fields: dict[str, Any]) -> None:
        self._require_writable("patch")
        table, current = await self._existing(id, "patch")
        if not isinstance(fields, dict):
            raise ValidationError(
                f"db.patch expects an object of fields, got {type(fields).__name__}"
            )
        merged = {k: v for k, v in current.items() if k not in _SYSTEM_FIELDS}
        changed: set[str] = set()
        for name, value in fields.items():
            if name in _SYSTEM_FIELDS:
                if value is not UNDEFINED and value != current[name]:
                    raise ValidationError(f"System field {name!r} cannot be changed by patch")
                continue
            if value is UNDEFINED:
                merged.pop(name, None)
                changed.discard(name)
            else:
                merged[name] = value
                changed.add(name)
        merged = self._validate(table, merged, changed)
        doc = {"_id": current["_id"], "_creationTime": current["_creationTime"], **merged}
        self._check_size(doc)
        self._record(table, id, current, doc)

    async def replace(self, id: str, value: dict[str, Any]) -> None:
        self._require_writable("replace")
        table, current = await self._existing(id, "replace")
        if not isinstance(value, dict):
            raise ValidationError(f"db.replace expects an object, got {type(value).__name__}")
        user = {}
        for name, item in value.items():
            if name in _SYSTEM_FIELDS:
                if item != current[name]:
                    raise ValidationError(f"System field {name!r} cannot be changed by replace")
                continue
            if item is not UNDEFINED:
                user[name] = item
        user = self._validate(table, user)
        doc = {"_id": current["_id"], "_creationTime": current["_creationTime"], **user}
        self._check_size(doc)
        self._record(table, id, current, doc)

    async def delete(self, id: str) -> None:
        self._require_writable("delete")
        table, current = await self._existing(id, "delete")
        self._record(table, id, current, None)

    # -- savepoints (nested mutations) ------------------------------------------------------

    def savepoint(self) -> dict[str, _Write]:
        """The pending writes as they are now, for ``rollback_to``: a nested mutation
        (``ctx.run_mutation``) that raises leaves none of its own writes behind."""
        return {doc_id: _Write(w.table, w.old, w.new) for doc_id, w in self._writes.items()}

    def written_since(self, savepoint: dict[str, _Write]) -> int:
        """How many documents were written since ``savepoint`` was taken."""
        return sum(
            1
            for doc_id, write in self._writes.items()
            if (before := savepoint.get(doc_id)) is None or before.new is not write.new
        )

    def rollback_to(self, savepoint: dict[str, _Write]) -> None:
        """Drop every write made since ``savepoint`` was taken (reads stay in the read set)."""
        self._writes = dict(savepoint)

    # -- commit ------------------------------------------------------------------------------

    @property
    def has_writes(self) -> bool:
        return bool(self._writes)

    def prepare_commit(self) -> CommitRequest:
        """Written keys (old and new, every index) plus a builder of the storage records."""
        write_keys: dict[str, list[bytes]] = {}
        write_prefixes: dict[str, list[bytes]] = {}
        documents: list[DocumentLogEntry] = []
        entries: list[IndexEntry] = []
        first_table: str | None = None
        summary: list[tuple[str, str, dict[str, Any] | None]] = []
        written = 0
        for doc_id, write in self._writes.items():
            if write.old is None and write.new is None:
                continue  # inserted and deleted in the same transaction
            table = write.table
            first_table = first_table or table
            encoded = None if write.new is None else dumps(write.new)
            if encoded is not None:
                written += len(encoded)
                if written > MAX_WRITE_BYTES and not is_system_table(table):
                    raise TransactionLimitExceeded(
                        "Too many bytes written in a single function execution "
                        f"(limit: {MAX_WRITE_BYTES} bytes)."
                    )
            documents.append(DocumentLogEntry(doc_id, table, encoded, None))
            summary.append((table, doc_id, write.new))
            plan = self._index_plan(table)
            write_keys.setdefault(plan.by_id, []).append(id_key(doc_id))
            _add_index_writes(
                plan.indexes,
                doc_id,
                write.old,
                write.new,
                encoded,
                write_keys,
                write_prefixes,
                entries,
            )
        new_tables = self.tables.unpersisted()

        def build(ts: int) -> Commit:
            return Commit(ts, documents, entries, new_tables)

        return CommitRequest(
            self.ts,
            self.read_set(),
            write_keys,
            build,
            first_table,
            summary,
            write_prefixes,
            tables=new_tables,
        )


def add_index_writes(
    table: str,
    indexes: Mapping[str, Sequence[str]],
    doc_id: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    encoded: bytes | None,
    write_keys: dict[str, list[bytes]],
    write_prefixes: dict[str, list[bytes]],
    entries: list[IndexEntry],
) -> None:
    """Add what a document's change from ``old`` to ``new`` writes in the user ``indexes`` of
    ``table`` to a commit: the written keys (the old one and, if it moved, the new one, for the
    OCC check and invalidation) with their prefixes, a tombstone where the key moved, and the
    new entry (``encoded`` is the new document).

    The same as ``index_key_prefixes`` of ``old`` and ``new`` in every index, with each value
    encoded once: ``_creationTime`` and ``_id`` once per document, and a field value ``new``
    shares with ``old`` (the same object, as after a patch of other fields) once in all."""
    plan = tuple((index_id(table, name), tuple(fields)) for name, fields in indexes.items())
    _add_index_writes(plan, doc_id, old, new, encoded, write_keys, write_prefixes, entries)


def _add_index_writes(
    indexes: Sequence[tuple[str, Sequence[str]]],
    doc_id: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    encoded: bytes | None,
    write_keys: dict[str, list[bytes]],
    write_prefixes: dict[str, list[bytes]],
    entries: list[IndexEntry],
) -> None:
    """``add_index_writes`` over (index id, fields) pairs."""
    old_tail = new_tail = (b"", b"")  # the encoded _creationTime and _id
    # path -> (value, its encoding) of old and of new: a value is encoded once per document,
    # and new reuses old's where it holds the very same object.
    old_parts: dict[str, tuple[Any, bytes]] = {}
    new_parts: dict[str, tuple[Any, bytes]] = {}
    if old is not None:
        old_tail = (encode_value(old["_creationTime"]), encode_value(old["_id"]))
    if new is not None:
        creation, new_id = new["_creationTime"], new["_id"]
        new_tail = (
            old_tail[0]
            if old is not None and old["_creationTime"] is creation
            else encode_value(creation),
            old_tail[1] if old is not None and old["_id"] is new_id else encode_value(new_id),
        )
    for iid, fields in indexes:
        keys = write_keys.setdefault(iid, [])
        prefixes = write_prefixes.setdefault(iid, [])
        old_key = new_key = None
        if old is not None:
            old_key, old_prefixes = _key_prefixes(old, fields, old_tail, old_parts, None)
            keys.append(old_key)
            prefixes.extend(old_prefixes)
        if new is not None:
            new_key, new_prefixes = _key_prefixes(new, fields, new_tail, new_parts, old_parts)
            if new_key != old_key:
                keys.append(new_key)
                prefixes.extend(new_prefixes)
        if old_key is not None and old_key != new_key:
            entries.append(IndexEntry(iid, old_key, doc_id, None))
        if new_key is not None:
            entries.append(IndexEntry(iid, new_key, doc_id, encoded))


def _key_prefixes(
    doc: dict[str, Any],
    fields: Sequence[str],
    tail: tuple[bytes, bytes],
    parts: dict[str, tuple[Any, bytes]],
    other: dict[str, tuple[Any, bytes]] | None,
) -> tuple[bytes, list[bytes]]:
    """``index_key_prefixes(doc, fields)`` with ``_creationTime`` and ``_id`` pre-encoded
    (``tail``) and field encodings looked up in ``parts`` (this document's) and ``other``."""
    prefixes = []
    key = b""
    for path in fields:
        value = field_value(doc, path)
        known = parts.get(path)
        if (known is None or known[0] is not value) and other is not None:
            known = other.get(path)
        if known is not None and known[0] is value:
            part = known[1]
        else:
            part = encode_value(value)
            parts[path] = (value, part)
        key += part
        prefixes.append(key)
    key += tail[0]
    prefixes.append(key)
    return key + tail[1], prefixes


class SystemStore:
    """``ctx.db.system``: the transaction's system tables, read-only (a ``DocumentStore``)."""

    __slots__ = ("_txn",)

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    def table_for_id(self, table: str | None, id: str) -> str | None:
        name = self._txn.table_for_id(table, id)
        return name if name is not None and is_system_table(name) else None

    async def get(self, id: str) -> dict[str, Any] | None:
        if self.table_for_id(None, id) is None:
            raise ValidationError(f"db.system.get: {id!r} is not an id of a system table")
        return await self._txn.get(id)

    def scan(
        self, table: str, index: str, range: IndexRange, order: Order
    ) -> AsyncIterator[dict[str, Any]]:
        return self._txn.scan(table, index, range, order, system=True)

    async def paginate(
        self,
        table: str,
        index: str,
        range: IndexRange,
        order: Order,
        predicate: Callable[[dict[str, Any]], bool] | None,
        options: PaginationOptions,
    ) -> PaginationResult:
        return await self._txn.paginate(table, index, range, order, predicate, options, system=True)

    async def _refuse(self, *args: Any) -> None:
        raise ReadOnlyTransactionError("System tables are read-only: ctx.db.system cannot write")

    insert = patch = replace = delete = _refuse
