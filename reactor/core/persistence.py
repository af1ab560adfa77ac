"""The persistence interface every storage engine implements, and its records.

Owns the shape of what is durably stored: a multi-version log of documents and of index entries,
written in commit batches, read back at a snapshot timestamp. It does not own conflict
detection (``reactor.engine.committer``) or the meaning of index keys (``reactor.core.index_keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.store import Order

__all__ = [
    "Commit",
    "DocumentLogEntry",
    "IndexEntry",
    "IndexRow",
    "MutationRecord",
    "Persistence",
]


@dataclass(frozen=True, slots=True)
class DocumentLogEntry:
    """One version of one document; ``value`` is encoded JSON bytes, ``None`` for a delete."""

    id: str
    table: str
    value: bytes | None
    prev_ts: int | None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version of one index key. ``value`` carries the document (None for a tombstone)."""

    index_id: str
    key: bytes
    document_id: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class MutationRecord:
    """The idempotency record of a websocket mutation, stored in the commit that applied it."""

    session_id: str
    request_id: int
    result: bytes


@dataclass(slots=True)
class Commit:
    ts: int
    documents: list[DocumentLogEntry] = field(default_factory=list)
    indexes: list[IndexEntry] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # tables first used by this commit
    mutation: MutationRecord | None = None


@dataclass(frozen=True, slots=True)
class IndexRow:
    key: bytes
    document_id: str
    value: bytes


class Persistence(Protocol):
    """A storage engine. Reads are synchronous and cheap; ``write`` is the only slow call."""

    def max_ts(self) -> int:
        """The largest commit timestamp durably stored (0 when empty)."""
        ...

    def table_numbers(self) -> dict[str, int]:
        """Every table name ever used, with its number (ids encode it)."""
        ...

    async def write(self, commits: Sequence[Commit]) -> None:
        """Durably store a batch of commits atomically (all or none)."""
        ...

    async def get_document(self, id: str, ts: int) -> tuple[str, bytes] | None:
        """(table, encoded value) of the newest version of ``id`` at or below ``ts``."""
        ...

    async def scan(
        self,
        index_id: str,
        start: bytes,
        end: bytes | None,
        ts: int,
        order: Order,
        limit: int,
    ) -> list[IndexRow]:
        """Live index rows with ``start <= key < end`` as of ``ts``, in key order, at most
        ``limit`` of them (tombstoned keys are skipped and do not count)."""
        ...

    async def lookup_mutation(self, session_id: str, request_id: int) -> tuple[int, bytes] | None:
        """(ts, result) of a stored mutation record, if any."""
        ...

    async def max_request_id(self, session_id: str) -> int | None:
        """The largest request id stored for a session, if any."""
        ...

    async def get_global(self, key: str) -> Any: ...

    async def prune(self, previous: int, cutoff: int) -> int:
        """Drop versions superseded at or before ``cutoff`` (written after ``previous``)."""
        ...

    async def set_global(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...

    @property
    def single_process(self) -> bool:
        """Whether at most one process can have this storage open at a time (SQLite locks its
        data directory): then no other process runs the scheduler, and no lease is needed to
        recover its interrupted jobs."""
        ...

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the lease ``name`` for ``holder`` if it is free, expired or already held by
        ``holder`` (which renews it), expiring ``ttl_s`` seconds from now (wall clock).

        Returns whether ``holder`` holds the lease now. Processes sharing one database use it
        to run exactly one scheduler between them (``reactor.platform.leases``).
        """
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give up the lease ``name`` if ``holder`` holds it (a no-op otherwise)."""
        ...
