"""The change feed's receiving end: publication order, timestamps of foreign commits, ticks,
invalidation and waiting for a timestamp to be published.

Everything is in memory (a real ``WriteLog``, a ``ManualClock``); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from reactor.core.persistence import PublishedCommit
from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog
from reactor.engine.feed import Publisher
from reactor.testing import ManualClock

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000_000_000_000
INDEX = "tasks.by_id"


def commit_at(ts: int, key: bytes = b"k", table: str | None = "tasks") -> PublishedCommit:
    return PublishedCommit(ts, {INDEX: [key]}, {}, table, [])


def reads_of(key: bytes) -> ReadSet:
    reads = ReadSet()
    reads.add_point(INDEX, key)
    return reads


def make_publisher(published_ts: int = NOW) -> tuple[Publisher, ManualClock]:
    clock = ManualClock(NOW)
    return Publisher(WriteLog(), published_ts=published_ts, runtime=clock), clock


class TestPublish:
    def test_a_later_commit_is_published_at_its_own_ts(self) -> None:
        publisher, _ = make_publisher()
        assert publisher.publish(commit_at(NOW + 5)) == NOW + 5
        assert publisher.published_ts == NOW + 5
        assert publisher.published_commits == 1

    def test_the_write_log_has_the_commit_before_any_listener_is_called(self) -> None:
        publisher, _ = make_publisher()
        seen: list[tuple[int, int, int | None]] = []

        def listener(commit: PublishedCommit) -> None:
            conflict = publisher.write_log.find_conflict(reads_of(b"k"), NOW)
            seen.append(
                (commit.ts, publisher.published_ts, None if conflict is None else conflict.ts)
            )

        publisher.subscribe(listener)
        publisher.publish(commit_at(NOW + 1))
        assert seen == [(NOW + 1, NOW + 1, NOW + 1)]

    def test_listeners_are_called_in_subscription_order_for_each_commit(self) -> None:
        publisher, _ = make_publisher()
        calls: list[tuple[str, int]] = []
        publisher.subscribe(lambda c: calls.append(("a", c.ts)))
        publisher.subscribe(lambda c: calls.append(("b", c.ts)))
        publisher.publish(commit_at(NOW + 1))
        publisher.publish(commit_at(NOW + 2, b"j"))
        assert calls == [("a", NOW + 1), ("b", NOW + 1), ("a", NOW + 2), ("b", NOW + 2)]

    @pytest.mark.parametrize("offset", [0, -1, -1_000])
    def test_a_foreign_commit_at_or_before_published_ts_moves_to_the_next_ts(
        self, offset: int
    ) -> None:
        publisher, _ = make_publisher(published_ts=NOW + 10)
        received: list[PublishedCommit] = []
        publisher.subscribe(received.append)
        original = PublishedCommit(
            NOW + 10 + offset, {INDEX: [b"k"]}, {INDEX: [b"p"]}, "tasks", [("tasks", "id1", None)]
        )
        assert publisher.publish(original) == NOW + 11
        assert publisher.published_ts == NOW + 11
        (commit,) = received
        assert commit.ts == NOW + 11
        assert commit.write_keys == original.write_keys
        assert commit.write_prefixes == original.write_prefixes
        assert commit.table == "tasks"
        assert commit.writes == original.writes
        conflict = publisher.write_log.find_conflict(reads_of(b"k"), NOW + 10)
        assert conflict is not None and conflict.ts == NOW + 11

    def test_a_failing_listener_is_logged_and_the_others_still_run(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        publisher, _ = make_publisher()
        calls: list[str] = []

        def broken(commit: PublishedCommit) -> None:
            calls.append("broken")
            raise ValueError("listener bug")

        publisher.subscribe(lambda c: calls.append("first"))
        publisher.subscribe(broken)
        publisher.subscribe(lambda c: calls.append("last"))
        with caplog.at_level(logging.ERROR, logger="reactor.engine.feed"):
            assert publisher.publish(commit_at(NOW + 1)) == NOW + 1
        assert calls == ["first", "broken", "last"]
        (record,) = [r for r in caplog.records if r.name == "reactor.engine.feed"]
        assert record.levelno == logging.ERROR
        assert str(NOW + 1) in record.getMessage()
        assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
        assert publisher.published_ts == NOW + 1

    async def test_publishing_trims_the_write_log_by_the_runtime_clock(self) -> None:
        publisher, clock = make_publisher()
        publisher.publish(commit_at(NOW + 1))
        assert len(publisher.write_log) == 1
        await clock.advance(3600)
        publisher.publish(commit_at(clock.ns, b"j"))
        assert len(publisher.write_log) == 1  # only the new commit is left
        assert publisher.write_log.purged_through == NOW + 1


class TestTick:
    def test_a_tick_publishes_the_next_ts_without_writes_or_listeners(self) -> None:
        publisher, _ = make_publisher()
        calls: list[int] = []
        publisher.subscribe(lambda c: calls.append(c.ts))
        assert publisher.tick() == NOW + 1
        assert publisher.tick() == NOW + 2
        assert publisher.published_ts == NOW + 2
        assert calls == []
        assert len(publisher.write_log) == 0
        assert publisher.published_commits == 0

    async def test_a_tick_wakes_waiters(self) -> None:
        publisher, _ = make_publisher()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        publisher.when_published(NOW + 1, future)
        publisher.tick()
        assert future.done() and future.result() == NOW + 1


class TestInvalidateAll:
    def test_it_reaches_every_registered_invalidator_and_no_listener(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        publisher, _ = make_publisher()
        calls: list[str] = []
        publisher.subscribe(
            lambda c: calls.append("listener a"), invalidate_all=lambda: calls.append("a")
        )
        publisher.subscribe(lambda c: calls.append("listener b"))
        publisher.subscribe(
            lambda c: calls.append("listener c"), invalidate_all=lambda: calls.append("c")
        )
        with caplog.at_level(logging.WARNING, logger="reactor.engine.feed"):
            publisher.invalidate_all("the feed lost events")
        assert calls == ["a", "c"]
        assert any("the feed lost events" in r.getMessage() for r in caplog.records)
        assert publisher.published_ts == NOW


class TestWhenPublished:
    async def test_an_already_published_ts_resolves_at_once(self) -> None:
        publisher, _ = make_publisher()
        loop = asyncio.get_running_loop()
        now: asyncio.Future[int] = loop.create_future()
        earlier: asyncio.Future[int] = loop.create_future()
        publisher.when_published(NOW, now)
        publisher.when_published(NOW - 3, earlier)
        assert now.result() == NOW
        assert earlier.result() == NOW - 3

    async def test_a_done_future_is_left_alone(self) -> None:
        publisher, _ = make_publisher()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.cancel()
        publisher.when_published(NOW, future)  # must not raise InvalidStateError
        assert future.cancelled()

    async def test_later_timestamps_resolve_in_ts_order_as_they_are_published(self) -> None:
        publisher, _ = make_publisher()
        loop = asyncio.get_running_loop()
        futures: dict[int, asyncio.Future[int]] = {}
        order: list[int] = []
        for ts in (NOW + 5, NOW + 3, NOW + 4, NOW + 3):
            future: asyncio.Future[int] = loop.create_future()
            future.add_done_callback(lambda f: order.append(f.result()))
            futures.setdefault(ts, future)
            publisher.when_published(ts, future)
        publisher.publish(commit_at(NOW + 3))
        assert futures[NOW + 3].done() and not futures[NOW + 4].done()
        publisher.publish(commit_at(NOW + 5, b"j"))
        assert futures[NOW + 4].result() == NOW + 4  # resolved with its own ts
        assert futures[NOW + 5].result() == NOW + 5
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
        assert order == [NOW + 3, NOW + 3, NOW + 4, NOW + 5]

    async def test_a_cancelled_waiter_does_not_stop_the_others(self) -> None:
        publisher, _ = make_publisher()
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[int] = loop.create_future()
        kept: asyncio.Future[int] = loop.create_future()
        publisher.when_published(NOW + 1, gone)
        publisher.when_published(NOW + 1, kept)
        gone.cancel()
        publisher.publish(commit_at(NOW + 1))
        assert kept.result() == NOW + 1


class TestWaitPublished:
    async def test_it_returns_at_once_for_a_published_ts(self) -> None:
        publisher, _ = make_publisher()
        await asyncio.wait_for(publisher.wait_published(NOW), timeout=1)

    async def test_it_returns_once_the_ts_or_a_later_one_is_published(self) -> None:
        publisher, _ = make_publisher()
        waiter = asyncio.create_task(publisher.wait_published(NOW + 2))
        await asyncio.sleep(0)
        publisher.publish(commit_at(NOW + 1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not waiter.done()
        publisher.publish(commit_at(NOW + 7, b"j"))  # skips NOW + 2
        await asyncio.wait_for(waiter, timeout=1)

    async def test_a_tick_also_releases_it(self) -> None:
        publisher, _ = make_publisher()
        waiter = asyncio.create_task(publisher.wait_published(NOW + 1))
        await asyncio.sleep(0)
        publisher.tick()
        await asyncio.wait_for(waiter, timeout=1)
