"""Functions whose executions tests/e2e/test_observability.py reads back: one that prints, one
that refuses (ConvexError), one that crashes (a server error), a query, an action writing through
``ctx.run_mutation`` and a slow read-modify-write that conflicts with itself."""

import asyncio

from functions import AppError, action, internal_mutation, mutation, query
from schema import v


@mutation(args={"text": v.string()})
async def add(ctx, text):
    print(f"adding note {text}")
    return await ctx.db.insert("notes", {"text": text})


@query(args={})
async def count(ctx):
    return len(await ctx.db.query("notes").collect())


@mutation(args={"reason": v.string()})
async def refuse(ctx, reason):
    print(f"refusing: {reason}")
    raise AppError(reason)


@mutation(args={})
async def crash(ctx):
    raise RuntimeError("crashed on purpose")


@action(args={"text": v.string()})
async def add_via_action(ctx, text):
    return await ctx.run_mutation("notes:add", {"text": text})


@mutation(args={"name": v.string()})
async def bump(ctx, name):
    """Read-modify-write with a pause between: concurrent calls conflict and retry."""
    row = await ctx.db.query("tallies").with_index("by_name", lambda r: r.eq("name", name)).first()
    await asyncio.sleep(0.05)
    if row is None:
        await ctx.db.insert("tallies", {"name": name, "value": 1.0})
    else:
        await ctx.db.patch(row["_id"], {"value": row["value"] + 1})


@internal_mutation(args={})
async def tick(ctx):
    print("tick")


@mutation(args={})
async def later(ctx):
    await ctx.scheduler.run_after(0, tick, {})
