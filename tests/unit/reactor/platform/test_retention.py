"""``Retention.prune_versions`` on a real deployment driven by a ``ManualClock``: versions stay
while they are inside the retention window and go once the clock has moved past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.loader import load_app
from reactor.platform.retention import PRUNED_THROUGH
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import ManualClock, call, write_app

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000_000_000_000
RETENTION_S = 600.0
APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({"items": define_table({"n": v.float64()})})
    """,
    "items.py": """
        from functions import mutation
        from schema import v

        @mutation(args={"n": v.float64()})
        async def add(ctx, n):
            return await ctx.db.insert("items", {"n": n})

        @mutation(args={"id": v.id("items"), "n": v.float64()})
        async def set(ctx, id, n):
            await ctx.db.patch(id, {"n": n})

        @mutation(args={"id": v.id("items")})
        async def remove(ctx, id):
            await ctx.db.delete(id)
    """,
}


@dataclass
class Running:
    deployment: Deployment
    clock: ManualClock

    async def mutate(self, path: str, args: dict[str, Any]) -> tuple[Any, int]:
        result = await call(self.deployment, path, args)
        assert result.success, result.error_message
        return result.value, result.ts

    async def value_at(self, doc_id: str, ts: int) -> bytes | None:
        found = await self.deployment.persistence.get_document(doc_id, ts)
        return None if found is None else found[1]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    clock = ManualClock(NOW)
    app = load_app(write_app(tmp_path / "app", APP))
    deployment = Deployment(
        app, SqlitePersistence.open(tmp_path / "data"), runtime=clock, retention_s=RETENTION_S
    )
    await deployment.start(background=False)
    try:
        yield Running(deployment, clock)
    finally:
        await deployment.stop()


async def test_nothing_inside_the_retention_window_is_pruned(running: Running) -> None:
    doc_id, first = await running.mutate("items:add", {"n": 1})
    await running.mutate("items:set", {"id": doc_id, "n": 2})
    await running.clock.advance(RETENTION_S - 1)
    assert await running.deployment.retention.prune_versions() == 0
    assert await running.value_at(doc_id, first) is not None  # the old version is readable


async def test_a_superseded_version_goes_once_the_window_has_passed(running: Running) -> None:
    retention = running.deployment.retention
    doc_id, first = await running.mutate("items:add", {"n": 1})
    _, second = await running.mutate("items:set", {"id": doc_id, "n": 2})
    assert (first, second) == (NOW, NOW + 1)

    await running.clock.advance(RETENTION_S)  # the cutoff reaches the insert, not yet the patch
    assert await retention.prune_versions() == 0
    assert await running.value_at(doc_id, first) is not None
    assert await running.deployment.persistence.get_global(PRUNED_THROUGH) == NOW

    await running.clock.advance(1)
    assert await retention.prune_versions() > 0
    assert await running.value_at(doc_id, first) is None  # superseded at or before the cutoff
    current = await running.value_at(doc_id, running.deployment.publisher.published_ts)
    assert current is not None and b"2" in current
    assert await running.deployment.persistence.get_global(PRUNED_THROUGH) == second


async def test_the_cutoff_never_passes_the_published_snapshot(running: Running) -> None:
    doc_id, first = await running.mutate("items:add", {"n": 1})
    await running.clock.advance(10 * RETENTION_S)
    assert await running.deployment.retention.prune_versions() == 0
    assert await running.deployment.persistence.get_global(PRUNED_THROUGH) == first
    assert await running.value_at(doc_id, first) is not None  # the newest version stays


async def test_pruning_again_without_progress_does_nothing(running: Running) -> None:
    doc_id, _ = await running.mutate("items:add", {"n": 1})
    await running.mutate("items:remove", {"id": doc_id})
    await running.clock.advance(RETENTION_S + 1)
    assert await running.deployment.retention.prune_versions() > 0
    pruned_through = await running.deployment.persistence.get_global(PRUNED_THROUGH)
    await running.clock.advance(RETENTION_S)
    assert await running.deployment.retention.prune_versions() == 0
    assert await running.deployment.persistence.get_global(PRUNED_THROUGH) == pruned_through


async def test_start_and_stop_run_one_background_task(running: Running) -> None:
    retention = running.deployment.retention

    def tasks() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "retention" and not t.done()]

    assert tasks() == []  # background=False
    retention.start()
    retention.start()
    assert len(tasks()) == 1
    await retention.stop()
    assert tasks() == []
