"""The isolation section: a bystander's mutation→push round trip while app code misbehaves.

A client subscribed to ``tasks:mine`` adds its own tasks one at a time and times each
mutation until the push that shows it: first on a quiet server, then while other clients call
a query that loops forever (each call is killed at the 1 s limit and its runner replaced, so
they keep calling), then while a 10 s CPU-bound action runs. Also: the time one trivial query
takes end to end over HTTP, to show what a call through a runner costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from typing import Any

import httpx

from bench.common import Server, make_workdir, summary_ms
from client_sdk import AsyncReactorClient


async def _round_trips(client: AsyncReactorClient, owner: str, count: int) -> list[int]:
    sub = client.subscribe("tasks:mine", {"owner": owner})
    await sub.__anext__()
    out = []
    for i in range(count):
        start = time.perf_counter_ns()
        title = f"{owner} {i}"
        await client.mutation("tasks:add", {"owner": owner, "title": title})
        while True:  # the newest task first: until it is this one
            newest = await asyncio.wait_for(sub.__anext__(), 30)
            if newest and newest[0]["title"] == title:
                break
        out.append(time.perf_counter_ns() - start)
        await asyncio.sleep(0.01)
    await sub.aclose()
    return out


async def _keep_calling(http: httpx.AsyncClient, path: str, kind: str, args: Any) -> None:
    while True:
        await http.post(f"/api/{kind}", json={"path": path, "args": args, "format": "json"})


async def run_isolation(scale: Any, out: dict[str, Any]) -> dict[str, Any]:
    workdir = make_workdir("isolation")
    server = Server(workdir=workdir)
    count = 100 if not scale.quick else 30
    try:
        await server.start()
        async with (
            AsyncReactorClient(server.http) as client,
            httpx.AsyncClient(base_url=server.http, timeout=60) as http,
        ):
            await _round_trips(client, "warm", 20)
            out["quiet_ms"] = summary_ms(await _round_trips(client, "quiet", count))

            # Two clients keep calling a query that never returns.
            spinners = [
                asyncio.ensure_future(_keep_calling(http, "hostile:spin", "query", {}))
                for _ in range(2)
            ]
            await asyncio.sleep(0.5)
            out["runaway_query_ms"] = summary_ms(await _round_trips(client, "runaway", count))
            for task in spinners:
                task.cancel()
            for task in spinners:
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task

            burn = asyncio.ensure_future(
                http.post(
                    "/api/action",
                    json={"path": "hostile:burn", "args": {"seconds": 10.0}, "format": "json"},
                )
            )
            await asyncio.sleep(0.5)
            out["cpu_action_ms"] = summary_ms(await _round_trips(client, "burning", count))
            out["cpu_action_ok"] = (await burn).json().get("status") == "success"

            # One trivial query over HTTP, end to end (runner round trip included).
            times = []
            for _ in range(200):
                start = time.perf_counter_ns()
                await http.post(
                    "/api/query",
                    json={"path": "tasks:mine", "args": {"owner": "none"}, "format": "json"},
                )
                times.append(time.perf_counter_ns() - start)
            out["http_query_ms"] = summary_ms(times)
    finally:
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out
