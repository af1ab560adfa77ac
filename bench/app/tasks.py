"""Tasks by owner (one query per owner) and a shared "board" every subscriber watches."""

from functions import mutation, query
from schema import v

BOARD_SIZE = 10


@query(args={"owner": v.string()})
async def mine(ctx, owner):
    q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
    return await q.order("desc").take(BOARD_SIZE)


@query(args={})
async def board(ctx):
    """The newest tasks of every owner: invalidated by every insert."""
    return await ctx.db.query("tasks").order("desc").take(BOARD_SIZE)


@mutation(args={"owner": v.string(), "title": v.string()})
async def add(ctx, owner, title):
    return await ctx.db.insert("tasks", {"owner": owner, "title": title})
