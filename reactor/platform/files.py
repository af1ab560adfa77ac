"""File storage (CONVEX_SEMANTICS §7 "File storage", §3 ``_storage``): upload URLs, downloads,
metadata and deletion, with the bytes in a :class:`reactor.platform.blobs.BlobStore`.

Owns the upload flow (a signed, expiring, single-use URL → POST of the raw bytes → ``{storageId}``),
the ``_storage`` system documents (``_id``, ``_creationTime``, ``sha256`` hex, ``size``,
``contentType?`` — exactly Convex's shape; the blob's key *is* the storage id), the download
route (streamed, ``ETag``, ``HEAD``, ranges), and the per-context ``ctx.storage`` handle.

Durability and ordering:

* An upload streams to a temporary file, which is renamed to the storage id's path *before* the
  transaction inserting the ``_storage`` row commits. A committed row therefore always has its
  bytes; a crash in between leaves only an orphan blob, which :meth:`FileStorage.sweep` removes.
* Single use of an upload URL: the token carries a random upload id, and the commit inserting the
  row also stores an idempotency record keyed by that id (``MutationRecord`` with session
  ``"_upload:<id>"``) — atomically, in the same commit. A second POST finds the record and is
  refused; concurrent POSTs of one token in this process are refused while one is in flight.
* Deletion removes the row in the caller's transaction; the bytes are unlinked only once that
  commit is published (:meth:`FileStorage.on_commit`), so a rolled-back mutation loses nothing.
  A download checks the row first, so a deleted file is a 404 even before the unlink.

It does not build contexts or mount routes itself: the composition root does (see ``routes``,
``handle`` and ``on_commit``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from itsdangerous import BadData, BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reactor.core.persistence import MutationRecord, Persistence, PublishedCommit
from reactor.core.tasks import start_task, stop_task
from reactor.engine.database import Database
from reactor.engine.transaction import Transaction
from reactor.errors import RequestTooLarge, StorageFileNotFound
from reactor.platform.blobs import BlobNotFound, BlobStore, BlobTooLarge, PendingBlob
from schema.errors import (
    OptimisticConcurrencyError,
    ReadOnlyTransactionError,
    StorageUnavailable,
    ValidationError,
)
from schema.values import dumps

__all__ = [
    "STORAGE_TABLE",
    "FileStorage",
    "StorageFileNotFound",
    "StorageHandle",
    "storage_secret",
]

log = logging.getLogger("reactor.platform.files")

STORAGE_TABLE = "_storage"
UPLOAD_TTL_S = 3600
DOWNLOAD_MAX_AGE_S = 86400
ORPHAN_MIN_AGE_S = 3600
_UPLOAD_SALT = "reactor.storage.upload"
_URL_SALT = "reactor.storage.url"
_UPLOAD_SESSION = "_upload:"
_SECRET_GLOBAL = "storage_secret"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def storage_secret(persistence: Persistence) -> bytes:
    """The deployment's URL-signing secret: made once, kept in the persistence globals, so
    upload and download URLs survive restarts."""
    stored = await persistence.get_global(_SECRET_GLOBAL)
    if isinstance(stored, str) and stored:
        return bytes.fromhex(stored)
    secret = secrets.token_bytes(32)
    await persistence.set_global(_SECRET_GLOBAL, secret.hex())
    return secret


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _not_found() -> Response:
    return _error(404, "NotFound", "File not found: it was deleted or never existed")


class FileStorage:
    """The deployment's file storage. ``base_url`` is the origin clients reach the deployment
    at (it may be reassigned, e.g. once the server knows its port); ``clock`` (seconds) dates
    upload tokens and defaults to the runtime clock. The URL-signing ``secret`` is read from
    the persistence globals (made once) by ``start`` unless given here."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        base_url: str,
        secret: bytes | None = None,
        upload_ttl_s: float = UPLOAD_TTL_S,
        download_max_age_s: int = DOWNLOAD_MAX_AGE_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.base_url = base_url
        self.upload_ttl_s = upload_ttl_s
        self.download_max_age_s = download_max_age_s
        self._clock = clock or (lambda: database.runtime.now_ns() / 1e9)
        self._signers: tuple[URLSafeTimedSerializer, Signer] | None = None
        self._secret_hex: str | None = None
        if secret is not None:
            self._use_secret(secret)
        self._in_flight: set[str] = set()
        # Blob keys published for a commit not yet durable: the sweep must leave them alone.
        self._publishing: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def secret_hex(self) -> str | None:
        """The URL-signing secret (hex) once known: function runners sign URLs with it too."""
        return self._secret_hex

    def _use_secret(self, secret: bytes) -> None:
        self._secret_hex = secret.hex()
        clock_fn = self._clock

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock_fn())

        uploads = URLSafeTimedSerializer(secret, salt=_UPLOAD_SALT, signer=_Signer)
        self._signers = (uploads, Signer(secret, salt=_URL_SALT))

    @property
    def _uploads(self) -> URLSafeTimedSerializer:
        if self._signers is None:
            raise RuntimeError("FileStorage used before start()")
        return self._signers[0]

    @property
    def _urls(self) -> Signer:
        if self._signers is None:
            raise RuntimeError("FileStorage used before start()")
        return self._signers[1]

    # -- ids and URLs ------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self.base_url.rstrip("/")

    def _check_id(self, storage_id: Any, op: str) -> str:
        if not isinstance(storage_id, str) or (
            self.database.tables.table_of_id(storage_id) != STORAGE_TABLE
        ):
            raise ValidationError(
                f'storage.{op}: {storage_id!r} is not a storage ID (an Id<"_storage">)'
            )
        return storage_id

    def _download_url(self, storage_id: str) -> str:
        return f"{self._base}/api/storage/{self._urls.sign(storage_id).decode()}"

    def generate_upload_url(self) -> str:
        """A fresh URL accepting one POST of a file's bytes, valid for ``upload_ttl_s``."""
        token = self._uploads.dumps({"u": secrets.token_urlsafe(16)})
        return f"{self._base}/api/storage/upload?token={token}"

    def _upload_id(self, token: str | None) -> str:
        """The upload id of a valid token; raises ``_Refused``."""
        if not token:
            raise _Refused(400, "InvalidUploadUrl", "invalid upload URL: it has no token")
        try:
            payload = self._uploads.loads(token, max_age=math.floor(self.upload_ttl_s))
        except SignatureExpired:
            raise _Refused(
                410,
                "UploadUrlExpired",
                "upload URL expired: generate a new one with ctx.storage.generate_upload_url()",
            ) from None
        except BadData:
            raise _Refused(
                403, "InvalidUploadUrl", "invalid upload URL: its token is malformed or forged"
            ) from None
        upload_id = payload.get("u") if isinstance(payload, dict) else None
        if not isinstance(upload_id, str) or not upload_id:
            raise _Refused(403, "InvalidUploadUrl", "invalid upload URL: its token is malformed")
        return upload_id

    # -- storing -----------------------------------------------------------------------------

    async def _commit_blob(
        self, pending: PendingBlob, content_type: str | None, upload_id: str | None
    ) -> str:
        """Insert the ``_storage`` row for ``pending`` (published under the new id first)."""
        database = self.database
        fields: dict[str, Any] = {"sha256": pending.sha256, "size": float(pending.size)}
        if content_type:
            fields["contentType"] = content_type
        attempt = 0
        while True:
            attempt += 1
            txn = database.begin(writable=True)
            storage_id = await txn.system_insert(STORAGE_TABLE, dict(fields))
            self._publishing.add(storage_id)
            try:
                await self.blobs.publish(pending, storage_id)
                records = (
                    []
                    if upload_id is None
                    else [MutationRecord(_UPLOAD_SESSION + upload_id, 0, dumps(storage_id))]
                )
                await database.server_committer().commit(txn.prepare_commit(), records)
                return storage_id
            except OptimisticConcurrencyError as exc:
                # Nothing was written: re-run under a new id (publish moves the file again).
                if exc.write_ts is not None:
                    await database.server_committer().wait_published(exc.write_ts)
                backoff = min(0.001 * 2 ** min(attempt, 10), 1.0)
                await database.runtime.sleep(backoff * database.runtime.random())
            except StorageUnavailable:
                self.blobs.discard(pending)  # nothing was written: the bytes are an orphan
                raise
            # Any other exit (cancellation): the commit may still land, so keep the bytes; the
            # sweep removes them later if no row appeared.
            finally:
                self._publishing.discard(storage_id)

    async def store(
        self,
        data: AsyncIterable[bytes] | Iterable[bytes] | bytes,
        content_type: str | None = None,
    ) -> str:
        """Stream ``data`` into storage and return its new storage id (``ctx.storage.store``)."""
        pending = await self.blobs.write(data)
        try:
            return await self._commit_blob(pending, content_type, None)
        except BaseException:
            if pending.key is None:
                self.blobs.discard(pending)
            raise

    # -- reading -----------------------------------------------------------------------------

    def _read_txn(self) -> Transaction:
        return self.database.begin(writable=False)

    async def _row(self, txn: Transaction | None, storage_id: str) -> dict[str, Any] | None:
        return await (self._read_txn() if txn is None else txn).get(storage_id)

    async def get_url(self, txn: Transaction | None, storage_id: str) -> str | None:
        """The public download URL of ``storage_id``, or None when it does not exist."""
        storage_id = self._check_id(storage_id, "get_url")
        row = await self._row(txn, storage_id)
        return None if row is None else self._download_url(storage_id)

    async def get_metadata(self, txn: Transaction | None, storage_id: str) -> dict[str, Any] | None:
        """``{storageId, sha256, size, contentType}`` (contentType None when unknown), or None."""
        storage_id = self._check_id(storage_id, "get_metadata")
        row = await self._row(txn, storage_id)
        if row is None:
            return None
        return {
            "storageId": storage_id,
            "sha256": row["sha256"],
            "size": row["size"],
            "contentType": row.get("contentType"),
        }

    async def get(self, storage_id: str) -> bytes | None:
        """The whole file (``ctx.storage.get`` in actions), or None when it does not exist."""
        storage_id = self._check_id(storage_id, "get")
        if await self._row(None, storage_id) is None:
            return None
        try:
            reader = self.blobs.open(storage_id)
        except BlobNotFound:
            return None
        return b"".join([chunk async for chunk in reader.chunks()])

    # -- deleting ----------------------------------------------------------------------------

    async def delete(self, txn: Transaction | None, storage_id: str) -> None:
        """Delete the ``_storage`` row in ``txn`` (or in a transaction of its own). The bytes
        go when that commit is published (``on_commit``)."""
        storage_id = self._check_id(storage_id, "delete")

        async def body(t: Transaction) -> None:
            if await t.get(storage_id) is None:
                raise StorageFileNotFound(f"Storage ID {storage_id} not found")
            await t.system_delete(storage_id)

        if txn is None:
            await self.database.run_system(body)
        else:
            await body(txn)

    def on_commit(self, commit: PublishedCommit) -> None:
        """Unlink the bytes of ``_storage`` rows a published commit deleted (a listener of the
        change feed's publisher)."""
        for table, doc_id, new in commit.writes:
            if table == STORAGE_TABLE and new is None:
                try:
                    self.blobs.delete(doc_id)
                except OSError:
                    log.exception("could not remove the blob of deleted file %s", doc_id)

    async def sweep(self, *, min_age_s: float = ORPHAN_MIN_AGE_S) -> int:
        """Remove blobs without a ``_storage`` row (a crash between publishing and committing,
        or between a delete's commit and its unlink) and dead temporary files, when older than
        ``min_age_s``. Returns how many files went."""
        cutoff = time.time() - min_age_s
        removed = await asyncio.to_thread(self.blobs.sweep_temporary, older_than_s=min_age_s)
        entries = await asyncio.to_thread(lambda: list(self.blobs.entries()))
        persistence = self.database.persistence
        ts = self.database.snapshot_ts()
        for key, mtime in entries:
            if mtime >= cutoff or key in self._publishing:
                continue
            is_storage_id = self.database.tables.table_of_id(key) == STORAGE_TABLE
            if is_storage_id and await persistence.get_document(key, ts) is not None:
                continue
            if self.blobs.delete(key):
                removed += 1
        if removed:
            log.info("file storage sweep removed %d orphaned files", removed)
        return removed

    async def start(self, *, interval_s: float = 3600.0) -> None:
        """Load the signing secret, then sweep now and every ``interval_s`` in the background
        (until ``stop``)."""
        if self._signers is None:
            self._use_secret(await storage_secret(self.database.persistence))

        async def loop() -> None:
            while True:
                try:
                    await self.sweep()
                except Exception:
                    log.exception("file storage sweep failed")
                await asyncio.sleep(interval_s)

        if self._sweeper is None:
            self._sweeper = start_task(loop(), name="file-sweeper")

    async def stop(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None

    # -- HTTP --------------------------------------------------------------------------------

    async def handle_upload(self, request: Request) -> Response:
        """``POST /api/storage/upload?token=…``: the raw bytes → ``{"storageId": …}``."""
        try:
            upload_id = self._upload_id(request.query_params.get("token"))
            used = await self.database.persistence.lookup_mutation(_UPLOAD_SESSION + upload_id, 0)
            if used is not None:
                raise _Refused(
                    409,
                    "UploadUrlUsed",
                    "upload URL already used: each upload URL accepts a single upload; "
                    "generate a new one with ctx.storage.generate_upload_url()",
                )
            if upload_id in self._in_flight:
                raise _Refused(
                    409, "UploadUrlUsed", "upload URL already in use by another upload in progress"
                )
            limit = self.blobs.max_bytes
            length = request.headers.get("content-length")
            if (
                limit is not None
                and length is not None
                and length.isdigit()
                and int(length) > limit
            ):
                raise _Refused(
                    413, "FileTooLarge", f"File is too large: the limit is {limit} bytes"
                )
        except _Refused as refused:
            return refused.response()
        content_type = request.headers.get("content-type") or None
        self._in_flight.add(upload_id)
        try:
            try:
                pending = await self.blobs.write(request.stream())
            except BlobTooLarge as exc:
                return _error(413, exc.code, exc.message)
            except RequestTooLarge as exc:  # the server's RequestGuard, counting the same bytes
                return _error(413, BlobTooLarge.code, BlobTooLarge(exc.limit).message)
            except ClientDisconnect:
                return _error(400, "UploadIncomplete", "The client disconnected during the upload")
            except OSError as exc:
                log.exception("writing an upload failed")
                return _error(507, "StorageWriteFailed", f"The file could not be stored: {exc}")
            try:
                storage_id = await self._commit_blob(pending, content_type, upload_id)
            except BaseException:
                if pending.key is None:
                    self.blobs.discard(pending)
                raise
        finally:
            self._in_flight.discard(upload_id)
        return JSONResponse({"storageId": storage_id})

    async def handle_download(self, request: Request) -> Response:
        """``GET``/``HEAD /api/storage/{token}``: the file, streamed, or a 404."""
        try:
            storage_id = self._urls.unsign(request.path_params["token"]).decode()
        except (BadSignature, UnicodeDecodeError):
            return _not_found()
        if self.database.tables.table_of_id(storage_id) != STORAGE_TABLE:
            return _not_found()
        row = await self._row(None, storage_id)
        if row is None:
            return _not_found()
        try:
            reader = self.blobs.open(storage_id)
        except BlobNotFound:
            return _not_found()
        size = reader.size
        etag = f'"{row["sha256"]}"'
        headers = {
            "ETag": etag,
            "Cache-Control": f"private, max-age={self.download_max_age_s}",
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
        }
        media_type = row.get("contentType") or "application/octet-stream"
        if not _is_pdf(media_type):
            # Files are served from the API origin under the uploader's content type: a
            # sandboxed document gets an opaque origin and runs no script, so an uploaded
            # text/html or image/svg+xml cannot act on this origin. Images, media and downloads
            # are unaffected; PDFs are exempt (Chrome's viewer refuses sandboxed documents and
            # their scripts never run in the page's origin).
            headers["Content-Security-Policy"] = "sandbox"
        if etag in _etags(request.headers.get("if-none-match")):
            reader.close()
            return Response(status_code=304, headers=headers)
        start, end, status = 0, size, 200
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header and (if_range is None or if_range == etag):
            parsed = _parse_range(range_header, size)
            if parsed is _UNSATISFIABLE:
                reader.close()
                refused = _error(
                    416,
                    "RangeNotSatisfiable",
                    f"The Range header asks for no byte of this {size}-byte file",
                )
                refused.headers["Content-Range"] = f"bytes */{size}"
                return refused
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            reader.close()
            return Response(status_code=status, headers=headers, media_type=media_type)
        return StreamingResponse(
            reader.chunks(start, end), status_code=status, headers=headers, media_type=media_type
        )

    def routes(self) -> list[Route]:
        return [
            Route("/api/storage/upload", self.handle_upload, methods=["POST"]),
            Route("/api/storage/{token}", self.handle_download, methods=["GET", "HEAD"]),
        ]

    # -- contexts ----------------------------------------------------------------------------

    def handle(self, txn: Transaction | None) -> StorageHandle:
        """``ctx.storage`` for a query or mutation (its transaction) or an action (None)."""
        return StorageHandle(self, txn)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return _error(self.status, self.code, self.message)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().removeprefix("W/") for part in header.split(",")}


_UNSATISFIABLE = (-1, -1)
# More digits than any file size has: such a position is past every end (and converting
# thousands of digits is refused by Python anyway).
_MAX_POSITION_DIGITS = 18


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 1 << 62


def _is_pdf(media_type: str) -> bool:
    return media_type.split(";", 1)[0].strip().lower() == "application/pdf"


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range; None for forms not served (several
    ranges, other units: the whole file is sent, as RFC 9110 allows); ``_UNSATISFIABLE``."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        return (max(0, size - suffix), size)
    start = _position(first)
    end = size if not last else min(_position(last) + 1, size)
    if last and _position(last) < start:
        return None  # syntactically invalid: ignore the header
    if start >= size:
        return _UNSATISFIABLE
    return (start, end)


class StorageHandle:
    """``ctx.storage``. With a transaction (queries, mutations) reads and deletes are part of
    it — reactive and atomic; without one (actions) each call is its own transaction."""

    __slots__ = ("_files", "_txn")

    def __init__(self, files: FileStorage, txn: Transaction | None) -> None:
        self._files = files
        self._txn = txn

    def _require(self, op: str, *, writable: bool = False, action: bool = False) -> None:
        txn = self._txn
        if action and txn is not None:
            raise ValidationError(f"ctx.storage.{op} is only available in actions")
        if writable and txn is not None and not txn.writable:
            raise ReadOnlyTransactionError(
                f"ctx.storage.{op} is not allowed in a query: use a mutation or an action"
            )

    async def generate_upload_url(self) -> str:
        self._require("generate_upload_url", writable=True)
        return self._files.generate_upload_url()

    async def get_url(self, storage_id: str) -> str | None:
        return await self._files.get_url(self._txn, storage_id)

    async def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        return await self._files.get_metadata(self._txn, storage_id)

    async def delete(self, storage_id: str) -> None:
        self._require("delete", writable=True)
        await self._files.delete(self._txn, storage_id)

    async def store(
        self,
        data: AsyncIterable[bytes] | Iterable[bytes] | bytes,
        content_type: str | None = None,
    ) -> str:
        self._require("store", action=True)
        return await self._files.store(data, content_type)

    async def get(self, storage_id: str) -> bytes | None:
        self._require("get", action=True)
        return await self._files.get(storage_id)
