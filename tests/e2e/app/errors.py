"""Functions that fail: AppError with data (reaches clients as ConvexError) and plain crashes."""

from functions import AppError, internal_query, mutation, query
from schema import v


@query()
async def query_app_error(ctx):
    raise AppError({"code": "QUERY_REJECTED", "detail": {"limit": 3, "tags": ["a", "b"]}})


@mutation(args={"channel": v.string()})
async def mutation_app_error(ctx, channel):
    # The insert must be rolled back because the mutation fails.
    await ctx.db.insert("messages", {"channel": channel, "body": "never committed"})
    raise AppError({"code": "MUTATION_REJECTED", "channel": channel})


@query()
async def query_crash(ctx):
    raise RuntimeError("query exploded")


@mutation(args={"channel": v.string()})
async def mutation_crash(ctx, channel):
    await ctx.db.insert("messages", {"channel": channel, "body": "never committed"})
    raise ValueError("mutation exploded")


@internal_query()
async def secret(ctx):
    """Not callable by clients."""
    return "internal-only"
