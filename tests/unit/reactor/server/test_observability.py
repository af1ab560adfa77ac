"""The observability routes in process: /ready before, while and after a deployment runs,
/metrics made public, and the shape of the entries `npx convex logs` reads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reactor.server.app import create_app
from reactor.server.deployment import Deployment
from reactor.server.observability import convex_entry
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import call, write_app

NOTES = """
from functions import mutation
from schema import v


@mutation(args={"text": v.string()})
async def add(ctx, text):
    print(f"adding {text}")
    print("[not a level] plain text")
    return await ctx.db.insert("notes", {"text": text})
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", {"notes.py": NOTES})


@pytest.mark.anyio
async def test_ready_follows_the_deployment_and_public_metrics(
    app_dir: Path, tmp_path: Path
) -> None:
    deployment = await Deployment.from_directory(
        app_dir, SqlitePersistence.open(tmp_path / "data"), metrics_public=True
    )
    transport = httpx.ASGITransport(app=create_app(deployment.app, deployment=deployment))
    async with httpx.AsyncClient(transport=transport, base_url="http://reactor") as client:
        before = await client.get("/ready")
        assert before.status_code == 503
        assert before.json() == {
            "status": "unavailable",
            "reason": "the deployment is starting or stopping",
        }
        assert (await client.get("/health")).json() == {"status": "ok"}
        await deployment.start(background=False)
        try:
            assert (await client.get("/ready")).json() == {"status": "ready"}
            result = await call(deployment, "notes:add", {"text": "x"})
            assert result.success, result.error_message
            scraped = await client.get("/metrics")  # public: no admin key
            assert scraped.status_code == 200, scraped.text
            names = {f.name for f in text_string_to_metric_families(scraped.text)}
            assert {"reactor_function_executions", "reactor_commits"} <= names
        finally:
            await deployment.stop()
        after = await client.get("/ready")
        assert after.status_code == 503


@pytest.mark.anyio
async def test_convex_entries_have_the_cli_shape(app_dir: Path, tmp_path: Path) -> None:
    deployment = await Deployment.from_directory(app_dir, SqlitePersistence.open(tmp_path / "d"))
    await deployment.start(background=False)
    try:
        result = await call(deployment, "notes:add", {"text": "y"})
        assert result.success, result.error_message
        (record,) = deployment.execution_log.read(path="notes:add")
    finally:
        await deployment.stop()
    assert (record.caller, record.documents_written) == ("internal", 1)
    entry = convex_entry(record)
    assert entry["kind"] == "Completion"
    assert (entry["udfType"], entry["identifier"], entry["error"]) == (
        "Mutation",
        "notes:add",
        None,
    )
    assert entry["executionTime"] == record.duration_s
    assert entry["requestId"] == record.request_id
    assert entry["usageStats"]["databaseWriteDocuments"] == 1
    assert [(line["level"], line["messages"]) for line in entry["logLines"]] == [
        ("LOG", ["adding y"]),
        ("LOG", ["[not a level] plain text"]),
    ]
