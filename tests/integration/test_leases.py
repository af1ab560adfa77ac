"""Leases on the real SQLite engine, and leadership over them: one holder at a time, renewal,
expiry, release, and a leader that cannot renew stopping before its lease can expire.

Leadership runs on a ``ManualClock`` that is also the engine's lease clock: the test moves time
one renewal period at a time and polls (in real time) only for SQLite's answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from functions.loader import load_app
from reactor.platform.leases import Leadership
from reactor.server.deployment import Deployment
from reactor.storage.sqlite import SqlitePersistence
from reactor.testing import ManualClock, call, write_app
from schema.errors import StorageUnavailable

pytestmark = pytest.mark.anyio

TTL = 3.0  # on the manual clock: renew every second, count the lease lost 2 s after a renewal
RENEW = TTL / 3
S = 10**9


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqlitePersistence]:
    engine = SqlitePersistence.open(tmp_path / "data")
    yield engine
    engine.close()


@pytest.fixture
def clock(storage: SqlitePersistence) -> ManualClock:
    clock = ManualClock()
    storage.wall_clock_ns = clock.now_ns  # leases expire by the same clock
    return clock


async def eventually(check: Callable[[], bool], timeout: float = 1.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("never happened")
        await asyncio.sleep(0.01)


def record_attempts(storage: SqlitePersistence, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The holder of every ``acquire_lease`` call on ``storage`` as it finishes, however."""
    finished: list[str] = []
    acquire = storage.acquire_lease

    async def recording(name: str, holder: str, ttl_s: float) -> bool:
        try:
            return await acquire(name, holder, ttl_s)
        finally:
            finished.append(holder)

    monkeypatch.setattr(storage, "acquire_lease", recording)
    return finished


async def next_renewal(clock: ManualClock, finished: list[str], *holders: str) -> None:
    """Advance the clock by one renewal period, then wait until each of ``holders`` has finished
    the attempt it makes then (SQLite answers from a thread)."""
    before = {holder: finished.count(holder) for holder in holders}
    await clock.advance(RENEW)
    await eventually(lambda: all(finished.count(h) > n for h, n in before.items()))


class Recorder:
    """A leader's callbacks, recorded in one shared event list."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events

    async def on_gain(self) -> None:
        self.events.append(f"{self.name} gain")

    async def on_lose(self) -> None:
        self.events.append(f"{self.name} lose")

    def leadership(self, storage: SqlitePersistence, clock: ManualClock) -> Leadership:
        return Leadership(
            storage,
            "jobs",
            self.name,
            on_gain=self.on_gain,
            on_lose=self.on_lose,
            ttl_s=TTL,
            runtime=clock,
        )


# -- the storage lease -----------------------------------------------------------------------


async def test_a_free_lease_is_taken_and_refused_to_others_until_it_expires(
    storage: SqlitePersistence,
) -> None:
    now = [1_000 * S]
    storage.wall_clock_ns = lambda: now[0]
    assert await storage.acquire_lease("jobs", "a", 10) is True
    assert await storage.acquire_lease("jobs", "b", 10) is False
    now[0] += 9 * S
    assert await storage.acquire_lease("jobs", "b", 10) is False
    now[0] += 1 * S  # a's lease expires at exactly this instant
    assert await storage.acquire_lease("jobs", "b", 10) is True
    assert await storage.acquire_lease("jobs", "a", 10) is False


async def test_the_holder_renews_its_lease(storage: SqlitePersistence) -> None:
    now = [1_000 * S]
    storage.wall_clock_ns = lambda: now[0]
    assert await storage.acquire_lease("jobs", "a", 10)
    now[0] += 8 * S
    assert await storage.acquire_lease("jobs", "a", 10)  # renewed: now expires at +18 s
    now[0] += 8 * S
    assert await storage.acquire_lease("jobs", "b", 10) is False
    assert await storage.acquire_lease("other", "b", 10) is True  # leases are independent


async def test_only_the_holder_releases_a_lease(storage: SqlitePersistence) -> None:
    assert await storage.acquire_lease("jobs", "a", 60)
    await storage.release_lease("jobs", "b")
    assert await storage.acquire_lease("jobs", "b", 60) is False
    await storage.release_lease("jobs", "a")
    assert await storage.acquire_lease("jobs", "b", 60) is True


async def test_leases_are_stored_in_the_database(tmp_path: Path) -> None:
    path = tmp_path / "reactor.sqlite3"
    first, second = SqlitePersistence(path), SqlitePersistence(path)
    try:
        assert await first.acquire_lease("jobs", "a", 60)
        assert await second.acquire_lease("jobs", "b", 60) is False
        assert await second.acquire_lease("jobs", "a", 60) is True
    finally:
        first.close()
        second.close()


async def test_reopening_the_data_directory_drops_a_dead_process_leases(tmp_path: Path) -> None:
    first = SqlitePersistence.open(tmp_path / "data")
    assert await first.acquire_lease("jobs", "a", 60)
    first.close()  # as if killed: the lease was never released, the directory lock is gone
    second = SqlitePersistence.open(tmp_path / "data")
    try:
        assert await second.acquire_lease("jobs", "b", 60) is True
    finally:
        second.close()


# -- leadership ------------------------------------------------------------------------------


async def test_exactly_one_leads_and_the_other_takes_over_when_it_stops(
    storage: SqlitePersistence, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = record_attempts(storage, monkeypatch)
    events: list[str] = []
    a = Recorder("a", events).leadership(storage, clock)
    b = Recorder("b", events).leadership(storage, clock)
    await a.start()
    await b.start()
    try:
        assert (a.leading, b.leading) == (True, False)  # decided before start() returned
        for _ in range(4):  # past the ttl: a keeps renewing it, b keeps being refused
            await next_renewal(clock, finished, "a", "b")
            assert (a.leading, b.leading) == (True, False)
        await a.stop()
        assert not a.leading
        await next_renewal(clock, finished, "b")
        assert b.leading
        assert events == ["a gain", "a lose", "b gain"]
    finally:
        await a.stop()
        await b.stop()
    assert events == ["a gain", "a lose", "b gain", "b lose"]
    assert await storage.acquire_lease("jobs", "c", 60)  # stop() released it


async def test_a_leader_that_cannot_renew_stops_before_another_takes_over(
    storage: SqlitePersistence, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    a = Recorder("a", events).leadership(storage, clock)
    b = Recorder("b", events).leadership(storage, clock)
    acquire = storage.acquire_lease
    outage: set[str] = set()

    async def flaky(name: str, holder: str, ttl_s: float) -> bool:
        if holder in outage:
            raise StorageUnavailable("SQLite lease failed: disk I/O error")
        return await acquire(name, holder, ttl_s)

    monkeypatch.setattr(storage, "acquire_lease", flaky)
    finished = record_attempts(storage, monkeypatch)
    await a.start()  # a's lease, taken at +0 s, expires at +3 s
    await b.start()
    try:
        assert a.leading
        outage.add("a")
        await next_renewal(clock, finished, "a", "b")  # +1 s
        assert not a.leading  # at its very next renewal
        assert events == ["a gain", "a lose"]
        # a's lease still stands in the database (it was never released): b waits it out.
        await next_renewal(clock, finished, "a", "b")  # +2 s
        assert not b.leading
        await next_renewal(clock, finished, "a", "b")  # +3 s: expired
        assert b.leading
        assert events == ["a gain", "a lose", "b gain"]
        outage.clear()
        await next_renewal(clock, finished, "a", "b")
        assert (a.leading, b.leading) == (False, True)  # a retries, but b holds it now
    finally:
        await a.stop()
        await b.stop()


async def test_a_hung_renewal_counts_as_lost_before_the_lease_expires(
    storage: SqlitePersistence, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    a = Recorder("a", events).leadership(storage, clock)
    acquire = storage.acquire_lease
    hang, hung = asyncio.Event(), asyncio.Event()

    async def hanging(name: str, holder: str, ttl_s: float) -> bool:
        if hang.is_set():
            hung.set()
            await asyncio.Event().wait()  # never answers
        return await acquire(name, holder, ttl_s)

    monkeypatch.setattr(storage, "acquire_lease", hanging)
    await a.start()  # renewed at +0 s: its lease expires at +3 s
    try:
        hang.set()
        await clock.advance(RENEW)
        assert hung.is_set() and a.leading  # the renewal at +1 s hangs
        await clock.advance(RENEW - 0.001)
        assert a.leading
        # Counted lost 2/3 of the ttl after the last renewal, a third before the lease expires.
        await clock.advance(0.001)
        assert not a.leading
        assert events == ["a gain", "a lose"]
    finally:
        await a.stop()


async def test_a_renewal_refused_means_leadership_is_lost(
    storage: SqlitePersistence, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = record_attempts(storage, monkeypatch)
    events: list[str] = []
    a = Recorder("a", events).leadership(storage, clock)
    await a.start()
    try:
        # Someone took the lease behind a's back (say, a's clock ran slow).
        await storage.release_lease("jobs", "a")
        assert await storage.acquire_lease("jobs", "intruder", 60)
        await next_renewal(clock, finished, "a")
        assert not a.leading
        assert events == ["a gain", "a lose"]
    finally:
        await a.stop()
    assert await storage.acquire_lease("jobs", "a", 60) is False  # a released nothing of theirs


async def test_a_failing_on_gain_gives_the_lease_up(storage: SqlitePersistence) -> None:
    events: list[str] = []
    recorder = Recorder("a", events)

    async def broken() -> None:
        events.append("a gain")
        raise RuntimeError("recover failed")

    a = Leadership(storage, "jobs", "a", on_gain=broken, on_lose=recorder.on_lose, ttl_s=60)
    await a.start()
    try:
        assert not a.leading
        assert events == ["a gain", "a lose"]
        assert await storage.acquire_lease("jobs", "b", 60)  # released for another process
    finally:
        await a.stop()


# -- the deployment: scheduler and crons in one process only -----------------------------------

APP = {
    "jobs.py": """
        from functions import mutation
        from schema import v

        @mutation(args={})
        async def noop(ctx):
            return None
    """,
}


async def test_only_the_lease_holder_runs_the_scheduler(tmp_path: Path) -> None:
    """Two deployments on one database file (as two processes on one MongoDB would be)."""
    app = load_app(write_app(tmp_path / "app", APP))
    path = tmp_path / "data" / SqlitePersistence.FILE_NAME
    path.parent.mkdir()
    clock = ManualClock()
    deployments = []
    for _ in range(2):
        persistence = SqlitePersistence(path)
        persistence.wall_clock_ns = clock.now_ns
        deployments.append(
            Deployment(
                app,
                persistence,
                runtime=clock,
                blob_directory=tmp_path / "blobs",
                lease_ttl_s=TTL,
            )
        )
    first, second = deployments
    stopped: list[Deployment] = []
    await first.start()
    await second.start()
    try:
        assert first.leadership.leading and not second.leadership.leading
        assert first.jobs._task is not None
        assert second.jobs._task is None
        assert (await call(second, "jobs:noop")).success  # serving works without the lease
        await first.stop()
        stopped.append(first)
        await clock.advance(RENEW)  # second's next attempt
        await eventually(lambda: second.jobs._task is not None)
        assert second.leadership.leading
    finally:
        for deployment in (first, second):
            if deployment not in stopped:
                await deployment.stop()


class SharedSqlite(SqlitePersistence):
    """As if other processes could open this database too (like MongoDB)."""

    single_process = False


@pytest.mark.parametrize(("engine", "recovers"), [(SqlitePersistence, True), (SharedSqlite, False)])
async def test_one_off_commands_recover_only_on_single_process_storage(
    tmp_path: Path, engine: type[SqlitePersistence], recovers: bool
) -> None:
    app = load_app(write_app(tmp_path / "app", APP))
    deployment = Deployment(app, engine.open(tmp_path / "data"))
    recovered: list[bool] = []

    async def recover() -> None:
        recovered.append(True)

    deployment.scheduler.recover = recover  # type: ignore[method-assign]
    await deployment.start(background=False)
    try:
        assert recovered == ([True] if recovers else [])
        assert not deployment.leadership.leading and deployment.jobs._task is None
    finally:
        await deployment.stop()
