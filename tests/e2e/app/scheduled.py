"""Scheduled work for the crash tests: slow jobs that a SIGKILL can interrupt."""

import asyncio

from functions import action, internal_action, internal_mutation, mutation, query
from schema import v

from .counter import _bump


@internal_mutation(args={"name": v.string(), "sleep": v.float64()})
async def slow_bump(ctx, name, sleep):
    rows = (
        await ctx.db.query("counters").with_index("by_name", lambda r: r.eq("name", name)).collect()
    )
    await asyncio.sleep(sleep)  # a window in which the server can die mid-job
    if rows:
        await ctx.db.patch(rows[0]["_id"], {"value": rows[0]["value"] + 1})
    else:
        await ctx.db.insert("counters", {"name": name, "value": 1.0})


@mutation(args={"name": v.string(), "delay": v.float64(), "sleep": v.float64()})
async def plan(ctx, name, delay, sleep):
    return await ctx.scheduler.run_after(delay, slow_bump, {"name": name, "sleep": sleep})


@internal_mutation(args={"name": v.string()})
async def bump(ctx, name):
    return await _bump(ctx, name, 1)


@internal_action(args={"name": v.string(), "sleep": v.float64()})
async def slow_action(ctx, name, sleep):
    await ctx.run_mutation(bump, {"name": name})
    await asyncio.sleep(sleep)


@mutation(args={"name": v.string(), "sleep": v.float64()})
async def plan_action(ctx, name, sleep):
    return await ctx.scheduler.run_after(0, slow_action, {"name": name, "sleep": sleep})


@query(args={"id": v.id("_scheduled_functions")})
async def job(ctx, id):
    return await ctx.db.system.get(id)


@action
async def ping(ctx):
    return "pong"
