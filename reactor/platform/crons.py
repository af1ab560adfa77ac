"""Runs an app's cron jobs through the scheduler: at most one run of a job at a time, overdue
runs skipped rather than replayed.

Owns, per job, the next due time and the scheduled job of its current run, persisted in the
deployment so a restart neither loses nor repeats runs. Schedules come from ``functions.crons``;
running the function is the scheduler's job (so cron mutations are exactly-once and cron
actions at-most-once, like any scheduled function).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from functions.crons import CronJob, Crons, due_runs, find_crons
from reactor.core.tasks import start_task, stop_task
from reactor.engine.database import Database
from reactor.engine.transaction import Transaction
from reactor.platform.scheduler import TABLE, Scheduler

__all__ = ["CronRunner", "load_crons"]

log = logging.getLogger("reactor.crons")

STATE_KEY = "crons"


def load_crons(app: Any) -> Crons | None:
    if app.declared is not None:
        return app.declared.crons  # type: ignore[no-any-return]
    if "crons" not in app.special_files:
        return None
    return find_crons(app.import_module("crons"))


def _dt(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def _ms(value: datetime) -> float:
    return value.timestamp() * 1000.0


class CronRunner:
    def __init__(self, scheduler: Scheduler, crons: Crons | None) -> None:
        self.scheduler = scheduler
        self.database: Database = scheduler.database
        self.crons = crons
        # name -> {"next": ms, "job": scheduled job id of the current run or None}
        self.state: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.skipped = 0

    def _now(self) -> datetime:
        return _dt(self.database.runtime.now_ns() / 1e6)

    async def start(self) -> None:
        await self.load()
        if self.crons and self._task is None:
            self._task = start_task(self._run(), name="crons")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def load(self) -> None:
        """Restore persisted state; jobs new to this deploy get their first due time."""
        stored: dict[str, dict[str, Any]] = (
            await self.database.persistence.get_global(STATE_KEY) or {}
        )
        now = self._now()
        self.state = {}
        for name, job in self.crons.jobs.items() if self.crons else ():
            previous = stored.get(name)
            if previous is not None and previous.get("schedule") == repr(job.schedule):
                self.state[name] = previous
            else:
                self.state[name] = {
                    "next": _ms(job.schedule.first_run(now)),
                    "job": None,
                    "schedule": repr(job.schedule),
                }
        await self._save()

    def is_cron_job(self, job_id: str) -> bool:
        """Whether ``job_id`` is the scheduled job of a cron's current run."""
        return any(state.get("job") == job_id for state in self.state.values())

    async def _save(self) -> None:
        await self.database.persistence.set_global(STATE_KEY, self.state)

    async def _is_running(self, job_id: str | None) -> bool:
        if job_id is None:
            return False
        txn = self.database.begin(writable=False)
        job = await txn.get(job_id)
        return job is not None and job["state"]["kind"] in ("pending", "inProgress")

    async def tick(self) -> float | None:
        """Start every due job that is not still running; returns the next due time (ms)."""
        assert self.crons is not None
        now = self._now()
        changed = False
        for name, job in self.crons.jobs.items():
            state = self.state[name]
            due = due_runs(job.schedule, _dt(state["next"]), now)
            if not due.is_due:
                continue
            state["next"] = _ms(due.next_run)
            changed = True
            if due.skipped:
                self.skipped += due.skipped
                log.warning("cron %s: skipped %d overdue run(s)", name, due.skipped)
            if await self._is_running(state.get("job")):
                self.skipped += 1
                log.warning("cron %s: previous run still in progress, skipping this one", name)
                continue
            # Save the advanced due time first: a crash before the run is scheduled skips this
            # occurrence (as overdue runs are skipped) instead of running it twice.
            state["job"] = None
            await self._save()
            try:
                state["job"] = await self._schedule(job, now)
            except Exception:
                log.exception("cron %s: could not schedule its function", name)
        if changed:
            await self._save()
        return min((s["next"] for s in self.state.values()), default=None)

    async def _schedule(self, job: CronJob, now: datetime) -> str:
        spec = self.scheduler.resolve(job.function_path)
        document = {
            "name": spec.path,
            "args": [dict(job.args)],
            "scheduledTime": _ms(now),
            "state": {"kind": "pending"},
        }

        async def insert(txn: Transaction) -> str:
            return await txn.system_insert(TABLE, document)

        return await self.database.run_system(insert)

    async def _run(self) -> None:
        runtime = self.database.runtime
        while True:
            try:
                next_ms = await self.tick()
            except Exception:
                log.exception("cron pass failed")
                next_ms = None
            delay = 60.0 if next_ms is None else max(0.0, next_ms / 1000.0 - runtime.now_ns() / 1e9)
            await runtime.sleep(min(delay, 60.0))
