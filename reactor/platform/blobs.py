"""The on-disk blob store behind file storage: streamed writes and reads, never whole in memory.

A write streams chunks into ``<directory>/.tmp/<uuid>.part`` while computing the SHA-256 and the
size, enforces the size limit as bytes arrive (the temporary file is removed when it is
exceeded), fsyncs, and hands back a :class:`PendingBlob`. ``publish`` then renames it atomically
to its key's path ``<directory>/<key[-2:]>/<key>`` and fsyncs the directory, so a key's file is
always complete. Reads stream fixed-size chunks with ``pread``. Which keys are live is not this
module's business (``reactor.platform.files`` keys blobs by storage id and sweeps orphans); it only
stores bytes. Importing it loads no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reactor.errors import BlobNotFound, BlobTooLarge

__all__ = ["BlobNotFound", "BlobReader", "BlobStore", "BlobTooLarge", "PendingBlob"]

READ_CHUNK = 64 * 1024
_FLUSH_AT = 1024 * 1024  # bytes buffered before a write to disk
_TMP = ".tmp"
_KEY = re.compile(r"\A[A-Za-z0-9_-]{2,128}\Z")


@dataclass(slots=True)
class PendingBlob:
    """A completely written, fsynced blob; ``path`` moves when it is published."""

    path: Path
    sha256: str
    size: int
    key: str | None = None


class BlobReader:
    """An open blob: ``size`` and a streaming ``chunks`` iterator (which closes it at the end)."""

    def __init__(self, fd: int, size: int, chunk_size: int) -> None:
        self._fd: int | None = fd
        self.size = size
        self._chunk_size = chunk_size

    async def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` in chunks of at most the store's chunk size."""
        end = self.size if end is None else min(end, self.size)
        position = start
        try:
            while position < end and self._fd is not None:
                want = min(self._chunk_size, end - position)
                data = await asyncio.to_thread(os.pread, self._fd, want, position)
                if not data:
                    return  # truncated underneath us: stop rather than spin
                position += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:
        self.close()


async def _chunks_of(data: AsyncIterable[bytes] | Iterable[bytes] | bytes) -> AsyncIterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for offset in range(0, len(view), _FLUSH_AT):
            yield bytes(view[offset : offset + _FLUSH_AT])
        return
    if isinstance(data, AsyncIterable):
        async for chunk in data:
            yield chunk
        return
    for chunk in data:
        yield chunk


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support fsync on directories
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under ``directory``; ``max_bytes`` (None: unlimited) caps every write."""

    def __init__(
        self, directory: str | Path, *, max_bytes: int | None = None, chunk_size: int = READ_CHUNK
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self._tmp = self.directory / _TMP
        self._tmp.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"Invalid blob key {key!r}")
        return self.directory / key[-2:] / key

    # -- writing -------------------------------------------------------------------------------

    async def write(
        self,
        data: AsyncIterable[bytes] | Iterable[bytes] | bytes,
        *,
        max_bytes: int | None = None,
    ) -> PendingBlob:
        """Stream ``data`` to a temporary file; raises ``BlobTooLarge`` (file removed) as soon
        as the limit (``max_bytes``, else the store's) is passed. Any failure removes it too."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        path = self._tmp / f"{uuid.uuid4().hex}.part"
        file = open(path, "xb", buffering=0)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        ok = False
        try:
            async for chunk in _chunks_of(data):
                if not chunk:
                    continue
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BlobTooLarge(limit)
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= _FLUSH_AT:
                    await asyncio.to_thread(file.write, buffer)
                    buffer.clear()
            if buffer:
                await asyncio.to_thread(file.write, buffer)
                buffer.clear()
            await asyncio.to_thread(os.fsync, file.fileno())
            ok = True
        finally:
            file.close()
            if not ok:
                path.unlink(missing_ok=True)
        return PendingBlob(path, digest.hexdigest(), size)

    async def publish(self, pending: PendingBlob, key: str) -> None:
        """Atomically move ``pending`` to ``key`` (again, if it was published under another)."""
        target = self.path(key)
        if pending.path == target:
            return

        def move() -> None:
            target.parent.mkdir(exist_ok=True)
            os.replace(pending.path, target)
            _fsync_dir(target.parent)

        await asyncio.to_thread(move)
        pending.path = target
        pending.key = key

    def discard(self, pending: PendingBlob) -> None:
        pending.path.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------

    def open(self, key: str) -> BlobReader:
        """Open ``key`` for streaming; raises ``BlobNotFound``. Reading an open blob keeps
        working after it is deleted (POSIX), so a download in progress finishes."""
        try:
            fd = os.open(self.path(key), os.O_RDONLY)
        except (FileNotFoundError, ValueError):
            raise BlobNotFound(f"Blob {key!r} not found") from None
        return BlobReader(fd, os.fstat(fd).st_size, self.chunk_size)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        """Every chunk of ``key``."""
        async for chunk in self.open(key).chunks():
            yield chunk

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    # -- deleting and listing ------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def entries(self) -> Iterator[tuple[str, float]]:
        """(key, modification time) of every published blob."""
        for shard in self.directory.iterdir():
            if shard.name == _TMP or not shard.is_dir():
                continue
            for file in shard.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    yield file.name, file.stat().st_mtime

    def sweep_temporary(self, *, older_than_s: float) -> int:
        """Remove temporary files left by writes that died (a crash), older than the age."""
        cutoff = time.time() - older_than_s
        removed = 0
        for file in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_mtime < cutoff:
                    file.unlink()
                    removed += 1
        return removed
