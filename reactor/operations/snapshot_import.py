"""Importing a snapshot or a table file: table numbers mapped, every row validated before any
is written, then written in bounded batches through the committer.

Invariants:

* **Nothing of a bad import is written.** Every row of every table (and every stored file's
  metadata) is decoded and checked first: JSON, the value model, reserved fields, ``_id``s
  (well formed, of the table's number, not repeated, not already present when appending),
  ``_creationTime``, document size and the app's schema. The first fault is reported as
  ``<file> line <n>: <what>`` (``SnapshotImportError``) and the import stops there.
* **Ids and creation times are kept.** An id encodes its table's number. A table keeps the
  number the snapshot gives it (``_tables``, else its first ``_id``) when that number is free
  here; otherwise (the name is already numbered here, or the number belongs to another table)
  it gets this deployment's number, and every id of that table, in its own rows and in every
  reference held by any imported document, is re-encoded with the same internal id. Stored
  files keep their ids in ``_storage``.
* **Bounded memory, no giant transaction.** Rows are written in batches (at most
  ``BATCH_DOCUMENTS`` documents or ``BATCH_BYTES`` bytes) as system commits, never one user
  mutation: the 16 MiB mutation limit does not apply and memory holds one batch.

A table that fits in one batch is one commit (all or nothing for readers); with ``REPLACE``
a table of up to ``SWAP_DOCUMENTS`` documents (old and new each) is swapped in one commit.
Known limit: a larger table's batches commit one after another, so a reader may see it
half-imported while the import runs, and a crash mid-import leaves the batches written so far
(re-run it with ``--replace``). It does not parse files (``snapshot_input``) or speak HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, Protocol

from reactor.core.index_keys import (
    BY_CREATION_TIME,
    BY_ID,
    id_key,
    index_id,
)
from reactor.core.persistence import Commit, CommitRequest, DocumentLogEntry, IndexEntry
from reactor.core.reads import ReadSet
from reactor.core.system_tables import FIRST_USER_TABLE_NUMBER, SYSTEM_TABLES, TableRegistry
from reactor.engine.database import Database
from reactor.engine.transaction import add_index_writes
from reactor.errors import SnapshotImportError
from reactor.operations.snapshot_format import decode_line, import_json, storage_import_fields
from reactor.operations.snapshot_input import SnapshotInput, TableInput
from reactor.platform.blobs import BlobStore
from reactor.platform.files import STORAGE_TABLE
from schema.errors import OptimisticConcurrencyError, ReactorError, ValidationError
from schema.ids import decode_id, encode_id, new_internal_id
from schema.ordering import Order
from schema.tables import validate_document
from schema.values import (
    MAX_DOCUMENT_SIZE,
    check_field_name,
    dumps,
    loads,
    value_size,
)

__all__ = [
    "ImportMode",
    "ImportProgress",
    "ImportResult",
    "ImportTarget",
    "CheckedImport",
    "check_import",
    "import_snapshot",
    "prepare_import",
]

BATCH_DOCUMENTS = 4000
BATCH_BYTES = 8 * 1024 * 1024
YIELD_EVERY_ROWS = 100
SWAP_DOCUMENTS = BATCH_DOCUMENTS // 2  # old + new documents of a one-commit --replace
_STORAGE_NUMBER = SYSTEM_TABLES[STORAGE_TABLE]


class ImportMode(enum.Enum):
    """What happens to a table that already has documents (Convex's modes)."""

    REQUIRE_EMPTY = "requireEmpty"  # refuse (the default)
    APPEND = "append"  # add the imported documents to it
    REPLACE = "replace"  # delete its documents first
    REPLACE_ALL = "replaceAll"  # REPLACE, and empty every user table the import leaves out

    @classmethod
    def parse(cls, name: str) -> ImportMode:
        for member in cls:
            if member.value == name:
                return member
        names = ", ".join(m.value for m in cls)
        raise SnapshotImportError(f"Unknown import mode {name!r}: use one of {names}")


class ImportTarget(Protocol):
    """What an import writes to (``Deployment`` is one)."""

    @property
    def database(self) -> Database: ...

    @property
    def blobs(self) -> BlobStore: ...

    def table_indexes(self) -> dict[str, dict[str, Sequence[str]]]: ...


@dataclass(slots=True)
class ImportProgress:
    """Where an import is: ``phase`` is "checking" or "writing"."""

    phase: str = "checking"
    table: str = ""
    documents: int = 0  # rows of the current phase done, all tables
    total: int = 0  # rows to write (known once checking is done)
    checkpoints: list[str] = field(default_factory=list)  # "Imported "tasks" (3 documents)"


@dataclass(frozen=True, slots=True)
class ImportResult:
    tables: dict[str, int]  # table -> documents written
    documents: int
    files: int


@dataclass(slots=True)
class _TablePlan:
    source: TableInput
    number: int  # this deployment's number for the table
    source_number: int | None  # the number its ids carry in the input
    count: int = 0


def _fail(source: TableInput, line: int, message: str) -> SnapshotImportError:
    return SnapshotImportError(f"{source.label} line {line}: {message}")


def _decode_row(source: TableInput, line: int, raw: Any) -> dict[str, Any]:
    try:
        if isinstance(raw, bytes):
            value = decode_line(raw, lossless=source.lossless)
        else:
            value = import_json(raw, lossless=source.lossless)
    except ValidationError as exc:
        raise _fail(source, line, exc.message) from None
    if not isinstance(value, dict):
        raise _fail(source, line, "each row must be a JSON object (a document)")
    return value


def _id_number(doc_id: Any) -> int | None:
    if not isinstance(doc_id, str):
        return None
    try:
        return decode_id(doc_id).table_number
    except ValidationError:
        return None


_UNCHECKED = object()


class _Remap:
    """Re-encodes ids whose table number changed (in ``_id`` and in every reference)."""

    def __init__(self, numbers: Mapping[int, int]) -> None:
        self.numbers = dict(numbers)

    def id(self, doc_id: str) -> str:
        decoded = decode_id(doc_id)
        target = self.numbers.get(decoded.table_number)
        return doc_id if target is None else encode_id(target, decoded.internal_id)

    def value(self, value: Any) -> Any:
        if not self.numbers:
            return value
        if isinstance(value, str):
            if 31 <= len(value) <= 37:
                number = _id_number(value)
                if number is not None and number in self.numbers:
                    return self.id(value)
            return value
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value


class _Importer:
    def __init__(
        self,
        target: ImportTarget,
        source: SnapshotInput,
        mode: ImportMode,
        on_progress: Callable[[ImportProgress], None] | None,
    ) -> None:
        self.target = target
        self.database = target.database
        self.tables: TableRegistry = target.database.tables
        self.source = source
        self.mode = mode
        self.on_progress = on_progress
        self.progress = ImportProgress()
        self.plans: list[_TablePlan] = []
        self.remap = _Remap({})
        self.storage_source_number: int | None = None
        self.storage_count = 0
        self.now_ms = self.database.now_ms()
        self._checked_schema: Any = _UNCHECKED

    # -- planning ----------------------------------------------------------------------------

    def _first_id_number(self, source: TableInput) -> int | None:
        for line, raw in source.rows():
            try:
                return _id_number(_decode_row(source, line, raw).get("_id"))
            except SnapshotImportError:
                return None  # reported with its line number by the check
        return None

    def plan(self) -> None:
        known = self.tables.numbers()
        taken = set(known.values())
        remap: dict[int, int] = {}
        for source in self.source.tables:
            try:
                TableRegistry.check_name(source.table)
            except ValidationError as exc:
                raise SnapshotImportError(f"{source.label}: {exc.message}") from None
            wanted = self.source.table_numbers.get(source.table)
            if wanted is None:
                wanted = self._first_id_number(source)
            number = known.get(source.table)
            if number is None:
                if wanted is not None and wanted >= FIRST_USER_TABLE_NUMBER and wanted not in taken:
                    number = wanted
                else:
                    number = max([*taken, FIRST_USER_TABLE_NUMBER - 1]) + 1
                taken.add(number)
            if wanted is not None and wanted != number:
                if remap.get(wanted, number) != number:
                    raise SnapshotImportError(
                        f"{source.label}: table number {wanted} is claimed by two tables"
                    )
                remap[wanted] = number
            self.plans.append(_TablePlan(source, number, wanted))
        if self.source.storage is not None:
            self.storage_source_number = self._first_id_number(self.source.storage)
            if self.storage_source_number is not None:
                if self.storage_source_number != _STORAGE_NUMBER:
                    remap[self.storage_source_number] = _STORAGE_NUMBER
        self.remap = _Remap(remap)
        self._names_by_number = {number: name for name, number in known.items()}
        for plan in self.plans:
            self._names_by_number[plan.number] = plan.source.table

    def _table_of_id(self, doc_id: str) -> str | None:
        number = _id_number(doc_id)
        return None if number is None else self._names_by_number.get(number)

    # -- checking ----------------------------------------------------------------------------

    async def _has_documents(self, table: str, ts: int) -> bool:
        rows = await self.database.persistence.scan(
            index_id(table, BY_CREATION_TIME), b"", None, ts, Order.ASC, 1
        )
        return bool(rows)

    def checked(self) -> CheckedImport:
        counts = {plan.source.table: plan.count for plan in self.plans}
        if self.source.storage is not None:
            counts[STORAGE_TABLE] = self.storage_count
        return CheckedImport(counts, self._checked_schema, self.tables.numbers())

    async def check(self, checked: CheckedImport | None = None) -> None:
        ts = self.database.snapshot_ts()
        if self.mode is ImportMode.REQUIRE_EMPTY:
            targets = [p.source.table for p in self.plans]
            if self.source.storage is not None:
                targets.append(STORAGE_TABLE)
            for table in targets:
                if await self._has_documents(table, ts):
                    raise SnapshotImportError(
                        f"Table {table!r} is not empty: import with --replace to replace its "
                        "documents, or --append to add to them"
                    )
        self._set_phase("checking")
        self._checked_schema = self.database.served.schema
        if (
            checked is not None
            and self.mode is not ImportMode.APPEND
            and checked.schema is self._checked_schema
            and checked.numbers == self.tables.numbers()
            and set(checked.counts)
            == {p.source.table for p in self.plans}
            | ({STORAGE_TABLE} if self.source.storage is not None else set())
        ):
            for plan in self.plans:
                plan.count = checked.counts[plan.source.table]
            self.storage_count = checked.counts.get(STORAGE_TABLE, 0)
            self.progress.total = sum(checked.counts.values())
            return
        if self.source.storage is not None:
            self.storage_count = await self._check_storage(self.source.storage)
        for plan in self.plans:
            self.progress.table = plan.source.table
            plan.count = await self._check_table(plan, ts)
        self.progress.total = sum(p.count for p in self.plans) + self.storage_count

    def _document(
        self, plan: _TablePlan, line: int, raw: Any, *, checking: bool = True
    ) -> dict[str, Any]:
        """The row as the document to store, references re-encoded. ``checking=False`` (the
        write pass over rows the check pass accepted, under the same schema) skips the value
        checks, which only re-confirm what was checked."""
        source = plan.source
        row = _decode_row(source, line, raw)
        doc_id = row.pop("_id", None)
        created = row.pop("_creationTime", None)
        schema = self.database.served.schema
        if not checking and schema is self._checked_schema:
            fields = self.remap.value(row)
            doc_id = self._final_id(plan, line, doc_id)
            return {
                "_id": doc_id,
                "_creationTime": float(self._created(line, plan, created)),
                **fields,
            }
        for name in row:
            if schema is None:
                try:
                    check_field_name(name, "$", top_level=True)
                except ValidationError as exc:
                    raise _fail(source, line, exc.message) from None
            if name.startswith("_"):
                raise _fail(
                    source,
                    line,
                    f"field {name!r} starts with '_', which is reserved for system fields",
                )
        # The check pass needs no fresh id for a row without one (it cannot repeat).
        doc_id = None if doc_id is None else self._final_id(plan, line, doc_id)
        created = self._created(line, plan, created)
        try:
            fields = validate_document(
                schema,
                source.table,
                self.remap.value(row),
                resolve_id_table=self._table_of_id,
            )
        except ReactorError as exc:
            raise _fail(source, line, exc.message) from None
        document = {"_id": doc_id, "_creationTime": float(created), **fields}
        # A stored value takes at most ~5 bytes per byte of its JSON line (a number "1," is 9):
        # only a long line can break the limit, so only those are measured.
        short = isinstance(raw, bytes) and len(raw) * 5 < MAX_DOCUMENT_SIZE
        size = 0 if short else value_size(document)
        if size > MAX_DOCUMENT_SIZE:
            raise _fail(
                source,
                line,
                f"document is too large ({size} bytes; the limit is {MAX_DOCUMENT_SIZE})",
            )
        return document

    def _final_id(self, plan: _TablePlan, line: int, doc_id: Any) -> str:
        source = plan.source
        if doc_id is None:
            return encode_id(plan.number, new_internal_id())
        else:
            number = _id_number(doc_id)
            if number is None:
                raise _fail(source, line, f"_id {doc_id!r} is not a valid document id")
            if number != plan.source_number:
                raise _fail(
                    source,
                    line,
                    f"_id {doc_id} belongs to another table (its table number is {number}, "
                    f"the ids of {source.table!r} have {plan.source_number})",
                )
            return encode_id(plan.number, decode_id(doc_id).internal_id)

    def _created(self, line: int, plan: _TablePlan, created: Any) -> float:
        if created is None:
            created = self.now_ms
            self.now_ms = math.nextafter(self.now_ms, math.inf)
            return float(created)
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise _fail(plan.source, line, "_creationTime must be a number (milliseconds)")
        if not (math.isfinite(created) and created > 0):
            raise _fail(plan.source, line, f"_creationTime {created!r} is not a valid time")
        return float(created)

    async def _check_table(self, plan: _TablePlan, ts: int) -> int:
        seen: set[str] = set()
        count = 0
        persistence = self.database.persistence
        for line, raw in plan.source.rows():
            await self._pause(line)
            document = self._document(plan, line, raw)
            doc_id = document["_id"]
            if doc_id is None:
                count += 1
                self._tick()
                continue
            if doc_id in seen:
                raise _fail(plan.source, line, f"_id {doc_id} appears twice")
            seen.add(doc_id)
            if self.mode is ImportMode.APPEND and (
                await persistence.get_document(doc_id, ts) is not None
            ):
                raise _fail(plan.source, line, f"a document with _id {doc_id} already exists")
            count += 1
            self._tick()
        return count

    def _storage_row(self, source: TableInput, line: int, raw: Any) -> tuple[str, dict[str, Any]]:
        row = _decode_row(source, line, raw)
        try:
            storage_id, created, content_type = storage_import_fields(row)
        except ValidationError as exc:
            raise _fail(source, line, exc.message) from None
        number = _id_number(storage_id)
        if number is None:
            raise _fail(source, line, f"_id {storage_id!r} is not a valid storage id")
        if number != self.storage_source_number:
            raise _fail(source, line, f"_id {storage_id} is not of the _storage table's number")
        fields: dict[str, Any] = {"_creationTime": created or self.now_ms}
        if content_type is not None:
            fields["contentType"] = content_type
        sha256 = row.get("sha256")
        if sha256 is not None:
            try:
                fields["sha256"] = base64.b64decode(sha256, validate=True).hex()
            except (ValueError, TypeError):
                raise _fail(source, line, "sha256 must be base64") from None
        return storage_id, fields

    async def _check_storage(self, source: TableInput) -> int:
        seen: set[str] = set()
        count = 0
        for line, raw in source.rows():
            await self._pause(line)
            storage_id, _fields = self._storage_row(source, line, raw)
            if storage_id in seen:
                raise _fail(source, line, f"_id {storage_id} appears twice")
            seen.add(storage_id)
            if storage_id not in self.source.files:
                raise _fail(
                    source,
                    line,
                    f"the bytes of file {storage_id} are missing (no _storage/{storage_id} entry)",
                )
            count += 1
            self._tick()
        return count

    # -- writing -----------------------------------------------------------------------------

    def _set_phase(self, phase: str) -> None:
        self.progress.phase = phase
        self.progress.documents = 0
        self._report()

    def _tick(self, n: int = 1) -> None:
        self.progress.documents += n
        if self.progress.documents % 1000 < n:
            self._report()

    async def _pause(self, count: int) -> None:
        """Let the event loop serve others between rows: checking is CPU work in this thread."""
        if count % YIELD_EVERY_ROWS == 0:
            await asyncio.sleep(0)

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    async def write(self) -> ImportResult:
        for plan in self.plans:
            if not self.tables.claim(plan.source.table, plan.number):
                raise SnapshotImportError(
                    f"Table {plan.source.table!r} cannot take number {plan.number}: the "
                    "deployment's tables changed while the import ran; import again"
                )
        cleared: list[str] = []
        if self.mode in (ImportMode.REPLACE, ImportMode.REPLACE_ALL):
            cleared = [p.source.table for p in self.plans]
            if self.source.storage is not None:
                cleared.append(STORAGE_TABLE)
        if self.mode is ImportMode.REPLACE_ALL:
            imported = set(cleared)
            cleared += [
                name
                for name in self.tables.numbers()
                if not name.startswith("_") and name not in imported
            ]
        # A table replaced by one batch, whose old contents fit in it too, is swapped in one
        # commit: readers see the old documents or the new ones, never an empty table.
        swapped = {
            plan.source.table
            for plan in self.plans
            if plan.source.table in cleared and plan.count <= SWAP_DOCUMENTS
        }
        for table in cleared:
            if table not in swapped:
                await self._clear(table)
        self._set_phase("writing")
        counts: dict[str, int] = {}
        files = 0
        if self.source.storage is not None:
            files = await self._write_storage(self.source.storage)
            counts[STORAGE_TABLE] = files
            self.progress.checkpoints.append(f'Imported "_storage" ({files} files)')
        for plan in self.plans:
            self.progress.table = plan.source.table
            counts[plan.source.table] = await self._write_table(
                plan, swap=plan.source.table in swapped
            )
            self.progress.checkpoints.append(
                f'Imported "{plan.source.table}" ({counts[plan.source.table]:,} documents)'
            )
            self._report()
        documents = sum(n for t, n in counts.items() if t != STORAGE_TABLE)
        return ImportResult(counts, documents, files)

    def _indexes(self, table: str) -> dict[str, Sequence[str]]:
        indexes: dict[str, Sequence[str]] = {BY_CREATION_TIME: ()}
        indexes.update(self.target.table_indexes().get(table, {}))
        return indexes

    def _request(
        self,
        table: str,
        ts: int,
        inserts: Sequence[dict[str, Any]] = (),
        deletes: Sequence[dict[str, Any]] = (),
    ) -> CommitRequest:
        """A system commit of ``table``: blind inserts, and deletes of documents read at
        ``ts`` (a point read each, so a concurrent change conflicts and the batch re-runs)."""
        indexes = self._indexes(table)
        reads = ReadSet()
        write_keys: dict[str, list[bytes]] = {}
        write_prefixes: dict[str, list[bytes]] = {}
        documents: list[DocumentLogEntry] = []
        entries: list[IndexEntry] = []
        summary: list[tuple[str, str, dict[str, Any] | None]] = []
        by_id = index_id(table, BY_ID)
        # One change per id: a document deleted and inserted again (a --replace of the same
        # snapshot) is one new version, its old index keys tombstoned where they differ.
        changes: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
            gone["_id"]: (gone, None) for gone in deletes
        }
        for added in inserts:
            previous = changes.get(added["_id"])
            changes[added["_id"]] = (None if previous is None else previous[0], added)
        for doc_id, (old, new) in changes.items():
            if old is not None:
                reads.add_point(by_id, id_key(doc_id))
            encoded = None if new is None else dumps(new)
            documents.append(DocumentLogEntry(doc_id, table, encoded, None))
            summary.append((table, doc_id, new))
            write_keys.setdefault(by_id, []).append(id_key(doc_id))
            add_index_writes(
                table, indexes, doc_id, old, new, encoded, write_keys, write_prefixes, entries
            )
        new_tables = self.tables.unpersisted()

        def build(commit_ts: int) -> Commit:
            return Commit(commit_ts, documents, entries, new_tables)

        return CommitRequest(
            ts,
            reads,
            write_keys,
            build,
            table,
            summary,
            write_prefixes,
            tables=new_tables,
        )

    async def _commit(self, request: Callable[[int], CommitRequest]) -> None:
        committer = self.database.server_committer()
        while True:
            ts = self.database.snapshot_ts()
            try:
                await committer.commit(request(ts))
                return
            except OptimisticConcurrencyError as exc:
                if exc.write_ts is not None:
                    await committer.wait_published(exc.write_ts)

    async def _clear(self, table: str) -> None:
        persistence = self.database.persistence
        iid = index_id(table, BY_CREATION_TIME)
        while True:
            ts = self.database.snapshot_ts()
            rows = await persistence.scan(iid, b"", None, ts, Order.ASC, BATCH_DOCUMENTS)
            if not rows:
                return
            old = [loads(row.value) for row in rows]
            try:
                await self.database.server_committer().commit(self._request(table, ts, [], old))
            except OptimisticConcurrencyError as exc:
                if exc.write_ts is not None:
                    await self.database.server_committer().wait_published(exc.write_ts)

    async def _batches(self, plan: _TablePlan) -> AsyncIterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        size = 0
        for line, raw in plan.source.rows():
            await self._pause(line)
            document = self._document(plan, line, raw, checking=False)
            batch.append(document)
            size += len(raw) if isinstance(raw, bytes) else value_size(document)
            if len(batch) >= BATCH_DOCUMENTS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    async def _write_table(self, plan: _TablePlan, *, swap: bool = False) -> int:
        count = 0
        table = plan.source.table
        async for batch in self._batches(plan):
            if swap:
                await self._swap(table, batch)
                swap = False
            else:
                await self._commit(partial(self._request, table, inserts=batch))
            count += len(batch)
            self._tick(len(batch))
        if swap:  # the import holds no documents for it: the table is just emptied
            await self._clear(table)
        return count

    async def _swap(self, table: str, batch: list[dict[str, Any]]) -> None:
        """Delete every document of ``table`` and insert ``batch``, in one commit when the old
        documents fit beside it (else clear first, then insert)."""
        persistence = self.database.persistence
        committer = self.database.server_committer()
        iid = index_id(table, BY_CREATION_TIME)
        while True:
            ts = self.database.snapshot_ts()
            rows = await persistence.scan(iid, b"", None, ts, Order.ASC, SWAP_DOCUMENTS + 1)
            if len(rows) > SWAP_DOCUMENTS:
                await self._clear(table)
                await self._commit(partial(self._request, table, inserts=batch))
                return
            old = [loads(row.value) for row in rows]
            try:
                await committer.commit(self._request(table, ts, inserts=batch, deletes=old))
                return
            except OptimisticConcurrencyError as exc:
                if exc.write_ts is not None:
                    await committer.wait_published(exc.write_ts)

    async def _write_storage(self, source: TableInput) -> int:
        blobs = self.target.blobs
        count = 0
        batch: list[dict[str, Any]] = []
        for line, raw in source.rows():
            storage_id, fields = self._storage_row(source, line, raw)
            storage_id = self.remap.id(storage_id)
            with self.source.files[self._source_key(storage_id)]() as stream:
                pending = await blobs.write(_read_chunks(stream), max_bytes=None)
            expected = fields.get("sha256")
            if expected is not None and expected != pending.sha256:
                blobs.discard(pending)
                raise _fail(source, line, f"the bytes of file {storage_id} do not match its sha256")
            await blobs.publish(pending, storage_id)
            row = {
                "_id": storage_id,
                "_creationTime": float(fields["_creationTime"]),
                "sha256": pending.sha256,
                "size": float(pending.size),
            }
            if "contentType" in fields:
                row["contentType"] = fields["contentType"]
            batch.append(row)
            count += 1
            if len(batch) >= 500:
                await self._commit(partial(self._request, STORAGE_TABLE, inserts=batch))
                self._tick(len(batch))
                batch = []
        if batch:
            await self._commit(partial(self._request, STORAGE_TABLE, inserts=batch))
            self._tick(len(batch))
        return count

    def _source_key(self, storage_id: str) -> str:
        """The input's id of a (possibly re-encoded) storage id."""
        if storage_id in self.source.files:
            return storage_id
        internal = decode_id(storage_id).internal_id
        assert self.storage_source_number is not None
        return encode_id(self.storage_source_number, internal)


def _read_chunks(stream: IO[bytes], size: int = 1 << 20) -> Any:
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk


async def prepare_import(
    target: ImportTarget,
    source: SnapshotInput,
    *,
    mode: ImportMode = ImportMode.REQUIRE_EMPTY,
) -> dict[str, int]:
    """Check ``source`` as ``import_snapshot`` would, writing nothing: the documents (or files,
    for ``_storage``) each table would receive.

    Raises:
        SnapshotImportError: as ``import_snapshot``.
    """
    importer = _Importer(target, source, mode, None)
    importer.plan()
    await importer.check()
    return importer.checked().counts


@dataclass(frozen=True, slots=True)
class CheckedImport:
    """What a check accepted: rows per table under this schema and these table numbers. An
    import given it (``import_snapshot(checked=...)``) skips checking the rows again while
    both are unchanged (not in ``APPEND`` mode, whose id checks depend on the data)."""

    counts: dict[str, int]
    schema: Any
    numbers: dict[str, int]


async def check_import(
    target: ImportTarget,
    source: SnapshotInput,
    *,
    mode: ImportMode = ImportMode.REQUIRE_EMPTY,
) -> CheckedImport:
    """``prepare_import``, keeping what the check depended on for ``import_snapshot``."""
    importer = _Importer(target, source, mode, None)
    importer.plan()
    await importer.check()
    return importer.checked()


async def import_snapshot(
    target: ImportTarget,
    source: SnapshotInput,
    *,
    mode: ImportMode = ImportMode.REQUIRE_EMPTY,
    on_progress: Callable[[ImportProgress], None] | None = None,
    checked: CheckedImport | None = None,
) -> ImportResult:
    """Import ``source`` into ``target``: check everything, then write (module docstring).
    ``checked`` (from ``check_import`` of the same file) spares re-checking the rows.

    Raises:
        SnapshotImportError: the input is refused (nothing was written): names the file and
            line at fault, or the non-empty table in ``REQUIRE_EMPTY`` mode.
    """
    importer = _Importer(target, source, mode, on_progress)
    importer.plan()
    await importer.check(checked)
    return await importer.write()
