"""Tasks for the dashboard tests: a public query and mutation, an internal mutation, a failing
query and a scheduled job."""

import builtins
from typing import Any

from functions import MutationCtx, QueryCtx, internal_mutation, mutation, query
from schema import Int64, v


@query(args={})
async def list(ctx: QueryCtx) -> builtins.list[dict[str, Any]]:
    return await ctx.db.query("tasks").collect()


@mutation(args={"title": v.string(), "priority": v.float64()})
async def add(ctx: MutationCtx, title: str, priority: float) -> str:
    return await ctx.db.insert("tasks", {"title": title, "done": False, "priority": priority})


@internal_mutation(args={"title": v.string()})
async def complete_by_title(ctx: MutationCtx, title: str) -> int:
    """Internal: marks every task with this title done; returns how many it changed."""
    print(f"completing tasks titled {title!r}")
    changed = 0
    for task in await ctx.db.query("tasks").collect():
        if task["title"] == title and not task["done"]:
            await ctx.db.patch(task["_id"], {"done": True})
            changed += 1
    return changed


@query(args={"why": v.string()})
async def fail(ctx: QueryCtx, why: str) -> None:
    raise RuntimeError(f"failing on purpose: {why}")


@mutation(args={"title": v.string(), "delay_s": v.float64()})
async def add_later(ctx: MutationCtx, title: str, delay_s: float) -> str:
    assert ctx.scheduler is not None
    return await ctx.scheduler.run_after(delay_s, add, {"title": title, "priority": 0.0})


@internal_mutation(args={})
async def count_open(ctx: MutationCtx) -> int:
    """The cron's job: counts the open tasks (writes nothing)."""
    return len([t for t in await ctx.db.query("tasks").collect() if not t["done"]])


@query(args={})
async def whoami(ctx: QueryCtx) -> str | None:
    """The caller's subject (the Functions page can run a call as a user identity)."""
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else str(identity["subject"])


@internal_mutation(args={"count": v.float64(), "prefix": v.string()})
async def seed(ctx: MutationCtx, count: float, prefix: str) -> None:
    """Insert ``count`` tasks (enough to page through)."""
    for i in range(int(count)):
        await ctx.db.insert("tasks", {"title": f"{prefix}-{i}", "done": False, "priority": 50.0})


@query(
    args={"n": v.int64(), "raw": v.bytes()}, returns=v.object({"n": v.int64(), "size": v.float64()})
)
async def double(ctx: QueryCtx, n: Int64, raw: bytes) -> dict[str, object]:
    """int64 and bytes arguments, an int64 result (the Functions page encodes them exactly)."""
    return {"n": Int64(2 * n), "size": float(len(raw))}
