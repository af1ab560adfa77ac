"""Tests for the MongoDB test harness (reactor/testing_mongo.py, tests/mongo/conftest.py)."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from bson.int64 import Int64
from pymongo import AsyncMongoClient, MongoClient
from pymongo.uri_parser import parse_uri

from reactor.testing.mongo import drop_database_quietly, mongoeco_server, unique_database_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]

NAME = re.compile(r"^reactor_test_[0-9a-f]{12}$")


# -- unique_database_url (pure) ---------------------------------------------


@pytest.mark.parametrize(
    ("base", "prefix", "netloc", "query"),
    [
        ("mongodb://h:1/?directConnection=true", "mongodb://", "h:1", "directConnection=true"),
        ("mongodb://h/app?replicaSet=rs0", "mongodb://", "h", "replicaSet=rs0"),
        ("mongodb://h:1", "mongodb://", "h:1", ""),
        ("mongodb://h:1/", "mongodb://", "h:1", ""),
        ("mongodb://h:1/app", "mongodb://", "h:1", ""),
        (
            "mongodb://u:p@h1:1,h2:2/app?replicaSet=rs0&w=majority",
            "mongodb://",
            "u:p@h1:1,h2:2",
            "replicaSet=rs0&w=majority",
        ),
        ("mongodb+srv://c.example.com/?tls=true", "mongodb+srv://", "c.example.com", "tls=true"),
    ],
)
def test_unique_database_url_replaces_database(
    base: str, prefix: str, netloc: str, query: str
) -> None:
    url = unique_database_url(base)
    assert url.startswith(prefix)
    parts = urlsplit(url)
    assert parts.netloc == netloc
    assert parts.query == query
    assert NAME.match(parts.path.removeprefix("/")), url
    assert url == f"{prefix}{netloc}{parts.path}" + (f"?{query}" if query else "")


def test_unique_database_url_examples_parse_with_pymongo() -> None:
    url = unique_database_url("mongodb://h:1/?directConnection=true")
    parsed = parse_uri(url)
    assert NAME.match(parsed["database"] or "")
    assert parsed["options"]["directConnection"] is True
    url = unique_database_url("mongodb://h/app?replicaSet=rs0")
    parsed = parse_uri(url)
    assert NAME.match(parsed["database"] or "")
    assert parsed["options"]["replicaSet"] == "rs0"


def test_unique_database_url_prefix_and_randomness() -> None:
    url = unique_database_url("mongodb://h/?directConnection=true", prefix="px")
    assert re.match(r"^mongodb://h/px_[0-9a-f]{12}\?directConnection=true$", url), url
    names = {urlsplit(unique_database_url("mongodb://h/")).path for _ in range(50)}
    assert len(names) == 50


# -- against a server -------------------------------------------------------


def test_base_url_pings(mongo_base_url: str, mongo_is_emulator: bool) -> None:
    if mongo_is_emulator:
        assert parse_qs(urlsplit(mongo_base_url).query) == {"directConnection": ["true"]}
    client: MongoClient[dict[str, object]] = MongoClient(
        mongo_base_url, serverSelectionTimeoutMS=5000
    )
    try:
        assert client.admin.command("ping")["ok"] == 1.0
    finally:
        client.close()


def test_mongo_url_is_unique_per_test(mongo_url: str, mongo_base_url: str) -> None:
    assert mongo_url != mongo_base_url
    assert NAME.match(parse_uri(mongo_url)["database"] or "")


async def _round_trip(url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    try:
        db = client.get_default_database()
        coll = db["docs"]
        await coll.insert_one({"_id": "a", "n": Int64(7), "b": b"\x00\xff", "s": "x"})
        await coll.insert_many([{"_id": f"k{i}", "i": i} for i in range(5)])
        got = await coll.find_one({"_id": "a"})
        assert got == {"_id": "a", "n": 7, "b": b"\x00\xff", "s": "x"}
        assert got is not None and type(got["n"]) is Int64
        rows = await coll.find({"i": {"$gte": 2}}).sort("i", -1).limit(2).to_list()
        assert [r["_id"] for r in rows] == ["k4", "k3"]
        assert await coll.count_documents({}) == 6
        assert await db.list_collection_names() == ["docs"]
    finally:
        await client.close()


def test_insert_find_round_trip_async(mongo_url: str) -> None:
    asyncio.run(_round_trip(mongo_url))


def test_drop_database_quietly(mongo_url: str) -> None:
    name = parse_uri(mongo_url)["database"]
    client: MongoClient[dict[str, object]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        client.get_default_database()["c"].insert_one({"x": 1})
        assert name in client.list_database_names()
        drop_database_quietly(mongo_url)
        assert name not in client.list_database_names()
    finally:
        client.close()
    # Unreachable server: ignored, and bounded by serverSelectionTimeoutMS.
    drop_database_quietly("mongodb://127.0.0.1:1/x?directConnection=true", timeout_ms=200)


def test_mongoeco_server_missing_venv(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"\.venv-mongoeco/bin/python is missing"):
        with mongoeco_server(tmp_path):
            pass


def test_mongoeco_server_starts_and_stops(mongo_is_emulator: bool) -> None:
    if not mongo_is_emulator:
        pytest.skip("mongoeco is not the MongoDB under test")
    with mongoeco_server(PROJECT_ROOT) as url:
        assert re.fullmatch(r"mongodb://127\.0\.0\.1:\d+/\?directConnection=true", url), url
        port = urlsplit(url).port
        assert port is not None
        client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("ping")["ok"] == 1.0
        finally:
            client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
