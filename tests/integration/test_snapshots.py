"""Snapshot export and import on the real engine, in process: export -> import into a fresh
deployment keeps documents, ids, creation times, references and file bytes; a hand-built
snapshot in Convex's layout (table numbers of another deployment) imports with references
re-encoded; bad input is refused with its file and line, leaving the table untouched; the
modes (require empty, append, replace); .jsonl, .json and .csv files; and an export taken
during a stream of transfers holds the conserved total."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reactor.errors import SnapshotError, SnapshotImportError
from reactor.operations.snapshot_export import export_snapshot
from reactor.operations.snapshot_import import ImportMode, import_snapshot
from reactor.operations.snapshot_input import ImportFormat, open_input
from reactor.server.deployment import Deployment
from reactor.testing import call, running_deployment, write_app
from schema.ids import decode_id, encode_id
from schema.values import Int64

pytestmark = pytest.mark.anyio

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v

        schema = define_schema(
            {
                "users": define_table(
                    {
                        "name": v.string(),
                        "age": v.optional(v.int64()),
                        "pinned": v.optional(v.id("messages")),
                    }
                ),
                "messages": define_table(
                    {
                        "author": v.id("users"),
                        "body": v.string(),
                        "file": v.optional(v.id("_storage")),
                    }
                ).index("by_author", ["author"]),
                "accounts": define_table({"balance": v.float64()}),
            }
        )
    """,
    "data.py": """
        from functions import action, mutation, query
        from schema import v

        @mutation(args={"name": v.string(), "age": v.int64()})
        async def add_user(ctx, name, age):
            return await ctx.db.insert("users", {"name": name, "age": age})

        @mutation(args={"author": v.id("users"), "body": v.string(),
                        "file": v.optional(v.id("_storage"))})
        async def add_message(ctx, author, body, file=None):
            doc = {"author": author, "body": body}
            if file is not None:
                doc["file"] = file
            return await ctx.db.insert("messages", doc)

        @action(args={"text": v.string()})
        async def store(ctx, text):
            return await ctx.storage.store(text.encode(), content_type="text/plain")

        @query
        async def dump(ctx):
            return {
                t: await ctx.db.query(t).collect() for t in ("users", "messages", "accounts")
            }

        @query
        async def files(ctx):
            return await ctx.db.system.query("_storage").collect()

        @mutation(args={"n": v.float64()})
        async def open_accounts(ctx, n):
            for _ in range(int(n)):
                await ctx.db.insert("accounts", {"balance": 100.0})

        @mutation(args={"a": v.id("accounts"), "b": v.id("accounts"), "amount": v.float64()})
        async def transfer(ctx, a, b, amount):
            x = await ctx.db.get(a)
            y = await ctx.db.get(b)
            await ctx.db.patch(a, {"balance": x["balance"] - amount})
            await ctx.db.patch(b, {"balance": y["balance"] + amount})
    """,
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", APP)


async def _value(deployment: Deployment, path: str, args: dict[str, Any] | None = None) -> Any:
    result = await call(deployment, path, args)
    assert result.success, result.error_message
    return result.value


@pytest.fixture
async def source(app_dir: Path, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running_deployment(app_dir, tmp_path / "source", background=False) as deployment:
        ada = await _value(deployment, "data:add_user", {"name": "Ada", "age": Int64(36)})
        bob = await _value(deployment, "data:add_user", {"name": "Bob", "age": Int64(2**40)})
        file_id = await _value(deployment, "data:store", {"text": "hello file"})
        await _value(deployment, "data:add_message", {"author": ada, "body": "hi", "file": file_id})
        await _value(deployment, "data:add_message", {"author": bob, "body": "yo"})
        yield deployment


async def _export(deployment: Deployment, *, include_storage: bool = True) -> bytes:
    out = io.BytesIO()
    await export_snapshot(
        deployment.persistence,
        deployment.database.snapshot_ts(),
        deployment.tables.numbers(),
        out,
        blobs=deployment.blobs,
        include_storage=include_storage,
    )
    return out.getvalue()


async def _import(
    deployment: Deployment,
    path: Path,
    *,
    mode: ImportMode = ImportMode.REQUIRE_EMPTY,
    table: str | None = None,
) -> Any:
    snapshot = open_input(path, ImportFormat.of_path(path), table=table)
    try:
        return await import_snapshot(deployment, snapshot, mode=mode)
    finally:
        snapshot.close()


async def test_export_has_convex_layout(source: Deployment) -> None:
    data = await _export(source)
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {"README.md", "_tables/documents.jsonl", "users/documents.jsonl"} <= names
    assert {"users/generated_schema.jsonl", "messages/documents.jsonl"} <= names
    assert "_storage/documents.jsonl" in names
    tables = [json.loads(line) for line in archive.read("_tables/documents.jsonl").splitlines()]
    assert {t["name"] for t in tables} >= {"users", "messages"}
    users = [json.loads(line) for line in archive.read("users/documents.jsonl").splitlines()]
    assert sorted(u["age"] for u in users) == [36, 2**40]  # int64: JSON integers
    raw = archive.read("users/documents.jsonl").decode()
    assert '"_creationTime":' in raw
    assert archive.read("users/generated_schema.jsonl") == b'"uniform"\n'
    (storage_line,) = archive.read("_storage/documents.jsonl").splitlines()
    row = json.loads(storage_line)
    content = archive.read(f"_storage/{row['_id']}.txt")
    assert content == b"hello file"
    assert base64.b64decode(row["sha256"]) == hashlib.sha256(content).digest()


async def test_round_trip_into_fresh_deployment(
    source: Deployment, app_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.zip"
    path.write_bytes(await _export(source))
    before = await _value(source, "data:dump")
    files_before = await _value(source, "data:files")
    async with running_deployment(app_dir, tmp_path / "fresh", background=False) as fresh:
        result = await _import(fresh, path)
        assert result.tables["users"] == 2 and result.files == 1
        assert await _value(fresh, "data:dump") == before
        assert await _value(fresh, "data:files") == files_before
        (message,) = [m for m in before["messages"] if "file" in m]
        assert await fresh.files.get(message["file"]) == b"hello file"
        # The imported table is live: new inserts work and get fresh ids.
        await _value(fresh, "data:add_user", {"name": "Cy", "age": Int64(1)})


async def test_refuses_non_empty_table_and_replace_and_append(
    source: Deployment, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.zip"
    path.write_bytes(await _export(source, include_storage=False))
    before = await _value(source, "data:dump")
    with pytest.raises(SnapshotImportError, match="'messages' is not empty.*--replace"):
        await _import(source, path)
    await _import(source, path, mode=ImportMode.REPLACE)
    assert await _value(source, "data:dump") == before
    with pytest.raises(SnapshotImportError, match="already exists"):
        await _import(source, path, mode=ImportMode.APPEND)
    assert await _value(source, "data:dump") == before


def _hand_built_snapshot(path: Path) -> dict[str, str]:
    """A snapshot in Convex's documented layout, with another deployment's table numbers
    (users 10005, messages 10006, _storage 7) and references between them."""
    internal = [bytes([i]) * 16 for i in range(1, 5)]
    user = encode_id(10005, internal[0])
    message = encode_id(10006, internal[1])
    storage = encode_id(7, internal[2])
    content = b"bytes from convex"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.md", "# Welcome to your Convex snapshot export!\n")
        archive.writestr(
            "_tables/documents.jsonl",
            '{"name":"users","id":10005}\n{"name":"messages","id":10006}\n',
        )
        archive.writestr(
            "users/documents.jsonl",
            json.dumps(
                {
                    "_id": user,
                    "_creationTime": 1700000000000.5,
                    "name": "Ada",
                    "age": 7,
                    "pinned": message,
                }
            )
            + "\n",
        )
        archive.writestr("users/generated_schema.jsonl", '"uniform"\n')
        archive.writestr(
            "messages/documents.jsonl",
            json.dumps(
                {
                    "_id": message,
                    "_creationTime": 1700000000001.25,
                    "author": user,
                    "body": "hello",
                    "file": storage,
                }
            )
            + "\n",
        )
        archive.writestr("messages/generated_schema.jsonl", '"uniform"\n')
        archive.writestr(
            "_storage/documents.jsonl",
            json.dumps(
                {
                    "_id": storage,
                    "_creationTime": 1699999999999.0,
                    "sha256": base64.b64encode(hashlib.sha256(content).digest()).decode(),
                    "size": len(content),
                    "contentType": "text/plain",
                }
            )
            + "\n",
        )
        archive.writestr(f"_storage/{storage}.txt", content)
    return {"user": user, "message": message, "storage": storage}


async def test_hand_built_convex_snapshot(app_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "convex.zip"
    ids = _hand_built_snapshot(path)
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        await _import(deployment, path)
        dump = await _value(deployment, "data:dump")
        (user,) = dump["users"]
        (message,) = dump["messages"]
        assert user["age"] == Int64(7) and user["_creationTime"] == 1700000000000.5
        assert message["author"] == user["_id"]  # the reference follows the user's new id
        assert user["pinned"] == message["_id"]  # and the other way round
        assert decode_id(user["_id"]).internal_id == decode_id(ids["user"]).internal_id
        assert decode_id(message["file"]).table_number == 2
        assert await deployment.files.get(message["file"]) == b"bytes from convex"
        (row,) = await _value(deployment, "data:files")
        assert row["_creationTime"] == 1699999999999.0 and row["contentType"] == "text/plain"


async def test_corrupt_line_names_table_and_line_and_writes_nothing(
    app_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bad.zip"
    lines = [json.dumps({"name": f"u{i}"}) for i in range(5)]
    lines[2] = '{"name": "broken'
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users/documents.jsonl", "\n".join(lines) + "\n")
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        with pytest.raises(SnapshotImportError, match=r"users/documents\.jsonl line 3: not valid"):
            await _import(deployment, path)
        assert (await _value(deployment, "data:dump"))["users"] == []


async def test_schema_violation_is_refused(app_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text('{"name": "ok"}\n{"name": 5}\n')
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        with pytest.raises(SnapshotImportError, match=r"users\.jsonl line 2: .*name"):
            await _import(deployment, path, table="users")
        assert (await _value(deployment, "data:dump"))["users"] == []


async def test_jsonl_json_and_csv_files(app_dir: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"balance": 1}\n{"balance": 2.5}\n')
    array = tmp_path / "b.json"
    array.write_text('[{"balance": 3}]')
    table = tmp_path / "c.csv"
    table.write_text("balance\n4\n5\n")
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        await _import(deployment, jsonl, table="accounts")
        await _import(deployment, array, table="accounts", mode=ImportMode.APPEND)
        await _import(deployment, table, table="accounts", mode=ImportMode.APPEND)
        accounts = (await _value(deployment, "data:dump"))["accounts"]
        assert sorted(a["balance"] for a in accounts) == [1.0, 2.5, 3.0, 4.0, 5.0]
        with pytest.raises(SnapshotImportError, match="needs --table"):
            open_input(jsonl, ImportFormat.JSON_LINES, table=None)


async def test_export_during_transfers_is_consistent(app_dir: Path, tmp_path: Path) -> None:
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        await _value(deployment, "data:open_accounts", {"n": 20})
        ids = [a["_id"] for a in (await _value(deployment, "data:dump"))["accounts"]]
        stop = asyncio.Event()

        async def transfers() -> None:
            i = 0
            while not stop.is_set():
                a, b = ids[i % 20], ids[(i * 7 + 3) % 20]
                if a != b:
                    await _value(deployment, "data:transfer", {"a": a, "b": b, "amount": 1.5})
                i += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(transfers())
        try:
            for _ in range(5):
                data = await _export(deployment, include_storage=False)
                archive = zipfile.ZipFile(io.BytesIO(data))
                rows = archive.read("accounts/documents.jsonl").splitlines()
                assert len(rows) == 20
                assert sum(json.loads(r)["balance"] for r in rows) == 2000.0
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await task


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"balance": 1, "_secret": 2}', "'_secret' starts with '_'"),
        ('{"_id": "nope", "balance": 1}', "is not a valid document id"),
        ('{"_creationTime": "yesterday", "balance": 1}', "_creationTime must be a number"),
        ("[1, 2]", "each row must be a JSON object"),
        ('{"balance": 1e308, "_": "' + "x" * (1 << 20) + '"}', "starts with '_'"),
    ],
)
async def test_bad_rows_are_named(app_dir: Path, tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"balance": 1}\n' + line + "\n")
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        with pytest.raises(
            SnapshotImportError, match=r"rows\.jsonl line 2: .*" + re.escape(message)
        ):
            await _import(deployment, path, table="accounts")
        assert (await _value(deployment, "data:dump"))["accounts"] == []


async def test_too_large_document_is_refused(app_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text('{"name": "' + "x" * (1 << 20) + '"}\n')
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        with pytest.raises(
            SnapshotImportError, match=r"users\.jsonl line 1: .*more than the limit"
        ):
            await _import(deployment, path, table="users")


async def test_export_refuses_when_retention_pruned_its_snapshot(source: Deployment) -> None:
    ts = source.database.snapshot_ts()
    await source.persistence.set_global("pruned_through", ts)  # as retention records a prune
    with pytest.raises(SnapshotError, match="longer than the retention window"):
        await export_snapshot(source.persistence, ts, source.tables.numbers(), io.BytesIO())


async def test_replace_swaps_a_small_table_in_one_commit(app_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text("".join(f'{{"balance": {i}}}\n' for i in range(30)))
    new = tmp_path / "new.jsonl"
    new.write_text("".join(f'{{"balance": {i}}}\n' for i in range(500)))
    async with running_deployment(app_dir, tmp_path / "d", background=False) as deployment:
        await _import(deployment, old, table="accounts")
        seen: set[int] = set()
        task = asyncio.create_task(
            _import(deployment, new, table="accounts", mode=ImportMode.REPLACE)
        )
        while not task.done():
            seen.add(len((await _value(deployment, "data:dump"))["accounts"]))
            await asyncio.sleep(0)
        await task
        seen.add(len((await _value(deployment, "data:dump"))["accounts"]))
        assert seen <= {30, 500} and 500 in seen  # never empty, never half written
