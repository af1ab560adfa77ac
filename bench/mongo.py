"""The MongoDB section of ``make bench``: commits/s, push latency on one server, push latency
across two servers on one database.

Runs only with a MongoDB URL (``--mongo-url`` or ``REACTOR_BENCH_MONGODB_URL``; a replica set,
so the change-stream feed is what is measured), or with ``--mongo-emulator`` (mongoeco and the
polling feed: a smoke figure, not a MongoDB one). Otherwise it prints "not run: no MongoDB".
Both "servers" are ``Deployment`` in this process, each with its own client, committer and feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import summary_ms

APP = {
    "schema.py": """
from schema import define_schema, define_table, v
schema = define_schema({"items": define_table({"owner": v.string(), "n": v.float64()})
                                   .index("by_owner", ["owner"])})
""",
    "items.py": """
from functions import mutation, query
from schema import v

@mutation(args={"owner": v.string(), "n": v.float64()})
async def add(ctx, owner, n):
    return await ctx.db.insert("items", {"owner": owner, "n": n})

@query(args={"owner": v.string()})
async def mine(ctx, owner):
    return await ctx.db.query("items").with_index(
        "by_owner", lambda q: q.eq("owner", owner)).collect()
""",
}


@contextlib.contextmanager
def _server_url(url: str | None, emulator: bool) -> Iterator[tuple[str, str] | None]:
    if url:
        yield url, "MongoDB"
        return
    if not emulator:
        yield None
        return
    from reactor.testing.mongo import mongoeco_server

    with mongoeco_server(Path(__file__).resolve().parents[1]) as base:
        yield base + "&reactorFeed=poll", "mongoeco emulator (polling feed)"


def run_mongo(url: str | None, *, emulator: bool = False, quick: bool = False) -> str:
    """Run the section; returns the lines to print."""
    url = url or os.environ.get("REACTOR_BENCH_MONGODB_URL")
    with _server_url(url, emulator) as target:
        if target is None:
            return "mongo: not run: no MongoDB (pass --mongo-url mongodb://host/?replicaSet=rs0)"
        base, label = target
        from reactor.testing.mongo import drop_database_quietly, unique_database_url

        db_url = unique_database_url(base, "reactor_bench")
        try:
            figures = asyncio.run(_measure(db_url, quick))
        finally:
            drop_database_quietly(db_url)
    lines = [f"mongo ({label}):"]
    lines.append(
        f"  commits/s, 16 concurrent writers on one server: {figures['commits_per_s']:.0f}"
        f" ({figures['failures']} failed)"
    )
    for name in ("commit", "same_server_push", "two_server_push"):
        s = figures[name]
        lines.append(
            f"  {name.replace('_', ' ')} ms: p50 {s['p50']:.2f}  p99 {s['p99']:.2f}  (n={s['n']})"
        )
    return "\n".join(lines)


async def _measure(url: str, quick: bool) -> dict[str, Any]:
    from functions.loader import load_app
    from reactor.server.deployment import Deployment
    from reactor.storage.mongo.engine import MongoPersistence
    from reactor.testing import call, write_app

    work = Path(tempfile.mkdtemp(prefix="reactor-bench-mongo-"))
    app_dir = write_app(work / "app", APP)
    a = Deployment(
        load_app(app_dir),
        MongoPersistence.open(url),
        instance_name="bench-a",
        blob_directory=work / "blobs-a",
    )
    b = Deployment(
        load_app(app_dir),
        MongoPersistence.open(url),
        instance_name="bench-b",
        blob_directory=work / "blobs-b",
    )
    await a.start()
    await b.start()
    try:
        total = 200 if quick else 2000
        started = time.perf_counter()
        commit_ns: list[int] = []
        failures: list[str] = []

        async def writer(i: int, count: int) -> None:
            for j in range(count):
                t0 = time.perf_counter_ns()
                done = await call(a, "items:add", {"owner": f"w{i}", "n": float(j)})
                commit_ns.append(time.perf_counter_ns() - t0)
                if not done.success:
                    failures.append(done.error_message)

        await asyncio.gather(*(writer(i, total // 16) for i in range(16)))
        rate = (total // 16 * 16) / (time.perf_counter() - started)

        published: dict[int, int] = {}
        for deployment, key in ((a, 0), (b, 1)):

            def spy(commit: Any, _key: int = key) -> None:
                published[_key * 10**20 + commit.ts] = time.perf_counter_ns()

            deployment.publisher.subscribe(spy)
        same: list[int] = []
        across: list[int] = []
        for j in range(50 if quick else 300):
            t0 = time.perf_counter_ns()
            done = await call(a, "items:add", {"owner": "push", "n": float(j)})
            ts = done.ts
            same.append(published.get(ts, time.perf_counter_ns()) - t0)
            while b.committer.published_ts < ts:
                await asyncio.sleep(0.0005)
            across.append(published.get(10**20 + ts, time.perf_counter_ns()) - t0)
        return {
            "commits_per_s": rate,
            "failures": len(failures),
            "commit": summary_ms(commit_ns),
            "same_server_push": summary_ms(same),
            "two_server_push": summary_ms(across),
        }
    finally:
        await b.stop()
        await a.stop()
