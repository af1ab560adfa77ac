"""Notifications, and a daily purge of read ones older than 90 days in bounded batches."""

from functions import internal_mutation, mutation, query
from schema import v

from .schema import document, notification_fields

NOTIFICATION = document("notifications", notification_fields)

RETENTION_MS = 90 * 24 * 3600 * 1000.0


@internal_mutation(args={"owner": v.string(), "message": v.string()}, returns=v.null())
async def notify(ctx, owner, message):
    import time

    await ctx.db.insert(
        "notifications",
        {"owner": owner, "message": message, "read": False, "at": time.time() * 1000},
    )


@query(args={}, returns=v.array(NOTIFICATION))
async def unread(ctx):
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        return []
    q = ctx.db.query("notifications").with_index(
        "by_owner", lambda r: r.eq("owner", identity["subject"]).eq("read", False)
    )
    return await q.collect()


@mutation(args={"id": v.id("notifications")}, returns=v.null())
async def mark_read(ctx, id):
    identity = await ctx.auth.get_user_identity()
    note = await ctx.db.get(id)
    if identity is not None and note is not None and note["owner"] == identity["subject"]:
        await ctx.db.patch(id, {"read": True})


@internal_mutation(args={"batch": v.float64(), "now": v.optional(v.float64())}, returns=v.float64())
async def purge_read(ctx, batch, now=None):
    """Delete up to `batch` old read notifications; reschedule itself while a backlog remains."""
    import time

    now = time.time() * 1000 if now is None else now
    cutoff = now - RETENTION_MS
    q = ctx.db.query("notifications").with_index(
        "by_read_at", lambda r: r.eq("read", True).lt("at", cutoff)
    )
    old = await q.take(int(batch) + 1)
    for note in old[: int(batch)]:
        await ctx.db.delete(note["_id"])
    if len(old) > batch:
        await ctx.scheduler.run_after(0, purge_read, {"batch": batch, "now": now})
    return min(len(old), int(batch))
