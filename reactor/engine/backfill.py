"""Index back-fills: entries for the indexes a schema gained (or redefined) since they were last
built, committed like any transaction so that concurrent writes make it start over.

Owns the stored record of which index definitions are built (the ``indexes`` global) and
building the missing ones at one snapshot. It does not decide when to run (the deployment runs
it at start and after a reload).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from reactor.core.index_keys import BY_CREATION_TIME, index_id, index_key
from reactor.core.intervals import Interval
from reactor.core.persistence import Commit, CommitRequest, IndexEntry, IndexRow, Persistence
from reactor.core.reads import ReadSet
from reactor.engine.committer import Committer
from schema.errors import OptimisticConcurrencyError
from schema.ordering import Order
from schema.tables import SchemaDefinition
from schema.values import loads

__all__ = ["backfill_indexes"]

log = logging.getLogger("reactor.engine.backfill")

BUILT_INDEXES = "indexes"  # global: index id -> the fields it was built with
PAGE = 1000


async def _rows(persistence: Persistence, iid: str, ts: int) -> AsyncIterator[IndexRow]:
    start = b""
    while True:
        rows = await persistence.scan(iid, start, None, ts, Order.ASC, PAGE)
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        start = rows[-1].key + b"\x00"


def _entries_commit(entries: list[IndexEntry]) -> Callable[[int], Commit]:
    return lambda ts: Commit(ts, [], entries)


async def backfill_indexes(
    persistence: Persistence, committer: Committer, schema: SchemaDefinition | None
) -> int:
    """Build what ``schema``'s indexes lack, in one commit whose read set covers the scanned
    tables: a concurrent write (``reactor dev`` reloads while serving) makes it conflict and
    start over. Returns the number of index entries written."""
    if schema is None:
        return 0
    while True:
        built: dict[str, list[str]] = await persistence.get_global(BUILT_INDEXES) or {}
        ts = committer.published_ts
        reads = ReadSet()
        # (index, key) -> entry: a key retired and re-added in this commit is written once.
        entries: dict[tuple[str, bytes], IndexEntry] = {}
        current: dict[str, list[str]] = {}
        for table, definition in schema.tables.items():
            for name, fields in definition.indexes.items():
                iid = index_id(table, name)
                current[iid] = list(fields)
                if built.get(iid) == list(fields):
                    continue
                # Retire whatever an earlier definition left, then index every document.
                everything = Interval(b"", None)
                reads.add(iid, everything)
                async for row in _rows(persistence, iid, ts):
                    entries[iid, row.key] = IndexEntry(iid, row.key, row.document_id, None)
                by_time = index_id(table, BY_CREATION_TIME)
                reads.add(by_time, everything)
                async for row in _rows(persistence, by_time, ts):
                    key = index_key(loads(row.value), tuple(fields))
                    entries[iid, key] = IndexEntry(iid, key, row.document_id, row.value)
        if current == built:
            return 0
        if entries:
            request = CommitRequest(ts, reads, {}, _entries_commit(list(entries.values())))
            try:
                await committer.commit(request)
            except OptimisticConcurrencyError:
                continue
            log.info("back-filled %d index entries", len(entries))
        await persistence.set_global(BUILT_INDEXES, current)
        return len(entries)
