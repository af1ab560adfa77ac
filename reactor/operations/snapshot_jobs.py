"""Snapshot exports and imports as jobs of a running deployment, in the states Convex's CLI
and dashboard follow.

An export runs in the background (one at a time): ``requested`` -> ``in_progress`` (its
``start_ts``: the snapshot) -> ``completed`` (``zip_object_key``, the ZIP kept under the
deployment's ``exports/`` directory until the next export replaces it) or ``failed``. An
import is uploaded in parts, then checked (``uploaded`` -> ``waiting_for_confirmation``, with
a summary to confirm), then written once confirmed (``in_progress`` with progress and
checkpoint messages -> ``completed`` with ``num_rows_written``, or ``failed`` with the error).
Jobs live in memory (the latest export and the last 20 imports): a restarted server forgets
them, but an export's ZIP stays on disk. Every change re-runs live queries, so the
``_system/cli/*`` functions reading them (``snapshot_functions``) are live. It does not
speak HTTP (``reactor.server.snapshot_routes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reactor.core.index_keys import BY_CREATION_TIME, index_id
from reactor.core.persistence import Persistence
from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import start_task
from reactor.engine.database import Database
from reactor.errors import SnapshotError, SnapshotImportError
from reactor.operations.snapshot_export import ExportProgress, export_snapshot
from reactor.operations.snapshot_import import (
    CheckedImport,
    ImportMode,
    ImportProgress,
    check_import,
    import_snapshot,
)
from reactor.operations.snapshot_input import ImportFormat, open_input
from reactor.platform.blobs import BlobStore
from reactor.platform.files import STORAGE_TABLE
from reactor.storage import open_reader
from schema.ids import encode_id, new_internal_id
from schema.ordering import Order
from schema.values import Int64

__all__ = ["ExportJob", "ImportJob", "SnapshotDeployment", "SnapshotJobs"]

log = logging.getLogger("reactor.operations.snapshots")

MAX_PARTS = 10_000
MAX_IMPORTS_KEPT = 20
# Import ids look like Convex's ids of its ``_snapshot_imports`` table (never stored here).
_IMPORT_ID_TABLE = 9


class SnapshotDeployment(Protocol):
    """What the jobs use of the deployment (``Deployment`` is one)."""

    @property
    def database(self) -> Database: ...

    @property
    def persistence(self) -> Persistence: ...

    @property
    def tables(self) -> TableRegistry: ...

    @property
    def blobs(self) -> BlobStore: ...

    def table_indexes(self) -> dict[str, dict[str, Sequence[str]]]: ...

    def snapshots_changed(self) -> None:
        """A job's state changed: re-run the live queries that may show it."""
        ...


@dataclass(slots=True)
class ExportJob:
    include_storage: bool
    state: str = "requested"
    requested_ms: float = 0.0
    start_ts: int = 0
    complete_ts: int = 0
    size: int = 0
    path: Path | None = None
    progress: str = ""
    error: str = ""

    def document(self) -> dict[str, Any]:
        """The job as Convex's ``_exports`` document (``exports:getLatest``)."""
        doc: dict[str, Any] = {
            "_creationTime": self.requested_ms,
            "state": self.state,
            "format": {"format": "zip", "include_storage": self.include_storage},
            "requestor": "snapshotExport",
        }
        if self.state != "requested":
            doc["start_ts"] = Int64(self.start_ts)
        if self.state == "in_progress":
            doc["progress_message"] = self.progress
        if self.state == "completed":
            doc["complete_ts"] = Int64(self.complete_ts)
            doc["zip_object_key"] = f"snapshot_{self.start_ts}.zip"
            doc["size"] = Int64(self.size)
        if self.state == "failed":
            doc["failed_ts"] = Int64(self.complete_ts)
            doc["error_message"] = self.error
        return doc


@dataclass(slots=True)
class ImportJob:
    id: str
    created_ms: float
    path: Path
    format: ImportFormat
    mode: ImportMode
    table: str | None
    state: dict[str, Any] = field(default_factory=lambda: {"state": "uploaded"})
    checked: CheckedImport | None = None

    @property
    def label(self) -> str | None:
        """How errors name an uploaded table file: the table with the format's extension
        (the uploaded file's own name is not sent)."""
        if self.table is None:
            return None
        return self.table + self.path.suffix

    def document(self) -> dict[str, Any]:
        """The job as Convex's ``_snapshot_imports`` document (``queryImport``)."""
        doc: dict[str, Any] = {
            "_id": self.id,
            "_creationTime": self.created_ms,
            "state": dict(self.state),
            "format": {"format": self.format.value},
            "mode": self.mode.value,
            "requestor": {"type": "snapshotImport"},
        }
        if self.table is not None:
            doc["format"]["table"] = self.table
        return doc


@dataclass(slots=True)
class _Upload:
    directory: Path
    parts: dict[int, Path] = field(default_factory=dict)


def _export_on_own_loop(
    reader_url: str,
    ts: int,
    tables: dict[str, int],
    path: Path,
    blobs: BlobStore,
    include_storage: bool,
    progress: Callable[[ExportProgress], None],
) -> None:
    async def run() -> None:
        reader = open_reader(reader_url)
        try:
            with open(path, "wb") as out:
                await export_snapshot(
                    reader,
                    ts,
                    tables,
                    out,
                    blobs=blobs,
                    include_storage=include_storage,
                    on_progress=progress,
                )
        finally:
            await reader.aclose()

    asyncio.run(run())


class SnapshotJobs:
    """The deployment's export and import jobs; ``directory`` holds export ZIPs and uploads."""

    def __init__(self, deployment: SnapshotDeployment, directory: Path) -> None:
        self.deployment = deployment
        self.directory = directory
        self.export: ExportJob | None = None
        self._export_task: asyncio.Task[None] | None = None
        self.imports: dict[str, ImportJob] = {}
        self._uploads: dict[str, _Upload] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = threading.Event()

    def _changed(self) -> None:
        self.deployment.snapshots_changed()

    def _now_ms(self) -> float:
        return self.deployment.database.now_ms()

    # -- exports -----------------------------------------------------------------------------

    @property
    def export_in_progress(self) -> bool:
        return self.export is not None and self.export.state in ("requested", "in_progress")

    def request_export(self, *, include_storage: bool) -> ExportJob:
        """Start an export in the background.

        Raises:
            SnapshotError: one is already requested or running (``export_in_progress``).
        """
        if self.export_in_progress:
            raise SnapshotError(
                "A snapshot export is already requested or in progress: wait for it to finish"
            )
        job = ExportJob(include_storage, requested_ms=self._now_ms())
        self.export = job
        self._changed()
        self._export_task = start_task(self._run_export(job), name="snapshot export")
        return job

    async def _run_export(self, job: ExportJob) -> None:
        deployment = self.deployment
        database = deployment.database
        job.start_ts = database.snapshot_ts()
        job.state = "in_progress"
        self._changed()
        exports = self.directory / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        path = exports / f"snapshot_{job.start_ts}.zip"
        partial = path.with_suffix(".zip.part")

        def progress(p: ExportProgress) -> None:
            if self._stopping.is_set():
                raise SnapshotError("the server is stopping: export cancelled")
            job.progress = f"Backing up {p.table}: {p.documents:,} documents, {p.files:,} files"

        try:
            # The whole export runs on a thread with its own event loop and its own read
            # connection (MVCC: it reads at ``start_ts`` whatever is committed meanwhile), so
            # the server's event loop only shares the CPU with it.
            await asyncio.to_thread(
                _export_on_own_loop,
                deployment.persistence.reader_url,
                job.start_ts,
                deployment.tables.numbers(),
                partial,
                deployment.blobs,
                job.include_storage,
                progress,
            )
            partial.replace(path)
        except Exception as exc:
            log.exception("snapshot export failed")
            partial.unlink(missing_ok=True)
            job.state = "failed"
            job.error = str(exc)
            job.complete_ts = database.snapshot_ts()
            self._changed()
            return
        for old in exports.glob("snapshot_*.zip"):
            if old != path:
                old.unlink(missing_ok=True)
        job.path = path
        job.size = path.stat().st_size
        job.complete_ts = database.snapshot_ts()
        job.state = "completed"
        self._changed()

    def export_file(self, ts: int) -> Path:
        """The ZIP of the completed export at snapshot ``ts``.

        Raises:
            SnapshotError: no completed export has that timestamp (any more).
        """
        job = self.export
        if job is None or job.state != "completed" or job.start_ts != ts or job.path is None:
            raise SnapshotError(f"No completed snapshot export at timestamp {ts}")
        if not job.path.is_file():
            raise SnapshotError(f"The snapshot export at timestamp {ts} is no longer on disk")
        return job.path

    # -- uploads -----------------------------------------------------------------------------

    def start_upload(self) -> str:
        token = secrets.token_urlsafe(16)
        directory = self.directory / "uploads" / token
        directory.mkdir(parents=True)
        self._uploads[token] = _Upload(directory)
        return token

    def _upload(self, token: str) -> _Upload:
        upload = self._uploads.get(token)
        if upload is None:
            raise SnapshotImportError(f"Unknown upload token {token!r}: start the upload again")
        return upload

    async def upload_part(self, token: str, number: int, data: bytes) -> str:
        upload = self._upload(token)
        if not 1 <= number <= MAX_PARTS:
            raise SnapshotImportError(f"partNumber must be from 1 to {MAX_PARTS}, got {number}")
        path = upload.directory / f"part_{number:05d}"
        await asyncio.to_thread(path.write_bytes, data)
        upload.parts[number] = path
        return f"{token}:{number}"

    async def finish_upload(
        self,
        token: str,
        part_tokens: Sequence[Any],
        *,
        fmt: ImportFormat,
        mode: ImportMode,
        table: str | None,
    ) -> ImportJob:
        """Join the parts into the import's file and check it in the background.

        Raises:
            SnapshotImportError: an unknown token or part.
        """
        upload = self._upload(token)
        numbers: list[int] = []
        for part in part_tokens:
            prefix, _, number = str(part).rpartition(":")
            if prefix != token or not number.isdigit() or int(number) not in upload.parts:
                raise SnapshotImportError(f"Unknown upload part {part!r}")
            numbers.append(int(number))
        suffix = {
            ImportFormat.ZIP: ".zip",
            ImportFormat.JSON_LINES: ".jsonl",
            ImportFormat.JSON_ARRAY: ".json",
            ImportFormat.CSV: ".csv",
        }[fmt]
        path = upload.directory.parent / f"{token}{suffix}"

        def join() -> None:
            with open(path, "wb") as out:
                for number in numbers:
                    with open(upload.parts[number], "rb") as part_file:
                        shutil.copyfileobj(part_file, out, 1 << 20)
            shutil.rmtree(upload.directory, ignore_errors=True)

        await asyncio.to_thread(join)
        del self._uploads[token]
        return self.add_import(path, fmt=fmt, mode=mode, table=table)

    # -- imports -----------------------------------------------------------------------------

    def add_import(
        self, path: Path, *, fmt: ImportFormat, mode: ImportMode, table: str | None
    ) -> ImportJob:
        """Register the import of the file at ``path`` (it is deleted when the job ends) and
        check it in the background: the job then waits for ``perform_import``."""
        job = ImportJob(
            encode_id(_IMPORT_ID_TABLE, new_internal_id()),
            self._now_ms(),
            path,
            fmt,
            mode,
            table,
        )
        self.imports[job.id] = job
        while len(self.imports) > MAX_IMPORTS_KEPT:
            oldest = next(iter(self.imports))
            if self.imports[oldest].state["state"] in ("uploaded", "in_progress"):
                break
            self.imports.pop(oldest).path.unlink(missing_ok=True)
        self._changed()
        self._spawn(self._check(job))
        return job

    def _spawn(self, work: Any) -> None:
        task = start_task(work, name="snapshot import")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def get_import(self, import_id: str) -> ImportJob | None:
        return self.imports.get(import_id)

    def list_imports(self) -> list[ImportJob]:
        """Newest first, as ``queryImport:list`` returns them."""
        return sorted(self.imports.values(), key=lambda j: j.created_ms, reverse=True)

    def _fail(self, job: ImportJob, message: str) -> None:
        job.state = {"state": "failed", "error_message": message}
        job.path.unlink(missing_ok=True)
        self._changed()

    async def _check(self, job: ImportJob) -> None:
        try:
            source = open_input(job.path, job.format, table=job.table, label=job.label)
            try:
                job.checked = await check_import(self.deployment, source, mode=job.mode)
                summary = job.checked.counts
            finally:
                source.close()
        except SnapshotImportError as exc:
            self._fail(job, exc.message)
            return
        except Exception as exc:
            log.exception("checking import %s failed", job.id)
            self._fail(job, f"Import failed: {exc}")
            return
        lines = ["Import change summary:", "table | create | delete |", "-" * 32]
        deletes = 0
        for table, creates in summary.items():
            existing = 0
            if job.mode in (ImportMode.REPLACE, ImportMode.REPLACE_ALL):
                existing = await self._count(table)
            deletes += existing
            lines.append(f"{table} | {creates:,} | {existing:,} of {existing:,} |")
        lines.append(
            "Once the import has started, it will run in the background.\n"
            "Interrupting `npx convex import` will not cancel it."
        )
        job.state = {
            "state": "waiting_for_confirmation",
            "message_to_confirm": "\n".join(lines),
            "require_manual_confirmation": deletes > 0,
        }
        self._changed()

    async def _count(self, table: str) -> int:
        persistence = self.deployment.persistence
        ts = self.deployment.database.snapshot_ts()
        iid = index_id(table, BY_CREATION_TIME)
        count, start = 0, b""
        while True:
            rows = await persistence.scan(iid, start, None, ts, Order.ASC, 4096)
            await asyncio.sleep(0)  # a page at a time: others are served in between
            count += len(rows)
            if len(rows) < 4096:
                return count
            start = rows[-1].key + b"\x00"

    def perform_import(self, import_id: str) -> ImportJob:
        """Write a checked import (in the background).

        Raises:
            SnapshotImportError: no such import, or it is not waiting for confirmation.
        """
        job = self.imports.get(import_id)
        if job is None:
            raise SnapshotImportError(f"Import {import_id!r} not found")
        if job.state["state"] != "waiting_for_confirmation":
            raise SnapshotImportError(
                f"Import {import_id} is {job.state['state']}, not waiting for confirmation"
            )
        job.state = {
            "state": "in_progress",
            "progress_message": "Importing",
            "checkpoint_messages": [],
        }
        self._changed()
        self._spawn(self._perform(job))
        return job

    async def _perform(self, job: ImportJob) -> None:
        last = [0.0]

        def progress(p: ImportProgress) -> None:
            loop_time = asyncio.get_running_loop().time()
            if p.checkpoints != job.state.get("checkpoint_messages") or loop_time - last[0] > 1:
                last[0] = loop_time
                job.state = {
                    "state": "in_progress",
                    "progress_message": f'Importing "{p.table}" ({p.documents:,} of '
                    f"{p.total:,} documents)",
                    "checkpoint_messages": list(p.checkpoints),
                }
                self._changed()

        try:
            source = open_input(job.path, job.format, table=job.table, label=job.label)
            try:
                result = await import_snapshot(
                    self.deployment,
                    source,
                    mode=job.mode,
                    on_progress=progress,
                    checked=job.checked,
                )
            finally:
                source.close()
        except SnapshotImportError as exc:
            self._fail(job, exc.message)
            return
        except Exception as exc:
            log.exception("import %s failed", job.id)
            self._fail(job, f"Import failed: {exc}")
            return
        job.path.unlink(missing_ok=True)
        written = result.documents + result.tables.get(STORAGE_TABLE, 0)
        job.state = {
            "state": "completed",
            "timestamp": Int64(self.deployment.database.snapshot_ts()),
            "num_rows_written": Int64(written),
            "checkpoint_messages": [],
        }
        self._changed()

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [t for t in (self._export_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
