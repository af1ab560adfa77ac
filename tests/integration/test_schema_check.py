"""Schema drift: a schema that stored documents break is refused at start and on reload, as
Convex's schema push refuses it; ``schema_validation=False`` turns the check off; an unchanged
schema is not checked again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from functions.loader import load_app
from reactor.core.persistence import IndexRow
from reactor.errors import SchemaDriftError
from reactor.server.cli import _watch
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import call, running_deployment, write_app

pytestmark = pytest.mark.anyio

SCHEMA = """
    from schema import define_schema, define_table, v

    schema = define_schema({{
        "tasks": define_table({{"title": v.string(){extra}}}),
    }}{flags})
"""
V1 = SCHEMA.format(extra="", flags="")
OWNER_REQUIRED = SCHEMA.format(extra=', "owner": v.string()', flags="")
OWNER_OPTIONAL = SCHEMA.format(extra=', "owner": v.optional(v.string())', flags="")
TITLE_NUMBER = SCHEMA.format(extra="", flags="").replace("v.string()", "v.float64()")
UNCHECKED = SCHEMA.format(extra=', "owner": v.string()', flags=", schema_validation=False")
TASKS = """
    from functions import mutation

    @mutation
    async def add(ctx, title):
        return await ctx.db.insert("tasks", {"title": title})
"""


async def seeded(tmp_path: Path) -> tuple[Path, Path, str]:
    """An app with schema V1 and one stored task; returns (app, data, the task's id)."""
    app = write_app(tmp_path / "app", {"schema.py": V1, "tasks.py": TASKS})
    data = tmp_path / "data"
    async with running_deployment(app, data, background=False) as deployment:
        task_id = (await call(deployment, "tasks:add", {"title": "write docs"})).value
    assert isinstance(task_id, str)
    return app, data, task_id


async def start_fails(app: Path, data: Path) -> SchemaDriftError:
    persistence = SqlitePersistence.open(data)
    deployment = Deployment(load_app(app), persistence)
    try:
        with pytest.raises(SchemaDriftError) as info:
            await deployment.start(background=False)
    finally:
        await persistence.aclose()
    return info.value


async def test_a_field_made_required_over_documents_that_lack_it(tmp_path: Path) -> None:
    app, data, task_id = await seeded(tmp_path)
    write_app(app, {"schema.py": OWNER_REQUIRED})
    error = await start_fails(app, data)
    assert (error.table, error.document_id) == ("tasks", task_id)
    assert error.path == "$"  # the object lacking the field, as argument validation says
    assert str(error).startswith(
        f"Schema validation failed: document {task_id} in table `tasks` does not match the "
        "schema at `$`: Object is missing the required field `owner`."
    )
    assert "schema_validation=False" in str(error)


async def test_a_field_whose_type_changed(tmp_path: Path) -> None:
    app, data, task_id = await seeded(tmp_path)
    write_app(app, {"schema.py": TITLE_NUMBER})
    error = await start_fails(app, data)
    assert (error.table, error.document_id, error.path) == ("tasks", task_id, "$.title")


async def test_a_compatible_change_starts(tmp_path: Path) -> None:
    app, data, _ = await seeded(tmp_path)
    write_app(app, {"schema.py": OWNER_OPTIONAL})
    async with running_deployment(app, data, background=False) as deployment:
        assert (await call(deployment, "tasks:add", {"title": "more"})).success


async def test_schema_validation_false_turns_the_check_off(tmp_path: Path) -> None:
    app, data, _ = await seeded(tmp_path)
    write_app(app, {"schema.py": UNCHECKED})
    async with running_deployment(app, data, background=False) as deployment:
        assert (await call(deployment, "tasks:add", {"title": "unchecked"})).success
    # Unvalidated writes happened: turning validation back on checks the table again.
    write_app(app, {"schema.py": OWNER_REQUIRED})
    await start_fails(app, data)


async def test_an_unchanged_schema_is_not_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, data, _ = await seeded(tmp_path)
    write_app(app, {"schema.py": OWNER_OPTIONAL})
    scanned: list[str] = []
    real_scan = SqlitePersistence.scan

    async def counting(self: SqlitePersistence, index_id: str, *args: Any) -> list[IndexRow]:
        scanned.append(index_id)
        return await real_scan(self, index_id, *args)

    monkeypatch.setattr(SqlitePersistence, "scan", counting)

    async def start_and_stop() -> list[str]:
        scanned.clear()
        persistence = SqlitePersistence.open(data)
        deployment = Deployment(load_app(app), persistence)
        await deployment.start(background=False)
        await deployment.stop()
        return [i for i in scanned if i.endswith("by_creation_time")]

    assert len(await start_and_stop()) == 1  # the changed validator: its table is scanned
    assert await start_and_stop() == []  # unchanged since: nothing to scan


async def test_a_reload_that_breaks_stored_documents_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, data, task_id = await seeded(tmp_path)
    async with running_deployment(app, data, background=False) as deployment:
        with pytest.raises(SchemaDriftError):
            await deployment.check_schema(load_app(write_app(app, {"schema.py": TITLE_NUMBER})))
        write_app(app, {"schema.py": V1})
        served = deployment.app
        watcher = asyncio.create_task(_watch(deployment, app, interval_s=0.02))
        try:
            await asyncio.sleep(0.1)
            with caplog.at_level(logging.ERROR, logger="reactor"):
                write_app(app, {"schema.py": OWNER_REQUIRED, "tasks.py": TASKS + "    # edited\n"})
                for _ in range(200):
                    if "reload refused" in caplog.text:
                        break
                    await asyncio.sleep(0.02)
            assert "reload refused" in caplog.text and task_id in caplog.text
            assert deployment.app is served  # the previous code keeps serving
            write_app(app, {"schema.py": OWNER_OPTIONAL})
            for _ in range(200):
                if deployment.app is not served:
                    break
                await asyncio.sleep(0.02)
            assert deployment.app is not served  # a compatible schema is swapped in
        finally:
            watcher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watcher
