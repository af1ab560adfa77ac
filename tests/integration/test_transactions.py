"""Serializability, OCC retries and atomicity on a real SQLite file with the real committer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reactor.server.deployment import Deployment
from reactor.testing import call, running_deployment, write_app

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v
        schema = define_schema({
            "doctors": define_table({"name": v.string(), "on_call": v.boolean()}).index(
                "by_name", ["name"]
            ),
            "accounts": define_table({"n": v.float64(), "balance": v.float64()}).index(
                "by_n", ["n"]
            ),
        })
    """,
    "hospital.py": """
        from functions import AppError, mutation, query
        from schema import v

        @mutation(args={"name": v.string()})
        async def add(ctx, name):
            return await ctx.db.insert("doctors", {"name": name, "on_call": True})

        @mutation(args={"me": v.string()})
        async def go_off_call(ctx, me):
            docs = await ctx.db.query("doctors").collect()
            if sum(1 for d in docs if d["on_call"]) < 2:
                raise AppError({"code": "LAST_ONE_ON_CALL"})
            mine = next(d for d in docs if d["name"] == me)
            await ctx.db.patch(mine["_id"], {"on_call": False})

        @query
        async def on_call(ctx):
            doctors = await ctx.db.query("doctors").collect()
            return sorted(d["name"] for d in doctors if d["on_call"])
    """,
    "bank.py": """
        from functions import AppError, mutation, query
        from schema import v

        def by_n(ctx, n):
            return ctx.db.query("accounts").with_index("by_n", lambda r: r.eq("n", n)).unique()

        @mutation(args={"count": v.float64(), "balance": v.float64()})
        async def open_accounts(ctx, count, balance):
            for n in range(int(count)):
                await ctx.db.insert("accounts", {"n": float(n), "balance": balance})

        @mutation(args={"src": v.float64(), "dst": v.float64(), "amount": v.float64()})
        async def transfer(ctx, src, dst, amount):
            a = await by_n(ctx, src)
            b = await by_n(ctx, dst)
            if a["balance"] < amount:
                raise AppError({"code": "INSUFFICIENT_FUNDS"})
            await ctx.db.patch(a["_id"], {"balance": a["balance"] - amount})
            await ctx.db.patch(b["_id"], {"balance": b["balance"] + amount})

        @mutation
        async def explode_after_write(ctx):
            await ctx.db.insert("accounts", {"n": 999.0, "balance": 1e9})
            raise RuntimeError("boom")

        @mutation(args={"n": v.float64()})
        async def slow_touch(ctx, n):
            import asyncio
            a = await by_n(ctx, n)
            await asyncio.sleep(0.03)  # a window in which other commits land
            await ctx.db.patch(a["_id"], {"balance": a["balance"]})

        @query
        async def total(ctx):
            return sum(a["balance"] for a in await ctx.db.query("accounts").collect())

        @query
        async def count(ctx):
            return len(await ctx.db.query("accounts").collect())
    """,
}


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    app = write_app(tmp_path / "app", APP)
    async with running_deployment(app, tmp_path / "data") as s:
        yield s


async def test_write_skew_is_impossible_and_the_loser_is_retried(deployment: Deployment) -> None:
    await call(deployment, "hospital:add", {"name": "alice"})
    await call(deployment, "hospital:add", {"name": "bob"})
    conflicts_before = deployment.committer.conflicts
    first, second = await asyncio.gather(
        call(deployment, "hospital:go_off_call", {"me": "alice"}),
        call(deployment, "hospital:go_off_call", {"me": "bob"}),
    )
    outcomes = sorted([first.success, second.success])
    assert outcomes == [False, True], (first, second)
    loser = first if not first.success else second
    assert loser.error_data == {"code": "LAST_ONE_ON_CALL"}
    assert loser.attempts == 2  # it conflicted once, was re-run, then saw the new state
    assert deployment.committer.conflicts == conflicts_before + 1
    on_call = await call(deployment, "hospital:on_call")
    assert len(on_call.value) == 1


async def test_concurrent_transfers_conserve_the_total(deployment: Deployment) -> None:
    await call(deployment, "bank:open_accounts", {"count": 8, "balance": 100})
    rng = random.Random(7)
    transfers = []
    for _ in range(300):
        src, dst = rng.sample(range(8), 2)
        transfers.append(
            call(
                deployment, "bank:transfer", {"src": src, "dst": dst, "amount": rng.randint(1, 30)}
            )
        )
    results = await asyncio.gather(*transfers)
    assert sum(r.success for r in results) > 0
    for r in results:
        if not r.success:
            assert (
                r.error_data == {"code": "INSUFFICIENT_FUNDS"} or "changed while" in r.error_message
            )
    total = await call(deployment, "bank:total")
    assert total.value == 800.0
    assert deployment.committer.conflicts > 0  # the contended path really ran


async def test_a_failed_mutation_writes_nothing(deployment: Deployment) -> None:
    result = await call(deployment, "bank:explode_after_write")
    assert not result.success
    assert "Server Error" in result.error_message
    assert "[Request ID: " in result.error_message
    count = await call(deployment, "bank:count")
    assert count.value == 0


async def test_mutation_retries_give_up_with_a_clear_occ_error(deployment: Deployment) -> None:
    from reactor.engine import executor as executor_module

    await call(deployment, "bank:open_accounts", {"count": 2, "balance": 1000})
    stop = asyncio.Event()

    async def hot_writer() -> None:
        while not stop.is_set():
            await call(deployment, "bank:transfer", {"src": 0, "dst": 1, "amount": 1})
            await call(deployment, "bank:transfer", {"src": 1, "dst": 0, "amount": 1})

    writer = asyncio.create_task(hot_writer())
    try:
        result = await call(deployment, "bank:slow_touch", {"n": 0})
    finally:
        stop.set()
        await writer
    assert not result.success
    assert result.attempts == executor_module.OCC_MAX_RETRIES + 1
    assert 'Documents read from or written to the "accounts" table changed' in result.error_message
    assert result.error_code == "OptimisticConcurrencyControlFailure"
    total = await call(deployment, "bank:total")
    assert total.value == 2000.0


async def test_queries_and_mutations_cannot_use_the_network(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "netapp",
        {
            "net.py": """
            import socket
            from functions import action, mutation, query

            def dial():
                with socket.create_connection(("127.0.0.1", 9), timeout=0.2):
                    pass

            @query
            async def q(ctx):
                dial()

            @mutation
            async def m(ctx):
                dial()

            @action
            async def a(ctx):
                try:
                    dial()
                except OSError as exc:  # refused by the OS, not by Reactor
                    return type(exc).__name__
        """,
        },
    )
    async with running_deployment(app, tmp_path / "netdata") as deployment:
        for path in ("net:q", "net:m"):
            result = await call(deployment, path)
            assert not result.success
            assert "Network access is not allowed" in result.error_message
        spec = deployment.registry.resolve("net:a")
        result = await deployment.executor.run_action(spec, {})
        assert result.success and result.value == "ConnectionRefusedError"


async def test_printed_lines_reach_the_caller_as_log_lines(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "logapp",
        {
            "chatty.py": """
            import asyncio
            from functions import mutation, query

            @query
            async def q(ctx, who="world"):
                print("hello", who)
                await asyncio.sleep(0)
                print("second line")
                return 1

            @mutation
            async def m(ctx):
                print("x" * 5000)
                raise RuntimeError("boom")
        """,
        },
    )
    async with running_deployment(app, tmp_path / "logdata") as deployment:
        first, second = await asyncio.gather(
            call(deployment, "chatty:q", {"who": "ann"}),
            call(deployment, "chatty:q", {"who": "bob"}),
        )
        assert first.log_lines == ("[LOG] hello ann", "[LOG] second line")
        assert second.log_lines == ("[LOG] hello bob", "[LOG] second line")  # never mixed
        failed = await call(deployment, "chatty:m")
        assert not failed.success
        assert failed.log_lines[0].endswith("(truncated)") and len(failed.log_lines[0]) < 4200
