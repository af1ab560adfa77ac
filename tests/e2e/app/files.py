"""File storage through the real server: upload URLs, download URLs, metadata and deletion."""

from functions import mutation, query
from schema import v


@mutation()
async def generate_upload_url(ctx):
    return await ctx.storage.generate_upload_url()


@query(args={"id": v.id("_storage")})
async def url(ctx, id):
    return await ctx.storage.get_url(id)


@query(args={"id": v.id("_storage")})
async def metadata(ctx, id):
    return await ctx.db.system.get(id)


@mutation(args={"id": v.id("_storage")})
async def remove(ctx, id):
    await ctx.storage.delete(id)
    return None
