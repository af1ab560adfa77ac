"""Scheduled functions: ``ctx.scheduler`` (``Scheduler``) and the worker that runs due jobs
(``JobWorker``).

Jobs are documents of the ``_scheduled_functions`` system table (``name``, ``args``,
``scheduledTime`` ms, ``completedTime`` ms, ``state.kind`` pending / inProgress / success /
failed / canceled). Scheduling from a mutation writes the job in the mutation's transaction, so
it exists only if the mutation commits; from an action it commits at once.

Guarantees (CONVEX_SEMANTICS §6): a scheduled mutation runs exactly once: its job turns
``success`` in the same transaction as the mutation's writes, and conflicts are retried until it
commits. A scheduled action runs at most once: it is marked ``inProgress`` in a committed
transaction before it starts, and one found ``inProgress`` after a restart is marked failed,
never re-run. This module does not parse cron schedules (``functions.crons``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from functions.decorators import FunctionKind, FunctionSpec
from functions.paths import reference_path
from functions.store import IndexRange, Order
from reactor.core.persistence import PublishedCommit
from reactor.engine.database import Database
from reactor.engine.execution_log import Caller
from reactor.engine.executor import Executor
from reactor.engine.served_app import ServedApp
from reactor.engine.transaction import Transaction
from schema.errors import FunctionNotFound, ValidationError
from schema.values import check_value

__all__ = ["TABLE", "JobGone", "JobHooks", "JobWorker", "Scheduler"]

log = logging.getLogger("reactor.platform.scheduler")

TABLE = "_scheduled_functions"
BY_STATE_TIME = "by_state_time"
MAX_SCHEDULED_PER_MUTATION = 1000
DEFAULT_CONCURRENCY = 8
TRANSIENT_ACTION_ERROR = "Transient error while executing action"
COMPLETED_RETENTION_S = 7 * 24 * 3600.0  # finished jobs are kept this long (Convex: 7 days)


class JobGone(Exception):
    """The job is no longer pending (canceled, or already run): abandon this run."""


class _Handle:
    """What ``ctx.scheduler`` is: ``run_after``, ``run_at``, ``cancel``."""

    def __init__(self, scheduler: Scheduler, txn: Transaction | None) -> None:
        self._scheduler = scheduler
        self._txn = txn  # None: an action's handle, each call its own transaction
        self._count = 0

    async def run_after(
        self, delay_s: float, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str:
        if (
            isinstance(delay_s, bool)
            or not isinstance(delay_s, (int, float))
            or not (math.isfinite(delay_s) and delay_s >= 0)
        ):
            raise ValidationError(
                f"scheduler.run_after: the delay must be a finite number of seconds >= 0, "
                f"got {delay_s!r}"
            )
        when = self._scheduler.database.now_ms() + delay_s * 1000.0
        return await self._schedule(when, reference, args)

    async def run_at(
        self, timestamp_ms: Any, reference: Any, args: Mapping[str, Any] | None = None, /
    ) -> str:
        if hasattr(timestamp_ms, "timestamp"):  # a datetime
            timestamp_ms = timestamp_ms.timestamp() * 1000.0
        if (
            isinstance(timestamp_ms, bool)
            or not isinstance(timestamp_ms, (int, float))
            or not (math.isfinite(timestamp_ms))
        ):
            raise ValidationError(
                "scheduler.run_at: the time must be a datetime or finite milliseconds since the "
                f"epoch, got {timestamp_ms!r}"
            )
        return await self._schedule(float(timestamp_ms), reference, args)

    async def _schedule(
        self, when_ms: float, reference: Any, args: Mapping[str, Any] | None
    ) -> str:
        spec = self._scheduler.resolve(reference)
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise ValidationError(f"scheduler: args must be an object, got {type(args).__name__}")
        check_value(dict(args), "$.args")
        self._count += 1
        if self._count > MAX_SCHEDULED_PER_MUTATION:
            raise ValidationError(
                f"Too many functions scheduled by one call (limit: {MAX_SCHEDULED_PER_MUTATION})"
            )
        job = {
            "name": spec.path,
            "args": [dict(args)],
            "scheduledTime": when_ms,
            "state": {"kind": "pending"},
        }
        if self._txn is not None:
            return await self._txn.system_insert(TABLE, job)

        async def insert(txn: Transaction) -> str:
            return await txn.system_insert(TABLE, job)

        return await self._scheduler.database.run_system(insert)

    async def cancel(self, job_id: str, /) -> None:
        async def cancel_in(txn: Transaction) -> None:
            if txn.table_for_id(TABLE, job_id) is None:
                raise ValidationError(
                    f"scheduler.cancel: {job_id!r} is not a scheduled function id"
                )
            job = await txn.get(job_id)
            if job is None or job["state"]["kind"] != "pending":
                return  # already running, finished or canceled: nothing to do
            await txn.system_patch(
                job_id,
                {"state": {"kind": "canceled"}, "completedTime": self._scheduler.database.now_ms()},
            )

        if self._txn is not None:
            await cancel_in(self._txn)
        else:
            await self._scheduler.database.run_system(cancel_in)


class JobHooks:
    """Inside a scheduled mutation's transaction: pending → (inProgress, staged) → success.
    Runs where the mutation runs (a function runner); ``now_ms`` dates the completion."""

    def __init__(self, job_id: str, now_ms: Callable[[], float]) -> None:
        self.job_id = job_id
        self.now_ms = now_ms

    async def before(self, txn: Transaction) -> bool:
        job = await txn.get(self.job_id)
        if job is None or job["state"]["kind"] != "pending":
            return False
        await txn.system_patch(self.job_id, {"state": {"kind": "inProgress"}})
        return True

    async def after(self, txn: Transaction) -> None:
        await txn.system_patch(
            self.job_id,
            {"state": {"kind": "success"}, "completedTime": self.now_ms()},
        )


class Scheduler:
    """``ctx.scheduler`` handles and the bookkeeping of the jobs table."""

    def __init__(self, database: Database, served: ServedApp) -> None:
        self.database = database
        self.served = served

    # -- ctx.scheduler -----------------------------------------------------------------------

    def handle(self, txn: Transaction | None) -> _Handle:
        """The ``ctx.scheduler`` of a mutation (jobs written in ``txn``) or, with None, of an
        action (each call commits at once)."""
        return _Handle(self, txn)

    def resolve(self, reference: Any) -> FunctionSpec:
        path = reference_path(reference)
        spec = self.served.registry.get(path)
        if spec is None or spec.kind not in (FunctionKind.MUTATION, FunctionKind.ACTION):
            raise FunctionNotFound(f"scheduler: {path!r} is not a mutation or action of this app")
        return spec

    async def recover(self) -> None:
        """Actions found inProgress were cut off by a crash: at most once means failed."""

        async def fail_stranded(txn: Transaction) -> int:
            count = 0
            rng = IndexRange(eq=(("state.kind", "inProgress"),))
            async for job in txn.scan(TABLE, BY_STATE_TIME, rng, Order.ASC, system=True):
                await txn.system_patch(
                    job["_id"],
                    {
                        "state": {"kind": "failed", "error": TRANSIENT_ACTION_ERROR},
                        "completedTime": self.database.now_ms(),
                    },
                )
                count += 1
            return count

        count = await self.database.run_system(fail_stranded)
        if count:
            log.warning("marked %d interrupted scheduled action(s) failed", count)

    async def purge_completed(self, *, batch: int = 500) -> int:
        """Delete up to ``batch`` finished jobs older than the retention; returns how many."""
        cutoff = self.database.now_ms() - COMPLETED_RETENTION_S * 1000.0

        async def purge(txn: Transaction) -> int:
            count = 0
            for kind in ("success", "failed", "canceled"):
                rng = IndexRange(eq=(("state.kind", kind),))
                async for job in txn.scan(TABLE, BY_STATE_TIME, rng, Order.ASC, system=True):
                    if count >= batch:
                        return count
                    if job.get("completedTime", job["scheduledTime"]) < cutoff:
                        await txn.system_delete(job["_id"])
                        count += 1
            return count

        return await self.database.run_system(purge)


class JobWorker:
    """Runs due jobs (in the process holding the scheduler lease), at most ``concurrency`` at
    a time, woken by commits that write the jobs table."""

    def __init__(
        self,
        scheduler: Scheduler,
        executor: Executor,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        is_cron: Callable[[str], bool] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.database = scheduler.database
        self.executor = executor
        # Whether a job id is a cron run (its execution record says ``cron``, not ``scheduler``).
        self._is_cron = is_cron or (lambda job_id: False)
        self.concurrency = concurrency
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.completed = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.scheduler.recover()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._running.clear()

    def on_commit(self, commit: PublishedCommit) -> None:
        if any(key.startswith(TABLE + ".") for key in commit.write_keys):
            self._wake.set()

    # -- the worker --------------------------------------------------------------------------

    async def _due(self, now_ms: float, limit: int) -> tuple[list[dict[str, Any]], float | None]:
        """Up to ``limit`` due pending jobs, and the time of the next one not yet due."""
        txn = self.database.begin(writable=False)
        rng = IndexRange(eq=(("state.kind", "pending"),))
        due: list[dict[str, Any]] = []
        next_ms: float | None = None
        async for job in txn.scan(TABLE, BY_STATE_TIME, rng, Order.ASC, system=True):
            if job["_id"] in self._running:
                continue
            if job["scheduledTime"] > now_ms:
                next_ms = job["scheduledTime"]
                break
            if len(due) >= limit:
                break
            due.append(job)
        return due, next_ms

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            timeout: float | None = None
            try:
                free = self.concurrency - len(self._running)
                if free > 0:
                    now_ms = self.database.now_ms()
                    due, next_ms = await self._due(now_ms, free)
                    for job in due:
                        task = asyncio.get_running_loop().create_task(self._execute(job))
                        self._running[job["_id"]] = task
                        task.add_done_callback(functools.partial(self._job_done, job["_id"]))
                    if next_ms is not None:
                        timeout = max(0.0, (next_ms - now_ms) / 1000.0)
            except Exception:
                log.exception("scheduler pass failed")
                timeout = 1.0
            if timeout is None:
                await self._wake.wait()
            else:  # on the runtime's clock, as due-ness is (``database.now_ms``)
                with contextlib.suppress(TimeoutError):
                    async with self.database.runtime.timeout(min(timeout, 60.0)):
                        await self._wake.wait()

    def _job_done(self, job_id: str, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self.completed += 1
        self._wake.set()

    async def _execute(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]
        try:
            spec = self.scheduler.served.registry.get(job["name"])
            args = job["args"][0] if job["args"] else {}
            if spec is None or spec.kind not in (FunctionKind.MUTATION, FunctionKind.ACTION):
                await self._finish(job_id, f"Could not find function for '{job['name']}'")
            elif spec.kind is FunctionKind.MUTATION:
                await self._execute_mutation(job_id, spec, args)
            else:
                await self._execute_action(job_id, spec, args)
        except JobGone:
            pass
        except Exception:
            log.exception("scheduled job %s (%s) failed to run", job_id, job.get("name"))

    async def _execute_mutation(
        self, job_id: str, spec: FunctionSpec, args: dict[str, Any]
    ) -> None:
        result = await self.executor.run_mutation(
            spec, args, job_id=job_id, max_retries=1_000_000, caller=self._caller(job_id)
        )
        if result.job_gone:
            return
        if not result.success:
            await self._finish(job_id, result.error_message)

    async def _execute_action(self, job_id: str, spec: FunctionSpec, args: dict[str, Any]) -> None:
        async def claim(txn: Transaction) -> None:
            job = await txn.get(job_id)
            if job is None or job["state"]["kind"] != "pending":
                raise JobGone(job_id)
            await txn.system_patch(job_id, {"state": {"kind": "inProgress"}})

        await self.database.run_system(claim)
        result = await self.executor.run_action(spec, args, caller=self._caller(job_id))
        error = None if result.success else result.error_message
        await self._finish(job_id, error, from_state="inProgress")

    def _caller(self, job_id: str) -> Caller:
        return Caller.CRON if self._is_cron(job_id) else Caller.SCHEDULER

    async def _finish(self, job_id: str, error: str | None, *, from_state: str = "pending") -> None:
        """Record the outcome, unless the job moved on meanwhile (e.g. canceled)."""

        async def record(txn: Transaction) -> None:
            job = await txn.get(job_id)
            if job is None or job["state"]["kind"] != from_state:
                return
            state: dict[str, Any] = (
                {"kind": "success"}
                if error is None
                else {
                    "kind": "failed",
                    "error": error,
                }
            )
            await txn.system_patch(
                job_id, {"state": state, "completedTime": self.database.now_ms()}
            )

        await self.database.run_system(record)
