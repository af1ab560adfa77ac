"""Tasks owned by the signed-in user. Completing one schedules a notification."""

from functions import AppError, internal_mutation, mutation, query
from schema import v

from . import notifications
from .schema import document, task_fields

TASK = document("tasks", task_fields)


async def me(ctx):
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        raise AppError({"code": "NOT_SIGNED_IN"})
    return identity["subject"]


async def own_task(ctx, id):
    task = await ctx.db.get(id)
    if task is None or task["owner"] != await me(ctx):
        raise AppError({"code": "NOT_FOUND", "id": id})
    return task


@query(args={}, returns=v.array(TASK))
async def mine(ctx):
    owner = await me(ctx)
    q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
    return await q.order("desc").collect()


@mutation(args={"title": v.string()}, returns=v.id("tasks"))
async def add(ctx, title):
    if not title.strip():
        raise AppError({"code": "EMPTY_TITLE"})
    return await ctx.db.insert("tasks", {"owner": await me(ctx), "title": title, "done": False})


@internal_mutation(args={"owner": v.string(), "title": v.string()}, returns=v.id("tasks"))
async def add_for(ctx, owner, title):
    """Used by the webhook: no signed-in user there, the signature vouches for the owner."""
    return await ctx.db.insert("tasks", {"owner": owner, "title": title, "done": False})


@mutation(args={"id": v.id("tasks")}, returns=v.union(v.id("_scheduled_functions"), v.null()))
async def complete(ctx, id):
    task = await own_task(ctx, id)
    if task["done"]:
        return None
    await ctx.db.patch(id, {"done": True})
    # Runs right after this mutation commits, and only if it commits.
    return await ctx.scheduler.run_after(
        0, notifications.notify, {"owner": task["owner"], "message": f"Done: {task['title']}"}
    )


@mutation(args={}, returns=v.string())
async def attachment_upload_url(ctx):
    await me(ctx)
    return await ctx.storage.generate_upload_url()


@mutation(args={"id": v.id("tasks"), "storageId": v.id("_storage")}, returns=v.null())
async def attach(ctx, id, storageId):
    task = await own_task(ctx, id)
    if task.get("attachment"):
        await ctx.storage.delete(task["attachment"])
    await ctx.db.patch(id, {"attachment": storageId})


@query(args={"id": v.id("tasks")}, returns=v.union(v.string(), v.null()))
async def attachment_url(ctx, id):
    task = await own_task(ctx, id)
    return None if not task.get("attachment") else await ctx.storage.get_url(task["attachment"])
