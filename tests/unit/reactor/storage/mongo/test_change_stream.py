"""The change-stream consumer, fed change events in MongoDB's documented format.

Write keys are compared with what ``Transaction.prepare_commit`` (the SQLite path) computes for
the same old and new documents, so both engines publish the same change feed.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from bson.binary import Binary
from bson.int64 import Int64 as BsonInt64
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from hypothesis import given, settings, strategies as st
from pymongo.errors import AutoReconnect, OperationFailure

from functions.store import IndexRange
from reactor.core.index_keys import id_key, index_key, range_interval
from reactor.core.reads import ReadSet
from reactor.core.system_tables import TableRegistry
from reactor.core.write_log import WriteLog
from reactor.engine.subscriptions import SubscriptionManager
from reactor.engine.transaction import SYSTEM_INDEXES, Transaction, _Write
from reactor.storage.mongo.bson_values import encode_document
from reactor.storage.mongo.change_stream import (
    UNKNOWN,
    ChangeStreamConsumer,
    Commit,
    DocumentChange,
    FeedEvent,
    InvalidateAll,
    ResumePoint,
    Retry,
    TokenAdvanced,
)
from schema.errors import StorageError
from schema.values import Int64

USER_INDEXES = {
    "tasks": {"by_status": ("status",), "by_owner_rank": ("owner", "meta.rank")},
    "notes": {},
}
SEC = 1_700_000_000
LSID = {"id": Binary(uuid.UUID(int=7).bytes, 4), "uid": Binary(b"\x01" * 32, 0)}


def indexes(table: str) -> Mapping[str, Sequence[str]]:
    if table.startswith("_"):
        return SYSTEM_INDEXES.get(table, {})
    return USER_INDEXES.get(table, {})


def consumer(**kwargs: Any) -> ChangeStreamConsumer:
    kwargs.setdefault("clock_ns", lambda: 5)
    return ChangeStreamConsumer(indexes, **kwargs)


Image = dict[str, Any] | None
KeysByIndex = dict[str, list[bytes]]


def reference(*writes: tuple[str, str, Image, Image]) -> tuple[KeysByIndex, KeysByIndex]:
    """(write_keys, write_prefixes) of ``prepare_commit`` for (table, id, old, new) writes."""
    schema = SimpleNamespace(
        tables={t: SimpleNamespace(indexes=ix) for t, ix in USER_INDEXES.items()}
    )
    txn = Transaction(
        None,  # type: ignore[arg-type]  # prepare_commit needs no persistence
        0,
        schema=schema,
        tables=TableRegistry(),
        writable=True,
        now_ms=0.0,
    )
    for table, doc_id, old, new in writes:
        txn._writes[doc_id] = _Write(table, old, new)
    prepared = txn.prepare_commit()
    return prepared.write_keys, prepared.write_prefixes


def task(doc_id: str = "t1", created: float = 1000.0, **fields: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_creationTime": created, **fields}


def token(n: int) -> dict[str, str]:
    return {"_data": f"8265A1B2C3{n:08X}2B022C0100296E5A1004"}


def event(
    op: str,
    n: int,
    *,
    coll: str = "tasks",
    doc_id: object = "t1",
    post: dict[str, Any] | None = None,
    pre: dict[str, Any] | None = None,
    rx: int | None = None,
    update: dict[str, Any] | None = None,
    txn: int | None = None,
    cluster: bool = True,
    wall: bool = False,
) -> dict[str, Any]:
    """A change event as PyMongo yields it (documented field names and types)."""
    ev: dict[str, Any] = {
        "_id": token(n),
        "operationType": op,
        "ns": {"db": "app", "coll": coll},
        "documentKey": {"_id": doc_id},
    }
    if cluster:
        ev["clusterTime"] = Timestamp(SEC, n)
    if wall:
        ev["wallTime"] = datetime.datetime(2024, 1, 1, 0, 0, 0, 5000)
    if post is not None:
        ev["fullDocument"] = encode_document(post, ts=rx) if post else None
    if pre is not None:
        ev["fullDocumentBeforeChange"] = encode_document(pre)
    if update is not None:
        ev["updateDescription"] = {
            "updatedFields": update.get("set", {}),
            "removedFields": update.get("unset", []),
            "truncatedArrays": update.get("truncated", []),
        }
    if txn is not None:
        ev["lsid"] = LSID
        ev["txnNumber"] = BsonInt64(txn)
    return ev


def commit(events: list[FeedEvent]) -> Commit:
    (out,) = events
    assert isinstance(out, Commit)
    return out


def first_retry(events: list[FeedEvent]) -> Retry:
    out = events[0]
    assert isinstance(out, Retry)
    return out


# -- one write --------------------------------------------------------------------------------


def test_external_insert_gives_new_keys_and_cluster_time() -> None:
    c = consumer()
    doc = task(status="open", owner="ann", meta={"rank": 2.0})
    out = commit(c.receive(event("insert", 3, post=doc)))
    keys, prefixes = reference(("tasks", "t1", None, doc))
    assert out.write_keys == keys and out.prefixes == prefixes
    assert out.write_keys["tasks.by_id"] == [id_key("t1")]
    assert out.write_keys["tasks.by_status"] == [index_key(doc, ("status",))]
    assert out.ts == SEC * 10**9 + 3
    assert out.reactor_ts is None
    assert out.table == "tasks" and out.document_ids == ("t1",)
    assert out.changes == (DocumentChange("tasks", "t1", None, doc),)
    assert out.unknown_indexes == frozenset()
    assert out.resume_token == token(3)
    assert c.checkpoint == ResumePoint(token(3))


def test_reactor_update_with_images_uses_old_and_new_keys_and_rx_ts() -> None:
    c = consumer()
    old = task(status="open", owner="ann", meta={"rank": 1.0}, title="a")
    new = task(status="done", owner="ann", meta={"rank": 1.0}, title="b")
    ev = event(
        "update",
        4,
        pre=old,
        post=new,
        rx=SEC * 10**9 + 777,
        update={"set": {"status": "done", "title": "b", "_rx": {"ts": SEC * 10**9 + 777}}},
    )
    out = commit(c.receive(ev))
    keys, prefixes = reference(("tasks", "t1", old, new))
    assert (out.write_keys, out.prefixes) == (keys, prefixes)
    assert out.write_keys["tasks.by_status"] == [
        index_key(old, ("status",)),
        index_key(new, ("status",)),
    ]
    assert out.ts == out.reactor_ts == SEC * 10**9 + 777


def test_update_that_leaves_an_old_rx_is_not_a_reactor_commit() -> None:
    c = consumer()
    old = task(status="open")
    new = task(status="open", title="x")
    ev = event("update", 4, pre=old, post=new, rx=99, update={"set": {"title": "x"}})
    out = commit(c.receive(ev))
    assert out.reactor_ts is None and out.ts == SEC * 10**9 + 4


def test_replace_and_delete_with_pre_images_are_exact() -> None:
    c = consumer()
    old = task(status="open", owner="bo")
    new = task(status="open", owner="cy", meta={"rank": Int64(3)})
    out = commit(c.receive(event("replace", 5, pre=old, post=new)))
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", old, new))
    out = commit(c.receive(event("delete", 6, pre=new)))
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", new, None))
    assert out.changes == (DocumentChange("tasks", "t1", new, None),)


field_values = st.one_of(
    st.none(),
    st.sampled_from(["open", "done", "", "a\x00"]),
    st.floats(-3, 3),
    st.integers(-3, 3).map(Int64),
    st.booleans(),
)
documents = st.fixed_dictionaries(
    {"_id": st.just("t1"), "_creationTime": st.floats(0, 10)},
    optional={
        "status": field_values,
        "owner": field_values,
        "title": field_values,
        "meta": st.fixed_dictionaries({}, optional={"rank": field_values}),
    },
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.none(), documents), st.one_of(st.none(), documents))
def test_any_write_with_images_matches_prepare_commit(old: Image, new: Image) -> None:
    if old is None and new is None:
        return
    if new is not None and old is not None:
        new = {**new, "_creationTime": old["_creationTime"]}
    op = "insert" if old is None else "delete" if new is None else "replace"
    ev = event(op, 9, pre=old, post=new)
    out = commit(consumer().receive(ev))
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", old, new))


# -- unknown images ---------------------------------------------------------------------------


def test_update_without_pre_image_untouched_indexes_stay_exact() -> None:
    c = consumer()
    old = task(status="open", owner="ann", meta={"rank": 1.0}, title="a")
    new = {**old, "title": "b"}
    out = commit(c.receive(event("update", 7, post=new, update={"set": {"title": "b"}})))
    assert out.unknown_indexes == frozenset()
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", old, new))
    assert out.changes == (DocumentChange("tasks", "t1", UNKNOWN, new),)


@pytest.mark.parametrize(
    ("update", "unknown"),
    [
        ({"set": {"status": "done"}}, {"tasks.by_status"}),
        ({"unset": ["status"]}, {"tasks.by_status"}),
        ({"set": {"meta.rank": 4.0}}, {"tasks.by_owner_rank"}),
        ({"set": {"meta": {"rank": 4.0}}}, {"tasks.by_owner_rank"}),
        ({"truncated": [{"field": "meta", "newSize": 0}]}, {"tasks.by_owner_rank"}),
        (
            {"set": {"_creationTime": 5.0}},
            {"tasks.by_creation_time", "tasks.by_status", "tasks.by_owner_rank"},
        ),
    ],
)
def test_update_without_pre_image_names_the_touched_indexes(
    update: dict[str, Any], unknown: set[str]
) -> None:
    new = task(status="done", owner="ann", meta={"rank": 4.0})
    out = commit(consumer().receive(event("update", 7, post=new, update=update)))
    assert out.unknown_indexes == frozenset(unknown)
    assert out.write_keys["tasks.by_id"] == [id_key("t1")]
    for iid, fields in (
        ("tasks.by_status", ("status",)),
        ("tasks.by_owner_rank", ("owner", "meta.rank")),
        ("tasks.by_creation_time", ()),
    ):
        # known keys are still published: the new one, or the unchanged one
        assert out.write_keys[iid] == [index_key(new, fields)]


def test_delete_without_pre_image_knows_only_the_id() -> None:
    out = commit(consumer().receive(event("delete", 8, doc_id="t9")))
    assert out.write_keys["tasks.by_id"] == [id_key("t9")]
    assert out.unknown_indexes == {
        "tasks.by_creation_time",
        "tasks.by_status",
        "tasks.by_owner_rank",
    }
    assert all(out.write_keys[i] == [] for i in out.unknown_indexes)
    assert out.changes == (DocumentChange("tasks", "t9", UNKNOWN, None),)
    assert out.document_ids == ("t9",)


def test_update_without_post_image_uses_the_pre_image_for_untouched_indexes() -> None:
    old = task(status="open", owner="ann", title="a")
    new = {**old, "title": "b"}
    ev = event("update", 8, pre=old, post={}, update={"set": {"title": "b"}})
    assert ev["fullDocument"] is None  # "whenAvailable" without a post-image
    out = commit(consumer().receive(ev))
    assert out.unknown_indexes == frozenset()
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", old, new))


def test_update_without_any_image_or_description_is_unknown_everywhere_but_by_id() -> None:
    ev = event("update", 8)
    out = commit(consumer().receive(ev))
    assert out.unknown_indexes == {
        "tasks.by_creation_time",
        "tasks.by_status",
        "tasks.by_owner_rank",
    }
    assert out.write_keys["tasks.by_id"] == [id_key("t1")]


def test_replace_without_pre_image_is_unknown_but_publishes_new_keys() -> None:
    new = task(status="open")
    out = commit(consumer().receive(event("replace", 8, post=new)))
    assert out.unknown_indexes == {
        "tasks.by_creation_time",
        "tasks.by_status",
        "tasks.by_owner_rank",
    }
    assert out.write_keys["tasks.by_status"] == [index_key(new, ("status",))]


def test_system_tables_are_tables_with_their_system_indexes() -> None:
    old = {"_id": "j1", "_creationTime": 1.0, "state": {"kind": "pending"}, "scheduledTime": 5.0}
    new = {**old, "state": {"kind": "success"}}
    out = commit(
        consumer().receive(
            event(
                "update",
                3,
                coll="_scheduled_functions",
                doc_id="j1",
                post=new,
                update={"set": {"state.kind": "success"}},
            )
        )
    )
    assert out.unknown_indexes == {"_scheduled_functions.by_state_time"}
    assert out.write_keys["_scheduled_functions.by_creation_time"] == [index_key(new, ())]


# -- transactions -----------------------------------------------------------------------------


def test_a_transaction_is_one_commit_emitted_when_the_next_one_starts() -> None:
    c = consumer()
    a = task("ta", status="open")
    b_old, b_new = task("tb", status="open"), task("tb", status="done")
    n_old = {"_id": "n1", "_creationTime": 3.0, "text": "x"}
    ts = SEC * 10**9 + 500
    first = [
        event("insert", 10, doc_id="ta", post=a, rx=ts, txn=1),
        event(
            "update",
            10,
            doc_id="tb",
            pre=b_old,
            post=b_new,
            rx=ts,
            txn=1,
            update={"set": {"status": "done", "_rx.ts": BsonInt64(ts)}},
        ),
        event("delete", 10, coll="notes", doc_id="n1", pre=n_old, txn=1),
    ]
    for i, ev in enumerate(first):
        ev["_id"] = token(100 + i)
        assert c.receive(ev) == []
    assert c.checkpoint is None  # nothing emitted yet: nothing to persist
    out = c.receive(event("insert", 11, doc_id="tc", post=task("tc"), txn=2))
    got = commit(out)
    keys, prefixes = reference(
        ("tasks", "ta", None, a), ("tasks", "tb", b_old, b_new), ("notes", "n1", n_old, None)
    )
    assert (got.write_keys, got.prefixes) == (keys, prefixes)
    assert got.ts == got.reactor_ts == ts
    assert got.document_ids == ("ta", "tb", "n1")
    assert got.table == "tasks"
    assert got.resume_token == token(102)
    assert c.checkpoint == ResumePoint(token(102))
    second = commit(c.flush())
    assert second.document_ids == ("tc",) and second.ts > ts
    assert c.checkpoint == ResumePoint(token(11))


def test_rewrites_of_one_document_in_a_transaction_use_first_old_and_last_new() -> None:
    c = consumer()
    v1, v2 = task(status="open"), task(status="done", owner="z")
    c.receive(event("insert", 1, post=v1, txn=3))
    c.receive(
        event("update", 2, pre=v1, post=v2, txn=3, update={"set": {"status": "done", "owner": "z"}})
    )
    out = commit(c.flush())
    assert (out.write_keys, out.prefixes) == reference(("tasks", "t1", None, v2))
    assert out.changes == (DocumentChange("tasks", "t1", None, v2),)


def test_insert_then_delete_in_a_transaction_publishes_nothing() -> None:
    c = consumer()
    c.receive(event("insert", 1, post=task(), txn=4))
    c.receive(event("delete", 2, pre=task(), txn=4))
    assert c.flush() == [TokenAdvanced(token(2))]


def test_commit_record_gives_the_ts_of_a_delete_only_commit() -> None:
    c = consumer()
    ts = SEC * 10**9 + 42_000
    record = event("insert", 1, coll="_reactor_commits", doc_id=BsonInt64(ts), txn=5)
    record["fullDocument"] = {"_id": BsonInt64(ts), "ts": BsonInt64(ts)}
    c.receive(record)
    c.receive(event("delete", 2, pre=task(status="open"), txn=5))
    out = commit(c.flush())
    assert out.ts == out.reactor_ts == ts
    assert out.document_ids == ("t1",)


def test_flush_records_the_post_batch_token_once() -> None:
    c = consumer()
    post_batch = {"_data": "82FFFF"}
    assert c.flush(post_batch) == [TokenAdvanced(post_batch)]
    assert c.checkpoint == ResumePoint(post_batch)
    assert c.flush(post_batch) == []
    assert c.watch_options()["resume_after"] == post_batch


# -- collections that are not tables ----------------------------------------------------------


@pytest.mark.parametrize(
    "coll", ["_reactor_jobs", "_reactor_sequence", "_reactor_commits", "system.views"]
)
def test_writes_to_reactor_collections_only_advance_the_token(coll: str) -> None:
    c = consumer()
    out = c.receive(event("update", 3, coll=coll, doc_id="seq", update={"set": {"n": 1}}))
    assert out == [TokenAdvanced(token(3))]
    assert c.checkpoint == ResumePoint(token(3))


def test_a_reactor_only_transaction_advances_the_token() -> None:
    c = consumer()
    c.receive(
        event("update", 3, coll="_reactor_sequence", doc_id="s", txn=9, update={"set": {"n": 2}})
    )
    assert c.flush() == [TokenAdvanced(token(3))]


def test_other_databases_are_ignored() -> None:
    c = consumer(database="app")
    ev = event("insert", 3, post=task())
    ev["ns"] = {"db": "other", "coll": "tasks"}
    assert c.receive(ev) == [TokenAdvanced(token(3))]


# -- external writes --------------------------------------------------------------------------


def test_external_object_id_documents_reach_subscribers() -> None:
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    ev = event("insert", 3, doc_id=oid)
    ev["fullDocument"] = {"_id": oid, "status": "open", "n": 5}  # no _creationTime, no _rx
    out = commit(consumer().receive(ev))
    created = float(int(oid.generation_time.timestamp()) * 1000)
    doc = {"_id": str(oid), "_creationTime": created, "status": "open", "n": 5.0}
    assert out.document_ids == (str(oid),)
    assert (out.write_keys, out.prefixes) == reference(("tasks", str(oid), None, doc))


def test_external_update_invalidates_a_subscription() -> None:
    write_log = WriteLog()
    subs: SubscriptionManager[str] = SubscriptionManager(write_log)
    reads = ReadSet()
    reads.add_point("tasks.by_id", id_key("t2"))
    owners: dict[str, ReadSet] = {}
    for name, value in (("open", "open"), ("done", "done"), ("late", "late")):
        rs = ReadSet()
        rs.add(
            "tasks.by_status",
            range_interval(IndexRange(eq=(("status", value),)), ("status",), index="by_status"),
        )
        owners[name] = rs
    subs.subscribe("get-t2", reads, 0)
    for name, rs in owners.items():
        subs.subscribe(name, rs, 0)
    old, new = task("t1", status="open"), task("t1", status="done")
    out = commit(
        consumer().receive(
            event("update", 5, pre=old, post=new, update={"set": {"status": "done"}})
        )
    )
    write_log.append(out.ts, out.write_keys, out.table, out.prefixes)
    assert sorted(subs.advance(out.ts, out.write_keys)) == ["done", "open"]
    # a query born before this commit that read the "late" bucket is still valid
    assert write_log.find_conflict(owners["late"], 0) is None
    assert write_log.find_conflict(owners["open"], 0) is not None


# -- timestamps -------------------------------------------------------------------------------


def test_timestamps_never_go_backwards() -> None:
    c = consumer(last_ts=SEC * 10**9 + 10)
    out = commit(c.receive(event("insert", 3, post=task())))
    assert out.ts == SEC * 10**9 + 11  # cluster time 3 is behind the last ts
    ahead = SEC * 10**9 + 10**8
    out = commit(c.receive(event("insert", 4, doc_id="t2", post=task("t2"), rx=ahead)))
    assert out.ts == ahead
    stale = commit(c.receive(event("insert", 5, doc_id="t3", post=task("t3"), rx=ahead - 50)))
    assert stale.ts == ahead + 1 and stale.reactor_ts == ahead - 50
    assert c.last_ts == ahead + 1


def test_wall_time_then_clock_when_there_is_no_cluster_time() -> None:
    c = consumer(clock_ns=lambda: 10**19)
    out = commit(c.receive(event("insert", 3, post=task(), cluster=False, wall=True)))
    assert out.ts == 1_704_067_200_005_000_000
    out = commit(c.receive(event("insert", 4, post=task("t2"), doc_id="t2", cluster=False)))
    assert out.ts == 10**19


# -- invalidation of everything ---------------------------------------------------------------


@pytest.mark.parametrize("op", ["drop", "rename", "dropDatabase"])
def test_drop_and_rename_of_tables_invalidate_all(op: str) -> None:
    c = consumer()
    c.receive(event("insert", 1, post=task(), txn=6))  # pending transaction goes first
    ev = {
        "_id": token(2),
        "operationType": op,
        "clusterTime": Timestamp(SEC, 2),
        "ns": {"db": "app"} if op == "dropDatabase" else {"db": "app", "coll": "tasks"},
    }
    if op == "rename":
        ev["to"] = {"db": "app", "coll": "tasks_old"}
    first, second = c.receive(ev)
    assert isinstance(first, Commit)
    assert second == InvalidateAll(op, token(2), first.ts + 1, reopen=False)
    assert c.checkpoint == ResumePoint(token(2))


def test_drop_or_rename_of_reactor_collections_only_advances() -> None:
    c = consumer()
    drop = {"_id": token(2), "operationType": "drop", "ns": {"db": "app", "coll": "_reactor_x"}}
    assert c.receive(drop) == [TokenAdvanced(token(2))]
    rename = {
        "_id": token(3),
        "operationType": "rename",
        "ns": {"db": "app", "coll": "_reactor_a"},
        "to": {"db": "app", "coll": "tasks"},
    }
    assert isinstance(c.receive(rename)[0], InvalidateAll)  # renamed onto a table


def test_invalidate_event_reopens_with_start_after() -> None:
    c = consumer()
    out = c.receive(
        {"_id": token(4), "operationType": "invalidate", "clusterTime": Timestamp(SEC, 4)}
    )
    assert out == [InvalidateAll("invalidate", token(4), SEC * 10**9 + 4, reopen=True)]
    assert c.checkpoint == ResumePoint(token(4), start_after=True)
    options = c.watch_options()
    assert options["start_after"] == token(4) and "resume_after" not in options
    assert c.flush(token(4)) == []  # PyMongo's resume_token is the same token: kept
    assert c.checkpoint.start_after


def test_ddl_without_data_changes_advances_and_unknown_types_invalidate() -> None:
    c = consumer()
    ddl = {"_id": token(1), "operationType": "createIndexes", "ns": {"db": "app", "coll": "t"}}
    assert c.receive(ddl) == [TokenAdvanced(token(1))]
    odd = {
        "_id": token(2),
        "operationType": "somethingNew",
        "clusterTime": Timestamp(SEC, 2),
        "ns": {"db": "app", "coll": "tasks"},
    }
    (out,) = c.receive(odd)
    assert isinstance(out, InvalidateAll) and "somethingNew" in out.reason


def test_split_events_are_merged() -> None:
    c = consumer()
    full = event("insert", 5, post=task(status="open"))
    head = {k: v for k, v in full.items() if k != "fullDocument"}
    head["splitEvent"] = {"fragment": 1, "of": 2}
    tail = {
        "_id": token(6),
        "fullDocument": full["fullDocument"],
        "splitEvent": {"fragment": 2, "of": 2},
    }
    assert c.receive(head) == []
    out = commit(c.receive(tail))
    assert out.write_keys == reference(("tasks", "t1", None, task(status="open")))[0]
    assert out.resume_token == token(6)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        OperationFailure("resume point lost", code=286),
        286,
        OperationFailure("bad token", code=260),
        OperationFailure(
            "token not found", code=280, details={"errorLabels": ["NonResumableChangeStreamError"]}
        ),
    ],
)
def test_history_lost_restarts_from_now_and_invalidates_all(
    error: OperationFailure | int,
) -> None:
    c = consumer(resume=ResumePoint(token(1)), clock_ns=lambda: 10**19)
    c.receive(event("insert", 2, post=task(), txn=1))
    first, second = c.on_error(error)
    assert isinstance(first, Commit)  # what was received is still published
    assert isinstance(second, InvalidateAll)
    assert second.resume_token is None and second.reopen and second.ts == 10**19
    assert c.checkpoint is None
    options = c.watch_options(start_at_operation_time=Timestamp(SEC, 1))
    assert "resume_after" not in options and "start_after" not in options
    assert "start_at_operation_time" in options  # the caller passes it only on first start


def test_transient_errors_retry_with_backoff_reset_by_progress() -> None:
    c = consumer(retry_base_s=0.5, retry_cap_s=1.5)
    delays = [first_retry(c.on_error(AutoReconnect("down"))).delay_s for _ in range(4)]
    assert delays == [0.5, 1.0, 1.5, 1.5]
    labelled = OperationFailure(
        "x", code=1, details={"errorLabels": ["ResumableChangeStreamError"]}
    )
    assert isinstance(c.on_error(labelled)[0], Retry)
    c.receive(event("insert", 1, post=task()))
    (retry,) = c.on_error(OperationFailure("stepped down", code=189))
    assert isinstance(retry, Retry)
    assert retry.attempt == 1 and retry.delay_s == 0.5


def test_other_errors_are_raised() -> None:
    c = consumer()
    with pytest.raises(OperationFailure):
        c.on_error(OperationFailure("not authorized", code=13))
    with pytest.raises(ValueError):
        c.on_error(ValueError("bug"))
    with pytest.raises(StorageError, match="40573"):
        c.on_error(40573)


# -- resume points ----------------------------------------------------------------------------


def test_resume_point_persists_and_opens_the_stream() -> None:
    point = ResumePoint(token(3), start_after=True)
    assert ResumePoint.from_document(point.to_document()) == point
    assert ResumePoint.from_document(None) is None
    c = consumer(resume=ResumePoint(token(3)))
    assert c.watch_options() == {
        "full_document": "whenAvailable",
        "full_document_before_change": "whenAvailable",
        "resume_after": token(3),
    }
    first = consumer().watch_options(start_at_operation_time=Timestamp(SEC, 0))
    assert first["start_at_operation_time"] == Timestamp(SEC, 0)
