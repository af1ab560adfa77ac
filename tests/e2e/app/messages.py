"""Chat messages: a subscribed list, a send mutation and the module's default export."""

from functions import AppError, mutation, query
from schema import v


@query(args={"channel": v.string()})
async def list(ctx, channel):
    return (
        await ctx.db.query("messages")
        .with_index("by_channel", lambda r: r.eq("channel", channel))
        .order("desc")
        .collect()
    )


@query(args={"channel": v.string()})
async def bodies(ctx, channel):
    """Message bodies of a channel, oldest first."""
    rows = (
        await ctx.db.query("messages")
        .with_index("by_channel", lambda r: r.eq("channel", channel))
        .collect()
    )
    return [row["body"] for row in rows]


@mutation(args={"channel": v.string(), "body": v.string()})
async def send(ctx, channel, body):
    if not body:
        raise AppError({"code": "EMPTY", "channel": channel})
    return await ctx.db.insert("messages", {"channel": channel, "body": body})


@query(args={"channel": v.string()})
async def default(ctx, channel):
    """The default export: callable as "messages" and "messages:default"."""
    rows = (
        await ctx.db.query("messages")
        .with_index("by_channel", lambda r: r.eq("channel", channel))
        .collect()
    )
    return {"kind": "default", "channel": channel, "count": len(rows)}
