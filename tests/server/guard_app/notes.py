"""Functions of every kind, with and without argument validators, for the HTTP fuzz suite."""

from typing import Any

from functions import action, mutation, query
from schema import v


@query(args={"text": v.string()})
async def find(ctx: Any, text: str) -> Any:
    return await ctx.db.query("notes").with_index("by_text", lambda q: q.eq("text", text)).collect()


@query()
async def echo(ctx: Any, **kwargs: Any) -> Any:
    return kwargs


@mutation(args={"text": v.string()})
async def add(ctx: Any, text: str) -> Any:
    return await ctx.db.insert("notes", {"text": text})


@mutation(args={"id": v.id("notes")})
async def remove(ctx: Any, id: Any) -> None:
    await ctx.db.delete(id)


@action(args={"n": v.optional(v.float64())})
async def double(ctx: Any, n: float | None = None) -> float | None:
    return None if n is None else n * 2


@mutation()
async def upload_url(ctx: Any) -> Any:
    return await ctx.storage.generate_upload_url()


@query(args={"id": v.id("_storage")})
async def file_url(ctx: Any, id: Any) -> Any:
    return await ctx.storage.get_url(id)
