"""The persistence interface every storage engine implements, and its records.

Owns the shape of what is durably stored (a multi-version log of documents and of index
entries, read back at a snapshot timestamp) and everything the engines differ on: how a batch
of commits is checked for conflicts and made durable (``commit``), the change feed that reports
commits in order (``open_feed``), preparing tables and closing. It does not own what happens to
a published commit (``reactor.engine.feed``) or the meaning of index keys
(``reactor.core.index_keys``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog
from schema.errors import OptimisticConcurrencyError
from schema.ordering import Order

__all__ = [
    "ChangeFeed",
    "Commit",
    "CommitRequest",
    "CommitResult",
    "FeedSink",
    "IndexDefinitions",
    "DocumentLogEntry",
    "IndexEntry",
    "IndexRow",
    "MutationRecord",
    "Persistence",
    "PublishedCommit",
    "Write",
]

# (table, document id, new value or None for a delete): one document a commit wrote.
Write = tuple[str, str, "dict[str, Any] | None"]
# Every table's indexes beyond ``by_id`` and ``by_creation_time``: table -> name -> fields.
IndexDefinitions = Mapping[str, Mapping[str, Sequence[str]]]


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
    # The idempotency records of the mutations this commit applies (several for a batch).
    mutations: tuple[MutationRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexRow:
    key: bytes
    document_id: str
    value: bytes


@dataclass(frozen=True, slots=True)
class PublishedCommit:
    """A commit as the change feed reports it, whichever process or program made it: what
    subscriptions, the scheduler and file storage react to."""

    ts: int
    write_keys: Mapping[str, Sequence[bytes]]
    write_prefixes: Mapping[str, Sequence[bytes]]
    table: str | None  # the first table written (error messages)
    writes: Sequence[Write]


@dataclass(slots=True)
class CommitRequest:
    """One transaction to commit: it read ``read_set`` at snapshot ``begin_ts`` and wrote
    ``write_keys`` (old and new keys of every index, with their element-boundary prefixes);
    ``build(ts)`` makes its storage records once a timestamp is assigned, declaring ``tables``
    (the tables this commit is the first to use, with their numbers)."""

    begin_ts: int
    read_set: ReadSet
    write_keys: dict[str, list[bytes]]
    build: Callable[[int], Commit]
    table: str | None = None
    writes: list[Write] = field(default_factory=list)
    write_prefixes: dict[str, list[bytes]] = field(default_factory=dict)
    mutations: tuple[MutationRecord, ...] = ()
    tables: dict[str, int] = field(default_factory=dict)

    def published(self, ts: int) -> PublishedCommit:
        return PublishedCommit(ts, self.write_keys, self.write_prefixes, self.table, self.writes)


# Per request of a batch: its commit timestamp, or the conflict that refused it.
CommitResult = int | OptimisticConcurrencyError


class FeedSink(Protocol):
    """Where a change feed delivers commits (``reactor.engine.feed.Publisher``)."""

    @property
    def published_ts(self) -> int:
        """The newest published timestamp."""
        ...

    def publish(self, commit: PublishedCommit) -> int:
        """Publish one commit (after every earlier one); returns the timestamp it was published
        at, which is ``commit.ts`` or, for a foreign write whose time is not after the last
        published one, the next timestamp."""
        ...

    def tick(self) -> int:
        """Publish a new timestamp without writes (fresh snapshots for an idle feed)."""
        ...

    def invalidate_all(self, reason: str) -> None:
        """Writes happened that the feed cannot describe key by key: re-run every query."""
        ...


class ChangeFeed(Protocol):
    """An engine's change feed: delivers every commit to its sink once, in timestamp order."""

    def start(self) -> None:
        """Begin delivering (from a background task, for a feed that reads from a server)."""
        ...

    def poke(self) -> None:
        """This process just committed: look for new commits now, not at the next interval."""
        ...

    async def stop(self) -> None: ...


class Persistence(Protocol):
    """A storage engine: the records above, stored durably, read at a snapshot timestamp."""

    @property
    def reader_url(self) -> str:
        """Where another process opens this engine for reading (``open_reader``): a function
        runner's own connection."""
        ...

    @property
    def local_directory(self) -> Path | None:
        """The data directory on this machine (file storage keeps its bytes beside it), or
        None for a networked engine."""
        ...

    async def prepare(self, indexes: IndexDefinitions) -> None:
        """Create what the engine needs for these tables and indexes before serving."""
        ...

    async def commit(
        self,
        requests: Sequence[CommitRequest],
        *,
        write_log: WriteLog,
        next_ts: Callable[[], int],
    ) -> list[CommitResult]:
        """Check each request against every commit after its snapshot (the earlier requests of
        the batch included), give the accepted ones increasing timestamps from ``next_ts`` (or
        later ones) and store them, atomically: on return, a snapshot at their timestamps reads
        them. They are durable once the feed publishes them (an engine that is not
        ``visible_before_durable`` stores them durably before returning). A single-process
        engine checks the in-process ``write_log`` (the write log the feed's sink appends to)
        and the commits it has not published yet, and its feed publishes them itself; an
        engine shared by several processes checks its own commit log, and its feed reports the
        commits later.

        Raises:
            StorageUnavailable: nothing was stored.
        """
        ...

    def open_feed(
        self,
        sink: FeedSink,
        *,
        indexes: Callable[[str], Mapping[str, Sequence[str]]],
        checkpoint_key: str,
    ) -> ChangeFeed:
        """The change feed of this engine, delivering to ``sink``. ``indexes(table)`` gives a
        table's index definitions (to compute the keys of foreign writes); ``checkpoint_key``
        names this process's stored resume point."""
        ...

    def max_ts(self) -> int:
        """The largest commit timestamp durably stored (0 when empty)."""
        ...

    def table_numbers(self) -> dict[str, int]:
        """Every table name ever used, with its number (ids encode it)."""
        ...

    async def write(self, commits: Sequence[Commit]) -> None:
        """Durably store a batch of commits atomically (all or none), unchecked and unpublished:
        for restores, tools and tests; a server commits through ``commit``."""
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

    async def aclose(self) -> None:
        """Release the engine (connections, the data directory's lock)."""
        ...

    @property
    def visible_before_durable(self) -> bool:
        """Whether ``commit`` returns (its commits readable by new snapshots) before they are
        durable: then only a mutation, whose answer waits for durability, may read at the
        newest written commit; everything else reads at the published one."""
        ...

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
