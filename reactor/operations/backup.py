"""Online backup of the embedded engine's data directory: the SQLite database copied with
sqlite3's backup API (a consistent copy while a server keeps committing), then the file
storage blobs, into a directory that ``reactor serve APP --data DIR`` serves as it was.

The database is copied in one backup step, inside one read transaction of the source: in WAL
mode a reader never blocks the server's commits, and the copy is exactly one committed state
(copying a few pages at a time would restart whenever the server commits, and might never end
under a steady write load). Blobs are copied after the database: every file whose row is in
the copy was published before that row committed, so it is there to copy unless it was deleted
since (then its row in the copy has no bytes, which ``reactor serve`` reports on download as a
missing file; the count is returned). Only the embedded SQLite engine is supported: a MongoDB
deployment is backed up with MongoDB's own tools.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reactor.errors import SnapshotError

__all__ = ["BackupProgress", "BackupResult", "backup_data_directory"]

DATABASE_FILE = "reactor.sqlite3"


@dataclass(slots=True)
class BackupProgress:
    phase: str  # "database" or "files"
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class BackupResult:
    database_bytes: int
    files: int
    missing_files: int


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SnapshotError(
            f"Backup target {str(target)!r} already exists and is not an empty directory"
        )


def backup_data_directory(
    database: Path,
    blobs: Path | None,
    target: Path,
    *,
    on_progress: Callable[[BackupProgress], None] | None = None,
) -> BackupResult:
    """Copy the SQLite ``database`` file (consistently, while it may be written) and the blob
    directory ``blobs`` into the new data directory ``target`` (blocking: run it on a thread).

    Raises:
        SnapshotError: ``target`` exists and is not empty, or ``database`` is missing.
    """
    if not database.is_file():
        raise SnapshotError(f"No Reactor database at {str(database)!r}")
    _check_target(target)
    target.mkdir(parents=True, exist_ok=True)
    copy = target / DATABASE_FILE
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    destination = sqlite3.connect(copy)
    try:

        def step(status: int, remaining: int, total: int) -> None:
            if on_progress is not None:
                on_progress(BackupProgress("database", total - remaining, total))

        source.backup(destination, pages=-1, progress=step)
        destination.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise SnapshotError(f"Backing up {database} failed: {exc}") from exc
    finally:
        destination.close()
        source.close()
    files = missing = 0
    if blobs is not None and blobs.is_dir():
        entries = [
            path
            for shard in blobs.iterdir()
            if shard.is_dir() and not shard.name.startswith(".")
            for path in shard.iterdir()
        ]
        for number, path in enumerate(entries, start=1):
            destination_path = target / "blobs" / path.parent.name / path.name
            destination_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(path, destination_path)
                files += 1
            except FileNotFoundError:
                missing += 1  # deleted since the listing
            if on_progress is not None:
                on_progress(BackupProgress("files", number, len(entries)))
    return BackupResult(copy.stat().st_size, files, missing)
