"""The MongoDB engine through the real PyMongo driver: layout and value fidelity, two servers
(two ``Deployment``, each with its own client, committer and feed) on one database, write skew,
invalidation across servers, the scheduler lease, idempotency records and configuration errors.

Against the mongoeco emulator (no change streams) the feed polls the commit log
(``reactorFeed=poll``); with ``REACTOR_TEST_MONGODB_URL`` set to a replica set the change stream
is used. Conflicting *concurrent* MongoDB transactions are not exercised on the emulator (its
conflicts are server-wide and unlabelled): the interleavings below are sequential.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson.int64 import Int64 as BsonInt64
from pymongo import MongoClient

from functions.loader import load_app
from reactor.core.persistence import PublishedCommit
from reactor.runners.pool import RunnerSettings
from reactor.server.deployment import Deployment
from reactor.storage import open_reader, open_storage
from reactor.storage.mongo import engine as mongo_engine
from reactor.storage.mongo.engine import MongoPersistence, parse_mongo_url
from reactor.testing import call, write_app
from schema.errors import StorageUnavailable
from schema.ordering import Order
from schema.values import Int64, loads

pytestmark = pytest.mark.anyio

SCHEMA = """
from schema import define_schema, define_table, v
schema = define_schema({
    "doctors": define_table({"name": v.string(), "on_call": v.boolean()})
        .index("by_call", ["on_call"]),
    "things": define_table({"n": v.int64(), "f": v.float64(), "b": v.bytes(),
                            "o": v.any()}).index("by_n", ["n"]),
})
"""

DOCTORS = """
from functions import query, mutation
from schema import v

pause = None  # set by the test: awaited once, after the reads of go_off

@mutation(args={"name": v.string()})
async def add(ctx, name):
    return await ctx.db.insert("doctors", {"name": name, "on_call": True})

@mutation(args={"name": v.string()})
async def go_off(ctx, name):
    global pause
    on_call = await ctx.db.query("doctors").with_index(
        "by_call", lambda q: q.eq("on_call", True)).collect()
    if pause is not None:
        gate, pause = pause, None
        await gate()
    if len(on_call) < 2:
        return "refused"
    me = [d for d in on_call if d["name"] == name][0]
    await ctx.db.patch(me["_id"], {"on_call": False})
    return "off"

@query(args={})
async def on_call(ctx):
    docs = await ctx.db.query("doctors").with_index(
        "by_call", lambda q: q.eq("on_call", True)).collect()
    return sorted(d["name"] for d in docs)

@mutation(args={"n": v.int64(), "f": v.float64(), "b": v.bytes(), "o": v.any()})
async def thing(ctx, n, f, b, o):
    return await ctx.db.insert("things", {"n": n, "f": f, "b": b, "o": o})

@query(args={})
async def things(ctx):
    return await ctx.db.query("things").with_index("by_n").collect()
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", {"schema.py": SCHEMA, "doctors.py": DOCTORS})


@pytest.fixture
def storage_url(mongo_url: str, mongo_is_emulator: bool) -> str:
    return mongo_url + ("&reactorFeed=poll" if mongo_is_emulator else "")


@contextlib.asynccontextmanager
async def server(app_dir: Path, url: str, tmp_path: Path, name: str) -> AsyncIterator[Deployment]:
    deployment = Deployment(
        load_app(app_dir),
        MongoPersistence.open(url),
        instance_name=name,
        blob_directory=tmp_path / f"blobs-{name}",
    )
    await deployment.start()
    try:
        yield deployment
    finally:
        await deployment.stop()


@pytest.fixture
def raw(storage_url: str) -> Iterator[Any]:
    client_url, database, _ = parse_mongo_url(storage_url)
    client: MongoClient[dict[str, Any]] = MongoClient(client_url)
    try:
        yield client[database]
    finally:
        client.close()


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)


async def test_layout_is_a_collection_per_table_with_convex_fidelity(
    app_dir: Path, storage_url: str, tmp_path: Path, raw: Any
) -> None:
    async with server(app_dir, storage_url, tmp_path, "a") as a:
        made = await call(
            a,
            "doctors:thing",
            {
                "n": Int64(2**40),
                "f": 2.0,
                "b": b"\x00\xff",
                "o": {"nested": [Int64(-1), None, "s"]},
            },
        )
        assert made.success, made.error_message
        back = await call(a, "doctors:things")
        assert back.value[0]["n"] == Int64(2**40) and back.value[0]["b"] == b"\x00\xff"
        assert back.value[0]["o"] == {"nested": [Int64(-1), None, "s"]}
    stored = raw["things"].find_one({"_id": made.value})
    assert isinstance(stored["n"], BsonInt64) and stored["n"] == 2**40
    assert isinstance(stored["f"], float) and stored["f"] == 2.0
    assert bytes(stored["b"]) == b"\x00\xff"
    assert isinstance(stored["o"]["nested"][0], BsonInt64)
    assert isinstance(stored["_creationTime"], float)
    assert set(stored["_rx"]["k"]) == {"by_id", "by_creation_time", "by_n"}
    assert isinstance(stored["_rx"]["ts"], int)
    indexes = {ix["name"]: list(ix["key"].keys()) for ix in raw["things"].list_indexes()}
    assert indexes["by_n"] == ["n", "_creationTime", "_id"]
    assert indexes["_rx_by_n"] == ["_rx.k.by_n"]
    names = set(raw.list_collection_names())
    assert {
        "_reactor_meta",
        "_reactor_commits",
        "_reactor_tables",
        "_reactor_globals",
        "_reactor_mutations",
        "doctors",
        "things",
        "_scheduled_functions",
    } <= names
    assert raw["_reactor_globals"].find_one({"_id": "admin_key"}) is not None
    entry = raw["_reactor_commits"].find_one({"_id": stored["_rx"]["ts"]})
    assert entry is not None and "things.by_n" in entry["keys"]


async def test_write_skew_across_two_servers_is_impossible(
    app_dir: Path, storage_url: str, tmp_path: Path
) -> None:
    async with (
        server(app_dir, storage_url, tmp_path, "a") as a,
        server(app_dir, storage_url, tmp_path, "b") as b,
    ):
        for name in ("alice", "bob"):
            assert (await call(a, "doctors:add", {"name": name})).success
        await eventually(lambda: _on_call(b, 2))
        # Alice (on server A) reads both doctors on call, then waits while Bob (on server B)
        # goes off call and commits; her commit must then conflict and her retry refuse.
        resume = asyncio.Event()
        reading = asyncio.Event()

        async def gate() -> None:
            reading.set()
            await resume.wait()

        doctors: Any = a.app.import_module("doctors")
        doctors.pause = gate
        alice = asyncio.create_task(call(a, "doctors:go_off", {"name": "alice"}))
        await reading.wait()
        bob = await call(b, "doctors:go_off", {"name": "bob"})
        assert bob.success and bob.value == "off"
        resume.set()
        result = await alice
        assert result.success and result.value == "refused"
        assert a.committer.conflicts >= 1
        assert (await call(a, "doctors:on_call")).value == ["alice"]
        assert await eventually(lambda: _on_call(b, 1))


async def _on_call(deployment: Deployment, count: int) -> bool:
    return len((await call(deployment, "doctors:on_call")).value) == count


async def test_a_commit_on_one_server_invalidates_live_queries_on_the_other(
    app_dir: Path, storage_url: str, tmp_path: Path
) -> None:
    async with (
        server(app_dir, storage_url, tmp_path, "a") as a,
        server(app_dir, storage_url, tmp_path, "b") as b,
    ):
        spec = b.registry.resolve("doctors:on_call")
        first = await b.executor.run_query(spec, {})
        assert first.value == [] and first.read_set is not None
        hit: list[Any] = []
        read_set = first.read_set

        def spy(commit: PublishedCommit) -> None:
            if read_set.overlaps(commit.write_keys) is not None:
                hit.append("watcher")

        b.publisher.subscribe(spy)
        unrelated = await call(a, "doctors:thing", {"n": Int64(1), "f": 1.0, "b": b"", "o": 1})
        assert unrelated.success
        assert await eventually(lambda: _published(b, unrelated.ts))
        assert hit == []  # another table: not invalidated
        made = await call(a, "doctors:add", {"name": "carol"})
        assert await eventually(lambda: _hit(hit))
        assert hit == ["watcher"]
        again = await b.executor.run_query(spec, {})
        assert again.value == ["carol"] and again.ts >= b.committer.published_ts - 1
        assert made.success


async def _published(deployment: Deployment, ts: int) -> bool:
    return deployment.committer.published_ts >= ts


async def _hit(hit: list[Any]) -> bool:
    return bool(hit)


async def test_scheduler_lease_runs_jobs_in_one_process_only(
    app_dir: Path, storage_url: str, tmp_path: Path
) -> None:
    async with server(app_dir, storage_url, tmp_path, "a") as a:
        async with server(app_dir, storage_url, tmp_path, "b") as b:
            assert a.leadership.leading and not b.leadership.leading
        # a still leads after b stopped; and b's stop released nothing of a's.
        assert a.leadership.leading
        assert await a.persistence.acquire_lease("scheduler", "someone-else", 5.0) is False


async def test_idempotency_records_are_shared_by_every_server(
    app_dir: Path, storage_url: str, tmp_path: Path
) -> None:
    async with (
        server(app_dir, storage_url, tmp_path, "a") as a,
        server(app_dir, storage_url, tmp_path, "b") as b,
    ):
        spec = a.registry.resolve("doctors:add")
        first = await a.executor.run_mutation(spec, {"name": "dan"}, idempotency_key=("s1", 7))
        again = await b.executor.run_mutation(spec, {"name": "dan"}, idempotency_key=("s1", 7))
        assert first.success and again.success and again.value == first.value
        assert (await call(b, "doctors:on_call")).value == ["dan"]
        assert await b.persistence.max_request_id("s1") == 7


def test_bad_storage_urls_are_refused_with_clear_errors(
    storage_url: str, mongo_is_emulator: bool
) -> None:
    with pytest.raises(ValueError, match="reactorFeed"):
        open_storage(storage_url.split("reactorFeed")[0] + "&reactorFeed=sometimes", ".")
    with pytest.raises(ValueError, match="database name"):
        open_storage("mongodb://127.0.0.1:1/bad.name", ".")
    with pytest.raises(StorageUnavailable, match="Cannot open MongoDB storage"):
        MongoPersistence.open("mongodb://127.0.0.1:1/x", timeout_s=0.3)
    if mongo_is_emulator:  # a standalone server: change streams are impossible
        plain = storage_url.replace("&reactorFeed=poll", "")
        with pytest.raises(StorageUnavailable, match="not a replica set"):
            MongoPersistence.open(plain)


async def test_a_reader_writes_nothing_and_sees_what_the_server_committed(
    storage_url: str, raw: Any, app_dir: Path, tmp_path: Path
) -> None:
    # A function runner opens the database as a reader: on an empty database it creates no
    # collection, index or sequence document (on the emulator any write fails every
    # transaction in flight, so runners starting beside a commit made it fail).
    reader = open_reader(storage_url)
    try:
        assert raw.list_collection_names() == []
    finally:
        await reader.aclose()
    async with server(app_dir, storage_url, tmp_path, "a") as a:
        await call(a, "doctors:add", {"name": "ann"})
        collections = sorted(raw.list_collection_names())
        indexes = {name: sorted(raw[name].index_information()) for name in collections}
        reader = open_reader(a.persistence.reader_url)
        try:
            assert reader.table_numbers()["doctors"] == a.persistence.table_numbers()["doctors"]
            rows = await reader.scan(
                "doctors.by_id", b"", None, a.committer.published_ts, Order.ASC, 10
            )
            assert [loads(row.value)["name"] for row in rows] == ["ann"]
        finally:
            await reader.aclose()
        assert sorted(raw.list_collection_names()) == collections
        assert {name: sorted(raw[name].index_information()) for name in collections} == indexes


async def test_a_reader_retires_its_superseded_snapshots(
    storage_url: str, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A function runner has no change feed to retire its snapshots: each newer one does, once
    # the older ones have been superseded for SNAPSHOT_KEEP_S (0 here; 120 s in service).
    monkeypatch.setattr(mongo_engine, "SNAPSHOT_KEEP_S", 0.0)
    async with server(app_dir, storage_url, tmp_path, "a") as a:
        reader = MongoPersistence.open(a.persistence.reader_url, reader=True)
        try:
            seen = []
            for name in ("ann", "bob", "cat"):
                await call(a, "doctors:add", {"name": name})
                seen.append(a.committer.published_ts)
                await reader.snapshot(seen[-1])
            assert sorted(reader._snapshots) == seen[1:]  # the first: superseded, then gone
            rows = await reader.scan("doctors.by_id", b"", None, seen[-1], Order.ASC, 10)
            assert len(rows) == 3
        finally:
            await reader.aclose()


async def test_a_function_runner_reads_at_a_tick_of_an_idle_feed(
    storage_url: str, app_dir: Path, tmp_path: Path
) -> None:
    # An idle feed publishes a new ts without a commit every HEARTBEAT_S (a fresh snapshot).
    # A runner asked to read there must not wait for a commit at that ts, which never comes:
    # every query through runners timed out until the next commit.
    persistence = MongoPersistence.open(storage_url)
    deployment = await Deployment.from_directory(
        app_dir,
        persistence,
        blob_directory=tmp_path / "blobs",
        runners=RunnerSettings(query_runners=1, action_runners=1),
    )
    await deployment.start(background=False)
    try:
        await call(deployment, "doctors:add", {"name": "ann"})
        committed = deployment.publisher.published_ts
        assert deployment.publisher.tick() > committed == deployment.publisher.last_commit_ts
        result = await call(deployment, "doctors:on_call", {})
        assert (result.success, result.value) == (True, ["ann"]), result.error_message
        assert (await call(deployment, "doctors:add", {"name": "bob"})).success
    finally:
        await deployment.stop()
    # The reader's side: told which commit the snapshot of a tick must hold, it reads at once.
    async with server(app_dir, storage_url, tmp_path, "a") as a:
        ticked = a.publisher.tick()
        reader = MongoPersistence.open(a.persistence.reader_url, reader=True)
        try:
            reader.expect_commit(ticked, a.publisher.last_commit_ts)
            rows = await reader.scan("doctors.by_id", b"", None, ticked, Order.ASC, 10)
            assert len(rows) == 2
        finally:
            await reader.aclose()
