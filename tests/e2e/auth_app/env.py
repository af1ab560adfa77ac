"""Deployment environment variables as functions see them (`ctx.env`)."""

from functions import query
from schema import v


@query(args={"name": v.string()})
async def get(ctx, name):
    return ctx.env.get(name)


@query()
async def system(ctx):
    return {
        "cloud": ctx.env.get("CONVEX_CLOUD_URL"),
        "site": ctx.env.get("CONVEX_SITE_URL"),
    }
