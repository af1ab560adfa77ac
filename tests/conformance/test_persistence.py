"""The Persistence conformance suite: every behaviour of ``reactor.core.persistence.Persistence``
written once, run on every engine (``conftest.persistence``), in the manner of Convex's
``persistence_test_suite.rs``.

Commits are shaped as ``reactor.engine.transaction`` builds them: one document version per
written document, and an index entry per ``by_creation_time`` and schema index key (the old key
tombstoned when it moves), each carrying the encoded document. Every write goes through
``conftest.store``. Reads happen at the newest stored timestamp unless a test is about older
ones: MongoDB keeps one version per document, so those tests say which engines they skip.
This module does not test the OCC commit or the change feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from functions.store import Order
from reactor.core.index_keys import BY_CREATION_TIME, index_id, index_key
from reactor.core.persistence import (
    Commit,
    DocumentLogEntry,
    IndexEntry,
    IndexRow,
    MutationRecord,
    Persistence,
)
from schema.errors import StorageUnavailable
from schema.ids import encode_id, new_internal_id
from schema.ordering import encode_value, key_prefix_end
from schema.values import Int64, dumps, loads

from .conftest import OpenAgain, close, skip_on, store

pytestmark = pytest.mark.anyio

NOTES = "notes"
TASKS = "tasks"
TABLE_NUMBERS = {NOTES: 10_001, TASKS: 10_002}
# Each table's indexes as a transaction writes them (by_id is never stored as entries).
INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    NOTES: {BY_CREATION_TIME: (), "by_n": ("n",)},
    TASKS: {BY_CREATION_TIME: (), "by_n": ("n",)},
}
# Idempotency records are kept two weeks past their commit, as Convex keeps session records.
MUTATION_RETENTION_NS = 14 * 24 * 3600 * 10**9

MVCC_ONLY = (
    "one version per document: an older timestamp is readable only through the snapshot its "
    "first read pinned (docs/mongodb.md, 'no old versions to read')"
)
UNISOLATED_SNAPSHOTS = "snapshot sessions are accepted but not isolated (docs/mongodb.md)"


# -- building commits -----------------------------------------------------------------------------


def new_id(table: str = NOTES) -> str:
    return encode_id(TABLE_NUMBERS[table], new_internal_id())


def note(created: float, **fields: Any) -> dict[str, Any]:
    """A new document of ``notes`` (system fields first, as stored)."""
    return {"_id": new_id(NOTES), "_creationTime": created, **fields}


def task(created: float, **fields: Any) -> dict[str, Any]:
    return {"_id": new_id(TASKS), "_creationTime": created, **fields}


def edited(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**doc, **fields}


@dataclass(frozen=True)
class Write:
    """One document's change in a commit: ``old`` None inserts, ``new`` None deletes."""

    table: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None


def insert(doc: dict[str, Any], table: str = NOTES) -> Write:
    return Write(table, None, doc)


def replace(old: dict[str, Any], new: dict[str, Any], table: str = NOTES) -> Write:
    return Write(table, old, new)


def delete(old: dict[str, Any], table: str = NOTES) -> Write:
    return Write(table, old, None)


def key(doc: dict[str, Any], index: str = "by_n", table: str = NOTES) -> bytes:
    return index_key(doc, INDEXES[table][index])


def commit(
    ts: int,
    *writes: Write,
    tables: dict[str, int] | None = None,
    mutation: MutationRecord | None = None,
) -> Commit:
    """The commit a transaction makes of ``writes``; ``tables`` defaults to the tables written
    (declaring a table already stored again is harmless)."""
    documents: list[DocumentLogEntry] = []
    entries: list[IndexEntry] = []
    for write in writes:
        current = write.new if write.new is not None else write.old
        assert current is not None
        doc_id = current["_id"]
        encoded = None if write.new is None else dumps(write.new)
        documents.append(DocumentLogEntry(doc_id, write.table, encoded, None))
        for name, fields in INDEXES[write.table].items():
            old_key = None if write.old is None else index_key(write.old, fields)
            new_key = None if write.new is None else index_key(write.new, fields)
            if old_key is not None and old_key != new_key:
                entries.append(IndexEntry(index_id(write.table, name), old_key, doc_id, None))
            if new_key is not None:
                entries.append(IndexEntry(index_id(write.table, name), new_key, doc_id, encoded))
    if tables is None:
        tables = {w.table: TABLE_NUMBERS[w.table] for w in writes}
    return Commit(ts, documents, entries, tables, () if mutation is None else (mutation,))


# -- reading --------------------------------------------------------------------------------------


async def get(persistence: Persistence, doc_id: str, ts: int) -> tuple[str, Any] | None:
    """(table, decoded document) of ``doc_id`` at ``ts``."""
    found = await persistence.get_document(doc_id, ts)
    return None if found is None else (found[0], loads(found[1]))


async def scan(
    persistence: Persistence,
    ts: int,
    index: str = "by_n",
    *,
    table: str = NOTES,
    order: Order = Order.ASC,
    start: bytes = b"",
    end: bytes | None = None,
    limit: int = 1000,
) -> list[IndexRow]:
    return await persistence.scan(index_id(table, index), start, end, ts, order, limit)


def ids(rows: list[IndexRow]) -> list[str]:
    return [row.document_id for row in rows]


def assert_same(actual: Any, expected: Any, path: str = "$") -> None:
    """Equal as Convex values: same types (int64 is not float64, bool is not a number), NaN
    equal to NaN, the sign of zero kept, object fields in the same order."""
    assert type(actual) is type(expected), f"{path}: {actual!r} is not {expected!r}"
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), f"{path}: {actual!r} is not NaN"
        else:
            assert actual == expected, f"{path}: {actual!r} != {expected!r}"
            assert math.copysign(1.0, actual) == math.copysign(1.0, expected), f"{path}: sign"
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: fields {list(actual)}"
        for name, value in expected.items():
            assert_same(actual[name], value, f"{path}.{name}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# -- documents ------------------------------------------------------------------------------------


async def test_a_stored_document_reads_back_with_its_table(persistence: Persistence) -> None:
    a = note(1.0, n=Int64(1), text="a")
    t = task(2.0, n=Int64(1), done=False)
    (ts,) = await store(persistence, commit(10, insert(a), insert(t, TASKS)))

    assert await get(persistence, a["_id"], ts) == (NOTES, a)
    assert await get(persistence, t["_id"], ts) == (TASKS, t)
    assert await get(persistence, new_id(NOTES), ts) is None  # a known table, no such id
    assert await get(persistence, encode_id(10_999, new_internal_id()), ts) is None
    assert await get(persistence, "not-an-id", ts) is None


async def test_documents_keep_every_value_type_exactly(persistence: Persistence) -> None:
    doc = note(
        1234.5,
        n=Int64(7),
        int64_min=Int64(-(2**63)),
        int64_max=Int64(2**63 - 1),
        one_int64=Int64(1),
        one_float=1.0,
        beyond_int53=2.0**53 + 2,
        neg_zero=-0.0,
        zero=0.0,
        nan=math.nan,
        inf=math.inf,
        neg_inf=-math.inf,
        subnormal=5e-324,
        yes=True,
        no=False,
        null=None,
        empty_string="",
        nul_inside="a\x00b",
        unicode="Grüße, 世界 \U0001f389 \U00010348",
        empty_bytes=b"",
        all_bytes=bytes(range(256)),
        array=[Int64(1), 1.0, None, [b"\x00"], {"k": "v"}, []],
        nested={"z": 1.0, "a": {"y": [], "b": {}}, "m": Int64(0), "ключ": "значение"},
    )
    (ts,) = await store(persistence, commit(10, insert(doc)))

    found = await get(persistence, doc["_id"], ts)
    assert found is not None and found[0] == NOTES
    assert_same(found[1], doc)
    (row,) = await scan(persistence, ts, BY_CREATION_TIME)
    assert (row.key, row.document_id) == (key(doc, BY_CREATION_TIME), doc["_id"])
    assert_same(loads(row.value), doc)


# -- index scans ----------------------------------------------------------------------------------


async def test_scan_returns_rows_in_key_byte_order_both_ways(persistence: Persistence) -> None:
    values: list[Any] = [
        None,
        Int64(-(2**63)),
        Int64(-1),
        Int64(0),
        Int64(2**40),
        -math.inf,
        -1.5,
        -0.0,
        0.0,
        5e-324,
        1.0,
        math.inf,
        math.nan,
        False,
        True,
        "",
        "a",
        "a\x00",
        "b",
        "é",
        b"",
        b"\x00",
        b"\xff",
        [],
        [None],
        {},
        {"a": None},
    ]
    docs = [note(float(i), n=value) for i, value in enumerate(values)]
    docs.append(note(99.0))  # no "n" at all: the key holds undefined
    # Stored over two commits, interleaved, so that no engine gets them in key order.
    await store(persistence, commit(10, *[insert(d) for d in docs[::2]]))
    (ts,) = await store(persistence, commit(20, *[insert(d) for d in docs[1::2]]))

    expected = sorted((key(d), d["_id"]) for d in docs)
    rows = await scan(persistence, ts)
    assert [(row.key, row.document_id) for row in rows] == expected
    rows = await scan(persistence, ts, order=Order.DESC)
    assert [(row.key, row.document_id) for row in rows] == expected[::-1]
    by_id = {d["_id"]: d for d in docs}
    for row in rows:
        assert_same(loads(row.value), by_id[row.document_id])


@pytest.mark.parametrize("prefix", ["", "p" * 3000], ids=["short", "long-common-prefix"])
async def test_scan_ranges_are_half_open_and_limits_cut_in_scan_order(
    persistence: Persistence, prefix: str
) -> None:
    docs = [note(float(i), n=prefix + letter) for i, letter in enumerate("dbeac")]
    (ts,) = await store(persistence, commit(10, *[insert(d) for d in docs]))
    rows = sorted((key(d), d["_id"]) for d in docs)
    keys = [k for k, _ in rows]

    starts = [b"", *keys]
    ends: list[bytes | None] = [None, *keys]
    for start in starts:
        for end in ends:
            want = [r for r in rows if r[0] >= start and (end is None or r[0] < end)]
            got = await scan(persistence, ts, start=start, end=end)
            assert [(r.key, r.document_id) for r in got] == want, (start, end)
            got = await scan(persistence, ts, start=start, end=end, order=Order.DESC)
            assert [(r.key, r.document_id) for r in got] == want[::-1], (start, end)
    for limit in range(1, len(rows) + 2):
        assert [r.key for r in await scan(persistence, ts, limit=limit)] == keys[:limit]
        got = await scan(persistence, ts, order=Order.DESC, limit=limit)
        assert [r.key for r in got] == keys[::-1][:limit]
    # The keys whose first value is exactly the second string: what an eq() range reads.
    second = encode_value(prefix + "b")
    got = await scan(persistence, ts, start=second, end=key_prefix_end(second))
    assert ids(got) == [rows[1][1]]


async def test_scans_see_only_their_own_index_and_table(persistence: Persistence) -> None:
    notes = [note(float(i), n=Int64(i)) for i in range(3)]
    tasks = [task(float(i), n=Int64(i)) for i in range(2)]
    (ts,) = await store(
        persistence,
        commit(10, *[insert(d) for d in notes], *[insert(d, TASKS) for d in tasks]),
    )

    assert ids(await scan(persistence, ts)) == [d["_id"] for d in notes]
    assert ids(await scan(persistence, ts, table=TASKS)) == [d["_id"] for d in tasks]
    assert ids(await scan(persistence, ts, BY_CREATION_TIME)) == [d["_id"] for d in notes]
    got = await scan(persistence, ts, BY_CREATION_TIME, table=TASKS)
    assert [r.key for r in got] == [key(d, BY_CREATION_TIME, TASKS) for d in tasks]
    assert await scan(persistence, ts, "by_other") == []


# -- deletes and overwrites ----------------------------------------------------------------------


async def test_a_deleted_document_and_its_index_keys_are_gone(persistence: Persistence) -> None:
    a, b, c = (note(float(i), n=Int64(i)) for i in range(3))
    await store(persistence, commit(10, insert(a), insert(b), insert(c)))
    (ts,) = await store(persistence, commit(20, delete(b)))

    assert await get(persistence, b["_id"], ts) is None
    assert await get(persistence, a["_id"], ts) == (NOTES, a)
    assert ids(await scan(persistence, ts)) == [a["_id"], c["_id"]]
    assert ids(await scan(persistence, ts, BY_CREATION_TIME, order=Order.DESC)) == [
        c["_id"],
        a["_id"],
    ]
    # A tombstone is not a row: a limit counts live rows only.
    assert ids(await scan(persistence, ts, limit=2)) == [a["_id"], c["_id"]]


@pytest.mark.parametrize("order", [Order.ASC, Order.DESC], ids=["asc", "desc"])
async def test_many_tombstones_before_live_rows_do_not_count_against_the_limit(
    persistence: Persistence, order: Order
) -> None:
    docs = [note(float(i), n=Int64(i)) for i in range(30)]
    await store(persistence, commit(10, *[insert(d) for d in docs]))
    # Delete the 25 rows the scan meets first.
    first = docs[:25] if order is Order.ASC else docs[5:]
    (ts,) = await store(persistence, commit(20, *[delete(d) for d in first]))

    live = [d["_id"] for d in (docs[25:] if order is Order.ASC else docs[4::-1])]
    assert ids(await scan(persistence, ts, order=order, limit=3)) == live[:3]
    assert ids(await scan(persistence, ts, order=order)) == live


async def test_a_new_version_replaces_the_document_and_moves_its_index_key(
    persistence: Persistence,
) -> None:
    a = note(1.0, n=Int64(1), text="first")
    b = note(2.0, n=Int64(3))
    await store(persistence, commit(10, insert(a), insert(b)))
    a2 = edited(a, n=Int64(5), text="second")
    (ts,) = await store(persistence, commit(20, replace(a, a2)))

    assert await get(persistence, a["_id"], ts) == (NOTES, a2)
    rows = await scan(persistence, ts)
    assert [(r.key, r.document_id) for r in rows] == [(key(b), b["_id"]), (key(a2), a["_id"])]
    assert loads(rows[1].value) == a2
    assert await scan(persistence, ts, start=key(a), end=key(b)) == []  # the old key is gone
    # Same creation-time key, new value.
    rows = await scan(persistence, ts, BY_CREATION_TIME)
    assert [r.key for r in rows] == [key(a, BY_CREATION_TIME), key(b, BY_CREATION_TIME)]
    assert loads(rows[0].value) == a2


async def test_index_entries_written_or_deleted_alone_leave_documents_alone(
    persistence: Persistence,
) -> None:
    """What an index back-fill and an index drop write: entries without their documents."""
    a = note(1.0, n=Int64(1), tag="x")
    b = note(2.0, n=Int64(2), tag="y")
    await store(persistence, commit(10, insert(a), insert(b)))
    by_tag = index_id(NOTES, "by_tag")
    tag_key = index_key(a, ("tag",))
    backfill = Commit(20, [], [IndexEntry(by_tag, tag_key, a["_id"], dumps(a))])
    (ts,) = await store(persistence, backfill)

    rows = await persistence.scan(by_tag, b"", None, ts, Order.ASC, 10)
    assert [(r.key, r.document_id) for r in rows] == [(tag_key, a["_id"])]
    assert loads(rows[0].value) == a
    assert ids(await scan(persistence, ts)) == [a["_id"], b["_id"]]

    drop = Commit(30, [], [IndexEntry(index_id(NOTES, "by_n"), key(a), a["_id"], None)])
    (ts,) = await store(persistence, drop)
    assert ids(await scan(persistence, ts)) == [b["_id"]]
    assert [r.key for r in await persistence.scan(by_tag, b"", None, ts, Order.ASC, 10)] == [
        tag_key
    ]
    assert await get(persistence, a["_id"], ts) == (NOTES, a)
    assert ids(await scan(persistence, ts, BY_CREATION_TIME)) == [a["_id"], b["_id"]]


# -- reads at older timestamps -------------------------------------------------------------------


async def test_a_read_at_a_timestamp_is_not_changed_by_later_commits(
    persistence: Persistence,
) -> None:
    skip_on(persistence, emulator=UNISOLATED_SNAPSHOTS)
    a = note(1.0, n=Int64(1))
    b = note(2.0, n=Int64(2))
    (t1,) = await store(persistence, commit(10, insert(a), insert(b)))

    async def reads(ts: int) -> tuple[Any, ...]:
        return (
            await get(persistence, a["_id"], ts),
            await get(persistence, b["_id"], ts),
            ids(await scan(persistence, ts)),
            ids(await scan(persistence, ts, BY_CREATION_TIME, order=Order.DESC)),
        )

    then = await reads(t1)
    assert then == ((NOTES, a), (NOTES, b), [a["_id"], b["_id"]], [b["_id"], a["_id"]])
    a2 = edited(a, n=Int64(9))
    c = note(3.0, n=Int64(3))
    (t2,) = await store(persistence, commit(20, replace(a, a2), delete(b), insert(c)))

    assert await reads(t2) == ((NOTES, a2), None, [c["_id"], a["_id"]], [c["_id"], a["_id"]])
    assert await reads(t1) == then


async def test_reads_at_any_earlier_timestamp_see_the_versions_then(
    persistence: Persistence,
) -> None:
    skip_on(persistence, mongo=MVCC_ONLY)
    a = [note(1.0, n=Int64(1))]
    b = note(2.0, n=Int64(50))
    stamps = await store(persistence, commit(10, insert(a[0]), insert(b)))
    for n in (60, 40, 70):  # a's key moves around b's
        a.append(edited(a[-1], n=Int64(n)))
        stamps += await store(persistence, commit(10 * (len(a)), replace(a[-2], a[-1])))
    stamps += await store(persistence, commit(50, delete(a[-1])))
    t1 = stamps[0]

    assert await get(persistence, a[0]["_id"], t1 - 1) is None
    assert await scan(persistence, t1 - 1) == []
    versions: list[dict[str, Any] | None] = [*a, None]
    for ts, until, version in zip(stamps, [*stamps[1:], stamps[-1] + 2], versions, strict=True):
        for at in sorted({ts, until - 1}):  # at a commit, and just before the next one
            found = await get(persistence, a[0]["_id"], at)
            assert found == (None if version is None else (NOTES, version)), at
            live = [b] if version is None else [b, version]
            want = sorted((key(d), d["_id"]) for d in live)
            rows = await scan(persistence, at)
            assert [(r.key, r.document_id) for r in rows] == want, at
    assert await get(persistence, b["_id"], t1) == (NOTES, b)


# -- bookkeeping ----------------------------------------------------------------------------------


async def test_max_ts_is_the_newest_commit_stored(persistence: Persistence) -> None:
    assert persistence.max_ts() == 0
    (t1,) = await store(persistence, commit(10, insert(note(1.0, n=Int64(1)))))
    assert persistence.max_ts() == t1
    t2, t3 = await store(
        persistence,
        commit(20, insert(note(2.0, n=Int64(2)))),
        commit(30, insert(note(3.0, n=Int64(3)))),
    )
    assert persistence.max_ts() == t3 > t2 > t1


async def test_everything_stored_survives_reopening(
    persistence: Persistence, open_again: OpenAgain
) -> None:
    assert persistence.max_ts() == 0
    a = note(1.0, n=Int64(1))
    t = task(2.0, n=Int64(2))
    ts = await store(
        persistence,
        commit(10, insert(a), mutation=MutationRecord("session", 4, b"\x00result")),
        commit(20, insert(t, TASKS)),
    )
    await persistence.set_global("cron_state", {"next": [1, 2]})
    await close(persistence)

    again = open_again()
    assert again.max_ts() == ts[-1]
    numbers = again.table_numbers()
    assert (numbers[NOTES], numbers[TASKS]) == (TABLE_NUMBERS[NOTES], TABLE_NUMBERS[TASKS])
    assert await get(again, a["_id"], ts[-1]) == (NOTES, a)
    assert await get(again, t["_id"], ts[-1]) == (TASKS, t)
    assert ids(await scan(again, ts[-1])) == [a["_id"]]
    assert ids(await scan(again, ts[-1], BY_CREATION_TIME, table=TASKS)) == [t["_id"]]
    assert await again.lookup_mutation("session", 4) == (ts[0], b"\x00result")
    assert await again.max_request_id("session") == 4
    assert await again.get_global("cron_state") == {"next": [1, 2]}


async def test_table_numbers_include_every_table_stored(persistence: Persistence) -> None:
    assert NOTES not in persistence.table_numbers()
    await store(persistence, commit(10, insert(note(1.0)), tables={NOTES: 10_001}))
    assert persistence.table_numbers()[NOTES] == 10_001
    assert TASKS not in persistence.table_numbers()
    # A table can be numbered before any document of it is written.
    await store(persistence, Commit(20, tables={TASKS: 10_002, "later": 10_003}))
    numbers = persistence.table_numbers()
    assert [numbers.get(name) for name in (NOTES, TASKS, "later")] == [10_001, 10_002, 10_003]


async def test_a_batch_of_commits_is_stored_in_order(persistence: Persistence) -> None:
    a = note(1.0, n=Int64(1))
    a2 = edited(a, n=Int64(2))
    a3 = edited(a, n=Int64(3))
    ts = await store(
        persistence,
        commit(10, insert(a), mutation=MutationRecord("s", 1, b"one")),
        commit(20, replace(a, a2), mutation=MutationRecord("s", 2, b"two")),
        commit(30, replace(a2, a3)),
    )
    assert len(ts) == 3 and ts[0] < ts[1] < ts[2]
    assert await get(persistence, a["_id"], ts[2]) == (NOTES, a3)
    assert [r.key for r in await scan(persistence, ts[2])] == [key(a3)]
    assert await persistence.lookup_mutation("s", 1) == (ts[0], b"one")
    assert await persistence.lookup_mutation("s", 2) == (ts[1], b"two")


async def test_a_batch_is_stored_whole_or_not_at_all(
    persistence: Persistence, open_again: OpenAgain
) -> None:
    kept = note(1.0, n=Int64(1))
    (t1,) = await store(persistence, commit(10, insert(kept)))
    lost = note(2.0, n=Int64(2))
    good = commit(20, insert(lost), mutation=MutationRecord("s", 1, b"lost"))
    # No engine can store this one: the same document twice at one timestamp, in a table
    # whose name MongoDB refuses.
    poison = task(3.0)
    bad = Commit(
        30,
        [DocumentLogEntry(poison["_id"], "bad$table", dumps(poison), None)] * 2,
        tables={"bad$table": 10_009},
    )
    with pytest.raises(StorageUnavailable):
        await store(persistence, good, bad)

    assert await get(persistence, lost["_id"], t1) is None
    assert ids(await scan(persistence, t1)) == [kept["_id"]]
    assert await persistence.lookup_mutation("s", 1) is None
    assert "bad$table" not in persistence.table_numbers()
    await close(persistence)
    again = open_again()
    assert again.max_ts() == t1
    assert "bad$table" not in again.table_numbers()
    assert await get(again, lost["_id"], t1) is None
    assert await get(again, kept["_id"], t1) == (NOTES, kept)


# -- idempotency records --------------------------------------------------------------------------


async def test_mutation_records_are_found_by_session_and_request(persistence: Persistence) -> None:
    assert await persistence.lookup_mutation("s1", 1) is None
    assert await persistence.max_request_id("s1") is None
    ts = await store(
        persistence,
        commit(10, insert(note(1.0)), mutation=MutationRecord("s1", 9, b"nine")),
        commit(20, insert(note(2.0)), mutation=MutationRecord("s1", 10, b"")),
        # A mutation that wrote nothing still leaves its record.
        Commit(30, mutations=(MutationRecord("s2", 2**40, b"\x00\xff"),)),
    )

    assert await persistence.lookup_mutation("s1", 9) == (ts[0], b"nine")
    assert await persistence.lookup_mutation("s1", 10) == (ts[1], b"")
    assert await persistence.lookup_mutation("s2", 2**40) == (ts[2], b"\x00\xff")
    assert await persistence.lookup_mutation("s1", 11) is None
    assert await persistence.lookup_mutation("s2", 9) is None
    assert await persistence.max_request_id("s1") == 10  # numeric, not text, order
    assert await persistence.max_request_id("s2") == 2**40
    assert await persistence.max_request_id("s3") is None


# -- globals --------------------------------------------------------------------------------------


async def test_globals_round_trip_and_overwrite(persistence: Persistence) -> None:
    assert await persistence.get_global("admin_key") is None
    values: dict[str, Any] = {
        "admin_key": "k-1",
        "count": 5,
        "ratio": 0.25,
        "enabled": True,
        "cron_state": {"daily": {"next_ts": 1_700_000_000_000_000_000, "runs": [1, 2]}},
        "names": ["a", "é", "世界"],
    }
    for name, value in values.items():
        await persistence.set_global(name, value)
    for name, value in values.items():
        assert await persistence.get_global(name) == value
    await persistence.set_global("count", 8)
    await persistence.set_global("cron_state", None)
    assert await persistence.get_global("count") == 8
    assert await persistence.get_global("cron_state") is None
    assert await persistence.get_global("admin_key") == "k-1"


# -- leases ---------------------------------------------------------------------------------------


async def test_a_lease_has_one_holder_until_released(persistence: Persistence) -> None:
    assert await persistence.acquire_lease("scheduler", "a", 30.0)
    assert not await persistence.acquire_lease("scheduler", "b", 30.0)
    assert await persistence.acquire_lease("scheduler", "a", 30.0)  # renewal
    assert await persistence.acquire_lease("crons", "b", 30.0)  # another name is independent
    await persistence.release_lease("scheduler", "b")  # not b's: a no-op
    assert not await persistence.acquire_lease("scheduler", "b", 30.0)
    await persistence.release_lease("scheduler", "a")
    assert await persistence.acquire_lease("scheduler", "b", 30.0)
    assert not await persistence.acquire_lease("scheduler", "a", 30.0)
    await persistence.release_lease("never-taken", "a")  # a no-op too
    assert await persistence.acquire_lease("never-taken", "b", 30.0)


async def test_a_lease_expires_unless_its_holder_renews_it(persistence: Persistence) -> None:
    ttl_s, step_s = 0.4, 0.25  # wall-clock expiry; margins of 0.1 s at least
    assert await persistence.acquire_lease("scheduler", "a", ttl_s)
    await anyio.sleep(step_s)
    assert await persistence.acquire_lease("scheduler", "a", ttl_s)  # renewed past 0.4 s
    await anyio.sleep(step_s)
    assert not await persistence.acquire_lease("scheduler", "b", ttl_s)  # 0.5 s: renewed
    await anyio.sleep(step_s)
    assert await persistence.acquire_lease("scheduler", "b", ttl_s)  # 0.75 s: expired
    assert not await persistence.acquire_lease("scheduler", "a", ttl_s)


# -- processes ------------------------------------------------------------------------------------


async def test_single_process_says_whether_a_second_open_is_refused(
    persistence: Persistence, open_again: OpenAgain
) -> None:
    a = note(1.0, n=Int64(1))
    (t1,) = await store(persistence, commit(10, insert(a)))
    if persistence.single_process:
        with pytest.raises(StorageUnavailable, match="in use"):
            open_again()
        assert await get(persistence, a["_id"], t1) == (NOTES, a)  # the first is untouched
        return

    other = open_again()  # a second process on the same storage
    assert await get(other, a["_id"], t1) == (NOTES, a)
    b = note(2.0, n=Int64(2))
    (t2,) = await store(other, commit(20, insert(b)))
    assert ids(await scan(persistence, t2)) == [a["_id"], b["_id"]]
    assert await persistence.acquire_lease("scheduler", "first", 30.0)
    assert not await other.acquire_lease("scheduler", "second", 30.0)


# -- retention ------------------------------------------------------------------------------------


async def test_pruning_keeps_what_reads_at_or_after_the_cutoff_see(
    persistence: Persistence,
) -> None:
    a = note(1.0, n=Int64(1))
    b = note(2.0, n=Int64(2))
    c = note(3.0, n=Int64(3))
    a2 = edited(a, n=Int64(7))
    await store(persistence, commit(10, insert(a), insert(b)))
    (t2,) = await store(persistence, commit(20, replace(a, a2), delete(b)))
    (t3,) = await store(persistence, commit(30, insert(c)))

    async def reads() -> tuple[Any, ...]:
        return (
            await get(persistence, a["_id"], t3),
            await get(persistence, b["_id"], t3),
            await get(persistence, c["_id"], t3),
            [(r.key, r.document_id, r.value) for r in await scan(persistence, t3)],
            ids(await scan(persistence, t3, BY_CREATION_TIME, order=Order.DESC)),
        )

    before = await reads()
    assert before[:3] == ((NOTES, a2), None, (NOTES, c))
    assert [row[:2] for row in before[3]] == [(key(c), c["_id"]), (key(a2), a["_id"])]
    assert await persistence.prune(0, t2) >= 0
    assert await reads() == before
    assert await persistence.prune(t2, t3) >= 0
    assert await reads() == before


async def test_pruning_forgets_versions_superseded_at_or_before_the_cutoff(
    persistence: Persistence,
) -> None:
    skip_on(persistence, mongo=MVCC_ONLY)
    a = note(1.0, n=Int64(1))
    b = note(2.0, n=Int64(2))
    d = note(4.0, n=Int64(4))
    a2 = edited(a, n=Int64(7))
    d2 = edited(d, n=Int64(8))
    (t1,) = await store(persistence, commit(10, insert(a), insert(b), insert(d)))
    (t2,) = await store(persistence, commit(20, replace(a, a2), delete(b)))
    (t3,) = await store(persistence, commit(30, replace(d, d2)))
    assert await get(persistence, a["_id"], t1) == (NOTES, a)  # history is there to forget

    assert await persistence.prune(0, t2) > 0
    # Superseded at or before t2: gone from older snapshots.
    assert await get(persistence, a["_id"], t1) is None
    assert await get(persistence, b["_id"], t1) is None
    assert ids(await scan(persistence, t1)) == [d["_id"]]
    # What a snapshot at the cutoff sees is kept, including d's version superseded after it.
    assert await get(persistence, a["_id"], t2) == (NOTES, a2)
    assert await get(persistence, d["_id"], t2) == (NOTES, d)
    assert ids(await scan(persistence, t2)) == [d["_id"], a["_id"]]
    assert await get(persistence, d["_id"], t3) == (NOTES, d2)
    assert await persistence.prune(0, t2) == 0  # nothing left to forget there


async def test_pruning_drops_idempotency_records_after_their_retention(
    persistence: Persistence,
) -> None:
    t1, t2 = await store(
        persistence,
        commit(10, insert(note(1.0)), mutation=MutationRecord("s", 1, b"old")),
        commit(20, insert(note(2.0)), mutation=MutationRecord("s", 2, b"new")),
    )
    await persistence.prune(0, t1 + MUTATION_RETENTION_NS)
    assert await persistence.lookup_mutation("s", 1) == (t1, b"old")  # exactly at retention

    await persistence.prune(0, t1 + MUTATION_RETENTION_NS + 1)
    assert await persistence.lookup_mutation("s", 1) is None
    assert await persistence.lookup_mutation("s", 2) == (t2, b"new")
    assert await persistence.max_request_id("s") == 2
