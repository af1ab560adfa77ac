"""A real SQLite engine whose durability a test can hold back: ``HeldFsyncSqlite`` fsyncs its
WAL as the engine always does, but each fsync first waits while the test holds it, so a test
can look at what is readable, answered and published while commits are written but not yet
durable."""

from __future__ import annotations

import threading
from pathlib import Path

from reactor.storage.sqlite import SqlitePersistence

__all__ = ["HeldFsyncSqlite"]

HOLD_LIMIT_S = 10.0  # a test that forgets to release does not hang for good


class HeldFsyncSqlite(SqlitePersistence):
    """``hold()`` makes the next fsyncs wait (``held`` is set once one waits) until
    ``release()``; ``syncs`` counts the fsyncs done."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.syncs = 0
        self.held = threading.Event()
        self._holding = False
        self._released = threading.Event()

    def hold(self) -> None:
        self._released.clear()
        self.held.clear()
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._released.set()

    def _sync_wal(self) -> None:
        if self._holding:
            self.held.set()
            self._released.wait(HOLD_LIMIT_S)
        super()._sync_wal()
        self.syncs += 1
