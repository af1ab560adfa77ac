"""The receiving end of the change feed: every commit, whichever engine or process made it,
goes into the write log and then to the parts that react to it.

Owns the published timestamp (new snapshots read at it), the order of publication (the write
log first, so a subscription born after a commit sees it, then each listener), and waking
callers waiting for their commit to be published. It does not read any engine (the engine's
``ChangeFeed`` calls ``publish``) or check conflicts (``reactor.engine.committer``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable

from reactor.core.persistence import PublishedCommit
from reactor.core.runtime import Runtime
from reactor.core.write_log import WriteLog

__all__ = ["Listener", "Publisher"]

log = logging.getLogger("reactor.engine.feed")

# Called once per published commit, in timestamp order; must not block.
Listener = Callable[[PublishedCommit], None]


class Publisher:
    """Implements ``FeedSink`` for the engines' change feeds.

    Invariant: ``published_ts`` only grows, and every commit at or below it is in the write
    log (unless trimmed) and has been handed to every listener.
    """

    def __init__(self, write_log: WriteLog, *, published_ts: int, runtime: Runtime) -> None:
        self.write_log = write_log
        self.runtime = runtime
        self._published_ts = published_ts
        # The newest published commit: ``published_ts`` without the ticks (new snapshots of an
        # idle feed, which no commit holds).
        self.last_commit_ts = published_ts
        self._listeners: list[Listener] = []
        self._invalidators: list[Callable[[], None]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[int]]] = []  # heap by ts
        self._waiter_seq = 0
        self.published_commits = 0

    @property
    def published_ts(self) -> int:
        return self._published_ts

    def subscribe(
        self, listener: Listener, *, invalidate_all: Callable[[], None] | None = None
    ) -> None:
        """Call ``listener`` for every commit published from now on, and ``invalidate_all``
        when the feed reports writes it cannot describe key by key."""
        self._listeners.append(listener)
        if invalidate_all is not None:
            self._invalidators.append(invalidate_all)

    # -- FeedSink ----------------------------------------------------------------------------

    def publish(self, commit: PublishedCommit) -> int:
        ts = commit.ts
        if ts <= self._published_ts:  # a foreign write timed before our last commit
            ts = self._published_ts + 1
            commit = PublishedCommit(
                ts, commit.write_keys, commit.write_prefixes, commit.table, commit.writes
            )
        self.write_log.append(ts, commit.write_keys, commit.table, commit.write_prefixes)
        self._advance(ts)
        self.last_commit_ts = ts
        self.published_commits += 1
        # Waiters first: their callers (a mutation's answer) resume before the work the
        # listeners wake (a live query's fan-out); both see every listener's effects.
        self._wake(ts)
        for listener in self._listeners:
            try:
                listener(commit)
            except Exception:
                log.exception("a listener failed on published commit %s", ts)
        return ts

    def tick(self) -> int:
        ts = self._published_ts + 1
        self._advance(ts)
        self._wake(ts)
        return ts

    def invalidate_all(self, reason: str) -> None:
        log.warning("re-running every live query: %s", reason)
        for invalidate in self._invalidators:
            invalidate()

    # -- waiting -----------------------------------------------------------------------------

    def when_published(self, ts: int, future: asyncio.Future[int]) -> None:
        """Resolve ``future`` with ``ts`` once ``ts`` is published (at once if it is)."""
        if ts <= self._published_ts:
            if not future.done():
                future.set_result(ts)
            return
        self._waiter_seq += 1
        heapq.heappush(self._waiters, (ts, self._waiter_seq, future))

    async def wait_published(self, ts: int) -> None:
        """Return once ``ts`` (or a later timestamp) is published."""
        if ts > self._published_ts:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.when_published(ts, future)
            await future

    def _advance(self, ts: int) -> None:
        self._published_ts = ts
        self.write_log.trim(self.runtime.now_ns())

    def _wake(self, ts: int) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= ts:
            commit_ts, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(commit_ts)
