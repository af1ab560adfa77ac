"""Helpers for tests of apps and of Reactor itself: a real deployment on a temporary SQLite file
(or, with ``REACTOR_TEST_STORAGE`` set to a MongoDB URL, on a fresh MongoDB database).

Owns writing small app directories from source strings and starting a ``Deployment`` on them,
plus ``ManualClock``. Nothing here is a mock: the engine, committer and live queries are the
real ones.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from reactor.core.persistence import Persistence
from reactor.engine.executor import FunctionResult
from reactor.runners.pool import RunnerSettings
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence

__all__ = ["RUNNERS_ENV", "STORAGE_ENV", "ManualClock", "call", "running_deployment", "write_app"]

# A MongoDB URL here runs ``running_deployment`` on a fresh database of it instead of SQLite
# (``make test-mongo``: the conformance suites on the MongoDB engine).
STORAGE_ENV = "REACTOR_TEST_STORAGE"
# Set (to anything), ``running_deployment`` runs app code in function runners.
RUNNERS_ENV = "REACTOR_TEST_RUNNERS"
_mongo_databases: set[str] = set()


class ManualClock:
    """A runtime whose time moves only when the test moves it; ``random()`` is always 0.5.

    By default nothing waits for time on its own. ``sleep(s)`` blocks until the test advances
    the clock to the sleeper's deadline, and a ``timeout`` expires only then, so background
    loops (leadership renewal, the job worker, crons) run on it as on the real clock and a test
    drives them step by step with ``await clock.advance(seconds)``. ``sleep`` of zero or less
    only yields to the event loop, as ``asyncio.sleep(0)`` does.

    ``ManualClock(autojump=True)`` keeps the clock's first behaviour, for code that only pauses
    (the retry backoffs of a test forcing conflicts): ``sleep(s)`` moves the clock forward by
    ``s`` at once (expiring the timeouts it passes) and returns without yielding. A background
    loop that sleeps spins on such a clock, so run a ``Deployment`` on one with
    ``start(background=False)``.

    Assigning ``ns`` sets the time without waking anyone (setting the scene, or a clock that
    goes back); the next ``advance`` wakes whoever it left overdue.
    """

    SETTLE_TURNS = 20  # event-loop turns ``advance`` yields before moving time and after waking

    def __init__(
        self, start_ns: int = 1_700_000_000_000_000_000, *, autojump: bool = False
    ) -> None:
        self.ns = start_ns
        self.autojump = autojump
        self._alarms: dict[int, tuple[int, Callable[[], None]]] = {}  # key: (deadline, fire)
        self._keys = itertools.count()

    def now_ns(self) -> int:
        return self.ns

    def monotonic_ns(self) -> int:
        return self.ns

    def random(self) -> float:
        return 0.5

    def deadlines(self) -> list[int]:
        """The deadlines (ns) of every pending ``sleep`` and ``timeout``, soonest first."""
        return sorted(deadline for deadline, _ in self._alarms.values())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, stopping at every deadline passed on the way: the
        sleepers and timeouts due there are woken in deadline order (then registration order),
        seeing the time of their deadline, and the event loop turns ``SETTLE_TURNS`` times so
        they run (and may sleep again) before time moves on. It turns the loop as often before
        moving time at all, so tasks just started reach their first sleep. Work the woken tasks
        hand to a thread (the SQLite engine) may still be under way when this returns.

        Raises:
            ValueError: ``seconds`` is negative (assign ``ns`` to set the clock back).
        """
        if seconds < 0:
            raise ValueError(f"a ManualClock cannot advance by a negative time ({seconds!r} s)")
        target = self.ns + _to_ns(seconds)
        await self._settle()
        while True:
            due = [deadline for deadline, _ in self._alarms.values() if deadline <= target]
            if not due:
                break
            self.ns = max(self.ns, min(due))
            self._fire_due()
            await self._settle()
        self.ns = target

    async def sleep(self, seconds: float) -> None:
        if self.autojump:
            self.ns += max(0, _to_ns(seconds))
            self._fire_due()
            return
        deadline = self.ns + _to_ns(seconds)
        if deadline <= self.ns:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = self._at(deadline, lambda: _resolve(woken))
        try:
            await woken
        finally:
            self._alarms.pop(key, None)

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float | None) -> AsyncIterator[None]:
        # asyncio's own timeout does the cancelling (and tells it apart from a cancellation
        # from outside); the clock only decides when it fires.
        async with asyncio.timeout(None) as scope:
            key: int | None = None
            if seconds is not None:
                loop = asyncio.get_running_loop()
                deadline = self.ns + _to_ns(seconds)
                if deadline <= self.ns:
                    scope.reschedule(loop.time())
                else:
                    key = self._at(deadline, lambda: scope.reschedule(loop.time()))
            try:
                yield
            finally:
                if key is not None:
                    self._alarms.pop(key, None)

    async def _settle(self) -> None:
        for _ in range(self.SETTLE_TURNS):
            await asyncio.sleep(0)

    def _at(self, deadline: int, fire: Callable[[], None]) -> int:
        key = next(self._keys)
        self._alarms[key] = (deadline, fire)
        return key

    def _fire_due(self) -> None:
        due = sorted(
            (deadline, key) for key, (deadline, _) in self._alarms.items() if deadline <= self.ns
        )
        for _, key in due:
            _, fire = self._alarms.pop(key)
            fire()


def _to_ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled along with its sleeper
        future.set_result(None)


def write_app(directory: Path, files: Mapping[str, str]) -> Path:
    """Write ``{"tasks.py": source, ...}`` (dedented) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return directory


def _open_persistence(data_dir: Path, kwargs: dict[str, Any]) -> Persistence:
    base_url = os.environ.get(STORAGE_ENV)
    if not base_url:
        return SqlitePersistence.open(data_dir)
    from reactor.storage.mongo.engine import MongoPersistence
    from reactor.testing.mongo import drop_database_quietly, unique_database_url

    # One database per data directory, so a test that restarts finds its data again; all
    # are dropped when the test process exits.
    url = unique_database_url(base_url, key=str(Path(data_dir).resolve()))
    if url not in _mongo_databases:
        _mongo_databases.add(url)
        atexit.register(drop_database_quietly, url)
    kwargs.setdefault("blob_directory", Path(data_dir) / "blobs")
    return MongoPersistence.open(url)


@contextlib.asynccontextmanager
async def running_deployment(
    app_dir: Path, data_dir: Path, *, background: bool = True, **kwargs: Any
) -> AsyncIterator[Deployment]:
    """A started ``Deployment`` of the app in ``app_dir``, stopped on exit; its storage is a
    SQLite file in ``data_dir`` (or a MongoDB database, see ``STORAGE_ENV``).
    ``background=False`` starts no scheduler, crons or maintenance (``Deployment.start``)."""
    persistence = _open_persistence(data_dir, kwargs)
    if os.environ.get(RUNNERS_ENV) and "runtime" not in kwargs:
        # App code in runner processes, as ``reactor serve`` runs it (runners keep real time:
        # tests on a ManualClock stay in-process).
        kwargs.setdefault("runners", RunnerSettings(query_runners=2, action_runners=1))
    deployment = await Deployment.from_directory(app_dir, persistence, **kwargs)
    await deployment.start(background=background)
    try:
        yield deployment
    finally:
        await deployment.stop()


async def call(
    deployment: Deployment, path: str, args: Mapping[str, Any] | None = None
) -> FunctionResult:
    """Run a public function by path, as the HTTP API would."""
    spec = deployment.registry.resolve(path)
    return await deployment.executor.run(spec, dict(args or {}))
