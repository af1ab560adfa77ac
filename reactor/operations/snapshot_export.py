"""Writing a snapshot ZIP: every user table (and optionally file storage) as of ONE commit
timestamp, streamed page by page into the ZIP while the deployment keeps serving.

Consistency comes from MVCC: every page is read with ``Persistence.scan`` at the same ``ts``,
so commits made while the export runs are not in it, whichever table they touch. Memory stays
bounded by one page of documents (and the ZIP writer's buffers); compression runs on a worker
thread so the event loop keeps answering clients. The format is ``snapshot_format``'s; where
the ZIP goes (a file, a response) and when an export runs is the caller's.
"""

from __future__ import annotations

import asyncio
import mimetypes
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

from reactor.core.index_keys import BY_CREATION_TIME, index_id
from reactor.core.persistence import Persistence
from reactor.core.system_tables import is_system_table
from reactor.errors import SnapshotError
from reactor.operations.snapshot_format import (
    GENERATED_SCHEMA_UNIFORM,
    README,
    STORAGE_DIR,
    TABLES_DIR,
    encode_document,
    storage_export_line,
    table_entry,
)
from reactor.platform.blobs import BlobNotFound, BlobStore
from reactor.platform.files import STORAGE_TABLE
from reactor.platform.retention import PRUNED_THROUGH
from schema.errors import ValidationError
from schema.ordering import Order
from schema.values import loads

__all__ = ["ExportProgress", "ExportSummary", "export_snapshot"]

PAGE_SIZE = 500


@dataclass(slots=True)
class ExportProgress:
    """Where an export is: documents and files written so far, the table being written."""

    table: str = ""
    documents: int = 0
    files: int = 0
    bytes: int = 0  # uncompressed bytes of documents and files written


@dataclass(frozen=True, slots=True)
class ExportSummary:
    ts: int
    tables: dict[str, int] = field(default_factory=dict)  # table -> documents
    documents: int = 0
    files: int = 0
    bytes: int = 0


async def _pages(persistence: Persistence, table: str, ts: int) -> AsyncIterator[list[bytes]]:
    """The stored values of ``table`` at ``ts``, a page at a time, in creation order."""
    iid = index_id(table, BY_CREATION_TIME)
    start = b""
    while True:
        rows = await persistence.scan(iid, start, None, ts, Order.ASC, PAGE_SIZE)
        if rows:
            yield [row.value for row in rows]
        if len(rows) < PAGE_SIZE:
            return
        start = rows[-1].key + b"\x00"


def _extension(content_type: str | None) -> str:
    if not content_type:
        return ""
    guess = mimetypes.guess_extension(content_type.split(";")[0].strip())
    return guess or ""


async def export_snapshot(
    persistence: Persistence,
    ts: int,
    tables: Mapping[str, int],
    out: IO[bytes],
    *,
    blobs: BlobStore | None = None,
    include_storage: bool = False,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportSummary:
    """Write the snapshot of ``tables`` (name -> number; system tables are skipped) as of
    ``ts`` to ``out`` as a ZIP in Convex's format; with ``include_storage``, the ``_storage``
    rows and the bytes of every file (from ``blobs``) too.

    Raises:
        ValidationError: ``include_storage`` without ``blobs``, or a stored file whose bytes
            are missing.
        SnapshotError: retention pruned versions at ``ts`` while the export ran (an export
            longer than the retention window, 10 minutes): the ZIP may be inconsistent.
    """
    if include_storage and blobs is None:
        raise ValidationError("include_storage needs the deployment's blob store")
    progress = ExportProgress()
    counts: dict[str, int] = {}
    user_tables = sorted(
        ((number, name) for name, number in tables.items() if not is_system_table(name))
    )
    archive = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)

    def write_entry(name: str, data: bytes) -> None:
        archive.writestr(name, data)

    try:
        await asyncio.to_thread(write_entry, "README.md", README)
        listing = b"".join(table_entry(name, number) for number, name in user_tables)
        await asyncio.to_thread(write_entry, f"{TABLES_DIR}/documents.jsonl", listing)
        for _number, name in user_tables:
            progress.table = name
            counts[name] = await _write_table(archive, persistence, name, ts, progress, on_progress)
            await asyncio.to_thread(
                write_entry, f"{name}/generated_schema.jsonl", GENERATED_SCHEMA_UNIFORM
            )
        if include_storage:
            assert blobs is not None
            progress.table = STORAGE_TABLE
            counts[STORAGE_TABLE] = await _write_storage(
                archive, persistence, blobs, ts, progress, on_progress
            )
    finally:
        await asyncio.to_thread(archive.close)
    # Retention forgets versions older than its window: if it pruned past ``ts`` while the
    # export ran, some pages may have been read without versions they needed.
    pruned = await persistence.get_global(PRUNED_THROUGH)
    if pruned is not None and int(pruned) >= ts:
        raise SnapshotError(
            "The export took longer than the retention window (versions at its timestamp were "
            "pruned while it ran), so it may not be consistent: export again"
        )
    return ExportSummary(
        ts=ts,
        tables=counts,
        documents=progress.documents,
        files=progress.files,
        bytes=progress.bytes,
    )


def _write_documents(entry: IO[bytes], page: list[bytes]) -> int:
    data = b"".join(encode_document(loads(value)) for value in page)
    entry.write(data)
    return len(data)


async def _write_table(
    archive: zipfile.ZipFile,
    persistence: Persistence,
    table: str,
    ts: int,
    progress: ExportProgress,
    on_progress: Callable[[ExportProgress], None] | None,
) -> int:
    count = 0
    entry = archive.open(f"{table}/documents.jsonl", "w", force_zip64=True)
    try:
        async for page in _pages(persistence, table, ts):
            # Re-encoding and compressing run on a worker thread: the event loop only reads.
            written = await asyncio.to_thread(_write_documents, entry, page)
            count += len(page)
            progress.documents += len(page)
            progress.bytes += written
            if on_progress is not None:
                on_progress(progress)
    finally:
        await asyncio.to_thread(entry.close)
    return count


async def _write_storage(
    archive: zipfile.ZipFile,
    persistence: Persistence,
    blobs: BlobStore,
    ts: int,
    progress: ExportProgress,
    on_progress: Callable[[ExportProgress], None] | None,
) -> int:
    # Rows first (one entry), then each file's bytes: the rows are read at ``ts`` twice, which
    # MVCC makes the same list.
    count = 0
    entry = archive.open(f"{STORAGE_DIR}/documents.jsonl", "w", force_zip64=True)
    try:
        async for page in _pages(persistence, STORAGE_TABLE, ts):
            data = b"".join(storage_export_line(loads(value)) for value in page)
            await asyncio.to_thread(entry.write, data)
            count += len(page)
    finally:
        await asyncio.to_thread(entry.close)
    async for page in _pages(persistence, STORAGE_TABLE, ts):
        for value in page:
            row = loads(value)
            storage_id = row["_id"]
            try:
                reader = blobs.open(storage_id)
            except BlobNotFound:
                raise ValidationError(
                    f"The bytes of stored file {storage_id} are missing from the blob store"
                ) from None
            name = f"{STORAGE_DIR}/{storage_id}{_extension(row.get('contentType'))}"
            file_entry = archive.open(name, "w", force_zip64=True)
            try:
                async for chunk in reader.chunks():
                    await asyncio.to_thread(file_entry.write, chunk)
                    progress.bytes += len(chunk)
            finally:
                reader.close()
                await asyncio.to_thread(file_entry.close)
            progress.files += 1
            if on_progress is not None:
                on_progress(progress)
    return count
