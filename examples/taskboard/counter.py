"""A shared counter: one document, incremented transactionally by any number of clients."""

from functions import mutation, query
from schema import v


@query(args={"name": v.string()})
async def get(ctx, name):
    doc = (
        await ctx.db.query("counters").with_index("by_name", lambda r: r.eq("name", name)).unique()
    )
    return 0 if doc is None else doc["value"]


@mutation(args={"name": v.string(), "by": v.optional(v.float64())})
async def increment(ctx, name, by=1.0):
    doc = (
        await ctx.db.query("counters").with_index("by_name", lambda r: r.eq("name", name)).unique()
    )
    if doc is None:
        await ctx.db.insert("counters", {"name": name, "value": by})
        return by
    await ctx.db.patch(doc["_id"], {"value": doc["value"] + by})
    return doc["value"] + by
