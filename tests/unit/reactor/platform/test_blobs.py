"""BlobStore on a temporary directory: streamed writes with a size limit, atomic publishing,
ranged streaming reads, deletion, listing and sweeping of dead temporary files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from reactor.platform.blobs import BlobNotFound, BlobStore, BlobTooLarge, PendingBlob

pytestmark = pytest.mark.anyio

KEY = "kg2abcdef"


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", chunk_size=4)


def _temporary_files(store: BlobStore) -> list[Path]:
    return sorted((store.directory / ".tmp").iterdir())


async def _read(store: BlobStore, key: str) -> list[bytes]:
    return [chunk async for chunk in store.read(key)]


async def _published(store: BlobStore, data: bytes, key: str = KEY) -> PendingBlob:
    pending = await store.write(data)
    await store.publish(pending, key)
    return pending


class TestWrite:
    async def test_bytes_are_written_to_a_temporary_file_with_their_digest_and_size(
        self, store: BlobStore
    ) -> None:
        pending = await store.write(b"hello world")

        assert pending.size == 11
        assert pending.sha256 == hashlib.sha256(b"hello world").hexdigest()
        assert pending.key is None
        assert pending.path.parent == store.directory / ".tmp"
        assert pending.path.read_bytes() == b"hello world"

    async def test_an_async_stream_of_chunks_is_written_in_order(self, store: BlobStore) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"ab", b"", b"cd", b"e"):
                yield part

        pending = await store.write(chunks())

        assert pending.path.read_bytes() == b"abcde"
        assert pending.size == 5

    async def test_a_plain_iterable_of_chunks_is_written(self, store: BlobStore) -> None:
        pending = await store.write([b"ab", b"cd"])

        assert pending.path.read_bytes() == b"abcd"
        assert pending.sha256 == hashlib.sha256(b"abcd").hexdigest()

    async def test_nothing_is_an_empty_blob(self, store: BlobStore) -> None:
        pending = await store.write(b"")

        assert (pending.size, pending.path.read_bytes()) == (0, b"")
        assert pending.sha256 == hashlib.sha256(b"").hexdigest()

    async def test_a_large_blob_is_written_whole(self, store: BlobStore) -> None:
        data = os.urandom(3 * 1024 * 1024 + 7)  # past the 1 MiB buffer, several times

        pending = await store.write(iter([data[:100], data[100:]]))

        assert pending.path.read_bytes() == data
        assert pending.sha256 == hashlib.sha256(data).hexdigest()

    async def test_the_store_limit_refuses_more_bytes_and_keeps_nothing(
        self, tmp_path: Path
    ) -> None:
        store = BlobStore(tmp_path, max_bytes=4)

        assert (await store.write(b"1234")).size == 4
        with pytest.raises(BlobTooLarge, match="^File is too large: the limit is 4 bytes$") as e:
            await store.write([b"12", b"345"])

        assert e.value.limit == 4
        assert e.value.code == "FileTooLarge"
        assert len(_temporary_files(store)) == 1  # the first write only

    async def test_the_limit_stops_reading_the_stream_as_soon_as_it_is_passed(
        self, tmp_path: Path
    ) -> None:
        store = BlobStore(tmp_path, max_bytes=3)
        pulled: list[bytes] = []

        def chunks() -> Iterator[bytes]:
            for part in (b"ab", b"cd", b"ef"):
                pulled.append(part)
                yield part

        with pytest.raises(BlobTooLarge):
            await store.write(chunks())

        assert pulled == [b"ab", b"cd"]

    async def test_a_per_write_limit_overrides_the_store_s(self, tmp_path: Path) -> None:
        store = BlobStore(tmp_path, max_bytes=2)

        assert (await store.write(b"12345", max_bytes=5)).size == 5
        with pytest.raises(BlobTooLarge, match="limit is 1 bytes"):
            await store.write(b"12", max_bytes=1)

    async def test_a_failing_stream_leaves_no_temporary_file(self, store: BlobStore) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"partial"
            raise ConnectionError("client went away")

        with pytest.raises(ConnectionError, match="client went away"):
            await store.write(chunks())

        assert _temporary_files(store) == []


class TestPublish:
    async def test_publishing_moves_the_blob_to_its_key(self, store: BlobStore) -> None:
        pending = await store.write(b"data")
        temporary = pending.path

        await store.publish(pending, KEY)

        assert pending.path == store.path(KEY) == store.directory / KEY[-2:] / KEY
        assert pending.key == KEY
        assert not temporary.exists()
        assert store.exists(KEY)
        assert await _read(store, KEY) == [b"data"]

    async def test_publishing_again_under_the_same_key_is_a_no_op(self, store: BlobStore) -> None:
        pending = await _published(store, b"data")

        await store.publish(pending, KEY)

        assert store.exists(KEY)

    async def test_publishing_under_another_key_moves_it(self, store: BlobStore) -> None:
        pending = await _published(store, b"data")

        await store.publish(pending, "other-key")

        assert not store.exists(KEY)
        assert await _read(store, "other-key") == [b"data"]

    async def test_publishing_over_an_existing_key_replaces_it(self, store: BlobStore) -> None:
        await _published(store, b"old")

        await _published(store, b"new")

        assert await _read(store, KEY) == [b"new"]

    async def test_a_discarded_blob_is_gone(self, store: BlobStore) -> None:
        pending = await store.write(b"data")

        store.discard(pending)
        store.discard(pending)

        assert _temporary_files(store) == []


class TestKeys:
    @pytest.mark.parametrize("key", ["", "a", "has space", "../etc", "a/b", "x" * 129, "k\u00e9y"])
    def test_invalid_keys_are_refused(self, store: BlobStore, key: str) -> None:
        with pytest.raises(ValueError, match="Invalid blob key"):
            store.path(key)

    def test_a_key_with_a_trailing_newline_is_refused(self, store: BlobStore) -> None:
        with pytest.raises(ValueError, match="Invalid blob key"):
            store.path("abc\n")

    def test_blobs_are_sharded_by_the_last_two_characters(self, store: BlobStore) -> None:
        assert store.path("ab") == store.directory / "ab" / "ab"
        assert store.path("x" * 126 + "-_") == store.directory / "-_" / ("x" * 126 + "-_")


class TestRead:
    async def test_a_blob_is_read_in_chunks_of_the_chunk_size(self, store: BlobStore) -> None:
        await _published(store, b"0123456789")

        assert await _read(store, KEY) == [b"0123", b"4567", b"89"]

    async def test_a_range_is_read(self, store: BlobStore) -> None:
        await _published(store, b"0123456789")
        reader = store.open(KEY)

        assert reader.size == 10
        assert [chunk async for chunk in reader.chunks(3, 9)] == [b"3456", b"78"]

    async def test_a_range_past_the_end_stops_at_the_end(self, store: BlobStore) -> None:
        await _published(store, b"0123456789")

        chunks = [chunk async for chunk in store.open(KEY).chunks(8, 100)]

        assert chunks == [b"89"]

    async def test_an_empty_range_reads_nothing(self, store: BlobStore) -> None:
        await _published(store, b"0123456789")

        assert [chunk async for chunk in store.open(KEY).chunks(5, 5)] == []

    async def test_a_reader_is_closed_after_its_chunks(self, store: BlobStore) -> None:
        await _published(store, b"0123")
        reader = store.open(KEY)

        assert [chunk async for chunk in reader.chunks()] == [b"0123"]
        assert [chunk async for chunk in reader.chunks()] == []
        reader.close()

    async def test_an_open_blob_can_still_be_read_after_it_is_deleted(
        self, store: BlobStore
    ) -> None:
        await _published(store, b"0123456789")
        reader = store.open(KEY)

        assert store.delete(KEY)

        assert b"".join([chunk async for chunk in reader.chunks()]) == b"0123456789"

    @pytest.mark.parametrize("key", ["missing-key", "not a key"])
    def test_opening_a_missing_or_invalid_key_raises_not_found(
        self, store: BlobStore, key: str
    ) -> None:
        with pytest.raises(BlobNotFound, match="not found") as caught:
            store.open(key)

        assert caught.value.code == "BlobNotFound"


class TestDeleteAndList:
    async def test_delete_reports_whether_the_blob_was_there(self, store: BlobStore) -> None:
        await _published(store, b"data")

        assert store.delete(KEY) is True
        assert store.delete(KEY) is False
        assert not store.exists(KEY)

    async def test_entries_list_published_blobs_only(self, store: BlobStore) -> None:
        await _published(store, b"a", "key-1")
        await _published(store, b"b", "key-2")
        await _published(store, b"c", "other")
        await store.write(b"unpublished")
        (store.directory / "stray-file").write_bytes(b"")

        entries = dict(store.entries())

        assert sorted(entries) == ["key-1", "key-2", "other"]
        assert entries["other"] == store.path("other").stat().st_mtime

    def test_a_new_store_has_no_entries(self, store: BlobStore) -> None:
        assert list(store.entries()) == []

    async def test_sweeping_removes_only_old_temporary_files(self, store: BlobStore) -> None:
        old = await store.write(b"died long ago")
        recent = await store.write(b"still being written")
        published = await _published(store, b"kept")
        os.utime(old.path, (0, 0))
        os.utime(published.path, (0, 0))

        removed = store.sweep_temporary(older_than_s=3600)

        assert removed == 1
        assert _temporary_files(store) == [recent.path]
        assert store.exists(KEY)
