"""Streaming export on the MongoDB engine, which keeps one version of each document: a snapshot
walk works while no commit lands, and is refused (never silently answered with newer data)
once one has; document deltas are refused with a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from functions.loader import load_app
from reactor.operations import streaming_export
from reactor.operations.cli_functions import table_names
from reactor.operations.streaming_export import StreamingExportError
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


@pytest.fixture
async def deployment(
    tmp_path: Path, mongo_url: str, mongo_is_emulator: bool
) -> AsyncIterator[Deployment]:
    url = mongo_url + ("&reactorFeed=poll" if mongo_is_emulator else "")
    deployment = Deployment(
        load_app(write_app(tmp_path / "app", APP)),
        MongoPersistence.open(url),
        blob_directory=tmp_path / "blobs",
    )
    await deployment.start(background=False)
    try:
        yield deployment
    finally:
        await deployment.stop()


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


async def test_a_walk_is_refused_once_a_commit_lands_and_deltas_are_not_supported(
    deployment: Deployment,
) -> None:
    for body in ("one", "two", "three"):
        await add(deployment, body)
    first = await page(deployment, None, None)
    second = await page(deployment, first.snapshot, first.cursor)  # nothing committed since
    assert [doc["body"] for doc in first.values + second.values] == ["one", "two"]

    await add(deployment, "four")
    with pytest.raises(StreamingExportError, match="keeps no older document versions") as info:
        await page(deployment, second.snapshot, second.cursor)
    assert info.value.reason == "NotSupported"

    assert first.snapshot is not None
    with pytest.raises(StreamingExportError, match="needs a storage engine that keeps") as info:
        await streaming_export.document_deltas(
            deployment.persistence,
            table_names(deployment),
            published=deployment.executor.snapshot_ts(),
            cursor=first.snapshot,
            table=None,
            fmt="json",
        )
    assert info.value.reason == "NotSupported"
