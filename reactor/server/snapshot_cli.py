"""The ``reactor export``, ``reactor import`` and ``reactor backup`` commands.

    reactor export --path snapshot.zip [--include-file-storage]
    reactor import [--table T] [--replace|--append|--replace-all] FILE.{zip,jsonl,json,csv}
    reactor backup --path DIR|FILE.tar

Each talks to a running server (``--url``; admin key from ``--admin-key`` or
``$REACTOR_ADMIN_KEY``) through the same routes the official CLI uses, or, without ``--url``,
opens the stopped deployment's data directory (``--data``, default ``.reactor``; refused while
a server holds it) itself. Long work shows a progress bar on stderr when it is a terminal (or
with ``--progress``). The work itself is ``reactor.operations``'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

__all__ = ["SNAPSHOT_COMMANDS", "add_snapshot_commands", "run_snapshot_command"]

SNAPSHOT_COMMANDS = ("export", "import", "backup")
UPLOAD_PART_BYTES = 5 * 1024 * 1024
POLL_S = 0.1


class CommandFailed(Exception):
    """Ends the command with this message and exit status 1."""


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second; silent unless
    ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._drawn = False

    def update(
        self, label: str, done: int, total: int | None = None, *, force: bool = False
    ) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if total:
            fraction = min(done / total, 1.0)
            filled = int(fraction * 30)
            bar = "#" * filled + "." * (30 - filled)
            text = f"{label} [{bar}] {fraction:4.0%} {done:,}/{total:,}"
        else:
            text = f"{label} {done:,}"
        sys.stderr.write("\r\x1b[2K" + text)
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def add_snapshot_commands(sub: Any) -> None:
    """Add ``export``, ``import`` and ``backup`` to the ``reactor`` subcommand parsers."""

    def common(cmd: argparse.ArgumentParser, *, app: bool = True) -> None:
        cmd.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3210")
        cmd.add_argument("--admin-key", help="admin key (default: $REACTOR_ADMIN_KEY)")
        cmd.add_argument("--data", default=".reactor", help="local data directory (without --url)")
        if app:
            cmd.add_argument("--app", default=".", help="local app directory (without --url)")
        cmd.add_argument(
            "--progress",
            action="store_true",
            help="show a progress bar on stderr even when it is not a terminal",
        )

    export = sub.add_parser("export", help="write a snapshot ZIP (Convex's format)")
    export.add_argument("--path", required=True, help="the ZIP file to write")
    export.add_argument(
        "--include-file-storage", action="store_true", help="include stored files (_storage)"
    )
    common(export)
    imp = sub.add_parser("import", help="import a snapshot ZIP, or a .jsonl/.json/.csv table")
    imp.add_argument("file", help="snapshot.zip, or a table's .jsonl, .json or .csv file")
    imp.add_argument("--table", help="the table to import a .jsonl, .json or .csv file into")
    modes = imp.add_mutually_exclusive_group()
    modes.add_argument(
        "--replace", action="store_true", help="replace the documents of the imported tables"
    )
    modes.add_argument("--append", action="store_true", help="add to the imported tables")
    modes.add_argument(
        "--replace-all",
        action="store_true",
        help="replace the imported tables and empty every other table",
    )
    imp.add_argument(
        "--format",
        choices=["zip", "jsonLines", "jsonArray", "csv"],
        help="the file's format (default: from its extension)",
    )
    common(imp)
    backup = sub.add_parser(
        "backup", help="online backup of the data directory (embedded SQLite engine)"
    )
    backup.add_argument(
        "--path",
        required=True,
        help="a new directory to restore with `reactor serve APP --data DIR`, or FILE.tar",
    )
    common(backup, app=False)


def run_snapshot_command(args: argparse.Namespace) -> int:
    """Run ``reactor export|import|backup``; returns the exit status."""
    bar = ProgressBar(bool(args.progress) or sys.stderr.isatty())
    try:
        if args.command == "export":
            message = _export(args, bar)
        elif args.command == "import":
            message = _import(args, bar)
        else:
            message = _backup(args, bar)
    except CommandFailed as exc:
        bar.close()
        print(f"reactor: {exc}", file=sys.stderr)
        return 1
    bar.close()
    print(message)
    return 0


# -- shared ------------------------------------------------------------------------------------


def _admin_key(args: argparse.Namespace) -> str:
    key = args.admin_key or os.environ.get("REACTOR_ADMIN_KEY")
    if not key:
        raise CommandFailed("an admin key is needed: --admin-key or $REACTOR_ADMIN_KEY")
    return str(key)


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    import httpx

    with httpx.Client(
        base_url=args.url.rstrip("/"),
        headers={"Authorization": f"Convex {_admin_key(args)}"},
        timeout=httpx.Timeout(120.0),
    ) as client:
        yield client


def _checked(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            payload = response.json()
            detail = f"{payload.get('code')}: {payload.get('message')}"
        except ValueError:
            detail = response.text[:500]
        raise CommandFailed(detail)
    return response.json()


def _query(client: Any, path: str, args: dict[str, Any]) -> Any:
    payload = _checked(
        client.post("/api/query", json={"path": path, "args": args, "format": "json"})
    )
    if payload.get("status") != "success":
        raise CommandFailed(payload.get("errorMessage", f"{path} failed"))
    return payload.get("value")


@contextlib.asynccontextmanager
async def _local(args: argparse.Namespace) -> AsyncIterator[Any]:
    """The stopped deployment in ``--data`` (with the app in ``--app``), started without
    background work: refused while a server holds the directory."""
    from reactor.server.deployment import Deployment
    from reactor.server.settings import load_settings
    from reactor.storage import open_storage

    persistence = open_storage(None, args.data)
    try:
        deployment = await Deployment.from_directory(
            Path(args.app).resolve(),
            persistence,
            system_env=load_settings().system_env,
            on_admin_key=_announce_admin_key,
        )
    except BaseException:
        await persistence.aclose()
        raise
    await deployment.start(background=False)
    try:
        yield deployment
    finally:
        await deployment.stop()


def _announce_admin_key(key: str) -> None:
    """A data directory created by this command gets its admin key here (shown once)."""
    print(
        f"\nAdmin key of the new data directory (shown once, stored only hashed):\n  {key}\n",
        file=sys.stderr,
        flush=True,
    )


def _run_local(work: Any) -> Any:
    from reactor.errors import ReactorError

    try:
        return asyncio.run(work)
    except ReactorError as exc:
        raise CommandFailed(exc.message) from None


# -- export --------------------------------------------------------------------------------------


def _export(args: argparse.Namespace, bar: ProgressBar) -> str:
    target = Path(args.path)
    if target.exists():
        raise CommandFailed(f"{args.path} already exists")
    partial = target.with_name(target.name + ".part")
    try:
        if args.url:
            ts, size = _export_remote(args, partial, bar)
            partial.replace(target)
            return f"Exported the snapshot at timestamp {ts} to {target} ({size:,} bytes)"
        summary = _run_local(_export_local(args, partial, bar))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    files = f" and {summary.files:,} files" if args.include_file_storage else ""
    return (
        f"Exported {summary.documents:,} documents{files} from the snapshot at timestamp "
        f"{summary.ts} to {target}"
    )


async def _export_local(args: argparse.Namespace, path: Path, bar: ProgressBar) -> Any:
    from reactor.operations.snapshot_export import ExportProgress, export_snapshot

    def progress(p: ExportProgress) -> None:
        bar.update(f"Exporting {p.table}: documents", p.documents + p.files)

    async with _local(args) as deployment:
        with open(path, "wb") as out:
            return await export_snapshot(
                deployment.persistence,
                deployment.database.snapshot_ts(),
                deployment.tables.numbers(),
                out,
                blobs=deployment.blobs,
                include_storage=args.include_file_storage,
                on_progress=progress,
            )


def _export_remote(args: argparse.Namespace, path: Path, bar: ProgressBar) -> tuple[int, int]:
    flag = "true" if args.include_file_storage else "false"
    with _client(args) as client:
        _checked(client.post(f"/api/export/request/zip?includeStorage={flag}"))
        while True:
            job = _query(client, "_system/cli/exports:getLatest", {}) or {}
            state = job.get("state")
            if state == "completed":
                break
            if state == "failed":
                raise CommandFailed(f"the export failed: {job.get('error_message', '')}")
            bar.update(job.get("progress_message") or "Exporting", 0)
            time.sleep(POLL_S)
        ts = int(job["start_ts"])
        size = 0
        with client.stream("GET", f"/api/export/zip/{ts}") as response, open(path, "wb") as out:
            if response.status_code >= 400:
                response.read()
                _checked(response)
            total = int(response.headers.get("content-length") or 0) or None
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                size += len(chunk)
                bar.update("Downloading", size, total)
    return ts, size


# -- import --------------------------------------------------------------------------------------


def _import_choices(args: argparse.Namespace) -> tuple[Any, Any]:
    from reactor.errors import SnapshotImportError
    from reactor.operations.snapshot_import import ImportMode
    from reactor.operations.snapshot_input import ImportFormat

    mode = ImportMode.REQUIRE_EMPTY
    if args.replace:
        mode = ImportMode.REPLACE
    elif args.append:
        mode = ImportMode.APPEND
    elif args.replace_all:
        mode = ImportMode.REPLACE_ALL
    try:
        fmt = ImportFormat.parse(args.format) if args.format else ImportFormat.of_path(args.file)
    except SnapshotImportError as exc:
        raise CommandFailed(exc.message) from None
    if fmt is ImportFormat.ZIP and args.table:
        raise CommandFailed("a snapshot ZIP holds its own tables: --table is not allowed")
    if fmt is not ImportFormat.ZIP and not args.table:
        raise CommandFailed(f"importing a {fmt.value} file needs --table (the table name)")
    if not Path(args.file).is_file():
        raise CommandFailed(f"{args.file} does not exist or is not a file")
    return fmt, mode


def _import(args: argparse.Namespace, bar: ProgressBar) -> str:
    fmt, mode = _import_choices(args)
    if args.url:
        return _import_remote(args, fmt, mode, bar)
    result = _run_local(_import_local(args, fmt, mode, bar))
    files = f" and {result.files:,} files" if result.files else ""
    tables = len([t for t in result.tables if not t.startswith("_")])
    return f"Imported {result.documents:,} documents{files} into {tables} table(s)"


async def _import_local(args: argparse.Namespace, fmt: Any, mode: Any, bar: ProgressBar) -> Any:
    from reactor.operations.snapshot_import import ImportProgress, import_snapshot
    from reactor.operations.snapshot_input import open_input

    def progress(p: ImportProgress) -> None:
        verb = "Checking" if p.phase == "checking" else "Importing"
        bar.update(f"{verb} {p.table}", p.documents, p.total if p.phase == "writing" else None)

    async with _local(args) as deployment:
        source = open_input(args.file, fmt, table=args.table)
        try:
            return await import_snapshot(deployment, source, mode=mode, on_progress=progress)
        finally:
            source.close()


def _import_remote(args: argparse.Namespace, fmt: Any, mode: Any, bar: ProgressBar) -> str:
    path = Path(args.file)
    total = path.stat().st_size
    with _client(args) as client:
        token = _checked(client.post("/api/import/start_upload"))["uploadToken"]
        parts: list[Any] = []
        sent = 0
        with open(path, "rb") as handle:
            number = 1
            while chunk := handle.read(UPLOAD_PART_BYTES):
                parts.append(
                    _checked(
                        client.post(
                            "/api/import/upload_part",
                            params={"uploadToken": token, "partNumber": number},
                            content=chunk,
                            headers={"Content-Type": "application/octet-stream"},
                        )
                    )
                )
                number += 1
                sent += len(chunk)
                bar.update("Uploading", sent, total)
        spec: dict[str, Any] = {"mode": mode.value, "format": fmt.value}
        if args.table:
            spec["tableName"] = args.table
        import_id = _checked(
            client.post(
                "/api/import/finish_upload",
                json={"import": spec, "uploadToken": token, "partTokens": parts},
            )
        )["importId"]
        confirmed = False
        while True:
            job = _query(client, "_system/cli/queryImport", {"importId": import_id}) or {}
            state = job.get("state") or {}
            kind = state.get("state")
            if kind == "failed":
                raise CommandFailed(state.get("error_message", "the import failed"))
            if kind == "completed":
                return f"Added {int(state['num_rows_written']):,} documents"
            if kind == "waiting_for_confirmation" and not confirmed:
                _checked(client.post("/api/perform_import", json={"importId": import_id}))
                confirmed = True
            elif kind == "in_progress":
                bar.update(state.get("progress_message") or "Importing", 0)
            time.sleep(POLL_S)


# -- backup --------------------------------------------------------------------------------------


def _backup(args: argparse.Namespace, bar: ProgressBar) -> str:
    target = Path(args.path)
    as_tar = target.suffix == ".tar"
    if target.exists() and (as_tar or not target.is_dir() or any(target.iterdir())):
        raise CommandFailed(f"{args.path} already exists (give a new directory or .tar file)")
    if args.url:
        return _backup_remote(args, target, as_tar, bar)
    return _backup_local(args, target, as_tar, bar)


def _restore_hint(target: Path, as_tar: bool) -> str:
    if as_tar:
        return f"restore: mkdir DIR && tar -xf {target} -C DIR && reactor serve APP --data DIR"
    return f"restore: reactor serve APP --data {target}"


def _backup_local(args: argparse.Namespace, target: Path, as_tar: bool, bar: ProgressBar) -> str:
    from reactor.errors import ReactorError
    from reactor.operations.backup import BackupProgress, backup_data_directory
    from reactor.storage.sqlite import SqlitePersistence

    data = Path(args.data)
    if not (data / SqlitePersistence.FILE_NAME).is_file():
        raise CommandFailed(f"{args.data} holds no Reactor data directory")

    def progress(p: BackupProgress) -> None:
        bar.update(f"Backing up the {p.phase}", p.done, p.total)

    try:
        engine = SqlitePersistence.open(data)  # the directory lock: refused while served
    except ReactorError as exc:
        raise CommandFailed(exc.message) from None
    try:
        destination = Path(tempfile.mkdtemp(dir=target.parent or ".")) if as_tar else target
        result = backup_data_directory(
            engine.path,
            data / "blobs",
            destination / "data" if as_tar else destination,
            on_progress=progress,
        )
        if as_tar:
            with tarfile.open(target, "w") as archive:
                archive.add(destination / "data", arcname=".")
            shutil.rmtree(destination)
    except ReactorError as exc:
        raise CommandFailed(exc.message) from None
    finally:
        engine.close()
    return (
        f"Backed up {args.data} to {target} ({result.database_bytes:,} bytes of database, "
        f"{result.files:,} files); {_restore_hint(target, as_tar)}"
    )


def _backup_remote(args: argparse.Namespace, target: Path, as_tar: bool, bar: ProgressBar) -> str:
    tar_path = target if as_tar else target.with_name(target.name + ".tar.part")
    size = 0
    try:
        with _client(args) as client, client.stream("POST", "/api/admin/backup") as response:
            if response.status_code >= 400:
                response.read()
                _checked(response)
            total = int(response.headers.get("content-length") or 0) or None
            with open(tar_path, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    size += len(chunk)
                    bar.update("Downloading the backup", size, total)
        if not as_tar:
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tar_path) as archive:
                archive.extractall(target, filter="data")
    finally:
        if not as_tar:
            tar_path.unlink(missing_ok=True)
    return f"Backed up the server's data directory to {target} ({size:,} bytes); " + (
        _restore_hint(target, as_tar)
    )
