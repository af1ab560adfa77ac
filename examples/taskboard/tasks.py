"""A live task board: every owner's list updates in every subscribed client."""

from functions import AppError, mutation, pagination_opts_validator, query
from schema import v


@query(args={"owner": v.string()})
async def mine(ctx, owner):
    q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
    return await q.order("desc").collect()


@query(args={"owner": v.string()})
async def open_count(ctx, owner):
    q = ctx.db.query("tasks").with_index("by_owner", lambda r: r.eq("owner", owner))
    return len(await q.filter(lambda f: f.eq(f.field("done"), False)).collect())


@query(args={"paginationOpts": pagination_opts_validator})
async def page(ctx, paginationOpts):
    # Newest first; usePaginatedQuery(api.tasks.page, {}, {initialNumItems: 10}) can call it.
    return await ctx.db.query("tasks").order("desc").paginate(paginationOpts)


@mutation(args={"title": v.string(), "owner": v.string()})
async def add(ctx, title, owner):
    if not title.strip():
        raise AppError({"code": "EMPTY_TITLE"})  # data reaches the client as ConvexError data
    return await ctx.db.insert("tasks", {"title": title, "owner": owner, "done": False})


@mutation(args={"id": v.id("tasks")})
async def toggle(ctx, id):
    task = await ctx.db.get(id)
    if task is None:
        raise AppError({"code": "NOT_FOUND", "id": id})
    await ctx.db.patch(id, {"done": not task["done"]})
    return not task["done"]


@mutation(args={"id": v.id("tasks")})
async def remove(ctx, id):
    await ctx.db.delete(id)
