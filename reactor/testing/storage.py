"""A real SQLite engine whose durability a test can hold back: ``HeldFsyncSqlite`` fsyncs its
WAL as the engine always does, but each fsync first waits while the test holds it, so a test
can look at what is readable, answered and published while commits are written but not yet
durable."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence

__all__ = ["HeldFsyncSqlite", "held_fsync_deployment"]

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


@contextlib.asynccontextmanager
async def held_fsync_deployment(
    app_dir: Path, data_dir: Path
) -> AsyncIterator[tuple[Deployment, HeldFsyncSqlite]]:
    """A started deployment of the app in ``app_dir`` (real time, app code in-process, no
    background work) on a ``HeldFsyncSqlite`` in ``data_dir``, released and stopped on exit."""
    persistence = HeldFsyncSqlite.open(data_dir)
    assert isinstance(persistence, HeldFsyncSqlite)
    deployment = await Deployment.from_directory(app_dir, persistence)
    await deployment.start(background=False)
    try:
        yield deployment, persistence
    finally:
        persistence.release()
        await deployment.stop()
