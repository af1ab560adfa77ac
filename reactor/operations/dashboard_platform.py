"""The dashboard's ``_system/frontend/*`` functions over the platform features: scheduled jobs
(list, cancel a pending one), cron jobs (schedule, next run, last run and its outcome), stored
files (list with size, type, sha256 and a download URL; delete; an upload URL) and the schema
with each index's back-fill state.

Queries read the ``_scheduled_functions`` and ``_storage`` system tables through
``ctx.db.system``, so those views are live. Cron due times and built-index records live outside
the tables (deployment globals): their queries re-run when a job is scheduled or finishes, and
the dashboard refreshes them on a timer too. Who may call them is ``system_functions``' rule.
"""

from __future__ import annotations

from typing import Any, Protocol

from functions.context import MutationCtx, QueryCtx
from reactor.core.index_keys import index_id
from reactor.core.persistence import Persistence
from reactor.engine.backfill import BUILT_INDEXES
from reactor.engine.served_app import ServedApp
from reactor.operations.system_functions import SystemFunctions
from reactor.platform.crons import CronRunner
from reactor.platform.scheduler import TABLE as JOBS
from schema import v
from schema.errors import UserError

__all__ = ["JOB_STATES", "LIST_LIMIT", "PlatformDeployment", "register"]

PREFIX = "_system/frontend"
LIST_LIMIT = 500
JOB_STATES = ("pending", "inProgress", "success", "failed", "canceled")
STORAGE = "_storage"


class PlatformDeployment(Protocol):
    """What these functions read of the deployment."""

    @property
    def served(self) -> ServedApp: ...

    @property
    def persistence(self) -> Persistence: ...

    @property
    def crons(self) -> CronRunner: ...


def register(functions: SystemFunctions, deployment: PlatformDeployment) -> None:
    """Add the dashboard's scheduling, file and schema functions to ``functions``."""

    @functions.query(
        f"{PREFIX}/scheduled:list",
        args={"state": v.optional(v.string()), "limit": v.optional(v.float64())},
    )
    async def scheduled(
        ctx: QueryCtx, *, state: str | None = None, limit: float | None = None
    ) -> list[dict[str, Any]]:
        """Scheduled jobs, newest first; only those in ``state`` when given."""
        size = _limit(limit)
        query = ctx.db.system.query(JOBS)
        if state is not None:
            if state not in JOB_STATES:
                raise UserError(f"`state` must be one of {', '.join(JOB_STATES)}, got {state!r}")
            query = query.with_index("by_state_time", lambda r: r.eq("state.kind", state))
        return await query.order("desc").take(size)

    @functions.mutation(f"{PREFIX}/scheduled:cancel", args={"id": v.string()})
    async def cancel(ctx: MutationCtx, *, id: str) -> None:
        """Cancel a pending job; refused (nothing changes) for one running or finished."""
        if ctx.db.system.table_of_id(id) != JOBS:
            raise UserError(f"{id!r} is not the id of a scheduled job")
        job = await ctx.db.system.get(id)
        if job is None:
            raise UserError(f"No scheduled job {id}")
        if job["state"]["kind"] != "pending":
            raise UserError(
                f"Job {id} is {job['state']['kind']}: only pending jobs can be canceled"
            )
        assert ctx.scheduler is not None
        await ctx.scheduler.cancel(id)

    @functions.query(f"{PREFIX}/crons:list", args={})
    async def crons(ctx: QueryCtx) -> list[dict[str, Any]]:
        """Each cron job: its function, schedule, next due time (ms), and its last run (the
        scheduled job's state and times), or None before the first run."""
        runner = deployment.crons
        declared = runner.crons
        if declared is None:
            return []
        # Read the pending jobs' range: a cron scheduling its next run re-runs this query.
        await (
            ctx.db.system.query(JOBS)
            .with_index("by_state_time", lambda r: r.eq("state.kind", "pending"))
            .take(1)
        )
        out = []
        for name, job in declared.jobs.items():
            state = runner.state.get(name, {})
            last = None
            if state.get("job"):
                last = await ctx.db.system.get(state["job"])
            out.append(
                {
                    "name": name,
                    "function": str(job.function_path),
                    "args": dict(job.args),
                    "schedule": str(job.schedule),
                    "nextRun": state.get("next"),
                    "lastRun": None
                    if last is None
                    else {
                        "id": last["_id"],
                        "state": last["state"],
                        "scheduledTime": last["scheduledTime"],
                        "completedTime": last.get("completedTime"),
                    },
                }
            )
        return out

    @functions.query(f"{PREFIX}/files:list", args={"limit": v.optional(v.float64())})
    async def files(ctx: QueryCtx, *, limit: float | None = None) -> list[dict[str, Any]]:
        """Stored files, newest first, each with a download URL."""
        assert ctx.storage is not None
        rows = await ctx.db.system.query(STORAGE).order("desc").take(_limit(limit))
        out = []
        for row in rows:
            out.append(
                {
                    "_id": row["_id"],
                    "_creationTime": row["_creationTime"],
                    "sha256": row["sha256"],
                    "size": row["size"],
                    "contentType": row.get("contentType"),
                    "url": await ctx.storage.get_url(row["_id"]),
                }
            )
        return out

    @functions.mutation(f"{PREFIX}/files:delete", args={"ids": v.array(v.string())})
    async def delete_files(ctx: MutationCtx, *, ids: list[str]) -> None:
        assert ctx.storage is not None
        for id in ids:
            if ctx.db.system.table_of_id(id) != STORAGE:
                raise UserError(f"{id!r} is not the id of a stored file")
            await ctx.storage.delete(id)

    @functions.mutation(f"{PREFIX}/files:generateUploadUrl", args={})
    async def upload_url(ctx: MutationCtx) -> str:
        assert ctx.storage is not None
        url: str = await ctx.storage.generate_upload_url()
        return url

    @functions.query(f"{PREFIX}/schema:get", args={})
    async def schema(ctx: QueryCtx) -> dict[str, Any] | None:
        """The served schema (Convex's JSON), each index with ``state``: ``ready`` once its
        entries are built for its current fields, else ``backfilling``."""
        definition = deployment.served.schema
        if definition is None:
            return None
        built: dict[str, Any] = await deployment.persistence.get_global(BUILT_INDEXES) or {}
        tables = []
        for name, table in definition.tables.items():
            described = {"tableName": name, **table.to_json()}
            for index in described["indexes"]:
                fields = built.get(index_id(name, index["indexDescriptor"]))
                ready = fields is not None and list(fields) == list(index["fields"])
                index["state"] = "ready" if ready else "backfilling"
            tables.append(described)
        return {"tables": tables, "schemaValidation": definition.schema_validation}

    del scheduled, cancel, crons, files, delete_files, upload_url, schema


def _limit(limit: float | None) -> int:
    size = LIST_LIMIT if limit is None else int(limit)
    if not 1 <= size <= LIST_LIMIT:
        raise UserError(f"`limit` must be between 1 and {LIST_LIMIT}, got {limit}")
    return size
