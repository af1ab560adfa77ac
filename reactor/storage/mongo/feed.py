"""The MongoDB engine's change feed: every commit of every process sharing the database, and
writes of other programs, delivered in order to the process's ``FeedSink``.

In ``change_stream`` mode it reads the database's change stream through
``reactor.storage.mongo.change_stream`` (commits of every process and writes of other
programs); in ``poll`` mode (MongoDB emulators without change streams) it tails the commit log,
which carries Reactor's commits only. Either way every commit reaches the sink once, in order.
It does not decide what a published commit invalidates (``reactor.engine.feed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pymongo.errors import PyMongoError

from reactor.core.persistence import FeedSink, PublishedCommit
from reactor.core.tasks import start_task, stop_task
from reactor.storage.mongo import change_stream as cs
from reactor.storage.mongo.commit_log import decode_key_map
from schema.errors import StorageUnavailable

__all__ = ["ClusterFeed", "FeedSource"]

log = logging.getLogger("reactor.storage.mongo.feed")

HEARTBEAT_S = 20.0  # an idle feed moves to a fresh snapshot this often (MongoDB keeps 300 s)
CHECKPOINT_S = 1.0


class FeedSource(Protocol):
    """What the feed reads from the engine (``MongoPersistence``, which opens the feed)."""

    database_name: str
    feed_mode: str

    @property
    def db(self) -> Any: ...

    async def operation_time(self) -> Any: ...

    async def commits_after(self, ts: int, limit: int = 1000) -> list[dict[str, Any]]: ...

    async def retire_snapshots(self, published_ts: int) -> None: ...

    async def get_global(self, key: str) -> Any: ...

    async def set_global(self, key: str, value: Any) -> None: ...


class ClusterFeed:
    def __init__(
        self,
        engine: FeedSource,
        sink: FeedSink,
        *,
        index_definitions: Callable[[str], Mapping[str, Sequence[str]]],
        checkpoint_key: str,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.index_definitions = index_definitions
        self.checkpoint_key = checkpoint_key
        self.poll_interval_s = poll_interval_s
        self.mode = engine.feed_mode
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_publish = time.monotonic()
        self._reactor_ts = sink.published_ts  # poll mode: the newest commit-log entry read
        self.events = 0

    def start(self) -> None:
        run = self._run_stream if self.mode == "change_stream" else self._run_poll
        self._task = start_task(run(), name="feed")

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
        ts = self.sink.publish(PublishedCommit(ts, write_keys, prefixes, table, writes))
        self._last_publish = time.monotonic()
        self.events += 1
        return ts

    def _tick(self) -> int:
        """A new published timestamp without writes: fresh snapshots for an idle feed."""
        ts = self.sink.tick()
        self._last_publish = time.monotonic()
        return ts

    async def _maintain(self) -> None:
        if time.monotonic() - self._last_publish > HEARTBEAT_S:
            self._tick()
        await self.engine.retire_snapshots(self.sink.published_ts)

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
            last_ts=self.sink.published_ts,
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
                            consumer.last_ts = max(consumer.last_ts, self.sink.published_ts)
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
                    self.sink.invalidate_all("writes to indexes this process does not know")
            elif isinstance(item, cs.InvalidateAll):
                consumer.last_ts = max(consumer.last_ts, self._tick())
                self.sink.invalidate_all(f"change stream: {item.reason}")
                reopen = reopen or item.reopen
        return reopen
