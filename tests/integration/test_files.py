"""File storage on the real engine: upload URLs (single use, expiring, unforgeable), the
``_storage`` rows, streamed downloads, deletion (404 and the bytes gone, but not on rollback),
the size limit, and that large files stream through in chunks instead of whole."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tracemalloc
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Scope

from reactor.engine.transaction import Transaction
from reactor.platform.blobs import BlobStore, PendingBlob
from reactor.platform.files import FileStorage, StorageFileNotFound, storage_secret
from reactor.server.deployment import Deployment
from reactor.testing import running_deployment, write_app
from schema.errors import ReadOnlyTransactionError, ValidationError

pytestmark = pytest.mark.anyio

BASE = "http://files.test"
APP = {
    "misc.py": """
        from functions import query

        @query
        async def ping(ctx):
            return 1
    """,
}
MiB = 1024 * 1024
T = TypeVar("T")


@dataclass
class FilesDeployment:
    deployment: Deployment
    files: FileStorage
    client: httpx.AsyncClient
    blob_dir: Path

    def read_txn(self) -> Transaction:
        executor = self.deployment.executor
        return executor.database.begin(writable=False)

    def write_txn(self) -> Transaction:
        executor = self.deployment.executor
        return executor.database.begin(writable=True)

    async def commit(self, txn: Transaction) -> int:
        return await self.deployment.committer.commit(txn.prepare_commit())

    async def upload(
        self, data: bytes | AsyncIterator[bytes], content_type: str | None = "image/png"
    ) -> str:
        headers = {} if content_type is None else {"content-type": content_type}
        response = await self.client.post(
            self.files.generate_upload_url(), content=data, headers=headers
        )
        assert response.status_code == 200, response.text
        storage_id: str = response.json()["storageId"]
        return storage_id

    def blob_files(self) -> list[Path]:
        return [p for p in self.blob_dir.rglob("*") if p.is_file()]


@contextlib.asynccontextmanager
async def deployment(
    tmp_path: Path, *, name: str = "data", secret: bytes | None = None, **options: Any
) -> AsyncIterator[FilesDeployment]:
    max_bytes = options.pop("max_bytes", None)
    app_dir = write_app(tmp_path / "app", APP)
    data_dir = tmp_path / name
    async with running_deployment(app_dir, data_dir) as deployment:
        blob_dir = data_dir / "blobs"
        files = FileStorage(
            deployment.database,
            BlobStore(blob_dir, max_bytes=max_bytes),
            secret=secret or await storage_secret(deployment.persistence),
            base_url=BASE,
            **options,
        )
        # What the composition root does: unlink deleted files' bytes once their commit is out.
        deployment.publisher.subscribe(files.on_commit)
        web = Starlette(routes=files.routes())
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield FilesDeployment(deployment, files, client, blob_dir)


def present(value: T | None) -> T:
    """``value``, which the test knows exists (a row, its metadata, a download URL)."""
    assert value is not None
    return value


async def chunks_of(total: int, size: int = 64 * 1024, byte: int = 7) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes([(byte + sent // size) % 251]) * n
        sent += n


# -- upload and the _storage row -------------------------------------------------------------


async def test_upload_returns_id_and_storage_row_is_convex_shaped(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(data, "image/png")
        row = await d.read_txn().get(storage_id)
        assert row is not None
        assert set(row) == {"_id", "_creationTime", "sha256", "size", "contentType"}
        assert row["_id"] == storage_id
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["size"] == 300_000.0 and isinstance(row["size"], float)
        assert row["contentType"] == "image/png"
        # readable as a system table, the way ctx.db.system does
        assert await d.read_txn().system_store().get(storage_id) == row
        meta = await d.files.handle(d.read_txn()).get_metadata(storage_id)
        assert meta == {
            "storageId": storage_id,
            "sha256": row["sha256"],
            "size": 300_000.0,
            "contentType": "image/png",
        }
        # the bytes live under the storage id, complete
        blob = d.files.blobs.path(storage_id)
        assert blob.read_bytes() == data


async def test_upload_without_content_type_omits_the_field(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(b"plain bytes", None)
        row = present(await d.read_txn().get(storage_id))
        assert "contentType" not in row
        meta = present(await d.files.get_metadata(None, storage_id))
        assert meta["contentType"] is None
        url = present(await d.files.get_url(None, storage_id))
        response = await d.client.get(url)
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == b"plain bytes"


async def test_empty_file(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(b"", "text/plain")
        row = present(await d.read_txn().get(storage_id))
        assert row["size"] == 0.0 and row["sha256"] == hashlib.sha256(b"").hexdigest()
        response = await d.client.get(present(await d.files.get_url(None, storage_id)))
        assert response.status_code == 200 and response.content == b""


# -- download ----------------------------------------------------------------------------------


async def test_download_streams_bytes_with_headers_and_head(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(data, "image/png")
        url = present(await d.files.handle(d.read_txn()).get_url(storage_id))
        assert url.startswith(f"{BASE}/api/storage/")
        digest = hashlib.sha256(data).hexdigest()

        response = await d.client.get(url)
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(data))
        assert response.headers["etag"] == f'"{digest}"'
        assert response.headers["cache-control"].startswith("private, max-age=")
        assert response.headers["accept-ranges"] == "bytes"

        head = await d.client.head(url)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["content-type"] == "image/png"
        assert head.headers["etag"] == f'"{digest}"'

        cached = await d.client.get(url, headers={"if-none-match": f'"{digest}"'})
        assert cached.status_code == 304 and cached.content == b""

        part = await d.client.get(url, headers={"range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == data[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
        tail = await d.client.get(url, headers={"range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == data[-5:]
        beyond = await d.client.get(url, headers={"range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"


async def test_download_urls_cannot_be_made_from_a_bare_id_or_forged(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(b"secret picture")
        url = present(await d.files.get_url(None, storage_id))
        signature = url.rsplit(".", 1)[1]
        for bad in (
            f"{BASE}/api/storage/{storage_id}",
            f"{BASE}/api/storage/{storage_id}.{signature[:-2]}xx",
            f"{BASE}/api/storage/nonsense",
        ):
            response = await d.client.get(bad)
            assert response.status_code == 404
            assert response.json()["code"] == "NotFound"
        # another deployment's secret signs URLs this one rejects
        other = FileStorage(d.deployment.database, d.files.blobs, secret=b"x" * 32, base_url=BASE)
        assert (
            await d.client.get(present(await other.get_url(None, storage_id)))
        ).status_code == 404
        assert (await d.client.get(url)).status_code == 200


# -- upload URL rules --------------------------------------------------------------------------


async def test_upload_url_cannot_be_reused(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        url = d.files.generate_upload_url()
        first = await d.client.post(url, content=b"one")
        assert first.status_code == 200
        second = await d.client.post(url, content=b"two")
        assert 400 <= second.status_code < 500
        assert second.json()["code"] == "UploadUrlUsed"
        assert "already used" in second.json()["message"]
        assert len(d.blob_files()) == 1  # the refused upload left nothing behind


async def test_upload_url_single_use_survives_a_restart(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        url = d.files.generate_upload_url()
        assert (await d.client.post(url, content=b"one")).status_code == 200
    async with deployment(tmp_path) as d:  # same data directory, same stored secret
        again = await d.client.post(url, content=b"two")
        assert again.status_code == 409
        fresh = await d.client.post(d.files.generate_upload_url(), content=b"three")
        assert fresh.status_code == 200


async def test_concurrent_posts_of_one_url_store_one_file(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        url = d.files.generate_upload_url()

        async def slow(tag: int) -> AsyncIterator[bytes]:
            for _ in range(5):
                await asyncio.sleep(0.01)
                yield bytes([tag]) * 1000

        results = await asyncio.gather(
            d.client.post(url, content=slow(1)), d.client.post(url, content=slow(2))
        )
        assert sorted(r.status_code for r in results) == [200, 409]
        assert len(d.blob_files()) == 1


async def test_expired_upload_url_is_refused(tmp_path: Path) -> None:
    now = [1_000_000.0]
    async with deployment(tmp_path, upload_ttl_s=60, clock=lambda: now[0]) as d:
        url = d.files.generate_upload_url()
        now[0] += 61
        response = await d.client.post(url, content=b"late")
        assert response.status_code == 410
        assert response.json()["code"] == "UploadUrlExpired"
        assert "upload URL expired" in response.json()["message"]
        # still valid just inside its lifetime
        url = d.files.generate_upload_url()
        now[0] += 59
        assert (await d.client.post(url, content=b"in time")).status_code == 200
        assert len(d.blob_files()) == 1


async def test_forged_or_tampered_upload_url_is_refused(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        url = d.files.generate_upload_url()
        token = url.split("token=", 1)[1]
        # Change the signature's first character: every bit of it counts (the last base64
        # character of a signature carries unused padding bits, so changing it may not).
        payload, _, signature = token.rpartition(".")
        flipped = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
        other = FileStorage(d.deployment.database, d.files.blobs, secret=b"y" * 32, base_url=BASE)
        for bad in (
            f"{BASE}/api/storage/upload?token={flipped}",
            f"{BASE}/api/storage/upload?token=garbage",
            other.generate_upload_url(),
        ):
            response = await d.client.post(bad, content=b"evil")
            assert response.status_code == 403, bad
            assert response.json()["code"] == "InvalidUploadUrl"
            assert "invalid upload URL" in response.json()["message"]
        missing = await d.client.post(f"{BASE}/api/storage/upload", content=b"evil")
        assert missing.status_code == 400
        assert d.blob_files() == []
        # the genuine URL is unaffected by the failed attempts
        assert (await d.client.post(url, content=b"ok")).status_code == 200


# -- size limit --------------------------------------------------------------------------------


async def test_size_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    async with deployment(tmp_path, max_bytes=1 * MiB) as d:
        url = d.files.generate_upload_url()
        # streamed without Content-Length: refused once the limit passes, mid-stream
        response = await d.client.post(url, content=chunks_of(3 * MiB))
        assert response.status_code == 413
        assert response.json()["code"] == "FileTooLarge"
        assert str(1 * MiB) in response.json()["message"]
        assert d.blob_files() == []  # not even a temporary file
        # a declared Content-Length over the limit is refused before reading
        early = await d.client.post(d.files.generate_upload_url(), content=b"x" * (MiB + 1))
        assert early.status_code == 413
        # the refused URL was not consumed: a retry within the limit works
        again = await d.client.post(url, content=b"x" * MiB)
        assert again.status_code == 200
        assert len(d.blob_files()) == 1
        with pytest.raises(Exception, match="too large"):
            await d.files.handle(None).store(b"y" * (MiB + 1))
        assert len(d.blob_files()) == 1


# -- delete ------------------------------------------------------------------------------------


async def test_delete_in_a_mutation_makes_downloads_404_and_removes_bytes(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(b"to be deleted")
        url = present(await d.files.get_url(None, storage_id))
        blob = d.files.blobs.path(storage_id)

        # a mutation that deletes and then fails: nothing changes
        txn = d.write_txn()
        await d.files.handle(txn).delete(storage_id)
        del txn  # rolled back: never committed
        assert blob.exists()
        assert (await d.client.get(url)).status_code == 200

        txn = d.write_txn()
        await d.files.handle(txn).delete(storage_id)
        await d.commit(txn)
        response = await d.client.get(url)
        assert response.status_code == 404
        assert response.json() == {
            "code": "NotFound",
            "message": "File not found: it was deleted or never existed",
        }
        assert (await d.client.head(url)).status_code == 404
        assert not blob.exists()
        assert d.blob_files() == []
        assert await d.files.get_url(None, storage_id) is None
        assert await d.files.get_metadata(None, storage_id) is None
        with pytest.raises(StorageFileNotFound):
            await d.files.handle(None).delete(storage_id)


async def test_delete_from_an_action_and_queries_see_it(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        storage_id = await d.upload(b"abc")
        query = d.read_txn()
        assert await d.files.handle(query).get_url(storage_id) is not None
        assert query.read_set().interval_count() > 0  # getUrl is reactive: it read the row
        await d.files.handle(None).delete(storage_id)
        assert await d.files.handle(d.read_txn()).get_url(storage_id) is None
        assert d.blob_files() == []


# -- contexts ----------------------------------------------------------------------------------


async def test_handle_rules_per_function_kind(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        query = d.files.handle(d.read_txn())
        with pytest.raises(ReadOnlyTransactionError):
            await query.generate_upload_url()
        with pytest.raises(ReadOnlyTransactionError):
            await query.delete("anything")
        mutation = d.files.handle(d.write_txn())
        assert (await mutation.generate_upload_url()).startswith(
            f"{BASE}/api/storage/upload?token="
        )
        with pytest.raises(ValidationError, match="only available in actions"):
            await mutation.store(b"x")
        with pytest.raises(ValidationError, match="not a storage ID"):
            await mutation.get_url("not an id")
        action = d.files.handle(None)
        assert (await action.generate_upload_url()).startswith(BASE)


async def test_store_and_get_in_actions(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        action = d.files.handle(None)
        from_bytes = await action.store(b"hello", "text/plain")
        from_stream = await action.store(chunks_of(200_000), None)
        assert await action.get(from_bytes) == b"hello"
        expected = b"".join([c async for c in chunks_of(200_000)])
        assert await action.get(from_stream) == expected
        meta = present(await action.get_metadata(from_stream))
        assert meta["size"] == 200_000.0
        assert meta["sha256"] == hashlib.sha256(expected).hexdigest()
        response = await d.client.get(present(await action.get_url(from_bytes)))
        assert response.content == b"hello" and response.headers["content-type"].startswith(
            "text/plain"
        )
        await action.delete(from_bytes)
        assert await action.get(from_bytes) is None


async def test_sweep_removes_orphans_but_keeps_live_blobs(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        live = await d.upload(b"live")
        orphan = await d.files.blobs.write(b"orphan")
        await d.files.blobs.publish(orphan, "k" * 32)  # bytes without a row (crash mid-upload)
        leftover = await d.files.blobs.write(b"temp")  # a temporary file of a dead write
        assert await d.files.sweep(min_age_s=3600) == 0  # too young to judge
        assert await d.files.sweep(min_age_s=0) == 2
        assert not orphan.path.exists() and not leftover.path.exists()
        assert d.files.blobs.path(live).read_bytes() == b"live"


# -- streaming, not buffering -----------------------------------------------------------------


async def test_large_upload_and_download_stream_in_chunks(tmp_path: Path) -> None:
    size = 20 * MiB
    async with deployment(tmp_path) as d:
        received: list[int] = []
        original_stream = d.files.blobs.write

        async def counting(data: AsyncIterable[bytes], **kwargs: Any) -> PendingBlob:
            async def tap() -> AsyncIterator[bytes]:
                async for chunk in data:
                    received.append(len(chunk))
                    yield chunk

            return await original_stream(tap(), **kwargs)

        d.files.blobs.write = counting  # type: ignore[method-assign, assignment]
        tracemalloc.start()
        try:
            storage_id = await d.upload(chunks_of(size), "application/octet-stream")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert sum(received) == size and len(received) >= 100  # arrived chunk by chunk
        assert peak < 4 * MiB, f"upload peaked at {peak} bytes for a {size}-byte file"
        expected = hashlib.sha256(b"".join([c async for c in chunks_of(size)])).hexdigest()
        row = present(await d.read_txn().get(storage_id))
        assert row["sha256"] == expected and row["size"] == float(size)

        # Download through the ASGI interface directly, dropping each body chunk as it comes.
        url = httpx.URL(present(await d.files.get_url(None, storage_id)))
        web = Starlette(routes=d.files.routes())
        sizes: list[int] = []
        status: list[int] = []
        digest = hashlib.sha256()

        async def receive() -> Message:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and message.get("body"):
                sizes.append(len(message["body"]))
                digest.update(message["body"])

        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url.path,
            "raw_path": url.raw_path,
            "query_string": b"",
            "headers": [(b"host", b"files.test")],
            "server": ("files.test", 80),
            "client": ("127.0.0.1", 1),
            "root_path": "",
        }
        tracemalloc.start()
        try:
            await web(scope, receive, send)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status == [200]
        assert sum(sizes) == size and max(sizes) <= 64 * 1024
        assert digest.hexdigest() == expected
        assert peak < 4 * MiB, f"download peaked at {peak} bytes for a {size}-byte file"


# -- over a real socket ------------------------------------------------------------------------


async def test_over_real_http_like_a_browser(tmp_path: Path) -> None:
    """What a page does: fetch(uploadUrl, {method: "POST", body: file}) and then <img src=url>
    (a plain GET with no credentials), against a real uvicorn server."""
    uvicorn = pytest.importorskip("uvicorn")
    app_dir = write_app(tmp_path / "app", APP)
    async with running_deployment(app_dir, tmp_path / "data") as deployment:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        files = FileStorage(
            deployment.database,
            BlobStore(tmp_path / "data" / "blobs", max_bytes=MiB),
            secret=await storage_secret(deployment.persistence),
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/",
        )
        config = uvicorn.Config(Starlette(routes=files.routes()), log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
            async with httpx.AsyncClient(timeout=10) as client:
                upload = await client.post(
                    files.generate_upload_url(), content=png, headers={"content-type": "image/png"}
                )
                assert upload.status_code == 200
                url = present(await files.get_url(None, upload.json()["storageId"]))
                image = await client.get(url, headers={"accept": "image/avif,image/*,*/*"})
                assert image.status_code == 200 and image.content == png
                assert image.headers["content-type"] == "image/png"
                head = await client.head(url)
                assert head.status_code == 200 and head.headers["content-length"] == str(len(png))
                too_big = await client.post(files.generate_upload_url(), content=chunks_of(4 * MiB))
                assert too_big.status_code == 413
        finally:
            server.should_exit = True
            await serving
            sock.close()
