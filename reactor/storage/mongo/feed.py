"""Commits and invalidation when several processes share one MongoDB database.

Owns the two halves that replace the embedded engine's in-process path:

* ``ClusterCommitter``: commits batches through ``MongoPersistence.commit`` (the conflict check
  against every process's commits happens there, inside a MongoDB transaction) and answers a
  caller only once the feed has published its commit, so its next read sees its own write.
* ``ClusterFeed``: the one change feed of the process. In ``change_stream`` mode it reads the
  database's change stream through ``reactor.storage.mongo.change_stream`` (commits of every process
  and writes of other programs); in ``poll`` mode (MongoDB emulators without change streams) it
  tails the commit log, which carries Reactor's commits only. Either way every commit reaches
  the write log and ``Committer.publish`` once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo.errors import PyMongoError

from reactor.core.persistence import Commit
from reactor.core.reads import ReadSet
from reactor.core.tasks import stop_task
from reactor.core.write_log import WriteLog
from reactor.engine.committer import Committer, _Request
from reactor.engine.transaction import PreparedCommit
from reactor.storage.mongo import change_stream as cs
from reactor.storage.mongo.engine import CommitRequest, MongoPersistence, decode_key_map
from schema.errors import OptimisticConcurrencyError, StorageUnavailable

__all__ = ["ClusterCommitter", "ClusterFeed"]

log = logging.getLogger("reactor.storage.mongo.feed")

HEARTBEAT_S = 20.0  # an idle feed moves to a fresh snapshot this often (MongoDB keeps 300 s)
CHECKPOINT_S = 1.0


def _no_records(ts: int) -> Commit:
    raise RuntimeError("a published remote commit has no records to build")


class ClusterCommitter(Committer):
    """A committer over a database shared by several processes (see the module docstring)."""

    engine: MongoPersistence

    def __init__(self, engine: MongoPersistence, *args: Any, **kwargs: Any) -> None:
        super().__init__(engine, *args, **kwargs)
        self.engine = engine
        self._awaiting: list[tuple[int, asyncio.Future[int]]] = []
        self.feed: ClusterFeed | None = None

    async def _process(self, batch: list[_Request]) -> None:
        requests = [
            CommitRequest(
                r.prepared.begin_ts,
                r.prepared.read_set,
                r.prepared.write_keys,
                r.prepared.write_prefixes,
                r.prepared.table,
                r.prepared.build,
                r.mutation,
            )
            for r in batch
        ]
        try:
            results = await self.engine.commit(requests, self.runtime.now_ns)
        except StorageUnavailable as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for request, result in zip(batch, results, strict=True):
            if isinstance(result, OptimisticConcurrencyError):
                self.conflicts += 1
                if not request.future.done():
                    request.future.set_exception(result)
                continue
            self.commits += 1
            tables = request.prepared.build(result).tables
            if tables:
                self.tables.mark_persisted(tables)
            if result <= self.published_ts and not request.future.done():
                request.future.set_result(result)
            else:
                self._awaiting.append((result, request.future))
        if self.feed is not None:
            self.feed.poke()

    def publish(self, ts: int, prepared: PreparedCommit | None) -> None:
        super().publish(ts, prepared)
        if self._awaiting:
            ready = [(t, f) for t, f in self._awaiting if t <= ts]
            self._awaiting = [(t, f) for t, f in self._awaiting if t > ts]
            for commit_ts, future in ready:
                if not future.done():
                    future.set_result(commit_ts)


class ClusterFeed:
    def __init__(
        self,
        engine: MongoPersistence,
        committer: ClusterCommitter,
        write_log: WriteLog,
        *,
        index_definitions: Callable[[str], Mapping[str, Sequence[str]]],
        invalidate_all: Callable[[], None],
        checkpoint_key: str,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.engine = engine
        self.committer = committer
        self.write_log = write_log
        self.index_definitions = index_definitions
        self.invalidate_all = invalidate_all
        self.checkpoint_key = checkpoint_key
        self.poll_interval_s = poll_interval_s
        self.mode = engine.feed_mode
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_publish = time.monotonic()
        self._reactor_ts = committer.published_ts  # poll mode: the newest commit-log entry read
        self.events = 0

    def start(self) -> None:
        committer = self.committer
        committer.feed = self
        run = self._run_stream if self.mode == "change_stream" else self._run_poll
        self._task = asyncio.get_running_loop().create_task(run(), name="feed")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def poke(self) -> None:
        """This process committed: poll now rather than at the next interval."""
        self._wake.set()

    # -- publishing ----------------------------------------------------------------------------

    def _publish(
        self,
        ts: int,
        write_keys: dict[str, list[bytes]],
        prefixes: dict[str, list[bytes]],
        table: str | None,
        writes: list[tuple[str, str, dict[str, Any] | None]],
    ) -> int:
        ts = max(ts, self.committer.published_ts + 1)
        self.write_log.append(ts, write_keys, table, prefixes)
        prepared = PreparedCommit(
            ts,
            ReadSet(),
            write_keys,
            _no_records,
            table,
            writes[0][1] if writes else None,
            writes,
            prefixes,
        )
        self.committer.publish(ts, prepared)
        self._last_publish = time.monotonic()
        self.events += 1
        return ts

    def _tick(self) -> int:
        """A new published timestamp without writes: fresh snapshots for an idle feed."""
        ts = self.committer.published_ts + 1
        self.committer.publish(ts, None)
        self._last_publish = time.monotonic()
        return ts

    async def _maintain(self) -> None:
        if time.monotonic() - self._last_publish > HEARTBEAT_S:
            self._tick()
        self.write_log.trim(time.time_ns())
        await self.engine.retire_snapshots(self.committer.published_ts)

    # -- poll mode -------------------------------------------------------------------------------

    async def _run_poll(self) -> None:
        while True:
            try:
                entries = await self.engine.commits_after(self._reactor_ts)
            except StorageUnavailable as exc:
                log.warning("feed: %s", exc)
                entries = []
            for entry in entries:
                self._reactor_ts = int(entry["_id"])
                self._publish(
                    self._reactor_ts,
                    decode_key_map(entry.get("keys")),
                    decode_key_map(entry.get("prefixes")),
                    entry.get("table"),
                    [(str(t), str(i), None) for t, i in entry.get("deleted") or []],
                )
            if len(entries) < 1000:
                await self._maintain()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    # -- change-stream mode ----------------------------------------------------------------------

    async def _run_stream(self) -> None:
        stored = await self.engine.get_global(self.checkpoint_key)
        consumer = cs.ChangeStreamConsumer(
            self.index_definitions,
            last_ts=self.committer.published_ts,
            resume=cs.ResumePoint.from_document(stored),
            database=self.engine.database_name,
        )
        start_at = None if consumer.checkpoint else await self.engine.operation_time()
        saved_at = 0.0
        while True:
            try:
                options = consumer.watch_options(start_at_operation_time=start_at)
                async with await self.engine.db.watch(**options) as stream:
                    while True:
                        event = await stream.try_next()
                        if event is None:
                            out = consumer.flush(stream.resume_token)
                        else:
                            out = consumer.receive(event)
                        reopen = self._handle(consumer, out)
                        if time.monotonic() - saved_at > CHECKPOINT_S and consumer.checkpoint:
                            await self.engine.set_global(
                                self.checkpoint_key, consumer.checkpoint.to_document()
                            )
                            saved_at = time.monotonic()
                        if event is None:
                            await self._maintain()
                            consumer.last_ts = max(consumer.last_ts, self.committer.published_ts)
                        if reopen:
                            break
            except PyMongoError as exc:
                out = consumer.on_error(exc)  # re-raises what it does not handle
                for item in out:
                    if isinstance(item, cs.Retry):
                        log.warning(
                            "change stream: %s; retrying in %.1fs", item.reason, item.delay_s
                        )
                        await asyncio.sleep(item.delay_s)
                    elif isinstance(item, cs.InvalidateAll) and item.reopen:
                        start_at = await self.engine.operation_time()
                self._handle(consumer, [i for i in out if not isinstance(i, cs.Retry)])

    def _handle(self, consumer: cs.ChangeStreamConsumer, events: list[cs.FeedEvent]) -> bool:
        reopen = False
        for item in events:
            if isinstance(item, cs.Commit):
                writes = [
                    (c.table, c.id, c.new if isinstance(c.new, dict) else None)
                    for c in item.changes
                ]
                ts = self._publish(item.ts, item.write_keys, item.prefixes, item.table, writes)
                consumer.last_ts = max(consumer.last_ts, ts)
                if item.unknown_indexes:
                    self.invalidate_all()
            elif isinstance(item, cs.InvalidateAll):
                log.warning("change stream: %s; re-running every live query", item.reason)
                consumer.last_ts = max(consumer.last_ts, self._tick())
                self.invalidate_all()
                reopen = reopen or item.reopen
        return reopen
