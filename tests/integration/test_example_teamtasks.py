"""The teamtasks example: per-user tasks, scheduled notifications, the batched purge, the
signed webhook and attachments, on the real engine."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.store import IndexRange, Order
from reactor.engine.executor import FunctionResult
from reactor.engine.transaction import Transaction
from reactor.server.deployment import Deployment
from reactor.server.http_actions import create_site_app
from reactor.testing import running_deployment

pytestmark = pytest.mark.anyio

APP = Path(__file__).resolve().parents[2] / "examples" / "teamtasks"
ANN = {
    "subject": "ann",
    "issuer": "https://issuer.test",
    "tokenIdentifier": "https://issuer.test|ann",
}
BOB = {
    "subject": "bob",
    "issuer": "https://issuer.test",
    "tokenIdentifier": "https://issuer.test|bob",
}


async def run(
    deployment: Deployment,
    path: str,
    args: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
) -> FunctionResult:
    spec = deployment.registry.resolve(path, allow_internal=True)
    kind = spec.kind.value.lower()
    if kind == "query":
        return await deployment.executor.run_query(spec, args or {}, identity=identity)
    return await deployment.executor.run_mutation(spec, args or {}, identity=identity)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running_deployment(APP, tmp_path / "data") as s:
        await s.crons.stop()
        yield s


async def test_tasks_belong_to_the_signed_in_user_and_completion_notifies(
    deployment: Deployment,
) -> None:
    anonymous = await run(deployment, "tasks:add", {"title": "x"})
    assert anonymous.error_data == {"code": "NOT_SIGNED_IN"}
    task = (await run(deployment, "tasks:add", {"title": "write docs"}, ANN)).value
    assert [t["title"] for t in (await run(deployment, "tasks:mine", {}, ANN)).value] == [
        "write docs"
    ]
    assert (await run(deployment, "tasks:mine", {}, BOB)).value == []
    stolen = await run(deployment, "tasks:complete", {"id": task}, BOB)
    assert stolen.error_data == {"code": "NOT_FOUND", "id": task}
    assert (await run(deployment, "tasks:complete", {"id": task}, ANN)).success

    async def notified() -> bool:
        unread = (await run(deployment, "notifications:unread", {}, ANN)).value
        return [n["message"] for n in unread] == ["Done: write docs"]

    await eventually(notified)


async def test_purge_deletes_old_read_notifications_in_batches(deployment: Deployment) -> None:
    now = 1_800_000_000_000.0
    old = now - 91 * 24 * 3600 * 1000

    async def seed(txn: Transaction) -> None:
        for i in range(250):
            await txn.insert(
                "notifications", {"owner": "ann", "message": f"{i}", "read": True, "at": old}
            )
        await txn.insert(
            "notifications", {"owner": "ann", "message": "recent", "read": True, "at": now}
        )
        await txn.insert(
            "notifications", {"owner": "ann", "message": "unread", "read": False, "at": old}
        )

    await deployment.database.run_system(seed)
    first = await run(deployment, "notifications:purge_read", {"batch": 100, "now": now})
    assert first.value == 100  # one bounded batch; the rest is rescheduled

    async def purged() -> bool:
        remaining = (
            await deployment.executor.run_query(
                deployment.registry.resolve("notifications:unread"), {}, identity=ANN
            )
        ).value
        txn = deployment.database.begin(writable=False)
        left = [
            n async for n in txn.scan("notifications", "by_creation_time", IndexRange(), Order.ASC)
        ]
        return len(left) == 2 and len(remaining) == 1

    await eventually(purged)


async def test_webhook_accepts_a_good_signature_and_rejects_a_bad_one(
    deployment: Deployment,
) -> None:
    await deployment.set_env({"WEBHOOK_SECRET": "s3cret"})
    site = create_site_app(deployment)
    body = json.dumps({"owner": "ann", "title": "from webhook"}).encode()
    good = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site), base_url="http://site"
    ) as http:
        bad = await http.post("/webhooks/tasks", content=body, headers={"x-signature": "0" * 64})
        assert bad.status_code == 401
        ok = await http.post("/webhooks/tasks", content=body, headers={"x-signature": good})
        assert ok.status_code == 200 and "taskId" in ok.json()
    titles = [t["title"] for t in (await run(deployment, "tasks:mine", {}, ANN)).value]
    assert titles == ["from webhook"]


async def test_attachments_through_upload_urls(deployment: Deployment) -> None:
    from reactor.server.app import create_app

    task = (await run(deployment, "tasks:add", {"title": "with file"}, ANN)).value
    url = (await run(deployment, "tasks:attachment_upload_url", {}, ANN)).value
    api = create_app(deployment.app, deployment=deployment)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as http:
        path = url.split("127.0.0.1:3210", 1)[1]
        uploaded = await http.post(
            path, content=b"\x89PNG...", headers={"content-type": "image/png"}
        )
        storage_id = uploaded.json()["storageId"]
        assert (
            await run(deployment, "tasks:attach", {"id": task, "storageId": storage_id}, ANN)
        ).success
        link = (await run(deployment, "tasks:attachment_url", {"id": task}, ANN)).value
        got = await http.get(link.split("127.0.0.1:3210", 1)[1])
        assert got.status_code == 200 and got.content == b"\x89PNG..."
        assert got.headers["content-type"] == "image/png"
