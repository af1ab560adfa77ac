"""The commit path and the change feed of ``Persistence``: ``commit`` (a batch of transactions
checked for conflicts and stored) and ``open_feed`` (every commit delivered once, in timestamp
order), written once and run on every engine (``conftest.persistence``).

The engine is driven as a server drives it: the feed's sink is a ``Publisher`` over a fresh
``WriteLog``; a transaction reads the engine at its snapshot (the published timestamp), recording
its read set as ``reactor.engine.transaction`` does (a point of ``by_id`` per document read, an
interval per index range scanned); its request carries the keys ``prepare_commit`` computes
(``by_id`` and every index, old and new, with their element-boundary prefixes); and every
accepted commit is awaited until published. Setup commits go through ``commit`` too, so each
conflict is one the engine learnt of through its own commit path. This module does not test
storing and reading outside the commit path (``test_persistence.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from functions.store import Order
from reactor.core.index_keys import BY_ID, id_key, index_id, index_key_prefixes
from reactor.core.intervals import Interval
from reactor.core.persistence import (
    ChangeFeed,
    CommitRequest,
    CommitResult,
    MutationRecord,
    Persistence,
    PublishedCommit,
)
from reactor.core.reads import ReadSet
from reactor.core.runtime import SystemRuntime
from reactor.core.write_log import WriteLog
from reactor.engine.feed import Publisher
from schema.errors import OptimisticConcurrencyError
from schema.ordering import encode_value
from schema.values import Int64, loads

from .conftest import skip_on
from .test_persistence import (
    INDEXES,
    NOTES,
    TASKS,
    Write,
    commit,
    delete,
    edited,
    insert,
    key,
    note,
    replace,
    task,
)

pytestmark = pytest.mark.anyio

PUBLISH_TIMEOUT_S = 5.0
POLLED_WRITES = (
    "the polling feed reads the commit log, which records the deleted documents of a commit but "
    "not the values it wrote"
)
UNREAD_SNAPSHOT = (
    "a request with a read set is refused unless this process read storage at its begin_ts "
    "(visible_reactor_ts is None without a snapshot session), conflict or not"
)

# -- the harness ----------------------------------------------------------------------------------


@dataclass
class Fed:
    """An engine with its change feed open into a ``Publisher``, committing as the committer
    does (``reactor.engine.committer``)."""

    persistence: Persistence
    write_log: WriteLog
    publisher: Publisher
    feed: ChangeFeed
    published: list[PublishedCommit] = field(default_factory=list)  # what the sink received
    floor: int = 0  # ``next_ts`` never returns less
    _last: int = 0

    @property
    def snapshot(self) -> int:
        """The published timestamp: where a new transaction reads."""
        return self.publisher.published_ts

    def next_ts(self) -> int:
        ts = max(time.time_ns(), self._last + 1, self.publisher.published_ts + 1, self.floor)
        self._last = ts
        return ts

    async def commit(self, *requests: CommitRequest) -> list[CommitResult]:
        """Commit ``requests`` as one batch; returns once every accepted one is published."""
        results = await self.persistence.commit(
            list(requests), write_log=self.write_log, next_ts=self.next_ts
        )
        assert len(results) == len(requests)
        self.feed.poke()
        accepted = [r for r in results if not isinstance(r, OptimisticConcurrencyError)]
        if accepted:
            await asyncio.wait_for(self.publisher.wait_published(max(accepted)), PUBLISH_TIMEOUT_S)
        return results

    async def accept(self, *requests: CommitRequest) -> list[int]:
        """Commit ``requests`` as one batch that must be accepted whole; their timestamps."""
        results = await self.commit(*requests)
        accepted = [r for r in results if not isinstance(r, OptimisticConcurrencyError)]
        assert accepted == results, results
        return accepted

    async def seed(self, *writes: Write) -> int:
        """Commit ``writes`` blindly (nothing read); their timestamp."""
        (ts,) = await self.accept(Txn(self.persistence, self.snapshot).request(*writes))
        return ts


@pytest.fixture
async def fed(persistence: Persistence) -> AsyncIterator[Fed]:
    write_log = WriteLog()
    publisher = Publisher(write_log, published_ts=persistence.max_ts(), runtime=SystemRuntime())
    feed = persistence.open_feed(
        publisher, indexes=lambda table: INDEXES.get(table, {}), checkpoint_key="conformance"
    )
    harness = Fed(persistence, write_log, publisher, feed)
    publisher.subscribe(harness.published.append)
    feed.start()
    try:
        yield harness
    finally:
        await feed.stop()


class Txn:
    """A transaction at snapshot ``ts``: reads the engine, recording what it read."""

    def __init__(self, persistence: Persistence, ts: int) -> None:
        self.persistence = persistence
        self.ts = ts
        self.read_set = ReadSet()

    async def get(self, doc: dict[str, Any], table: str = NOTES) -> dict[str, Any] | None:
        self.read_set.add_point(index_id(table, BY_ID), id_key(doc["_id"]))
        found = await self.persistence.get_document(doc["_id"], self.ts)
        return None if found is None else dict(loads(found[1]))

    async def scan(self, lo: Any, hi: Any, table: str = NOTES) -> list[str]:
        """Ids of the documents with ``lo <= n < hi`` (``by_n``)."""
        start, end = encode_value(lo), encode_value(hi)
        self.read_set.add(index_id(table, "by_n"), Interval(start, end))
        rows = await self.persistence.scan(
            index_id(table, "by_n"), start, end, self.ts, Order.ASC, 1000
        )
        return [row.document_id for row in rows]

    def request(self, *writes: Write, mutation: MutationRecord | None = None) -> CommitRequest:
        keys, prefixes = written_keys(writes)
        return CommitRequest(
            self.ts,
            self.read_set,
            keys,
            lambda ts: commit(ts, *writes),
            writes[0].table if writes else None,
            [(w.table, document(w)["_id"], w.new) for w in writes],
            prefixes,
            () if mutation is None else (mutation,),
        )


def document(write: Write) -> dict[str, Any]:
    current = write.new if write.new is not None else write.old
    assert current is not None
    return current


def written_keys(
    writes: tuple[Write, ...],
) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """The written keys and prefixes of ``writes``, as ``Transaction.prepare_commit`` has them."""
    keys: dict[str, list[bytes]] = {}
    prefixes: dict[str, list[bytes]] = {}
    for write in writes:
        keys.setdefault(index_id(write.table, BY_ID), []).append(id_key(document(write)["_id"]))
        for name, fields in INDEXES[write.table].items():
            iid = index_id(write.table, name)
            old_key = None
            if write.old is not None:
                old_key, old_prefixes = index_key_prefixes(write.old, fields)
                keys.setdefault(iid, []).append(old_key)
                prefixes.setdefault(iid, []).extend(old_prefixes)
            if write.new is not None:
                new_key, new_prefixes = index_key_prefixes(write.new, fields)
                if new_key != old_key:
                    keys.setdefault(iid, []).append(new_key)
                    prefixes.setdefault(iid, []).extend(new_prefixes)
    return keys, prefixes


def refused(result: CommitResult) -> bool:
    return isinstance(result, OptimisticConcurrencyError)


async def get(persistence: Persistence, doc: dict[str, Any], ts: int) -> dict[str, Any] | None:
    found = await persistence.get_document(doc["_id"], ts)
    return None if found is None else dict(loads(found[1]))


async def keys_at(persistence: Persistence, ts: int, table: str = NOTES) -> list[bytes]:
    rows = await persistence.scan(index_id(table, "by_n"), b"", None, ts, Order.ASC, 1000)
    return [row.key for row in rows]


# -- accepted commits -----------------------------------------------------------------------------


async def test_an_accepted_commit_is_stored_at_a_timestamp_after_its_snapshot(fed: Fed) -> None:
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    t1 = await fed.seed(insert(a))
    assert t1 > 0 and p.max_ts() == t1

    # Reading the commit at the snapshot's own timestamp is no conflict: it is not after it.
    txn = Txn(p, fed.snapshot)
    assert txn.ts == t1 and await txn.get(a) == a
    a2, b = edited(a, n=Int64(5)), note(2.0, n=Int64(3))
    (t2,) = await fed.accept(txn.request(replace(a, a2), insert(b)))

    assert t2 > t1 and t2 > txn.ts
    assert p.max_ts() == t2
    assert fed.snapshot >= t2
    assert await get(p, a2, t2) == a2
    assert await get(p, b, t2) == b
    assert await keys_at(p, t2) == sorted([key(a2), key(b)])


async def test_a_batch_gets_increasing_timestamps_after_every_earlier_commit(fed: Fed) -> None:
    p = fed.persistence
    t0 = await fed.seed(insert(note(1.0, n=Int64(0))))
    docs = [note(2.0 + i, n=Int64(i)) for i in range(3)]
    ts = await fed.accept(*(Txn(p, fed.snapshot).request(insert(d)) for d in docs))
    assert t0 < ts[0] < ts[1] < ts[2]
    assert p.max_ts() == ts[2]
    for doc, at in zip(docs, ts, strict=True):
        assert await get(p, doc, at) == doc


async def test_timestamps_are_at_least_what_next_ts_returns(fed: Fed) -> None:
    p = fed.persistence
    await fed.seed(insert(note(1.0)))
    fed.floor = time.time_ns() + 10**12  # some 17 minutes ahead of the clock
    ts = await fed.accept(Txn(p, fed.snapshot).request(insert(note(2.0))))
    ts += await fed.accept(
        Txn(p, fed.snapshot).request(insert(note(3.0))),
        Txn(p, fed.snapshot).request(insert(note(4.0))),
    )
    assert fed.floor <= ts[0] < ts[1] < ts[2]
    fed.floor = ts[2] + 10**12
    (later,) = await fed.accept(Txn(p, fed.snapshot).request(insert(note(5.0))))
    assert later >= fed.floor
    assert p.max_ts() == later


# -- the change feed ------------------------------------------------------------------------------


async def test_each_accepted_commit_reaches_the_feed_once_in_order_with_its_keys(
    fed: Fed,
) -> None:
    p = fed.persistence
    a, b, t = note(1.0, n=Int64(1)), note(2.0, n=Int64(2)), task(3.0, n=Int64(3))
    a2 = edited(a, n=Int64(4))
    requests = [Txn(p, fed.snapshot).request(insert(a), insert(b))]
    expected = await fed.accept(*requests)

    stale = Txn(p, fed.snapshot)
    assert await stale.get(b) == b
    batch = [
        Txn(p, fed.snapshot).request(replace(a, a2)),
        Txn(p, fed.snapshot).request(delete(b), insert(t, TASKS)),
        stale.request(insert(note(4.0))),  # read b, deleted earlier in the batch: refused
    ]
    results = await fed.commit(*batch)
    assert refused(results[2]) and not refused(results[0]) and not refused(results[1])
    requests += batch[:2]
    expected += [r for r in results[:2] if isinstance(r, int)]
    sentinel = Txn(p, fed.snapshot).request(insert(note(5.0)))
    requests.append(sentinel)
    expected += await fed.accept(sentinel)

    assert [c.ts for c in fed.published] == expected  # each once, in order, nothing else
    for got, request in zip(fed.published, requests, strict=True):
        assert (got.table, got.write_keys, got.write_prefixes) == (
            request.table,
            request.write_keys,
            request.write_prefixes,
        )
    deleted = [[(t, i) for t, i, new in c.writes if new is None] for c in fed.published]
    assert deleted == [[], [], [(NOTES, b["_id"])], []]
    # The write log holds what was published, so a later check sees these commits.
    assert fed.write_log.find_conflict(stale.read_set, stale.ts) is not None


async def test_published_commits_carry_the_documents_written(fed: Fed) -> None:
    skip_on(fed.persistence, emulator=POLLED_WRITES)
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    b = note(2.0, n=Int64(2))
    first = Txn(p, fed.snapshot).request(insert(a), insert(b))
    await fed.accept(first)
    second = Txn(p, fed.snapshot).request(replace(a, edited(a, n=Int64(3))), delete(b))
    await fed.accept(second)
    assert [list(c.writes) for c in fed.published] == [first.writes, second.writes]


# -- conflicts ------------------------------------------------------------------------------------


async def test_a_read_overwritten_after_the_snapshot_refuses_the_request(fed: Fed) -> None:
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    await fed.seed(insert(a))
    txn = Txn(p, fed.snapshot)
    assert await txn.get(a) == a
    t2 = await fed.seed(replace(a, edited(a, n=Int64(2))))

    (result,) = await fed.commit(txn.request(insert(note(2.0))))
    assert isinstance(result, OptimisticConcurrencyError)
    assert p.max_ts() == t2


@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "two-batches"])
async def test_write_skew_commits_exactly_one_of_the_two(fed: Fed, one_batch: bool) -> None:
    """Each reads the document the other writes, at the same snapshot: serializable execution
    allows only one of them."""
    p = fed.persistence
    a, b = note(1.0, n=Int64(1)), note(2.0, n=Int64(2))
    await fed.seed(insert(a), insert(b))
    first, second = Txn(p, fed.snapshot), Txn(p, fed.snapshot)
    assert await first.get(a) == a and await second.get(b) == b
    b2, a2 = edited(b, n=Int64(3)), edited(a, n=Int64(4))
    requests = [first.request(replace(b, b2)), second.request(replace(a, a2))]

    if one_batch:
        results = await fed.commit(*requests)
    else:
        results = [*(await fed.commit(requests[0])), *(await fed.commit(requests[1]))]

    assert not refused(results[0]) and refused(results[1]), results
    assert isinstance(results[0], int)
    assert await get(p, a, fed.snapshot) == a
    assert await get(p, b, fed.snapshot) == b2
    assert p.max_ts() == results[0]


async def test_reads_of_disjoint_keys_do_not_conflict(fed: Fed) -> None:
    p = fed.persistence
    a, b = note(1.0, n=Int64(1)), note(2.0, n=Int64(10))
    await fed.seed(insert(a), insert(b))
    txn = Txn(p, fed.snapshot)
    assert await txn.get(a) == a
    assert await txn.scan(Int64(0), Int64(5)) == [a["_id"]]
    # After the snapshot: another document, and keys outside the range scanned.
    await fed.seed(replace(b, edited(b, n=Int64(11))), insert(note(3.0, n=Int64(5))))
    await fed.seed(insert(task(4.0, n=Int64(1)), TASKS))

    c = note(5.0, n=Int64(20))
    (ts,) = await fed.accept(txn.request(insert(c)))
    assert await get(p, c, ts) == c


@pytest.mark.parametrize("change", ["insert", "delete", "move-in", "move-out", "edit"])
async def test_a_write_inside_a_scanned_range_conflicts(fed: Fed, change: str) -> None:
    """Phantoms included: a key appearing in (or leaving) the range the request scanned."""
    p = fed.persistence
    inside, outside = note(1.0, n=Int64(3)), note(2.0, n=Int64(8))
    await fed.seed(insert(inside), insert(outside))
    txn = Txn(p, fed.snapshot)
    assert await txn.scan(Int64(2), Int64(5)) == [inside["_id"]]
    writes = {
        "insert": insert(note(3.0, n=Int64(4))),
        "delete": delete(inside),
        "move-in": replace(outside, edited(outside, n=Int64(2))),
        "move-out": replace(inside, edited(inside, n=Int64(5))),
        "edit": replace(inside, edited(inside, text="same key, new value")),
    }
    await fed.seed(writes[change])

    (result,) = await fed.commit(txn.request(insert(note(4.0, n=Int64(30)))))
    assert isinstance(result, OptimisticConcurrencyError)


async def test_a_request_that_read_nothing_never_conflicts(fed: Fed) -> None:
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    old = fed.snapshot  # before every commit, and never read at
    t1 = await fed.seed(insert(a))
    a2 = edited(a, n=Int64(2))
    await fed.seed(replace(a, a2))
    a3 = edited(a, n=Int64(3))

    (ts,) = await fed.accept(Txn(p, old).request(replace(a2, a3)))
    assert ts > t1
    assert await get(p, a, ts) == a3
    (again,) = await fed.accept(Txn(p, old).request(delete(a3)))
    assert await get(p, a, again) is None


async def test_a_read_answered_without_storage_is_checked_like_any_other(fed: Fed) -> None:
    """A transaction that read back only what it wrote itself (its ``db.get`` never reached
    storage) has a read set but made no read at its snapshot: nothing conflicts with it."""
    skip_on(fed.persistence, mongo=UNREAD_SNAPSHOT)
    p = fed.persistence
    await fed.seed(insert(note(1.0, n=Int64(1))))
    txn = Txn(p, fed.snapshot)
    b = note(2.0, n=Int64(2))
    txn.read_set.add_point(index_id(NOTES, BY_ID), id_key(b["_id"]))
    (ts,) = await fed.accept(txn.request(insert(b)))
    assert await get(p, b, ts) == b


async def test_in_a_batch_a_request_conflicts_with_the_earlier_ones_only(fed: Fed) -> None:
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    await fed.seed(insert(a))
    reader = Txn(p, fed.snapshot)
    assert await reader.get(a) == a
    a2 = edited(a, n=Int64(2))
    # The reader after the writer of its read: refused.
    writer = Txn(p, fed.snapshot).request(replace(a, a2))
    results = await fed.commit(writer, reader.request(insert(note(2.0))))
    assert not refused(results[0]) and refused(results[1]), results

    # The reader before the writer: both commit (the reader is serialized first).
    reader = Txn(p, fed.snapshot)
    assert await reader.get(a) == a2
    c = note(3.0)
    a3 = edited(a, n=Int64(3))
    results = await fed.commit(
        reader.request(insert(c)), Txn(p, fed.snapshot).request(replace(a2, a3))
    )
    assert not refused(results[0]) and not refused(results[1]), results
    assert await get(p, c, fed.snapshot) == c
    assert await get(p, a, fed.snapshot) == a3


async def test_a_refused_request_writes_nothing(fed: Fed) -> None:
    p = fed.persistence
    a, b, d = note(1.0, n=Int64(1)), note(2.0, n=Int64(2)), note(3.0, n=Int64(3))
    await fed.seed(insert(a), insert(b), insert(d))
    txn = Txn(p, fed.snapshot)
    assert await txn.get(a) == a
    t2 = await fed.seed(replace(a, edited(a, n=Int64(4))))
    before = await keys_at(p, t2)
    published = len(fed.published)

    c = task(4.0, n=Int64(5))  # the first document of its table
    (result,) = await fed.commit(
        txn.request(
            replace(b, edited(b, n=Int64(6))),
            delete(d),
            insert(c, TASKS),
            mutation=MutationRecord("session", 1, b"refused"),
        )
    )
    assert isinstance(result, OptimisticConcurrencyError)

    e = note(5.0, n=Int64(7))
    await fed.seed(insert(e))  # the feed has moved past where a refused commit would be
    assert len(fed.published) == published + 1
    now = fed.snapshot
    assert await get(p, b, now) == b
    assert await get(p, d, now) == d
    assert await get(p, c, now) is None
    assert await keys_at(p, now) == sorted([*before, key(e)])
    assert await keys_at(p, now, TASKS) == []
    assert TASKS not in p.table_numbers()
    assert await p.lookup_mutation("session", 1) is None
    assert await p.max_request_id("session") is None


async def test_the_idempotency_record_is_stored_with_an_accepted_request_only(fed: Fed) -> None:
    p = fed.persistence
    a = note(1.0, n=Int64(1))
    await fed.seed(insert(a))
    loser = Txn(p, fed.snapshot)
    assert await loser.get(a) == a
    results = await fed.commit(
        Txn(p, fed.snapshot).request(
            replace(a, edited(a, n=Int64(2))), mutation=MutationRecord("s", 7, b"won")
        ),
        loser.request(insert(note(2.0)), mutation=MutationRecord("s", 8, b"lost")),
        # A mutation that wrote nothing still leaves its record.
        Txn(p, fed.snapshot).request(mutation=MutationRecord("s", 9, b"")),
    )
    assert refused(results[1]) and not refused(results[0]) and not refused(results[2])
    assert await p.lookup_mutation("s", 7) == (results[0], b"won")
    assert await p.lookup_mutation("s", 8) is None
    assert await p.lookup_mutation("s", 9) == (results[2], b"")
    assert await p.max_request_id("s") == 9
