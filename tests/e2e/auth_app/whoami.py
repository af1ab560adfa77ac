"""Who is calling: the identity as queries, mutations and actions see it, and an internal query."""

from functions import action, internal_query, mutation, query


@query()
async def me(ctx):
    return await ctx.auth.get_user_identity()


@mutation()
async def me_mutation(ctx):
    return await ctx.auth.get_user_identity()


@action()
async def me_action(ctx):
    return await ctx.auth.get_user_identity()


@internal_query()
async def secret(ctx):
    """Callable only with the admin key; reports who the admin is acting as."""
    return {"secret": "internal-only", "identity": await ctx.auth.get_user_identity()}
