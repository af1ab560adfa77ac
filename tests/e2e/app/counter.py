"""Named counters: reads, increments, a deliberately slow increment and an internal one."""

import asyncio

from functions import internal_mutation, mutation, query
from schema import v


async def _row(ctx, name):
    return (
        await ctx.db.query("counters").with_index("by_name", lambda r: r.eq("name", name)).first()
    )


async def _bump(ctx, name, by):
    row = await _row(ctx, name)
    if row is None:
        await ctx.db.insert("counters", {"name": name, "value": float(by)})
        return float(by)
    value = row["value"] + by
    await ctx.db.patch(row["_id"], {"value": value})
    return value


@query(args={"name": v.string()})
async def get(ctx, name):
    row = await _row(ctx, name)
    return 0.0 if row is None else row["value"]


@mutation(args={"name": v.string()})
async def increment(ctx, name):
    return await _bump(ctx, name, 1)


@mutation(args={"name": v.string(), "delay": v.float64()})
async def slow_increment(ctx, name, delay):
    """Reads the counter, waits `delay` seconds, then writes: a window for a dropped socket."""
    row = await _row(ctx, name)
    await asyncio.sleep(delay)
    if row is None:
        await ctx.db.insert("counters", {"name": name, "value": 1.0})
        return 1.0
    await ctx.db.patch(row["_id"], {"value": row["value"] + 1})
    return row["value"] + 1


@internal_mutation(args={"name": v.string()})
async def internal_bump(ctx, name):
    """Not callable by clients."""
    return await _bump(ctx, name, 1000)
