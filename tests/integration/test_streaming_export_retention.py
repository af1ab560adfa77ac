"""Streaming export and the retention window, on a SQLite deployment: once versions are pruned,
a snapshot or a deltas cursor older than the window is refused with a clear error (never a
silently incomplete answer), and a cursor inside the window still reads every change after it,
deletes included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactor.errors import StreamingExportError
from reactor.operations import streaming_export
from reactor.operations.cli_functions import table_names
from reactor.platform.retention import PRUNED_THROUGH
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence
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

        @mutation(args={"id": v.id("notes"), "body": v.string()})
        async def edit(ctx, id, body):
            await ctx.db.patch(id, {"body": body})

        @mutation(args={"id": v.id("notes")})
        async def remove(ctx, id):
            await ctx.db.delete(id)
    """,
}


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    deployment = await Deployment.from_directory(
        app, SqlitePersistence.open(tmp_path / "data"), retention_s=0.0
    )
    await deployment.start(background=False)
    try:
        yield deployment
    finally:
        await deployment.stop()


async def mutate(deployment: Deployment, path: str, **args: Any) -> Any:
    result = await call(deployment, path, args)
    assert result.success, result.error_message
    return result.value


async def deltas(deployment: Deployment, cursor: int) -> streaming_export.Page:
    return await streaming_export.document_deltas(
        deployment.persistence,
        table_names(deployment),
        published=deployment.executor.snapshot_ts(),
        cursor=cursor,
        table=None,
        fmt="json",
    )


async def test_cursors_older_than_the_retention_window_are_refused(
    deployment: Deployment,
) -> None:
    first = await mutate(deployment, "notes:add", body="one")
    second = await mutate(deployment, "notes:add", body="two")
    before = deployment.executor.snapshot_ts()
    await mutate(deployment, "notes:edit", id=first, body="one, edited")
    await mutate(deployment, "notes:remove", id=second)

    # Inside the window: every change after the cursor, in order, the delete included.
    page = await deltas(deployment, before)
    assert [(doc.get("body"), doc["_deleted"]) for doc in page.values] == [
        ("one, edited", False),
        (None, True),
    ]
    assert page.values[1]["_id"] == second

    assert await deployment.retention.prune_versions() > 0  # a zero-second window
    pruned = int(await deployment.persistence.get_global(PRUNED_THROUGH))
    assert pruned > before

    with pytest.raises(StreamingExportError, match="older than the retention window") as info:
        await deltas(deployment, before)
    assert info.value.reason == "OutOfRetention"
    with pytest.raises(StreamingExportError, match="older than the retention window"):
        await streaming_export.list_snapshot(
            deployment.persistence,
            table_names(deployment),
            published=deployment.executor.snapshot_ts(),
            snapshot=before,
            cursor=None,
            table=None,
            fmt="json",
        )

    # From the pruned point on, the log is complete: a later change is there.
    await mutate(deployment, "notes:add", body="three")
    page = await deltas(deployment, pruned)
    assert [doc["body"] for doc in page.values] == ["three"]
    assert page.cursor == deployment.executor.snapshot_ts() and not page.has_more
