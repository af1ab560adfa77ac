"""HTTP routes of snapshot export, import and backup, admin key only: the ones the official
``convex`` CLI calls (``src/cli/lib/convexExport.ts``, ``convexImport.ts``) and Reactor's own
backup download.

    POST /api/export/request/zip?includeStorage=true|false  start an export (400 ExportInProgress)
    GET  /api/export/zip/{ts}                               the ZIP of the completed export
    POST /api/import/start_upload                           {"uploadToken"}
    POST /api/import/upload_part?uploadToken=T&partNumber=N  body: the part's bytes -> part token
    POST /api/import/finish_upload   {"import": {tableName?, mode, format}, uploadToken,
                                      partTokens}           -> {"importId"} (then checked)
    POST /api/perform_import         {"importId"}           write a checked import
    POST /api/admin/backup                                  a tar of an online backup of the
                                                            data directory (SQLite engine)

Job states are read through the ``_system/cli/*`` functions (``snapshot_functions``). This
module only moves bytes and maps errors; the work is ``reactor.operations``'.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from reactor.errors import ReactorError, SnapshotError
from reactor.operations.backup import backup_data_directory
from reactor.operations.snapshot_import import ImportMode
from reactor.operations.snapshot_input import ImportFormat
from reactor.server.deployment import Deployment
from reactor.server.http_errors import HttpError, error_response, require_admin

__all__ = ["snapshot_routes"]

log = logging.getLogger("reactor.http")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


def _ok(value: Any) -> Response:
    return Response(_json.encode(value), media_type="application/json")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = _decode.decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as exc:
        raise HttpError(
            400, "BadJsonBody", f"Failed to parse the request body as JSON: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise HttpError(400, "BadJsonBody", "The request body must be a JSON object")
    return body


Handler = Callable[[Deployment, Request], Awaitable[Response]]


def _admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        deployment: Deployment = request.app.state.deployment
        try:
            await require_admin(deployment, request)
            return await handler(deployment, request)
        except HttpError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except ReactorError as exc:
            log.info("HTTP %s %s: %s", request.method, request.url.path, exc)
            return error_response(400, exc.code, exc.message)

    return endpoint


async def _request_export(deployment: Deployment, request: Request) -> Response:
    flag = request.query_params.get("includeStorage", "false")
    if flag not in ("true", "false"):
        raise HttpError(400, "BadRequest", f"includeStorage must be true or false, got {flag!r}")
    if deployment.snapshots.export_in_progress:
        raise HttpError(
            400,
            "ExportInProgress",
            "A snapshot export is already requested or in progress: wait for it to finish",
        )
    deployment.snapshots.request_export(include_storage=flag == "true")
    return _ok({})


async def _download_export(deployment: Deployment, request: Request) -> Response:
    raw = request.path_params["ts"]
    if not raw.isdigit():
        raise HttpError(400, "BadRequest", f"The export timestamp must be an integer, got {raw!r}")
    try:
        path = deployment.snapshots.export_file(int(raw))
    except SnapshotError as exc:
        raise HttpError(404, "ExportNotFound", exc.message) from exc
    return FileResponse(
        path,
        media_type="application/zip",
        headers={"Content-Disposition": f"attachment; filename=snapshot_{raw}.zip"},
    )


async def _start_upload(deployment: Deployment, request: Request) -> Response:
    return _ok({"uploadToken": deployment.snapshots.start_upload()})


async def _upload_part(deployment: Deployment, request: Request) -> Response:
    token = request.query_params.get("uploadToken")
    number = request.query_params.get("partNumber", "")
    if not token or not number.isdigit():
        raise HttpError(400, "BadRequest", "upload_part needs ?uploadToken=...&partNumber=N")
    data = await request.body()
    return _ok(await deployment.snapshots.upload_part(token, int(number), data))


async def _finish_upload(deployment: Deployment, request: Request) -> Response:
    body = await _json_body(request)
    spec = body.get("import")
    token = body.get("uploadToken")
    parts = body.get("partTokens")
    if not isinstance(spec, dict) or not isinstance(token, str) or not isinstance(parts, list):
        raise HttpError(
            400, "BadRequest", "finish_upload needs import (an object), uploadToken and partTokens"
        )
    if spec.get("componentPath"):
        raise HttpError(400, "BadRequest", "Importing into a component is not supported")
    table = spec.get("tableName")
    if table is not None and not isinstance(table, str):
        raise HttpError(400, "BadRequest", "import.tableName must be a string")
    job = await deployment.snapshots.finish_upload(
        token,
        parts,
        fmt=ImportFormat.parse(str(spec.get("format"))),
        mode=ImportMode.parse(str(spec.get("mode", "requireEmpty"))),
        table=table,
    )
    return _ok({"importId": job.id})


async def _perform_import(deployment: Deployment, request: Request) -> Response:
    body = await _json_body(request)
    import_id = body.get("importId")
    if not isinstance(import_id, str):
        raise HttpError(400, "BadRequest", "perform_import needs importId (a string)")
    deployment.snapshots.perform_import(import_id)
    return _ok({})


async def _backup(deployment: Deployment, request: Request) -> Response:
    directory = deployment.persistence.local_directory
    if directory is None:
        raise HttpError(
            400,
            "BackupNotSupported",
            "reactor backup copies the embedded SQLite engine's data directory; back up a "
            "MongoDB deployment with MongoDB's tools (mongodump)",
        )
    work = Path(tempfile.mkdtemp(prefix="backup-", dir=deployment.snapshots.directory))
    target = work / "data"
    try:
        result = await asyncio.to_thread(
            backup_data_directory,
            directory / "reactor.sqlite3",
            deployment.blobs.directory,
            target,
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise

    archive_path = work / "backup.tar"

    def pack() -> None:
        with tarfile.open(archive_path, "w") as archive:
            archive.add(target, arcname=".")
        shutil.rmtree(target)

    try:
        await asyncio.to_thread(pack)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        archive_path,
        media_type="application/x-tar",
        headers={
            "Content-Disposition": "attachment; filename=reactor-backup.tar",
            "X-Reactor-Backup-Files": str(result.files),
        },
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


def snapshot_routes() -> list[Route]:
    return [
        Route("/api/export/request/zip", _admin(_request_export), methods=["POST"]),
        Route("/api/export/zip/{ts}", _admin(_download_export), methods=["GET"]),
        Route("/api/import/start_upload", _admin(_start_upload), methods=["POST"]),
        Route("/api/import/upload_part", _admin(_upload_part), methods=["POST"]),
        Route("/api/import/finish_upload", _admin(_finish_upload), methods=["POST"]),
        Route("/api/perform_import", _admin(_perform_import), methods=["POST"]),
        Route("/api/admin/backup", _admin(_backup), methods=["POST"]),
    ]
