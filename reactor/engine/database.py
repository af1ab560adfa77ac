"""The database as the runtime sees it: transactions at published snapshots, and the runtime's
own transactions committed until they succeed.

A function runner builds one without a committer: it only opens transactions at the
timestamps the server gives it.

Owns which snapshot a new transaction reads at (the newest published commit), building
``Transaction`` with the served schema, and ``run_system`` (bookkeeping of the scheduler, file
storage and back-fills, which must never be lost to a conflict). It does not run app functions
(``reactor.engine.executor``) or decide what conflicts (``Persistence.commit``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from reactor.core.persistence import Persistence
from reactor.core.runtime import Runtime
from reactor.core.system_tables import TableRegistry
from reactor.engine.committer import Committer
from reactor.engine.served_app import ServedApp
from reactor.engine.transaction import Transaction
from schema.errors import OptimisticConcurrencyError

__all__ = ["Database"]

T = TypeVar("T")

SYSTEM_INITIAL_BACKOFF_S = 0.001
SYSTEM_MAX_BACKOFF_S = 1.0


class Database:
    def __init__(
        self,
        persistence: Persistence,
        committer: Committer | None,
        tables: TableRegistry,
        served: ServedApp,
        *,
        runtime: Runtime,
    ) -> None:
        self.persistence = persistence
        self.committer = committer
        self.tables = tables
        self.served = served
        self.runtime = runtime

    def server_committer(self) -> Committer:
        if self.committer is None:
            raise RuntimeError("A function runner has no committer: ask the server")
        return self.committer

    def snapshot_ts(self) -> int:
        """The newest published timestamp: a snapshot that holds every acknowledged commit."""
        return self.server_committer().published_ts

    def mutation_snapshot_ts(self) -> int:
        """The snapshot a mutation reads at: the newest commit readable, durable or not
        (``Committer.visible_ts``). Whatever answers it gives waits until that is durable."""
        return self.server_committer().visible_ts

    def now_ms(self) -> float:
        return self.runtime.now_ns() / 1e6

    def begin(
        self, ts: int | None = None, *, writable: bool, journal: str | None = None
    ) -> Transaction:
        """A transaction reading at ``ts`` (default: the newest published snapshot)."""
        return Transaction(
            self.persistence,
            self.snapshot_ts() if ts is None else ts,
            schema=self.served.schema,
            tables=self.tables,
            writable=writable,
            now_ms=self.now_ms(),
            journal=journal,
        )

    async def run_system(self, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``body`` in a writable transaction and commit it, re-running it on conflicts
        until it commits (the runtime's bookkeeping must not be lost)."""
        committer = self.server_committer()
        attempt = 0
        while True:
            attempt += 1
            txn = self.begin(writable=True)
            value = await body(txn)
            if not txn.has_writes:
                return value
            try:
                await committer.commit(txn.prepare_commit())
                return value
            except OptimisticConcurrencyError as exc:
                if exc.write_ts is not None:
                    await committer.wait_published(exc.write_ts)
                backoff = min(
                    SYSTEM_INITIAL_BACKOFF_S * 2 ** min(attempt, 10), SYSTEM_MAX_BACKOFF_S
                )
                await self.runtime.sleep(backoff * self.runtime.random())
