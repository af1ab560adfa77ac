"""The single writer of this process: batches transactions (group commit), has the storage
engine check and store them, and answers each caller once its commit is published.

Invariants: commit timestamps strictly increase (``max(now, last + 1)``), across restarts too;
a caller is answered only after its commit is durable and published (visible to new snapshots
and to subscriptions), so its next read sees its own write; on an engine whose commits are
readable before they are durable, ``visible_ts`` (at or above ``published_ts``) is the newest
one written, which only mutations read at; a transaction commits only if no
commit after its snapshot wrote a key inside its read set (serializability, CONVEX_SEMANTICS
§1.3), which the engine checks (``Persistence.commit``). Re-running a conflicted mutation is
the executor's job; publishing is the change feed's (``reactor.engine.feed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reactor.core.persistence import ChangeFeed, CommitRequest, MutationRecord, Persistence
from reactor.core.runtime import Runtime
from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import start_task, stop_task
from reactor.core.write_log import WriteLog
from reactor.engine.feed import Publisher
from schema.errors import OptimisticConcurrencyError, StorageUnavailable

__all__ = ["Committer", "WrittenListener"]

log = logging.getLogger("reactor.engine.committer")

MAX_BATCH = 512

# (commit ts, its written keys) of a commit written but not yet durable.
WrittenListener = Callable[[int, Mapping[str, Sequence[bytes]]], None]


@dataclass(slots=True)
class _Pending:
    request: CommitRequest
    future: asyncio.Future[int]
    priority: bool = False


class Committer:
    def __init__(
        self,
        persistence: Persistence,
        write_log: WriteLog,
        tables: TableRegistry,
        publisher: Publisher,
        feed: ChangeFeed,
        *,
        runtime: Runtime,
    ) -> None:
        self.persistence = persistence
        self.write_log = write_log
        self.tables = tables
        self.publisher = publisher
        self.feed = feed
        self.runtime = runtime
        self._last_assigned = publisher.published_ts
        self._early = persistence.visible_before_durable
        self._written_ts = publisher.published_ts
        self._urgent: asyncio.Future[None] | None = None  # set while gathering a batch
        # Told of each commit once written (readable), before it is durable: live queries it
        # invalidates re-run during its fsync (``LiveQueries.on_written``).
        self._written_listeners: list[WrittenListener] = []
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.conflicts = 0

    @property
    def published_ts(self) -> int:
        return self.publisher.published_ts

    def start(self) -> None:
        if self._task is None:
            self._task = start_task(self._run(), name="committer")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def on_written(self, listener: WrittenListener) -> None:
        """Call ``listener(ts, write_keys)`` for every commit written before it is durable
        (on an engine whose commits are readable first; never otherwise)."""
        self._written_listeners.append(listener)

    @property
    def visible_ts(self) -> int:
        """The newest commit a new snapshot may read, durable or not: the snapshot of a
        mutation (whose answer waits until it is durable, ``wait_published``)."""
        published = self.publisher.published_ts
        return self._written_ts if self._early and self._written_ts > published else published

    async def wait_published(self, ts: int) -> None:
        """Return once the commit at ``ts`` (or a later one) is published."""
        await self.publisher.wait_published(ts)

    async def wait_visible(self, ts: int) -> None:
        """Return once a new snapshot (``visible_ts``) holds the commit at ``ts``."""
        if ts > self.visible_ts:
            await self.publisher.wait_published(ts)

    def next_ts(self) -> int:
        ts = max(self.runtime.now_ns(), self._last_assigned + 1, self.published_ts + 1)
        self._last_assigned = ts
        return ts

    async def commit(
        self,
        request: CommitRequest,
        mutations: Sequence[MutationRecord] = (),
        *,
        priority: bool = False,
    ) -> int:
        """Commit a prepared transaction, with the idempotency records of the mutations it
        applies; returns its timestamp once durable and published.
        A ``priority`` request (a mutation re-run after a conflict) is checked before the
        others of its batch, so they conflict with it rather than it with them.

        Raises:
            OptimisticConcurrencyError: a commit after ``request.begin_ts`` wrote a key the
                transaction read. Nothing was written.
            StorageUnavailable: persisting failed. Nothing was written.
        """
        ts = await self.commit_written(request, mutations, priority=priority)
        await self.publisher.wait_published(ts)
        return ts

    async def commit_written(
        self,
        request: CommitRequest,
        mutations: Sequence[MutationRecord] = (),
        *,
        priority: bool = False,
    ) -> int:
        """``commit``, returning as soon as the commit is readable (``visible_ts``), before it
        is durable: whoever answers for it must ``wait_published`` first."""
        if self._task is None:
            raise RuntimeError("Committer.commit() called before Committer.start()")
        if mutations:
            request.mutations = tuple(mutations)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(request, future, priority))
        urgent = self._urgent
        if priority and urgent is not None and not urgent.done():
            urgent.set_result(None)
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._early and not batch[0].priority and self._written_ts > self.published_ts:
                await self._gather_during_flush()
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if any(pending.priority for pending in batch):
                batch.sort(key=lambda pending: not pending.priority)  # stable: queue order
            try:
                await self._process(batch)
            except Exception as exc:  # never let the writer die: fail the batch instead
                log.exception("committer batch failed")
                error = exc if isinstance(exc, StorageUnavailable) else None
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(
                            error or StorageUnavailable(f"Commit failed: {exc}")
                        )

    async def _gather_during_flush(self) -> None:
        """Wait, while written commits await their fsync, until it ends or an urgent commit
        (a re-run after a conflict) arrives: the commits arriving meanwhile join one batch.
        Writing them sooner would not answer them sooner, and every batch rewrites pages
        (the ends of the timestamp indexes) that a bigger one shares."""
        loop = asyncio.get_running_loop()
        flushed: asyncio.Future[int] = loop.create_future()
        self.publisher.when_published(self._written_ts, flushed)
        self._urgent = loop.create_future()
        try:
            await asyncio.wait((flushed, self._urgent), return_when=asyncio.FIRST_COMPLETED)
        finally:
            flushed.cancel()
            self._urgent.cancel()
            self._urgent = None

    async def _process(self, batch: list[_Pending]) -> None:
        results = await self.persistence.commit(
            [pending.request for pending in batch],
            write_log=self.write_log,
            next_ts=self.next_ts,
        )
        written: list[tuple[int, CommitRequest]] = []
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, OptimisticConcurrencyError):
                self.conflicts += 1
                if not pending.future.done():  # else the caller went away
                    pending.future.set_exception(result)
                continue
            self.commits += 1
            self._last_assigned = max(self._last_assigned, result)
            self._written_ts = max(self._written_ts, result)
            if pending.request.tables:
                self.tables.mark_persisted(pending.request.tables)
            if not pending.future.done():
                pending.future.set_result(result)
            written.append((result, pending.request))
        if self._early and self._written_listeners:
            for ts, request in written:
                for listener in self._written_listeners:
                    try:
                        listener(ts, request.write_keys)
                    except Exception:
                        log.exception("a listener failed on written commit %s", ts)
        self.feed.poke()
