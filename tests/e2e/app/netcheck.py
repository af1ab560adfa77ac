"""Network use from functions: refused in queries and mutations, allowed in actions."""

import httpx

from functions import action, mutation
from schema import v


@mutation(args={"url": v.string()})
async def fetch_in_mutation(ctx, url):
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).status_code


@action(args={"url": v.string()})
async def fetch_in_action(ctx, url):
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).text
