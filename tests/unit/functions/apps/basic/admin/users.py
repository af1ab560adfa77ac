"""A nested module importing from its parent package."""

from __future__ import annotations

from typing import Any

from functions import internal_query, query

from .. import tasks
from ..tasks import add  # noqa: F401 - imported: filed only as tasks:add


@query
async def default(ctx: Any) -> str:
    return "admin users"


@internal_query
async def audit(ctx: Any) -> str:
    return tasks.shout("audit")
