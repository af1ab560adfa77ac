"""Accounts and transfers between them: the transaction-throughput benchmark."""

from functions import AppError, mutation, query
from schema import v


def _by_n(ctx, n):
    return ctx.db.query("accounts").with_index("by_n", lambda r: r.eq("n", n)).unique()


@mutation(args={"start": v.float64(), "count": v.float64(), "balance": v.float64()})
async def seed(ctx, start, count, balance):
    """Create accounts start .. start+count-1, each holding ``balance``."""
    for n in range(int(start), int(start + count)):
        await ctx.db.insert("accounts", {"n": float(n), "balance": balance})
    return count


@mutation(args={"src": v.float64(), "dst": v.float64(), "amount": v.float64()})
async def transfer(ctx, src, dst, amount):
    if src == dst:
        raise AppError({"code": "SAME_ACCOUNT"})
    a = await _by_n(ctx, src)
    b = await _by_n(ctx, dst)
    if a is None or b is None:
        raise AppError({"code": "NO_SUCH_ACCOUNT", "src": src, "dst": dst})
    await ctx.db.patch(a["_id"], {"balance": a["balance"] - amount})
    await ctx.db.patch(b["_id"], {"balance": b["balance"] + amount})
    return None


@query(args={})
async def total(ctx):
    """Number of accounts and the sum of their balances (conserved by transfers)."""
    count = 0
    total = 0.0
    async for doc in ctx.db.query("accounts"):
        count += 1
        total += doc["balance"]
    return {"count": float(count), "total": total}
