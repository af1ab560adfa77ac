"""The ``snapshot`` section: import and export throughput of a 100,000-document table through a
real server's HTTP routes (the ones ``npx convex import|export`` and ``reactor import|export
--url`` use), and the round trip of a bystander's query before and while an export runs.

Import: the JSONL file is uploaded in 5 MiB parts, checked, confirmed and written; the clock
runs from the first upload byte to the ``completed`` state. Export: from the request to the
last byte of the downloaded ZIP. MiB/s counts the JSONL bytes (the documents as exported,
uncompressed) for both, and the ZIP's bytes for the download.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from bench.common import BenchError, Server, make_workdir, summary_ms

__all__ = ["run_snapshot", "snapshot_rows"]

APP = {
    "schema.py": """
from schema import define_schema, define_table, v

schema = define_schema(
    {
        "items": define_table(
            {
                "n": v.float64(),
                "title": v.string(),
                "done": v.boolean(),
                "tags": v.array(v.string()),
            }
        ).index("by_n", ["n"]),
        "probe": define_table({"value": v.float64()}),
    }
)
""",
    "bench.py": """
from functions import mutation, query


@mutation
async def seed(ctx):
    return await ctx.db.insert("probe", {"value": 1.0})


@query
async def probe(ctx):
    return await ctx.db.query("probe").first()
""",
}
PART = 5 * 1024 * 1024
POLL_S = 0.02


def _write_app(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in APP.items():
        (directory / name).write_text(source)
    return directory


def _jsonl(path: Path, count: int) -> int:
    with open(path, "w") as out:
        for i in range(count):
            doc = {
                "n": float(i),
                "title": f"item {i} of the snapshot benchmark",
                "done": i % 3 == 0,
                "tags": ["bench", f"t{i % 10}"],
            }
            out.write(json.dumps(doc) + "\n")
    return path.stat().st_size


async def _poll(client: httpx.AsyncClient, path: str, args: dict[str, Any]) -> Any:
    response = await client.post("/api/query", json={"path": path, "args": args, "format": "json"})
    payload = response.json()
    if payload.get("status") != "success":
        raise BenchError(f"{path}: {payload}")
    return payload["value"]


async def _import(client: httpx.AsyncClient, path: Path) -> float:
    t0 = time.perf_counter()
    token = (await client.post("/api/import/start_upload")).json()["uploadToken"]
    parts = []
    with open(path, "rb") as handle:
        number = 1
        while chunk := handle.read(PART):
            response = await client.post(
                "/api/import/upload_part",
                params={"uploadToken": token, "partNumber": number},
                content=chunk,
            )
            parts.append(response.json())
            number += 1
    body = {
        "import": {"tableName": "items", "mode": "requireEmpty", "format": "jsonLines"},
        "uploadToken": token,
        "partTokens": parts,
    }
    import_id = (await client.post("/api/import/finish_upload", json=body)).json()["importId"]
    confirmed = False
    while True:
        state = (await _poll(client, "_system/cli/queryImport", {"importId": import_id}))["state"]
        if state["state"] == "failed":
            raise BenchError(f"import failed: {state['error_message']}")
        if state["state"] == "completed":
            return time.perf_counter() - t0
        if state["state"] == "waiting_for_confirmation" and not confirmed:
            await client.post("/api/perform_import", json={"importId": import_id})
            confirmed = True
        await asyncio.sleep(POLL_S)


async def _export(client: httpx.AsyncClient) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    response = await client.post("/api/export/request/zip?includeStorage=false")
    if response.status_code != 200:
        raise BenchError(f"export request: {response.text}")
    while True:
        job = await _poll(client, "_system/cli/exports:getLatest", {})
        if job and job["state"] == "failed":
            raise BenchError(f"export failed: {job}")
        if job and job["state"] == "completed":
            break
        await asyncio.sleep(POLL_S)
    data = (await client.get(f"/api/export/zip/{job['start_ts']}")).content
    return time.perf_counter() - t0, data


async def _bystander(url: str, stop: asyncio.Event, rtts: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = {"path": "bench:probe", "args": {}, "format": "json"}
        while not stop.is_set():
            t0 = time.perf_counter_ns()
            response = await client.post("/api/query", json=body)
            rtts.append(time.perf_counter_ns() - t0)
            if response.json().get("status") != "success":
                raise BenchError(f"bystander query failed: {response.text}")
            await asyncio.sleep(0.005)


async def run_snapshot(scale: Any, out: dict[str, Any]) -> dict[str, Any]:
    count = scale.n(100_000, 10_000)
    workdir = make_workdir("snapshot")
    server = Server(_write_app(workdir / "app"), workdir=workdir)
    try:
        jsonl_bytes = _jsonl(workdir / "items.jsonl", count)
        await server.start()
        admin = _admin_key(server)
        async with httpx.AsyncClient(
            base_url=server.http, timeout=600, headers={"Authorization": f"Convex {admin}"}
        ) as client:
            await client.post("/api/mutation", json={"path": "bench:seed", "args": {}})
            out["documents"] = count
            out["jsonl_mib"] = round(jsonl_bytes / 2**20, 1)

            seconds = await _import(client, workdir / "items.jsonl")
            out["import_s"] = round(seconds, 2)
            out["import_docs_per_s"] = round(count / seconds)
            out["import_mib_per_s"] = round(jsonl_bytes / 2**20 / seconds, 1)

            quiet: list[int] = []
            stop = asyncio.Event()
            task = asyncio.create_task(_bystander(server.http, stop, quiet))
            await asyncio.sleep(2.0)
            stop.set()
            await task
            out["bystander_idle_ms"] = summary_ms(quiet)

            busy: list[int] = []
            stop = asyncio.Event()
            task = asyncio.create_task(_bystander(server.http, stop, busy))
            try:
                seconds, data = await _export(client)
            finally:
                stop.set()
                await task
            archive = zipfile.ZipFile(io.BytesIO(data))
            exported = archive.getinfo("items/documents.jsonl").file_size
            rows = sum(1 for _ in archive.open("items/documents.jsonl"))
            if rows != count:
                raise BenchError(f"the export holds {rows} items, expected {count}")
            out["export_s"] = round(seconds, 2)
            out["export_docs_per_s"] = round(count / seconds)
            out["export_mib_per_s"] = round(exported / 2**20 / seconds, 1)
            out["export_zip_mib"] = round(len(data) / 2**20, 1)
            out["bystander_during_export_ms"] = summary_ms(busy)
    finally:
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _admin_key(server: Server) -> str:
    """The admin key ``reactor serve`` printed at first start (the bench runs it without
    ``--admin-key-file``)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log_text().splitlines():
            if line.strip().startswith("reactor-admin|"):
                return line.strip()
        time.sleep(0.05)
    raise BenchError("the server printed no admin key")


def snapshot_rows(figures: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """The section's lines of the results table."""

    def ms(key: str) -> str:
        f = figures.get(key) or {}
        return f"{f.get('p50') or 0:.1f} / {f.get('p99') or 0:.1f} ms"

    n = figures.get("documents", 0)
    return [
        (
            "snapshot",
            f"import {n:,} docs (JSONL upload -> written)",
            f"{figures.get('import_docs_per_s', 0):,} docs/s, "
            f"{figures.get('import_mib_per_s', 0)} MiB/s",
            "",
            "",
            "",
        ),
        (
            "snapshot",
            f"export {n:,} docs (request -> ZIP downloaded)",
            f"{figures.get('export_docs_per_s', 0):,} docs/s, "
            f"{figures.get('export_mib_per_s', 0)} MiB/s",
            "",
            "",
            "",
        ),
        ("snapshot", "bystander query p50 / p99, idle", ms("bystander_idle_ms"), "", "", ""),
        (
            "snapshot",
            "bystander query p50 / p99, during export",
            ms("bystander_during_export_ms"),
            "",
            "",
            "",
        ),
    ]
