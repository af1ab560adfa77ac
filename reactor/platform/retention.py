"""Retention: forgetting what no reader needs any more, in the background.

Owns the pruning loop: document and index versions older than the retention window (snapshots,
transactions and ``/api/query_at_ts`` must be newer), and finished scheduled jobs past their
own retention. It does not decide how an engine prunes (``Persistence.prune``).
"""

from __future__ import annotations

import asyncio
import logging

from reactor.core.tasks import start_task, stop_task
from reactor.engine.database import Database
from reactor.platform.scheduler import Scheduler

__all__ = ["RETENTION_S", "Retention"]

log = logging.getLogger("reactor.platform.retention")

RETENTION_S = 600.0  # versions older than this are forgotten
PRUNED_THROUGH = "pruned_through"  # global: versions superseded at or before it are gone


class Retention:
    def __init__(
        self,
        database: Database,
        scheduler: Scheduler,
        *,
        retention_s: float = RETENTION_S,
        interval_s: float = 60.0,
    ) -> None:
        self.database = database
        self.scheduler = scheduler
        self.retention_s = retention_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = start_task(self._run(), name="retention")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def prune_versions(self) -> int:
        """Forget document and index versions older than the retention window."""
        persistence = self.database.persistence
        previous = int(await persistence.get_global(PRUNED_THROUGH) or 0)
        cutoff = min(
            self.database.snapshot_ts(),
            self.database.runtime.now_ns() - int(self.retention_s * 1e9),
        )
        if cutoff <= previous:
            return 0
        return await persistence.prune(previous, cutoff)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)  # real time, also under a manual clock
            try:
                purged = await self.scheduler.purge_completed()
                if purged:
                    log.info("deleted %d finished scheduled jobs past their retention", purged)
                removed = await self.prune_versions()
                if removed:
                    log.info("pruned %d old versions", removed)
            except Exception:
                log.exception("pruning old versions failed")
