"""The ``_system/cli/*`` functions ``npx convex export`` and ``npx convex import`` subscribe to:
``exports:getLatest`` (the latest export, or null), ``queryImport`` (one import by id) and
``queryImport:list`` (the latest imports, newest first), in the shapes the CLI reads
(``src/cli/lib/convexExport.ts``, ``convexImport.ts``). They read the jobs of
``snapshot_jobs``, which re-runs live queries whenever a job changes. Admin key only
(``system_functions``).
"""

from __future__ import annotations

from typing import Any, Protocol

from functions.context import QueryCtx
from reactor.operations.snapshot_jobs import SnapshotJobs
from reactor.operations.system_functions import SystemFunctions
from schema import v

__all__ = ["SnapshotFunctionsDeployment", "register"]


class SnapshotFunctionsDeployment(Protocol):
    @property
    def snapshots(self) -> SnapshotJobs: ...


def register(functions: SystemFunctions, deployment: SnapshotFunctionsDeployment) -> None:
    """Add the export and import system functions to ``functions``."""

    @functions.query("_system/cli/exports:getLatest", args={})
    async def get_latest(ctx: QueryCtx) -> dict[str, Any] | None:
        job = deployment.snapshots.export
        return None if job is None else job.document()

    @functions.query("_system/cli/queryImport", args={"importId": v.string()})
    async def query_import(ctx: QueryCtx, *, importId: str) -> dict[str, Any] | None:
        job = deployment.snapshots.get_import(importId)
        return None if job is None else job.document()

    @functions.query("_system/cli/queryImport:list", args={})
    async def list_imports(ctx: QueryCtx) -> list[dict[str, Any]]:
        return [job.document() for job in deployment.snapshots.list_imports()]
