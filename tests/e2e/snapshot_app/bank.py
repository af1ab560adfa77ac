"""Accounts whose balances only move between each other: their total is conserved."""

from typing import Any

from functions import action, mutation, query
from schema import v


@mutation(args={"n": v.float64()})
async def open_accounts(ctx: Any, n: Any) -> Any:
    return [
        await ctx.db.insert("accounts", {"owner": f"owner{i}", "balance": 100.0})
        for i in range(int(n))
    ]


@mutation(args={"a": v.id("accounts"), "b": v.id("accounts"), "amount": v.float64()})
async def transfer(ctx: Any, a: Any, b: Any, amount: Any) -> Any:
    x = await ctx.db.get(a)
    y = await ctx.db.get(b)
    await ctx.db.patch(a, {"balance": x["balance"] - amount})
    await ctx.db.patch(b, {"balance": y["balance"] + amount})


@query
async def total(ctx: Any) -> Any:
    rows = await ctx.db.query("accounts").collect()
    return {"count": len(rows), "total": sum(r["balance"] for r in rows)}


@mutation(
    args={
        "account": v.id("accounts"),
        "text": v.string(),
        "count": v.int64(),
        "file": v.optional(v.id("_storage")),
    }
)
async def add_note(ctx: Any, account: Any, text: Any, count: Any, file: Any = None) -> Any:
    doc = {"account": account, "text": text, "count": count}
    if file is not None:
        doc["file"] = file
    return await ctx.db.insert("notes", doc)


@action(args={"text": v.string()})
async def store(ctx: Any, text: Any) -> Any:
    return await ctx.storage.store(text.encode(), content_type="text/plain")


@query
async def dump(ctx: Any) -> Any:
    notes = await ctx.db.query("notes").collect()
    for note in notes:
        if "file" in note:
            note["url"] = await ctx.storage.get_url(note["file"])
    return {
        "accounts": await ctx.db.query("accounts").collect(),
        "notes": notes,
        "files": await ctx.db.system.query("_storage").collect(),
    }
