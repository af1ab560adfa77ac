"""Streaming export on the MongoDB engine, which keeps one version of each document: a snapshot
walk continues consistently on the server holding its snapshot session, even after commits,
and is refused (never silently answered with newer data) on a server that does not hold it;
document deltas are refused with a clear error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from functions.loader import load_app
from reactor.errors import StreamingExportError
from reactor.operations import streaming_export
from reactor.operations.cli_functions import table_names
from reactor.server.deployment import Deployment
from reactor.storage.mongo.engine import MongoPersistence
from reactor.testing import call, write_app

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"notes": define_table({"body": v.string()})})
    """,
    "notes.py": """
        from functions import mutation
        from schema import v

        @mutation(args={"body": v.string()})
        async def add(ctx, body):
            return await ctx.db.insert("notes", {"body": body})
    """,
}


@contextlib.asynccontextmanager
async def server(tmp_path: Path, url: str, name: str) -> AsyncIterator[Deployment]:
    deployment = Deployment(
        load_app(write_app(tmp_path / "app", APP)),
        MongoPersistence.open(url),
        instance_name=name,
        blob_directory=tmp_path / f"blobs-{name}",
    )
    await deployment.start(background=False)
    try:
        yield deployment
    finally:
        await deployment.stop()


@pytest.fixture
def url(mongo_url: str, mongo_is_emulator: bool) -> str:
    return mongo_url + ("&reactorFeed=poll" if mongo_is_emulator else "")


async def add(deployment: Deployment, body: str) -> Any:
    result = await call(deployment, "notes:add", {"body": body})
    assert result.success, result.error_message
    return result.value


async def page(
    deployment: Deployment, snapshot: int | None, cursor: str | int | None
) -> streaming_export.Page:
    assert cursor is None or isinstance(cursor, str)
    return await streaming_export.list_snapshot(
        deployment.persistence,
        table_names(deployment),
        published=deployment.executor.snapshot_ts(),
        snapshot=snapshot,
        cursor=cursor,
        table=None,
        fmt="json",
        page_size=1,
    )


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_walk_continues_only_where_its_snapshot_is_held(tmp_path: Path, url: str) -> None:
    async with server(tmp_path, url, "a") as a, server(tmp_path, url, "b") as b:
        for body in ("one", "two", "three"):
            await add(a, body)
        first = await page(a, None, None)
        await add(a, "four")  # lands between the pages
        second = await page(a, first.snapshot, first.cursor)
        third = await page(a, second.snapshot, second.cursor)
        bodies = [doc["body"] for doc in first.values + second.values + third.values]
        assert bodies == ["one", "two", "three"]  # the snapshot, not "four"

        # Server b never opened that snapshot: it refuses rather than read newer data.
        await eventually(lambda: b.executor.snapshot_ts() >= a.executor.snapshot_ts())
        with pytest.raises(StreamingExportError, match="no longer holds the snapshot") as info:
            await page(b, first.snapshot, first.cursor)
        assert info.value.reason == "NotSupported"

        assert first.snapshot is not None
        with pytest.raises(StreamingExportError, match="needs a storage engine that keeps") as info:
            await streaming_export.document_deltas(
                a.persistence,
                table_names(a),
                published=a.executor.snapshot_ts(),
                cursor=first.snapshot,
                table=None,
                fmt="json",
            )
        assert info.value.reason == "NotSupported"
