"""The single writer: validates transactions against the write log, assigns commit timestamps,
persists batches (group commit) and publishes each commit to its subscribers.

Invariants: commit timestamps strictly increase (``max(now, last + 1)``), across restarts too;
a commit is published (visible to new snapshots and to subscriptions) only after it is durable;
a transaction commits only if no commit after its snapshot wrote a key inside its read set
(serializability, CONVEX_SEMANTICS §1.3). Re-running a conflicted mutation is the executor's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from reactor.core.persistence import MutationRecord, Persistence
from reactor.core.runtime import Runtime, SystemRuntime
from reactor.core.system_tables import TableRegistry
from reactor.core.tasks import stop_task
from reactor.core.write_log import WriteLog
from reactor.engine.transaction import PreparedCommit
from schema.errors import OptimisticConcurrencyError, StorageUnavailable

__all__ = ["Committer"]

log = logging.getLogger("reactor.engine.committer")

MAX_BATCH = 512


@dataclass(slots=True)
class _Request:
    prepared: PreparedCommit
    mutation: MutationRecord | None
    future: asyncio.Future[int]


class Committer:
    def __init__(
        self,
        persistence: Persistence,
        write_log: WriteLog,
        tables: TableRegistry,
        *,
        on_publish: Callable[[int, PreparedCommit], None],
        runtime: Runtime | None = None,
    ) -> None:
        self.persistence = persistence
        self.write_log = write_log
        self.tables = tables
        self.on_publish = on_publish
        self.runtime = runtime or SystemRuntime()
        self.published_ts = persistence.max_ts()
        self._last_assigned = self.published_ts
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.conflicts = 0
        self._published = asyncio.Event()  # replaced (after being set) by each publish

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="committer")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def wait_published(self, ts: int) -> None:
        """Return once the commit at ``ts`` (or a later one) is published."""
        while self.published_ts < ts:
            await self._published.wait()

    def publish(self, ts: int, prepared: PreparedCommit | None) -> None:
        """Make ``ts`` the newest published commit: new snapshots read at it, and (with
        ``prepared``, its written keys) subscriptions it invalidates are told."""
        self.published_ts = ts
        if prepared is not None:
            try:
                self.on_publish(ts, prepared)
            except Exception:
                log.exception("publishing commit %s failed", ts)
        event, self._published = self._published, asyncio.Event()
        event.set()

    def next_ts(self) -> int:
        ts = max(self.runtime.now_ns(), self._last_assigned + 1)
        self._last_assigned = ts
        return ts

    async def commit(self, prepared: PreparedCommit, mutation: MutationRecord | None = None) -> int:
        """Commit a prepared transaction; returns its timestamp once durable and published.

        Raises:
            OptimisticConcurrencyError: a commit after ``prepared.begin_ts`` wrote a key the
                transaction read. Nothing was written.
            StorageUnavailable: persisting failed. Nothing was written.
        """
        if self._task is None:
            raise RuntimeError("Committer.commit() called before Committer.start()")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(prepared, mutation, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._process(batch)
            except Exception as exc:  # never let the writer die: fail the batch instead
                log.exception("committer batch failed")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(StorageUnavailable(f"Commit failed: {exc}"))

    async def _process(self, batch: list[_Request]) -> None:
        accepted = []
        for request in batch:
            prepared = request.prepared
            conflict = self.write_log.find_conflict(prepared.read_set, prepared.begin_ts)
            if conflict is not None:
                self.conflicts += 1
                if request.future.done():  # the caller went away
                    continue
                request.future.set_exception(
                    OptimisticConcurrencyError(table=conflict.table, write_ts=conflict.ts)
                )
                continue
            ts = self.next_ts()
            self.write_log.append(ts, prepared.write_keys, prepared.table, prepared.write_prefixes)
            commit = prepared.build(ts)
            commit.mutation = request.mutation
            accepted.append((ts, request, commit))
        if not accepted:
            return
        try:
            await self.persistence.write([c for _, _, c in accepted])
        except Exception as exc:
            self.write_log.remove_after(accepted[0][0] - 1)
            error = exc if isinstance(exc, StorageUnavailable) else StorageUnavailable(str(exc))
            for _, request, _ in accepted:
                request.future.set_exception(error)
            return
        for _, _, commit in accepted:
            if commit.tables:
                self.tables.mark_persisted(commit.tables)
        for ts, request, _ in accepted:
            self.commits += 1
            self.publish(ts, request.prepared)
            if not request.future.done():
                request.future.set_result(ts)
        self.write_log.trim(self.runtime.now_ns())
