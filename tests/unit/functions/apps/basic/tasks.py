"""Task functions: relative imports of a private helper and of a nested module."""

from __future__ import annotations

from typing import Any

from functions import internal_mutation, mutation, query
from schema import v

from ._shared import shared_query  # noqa: F401 - re-exported: filed as tasks:shared_query
from .lib.text import shout


@query(args={"owner": v.string()}, name="list")
async def list_tasks(ctx: Any, owner: str) -> list[Any]:
    return (
        await ctx.db.query("tasks").with_index("by_owner", lambda q: q.eq("owner", owner)).collect()
    )


@mutation(args={"text": v.string()})
async def add(ctx: Any, text: str) -> str:
    return await ctx.db.insert("tasks", {"text": shout(text), "owner": "me"})


@internal_mutation
async def purge(ctx: Any) -> None:
    return None


# The default export, and an alias of it: both paths work.
@query
async def default(ctx: Any) -> str:
    return "tasks default"


everything = default
