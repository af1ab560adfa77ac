"""Notes written by an internal mutation (the CLI's `reactor run` target)."""

from functions import internal_mutation, query
from schema import v


@internal_mutation(args={"body": v.string()})
async def add(ctx, body):
    identity = await ctx.auth.get_user_identity()
    author = identity["subject"] if identity else "admin"
    await ctx.db.insert("notes", {"body": body, "author": author})
    return {"added": body, "count": len(await ctx.db.query("notes").collect())}


@query()
async def bodies(ctx):
    return [row["body"] for row in await ctx.db.query("notes").collect()]
