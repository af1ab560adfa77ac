"""SubscriptionManager: which owners a commit's written keys invalidate, each at most once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from reactor.core.intervals import Interval
from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog
from reactor.engine.subscriptions import SubscriptionManager


def _reads(*entries: tuple[str, Interval]) -> ReadSet:
    read_set = ReadSet()
    for index_id, interval in entries:
        read_set.add(index_id, interval)
    return read_set


def _point(index_id: str, key: bytes) -> ReadSet:
    read_set = ReadSet()
    read_set.add_point(index_id, key)
    return read_set


@pytest.fixture
def manager() -> SubscriptionManager[str]:
    return SubscriptionManager(WriteLog())


class TestSubscribe:
    def test_a_subscription_records_its_owner_and_intervals(
        self, manager: SubscriptionManager[str]
    ) -> None:
        subscription = manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)

        assert subscription is not None
        assert subscription.owner == "q"
        assert subscription.intervals == [("t.by_n", Interval(b"a", b"c"))]
        assert len(manager) == 1

    def test_an_empty_read_set_is_subscribed_and_never_invalidated(
        self, manager: SubscriptionManager[str]
    ) -> None:
        assert manager.subscribe("q", ReadSet(), 0) is not None

        assert manager.advance(1, {"t.by_n": [b"a"]}) == []
        assert len(manager) == 1

    def test_a_read_set_already_written_after_its_snapshot_is_born_invalid(self) -> None:
        log = WriteLog()
        manager: SubscriptionManager[str] = SubscriptionManager(log)
        log.append(5, {"t.by_id": [b"k"]}, "t")
        manager.advance(5, {"t.by_id": [b"k"]})

        assert manager.subscribe("q", _point("t.by_id", b"k"), 4) is None
        assert len(manager) == 0

    def test_a_write_at_or_before_the_snapshot_does_not_make_it_stale(self) -> None:
        log = WriteLog()
        manager: SubscriptionManager[str] = SubscriptionManager(log)
        log.append(5, {"t.by_id": [b"k"]}, "t")
        manager.advance(5, {"t.by_id": [b"k"]})

        assert manager.subscribe("q", _point("t.by_id", b"k"), 5) is not None

    def test_a_write_elsewhere_after_the_snapshot_does_not_make_it_stale(self) -> None:
        log = WriteLog()
        manager: SubscriptionManager[str] = SubscriptionManager(log)
        log.append(5, {"t.by_id": [b"other"]}, "t")
        manager.advance(5, {"t.by_id": [b"other"]})

        assert manager.subscribe("q", _point("t.by_id", b"k"), 4) is not None

    def test_commits_the_log_has_forgotten_count_as_conflicts(self) -> None:
        log = WriteLog(max_entries=1)
        manager: SubscriptionManager[str] = SubscriptionManager(log)
        for ts in range(1, 5):
            log.append(ts, {"t.by_id": [b"other"]}, "t")
            manager.advance(ts, {"t.by_id": [b"other"]})

        assert manager.subscribe("q", _point("t.by_id", b"k"), 1) is None


class TestAdvance:
    def test_a_write_inside_an_interval_invalidates_its_owner(
        self, manager: SubscriptionManager[str]
    ) -> None:
        manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)

        assert manager.advance(1, {"t.by_n": [b"b"]}) == ["q"]
        assert manager.processed_ts == 1

    def test_a_read_set_read_at_or_after_the_commit_holds_it_already(
        self, manager: SubscriptionManager[str]
    ) -> None:
        # Read at 5, a commit written before it was published (ts 3 and 5) is in the read.
        manager.subscribe("early", _reads(("t.by_n", Interval(b"a", b"c"))), 5)
        manager.subscribe("late", _reads(("t.by_n", Interval(b"a", b"c"))), 2)

        assert manager.advance(3, {"t.by_n": [b"b"]}) == ["late"]
        assert manager.advance(5, {"t.by_n": [b"b"]}) == []
        assert {s.owner for s in manager.touched({"t.by_n": [b"b"]})} == {"early"}
        assert manager.advance(6, {"t.by_n": [b"b"]}) == ["early"]
        assert len(manager) == 0

    def test_writes_outside_or_in_other_indexes_invalidate_nothing(
        self, manager: SubscriptionManager[str]
    ) -> None:
        manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)

        assert manager.advance(1, {"t.by_n": [b"c", b"0"], "t.by_id": [b"b"]}) == []
        assert manager.advance(2, {"t.by_n": [b"a"]}) == ["q"]

    def test_an_owner_fires_once_and_is_then_unsubscribed(
        self, manager: SubscriptionManager[str]
    ) -> None:
        manager.subscribe(
            "q", _reads(("t.by_n", Interval(b"a", b"c")), ("t.by_id", Interval.point(b"x"))), 0
        )

        assert manager.advance(1, {"t.by_n": [b"a", b"b"], "t.by_id": [b"x"]}) == ["q"]
        assert len(manager) == 0
        assert manager.advance(2, {"t.by_n": [b"a"], "t.by_id": [b"x"]}) == []

    def test_only_the_owners_whose_intervals_hold_a_key_fire(
        self, manager: SubscriptionManager[str]
    ) -> None:
        manager.subscribe("low", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        manager.subscribe("high", _reads(("t.by_n", Interval(b"c", None))), 0)
        manager.subscribe("both", _reads(("t.by_n", Interval(b"b", b"d"))), 0)

        assert sorted(manager.advance(1, {"t.by_n": [b"c"]})) == ["both", "high"]
        assert manager.advance(2, {"t.by_n": [b"a"]}) == ["low"]
        assert len(manager) == 0

    def test_processed_ts_never_goes_back(self, manager: SubscriptionManager[str]) -> None:
        manager.advance(7, {})
        manager.advance(3, {})

        assert manager.processed_ts == 7


class TestUnsubscribe:
    def test_an_unsubscribed_owner_never_fires(self, manager: SubscriptionManager[str]) -> None:
        subscription = manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        kept = manager.subscribe("r", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        assert subscription is not None and kept is not None

        manager.unsubscribe(subscription)

        assert len(manager) == 1
        assert subscription.intervals == []
        assert manager.advance(1, {"t.by_n": [b"b"]}) == ["r"]

    def test_the_same_owner_may_hold_two_subscriptions(
        self, manager: SubscriptionManager[str]
    ) -> None:
        first = manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        manager.subscribe("q", _reads(("t.by_n", Interval(b"x", b"z"))), 0)
        assert first is not None

        manager.unsubscribe(first)

        assert manager.advance(1, {"t.by_n": [b"b"]}) == []
        assert manager.advance(2, {"t.by_n": [b"y"]}) == ["q"]

    def test_unsubscribing_twice_counts_once(self, manager: SubscriptionManager[str]) -> None:
        subscription = manager.subscribe("q", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        manager.subscribe("r", _reads(("t.by_n", Interval(b"a", b"c"))), 0)
        assert subscription is not None

        manager.unsubscribe(subscription)
        manager.unsubscribe(subscription)

        assert len(manager) == 1


owners = st.sampled_from(["q1", "q2", "q3", "q4"])
keys = st.binary(max_size=2)
intervals = st.builds(
    lambda a, b, open_end: Interval(min(a, b), None if open_end else max(a, b)),
    keys,
    keys,
    st.booleans(),
)
index_ids = st.sampled_from(["t.by_n", "t.by_id"])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(owners, st.lists(st.tuples(index_ids, intervals), max_size=4), max_size=4),
    st.dictionaries(index_ids, st.lists(keys, max_size=4), max_size=2),
)
def test_advance_invalidates_exactly_the_read_sets_a_write_falls_in(
    reads: dict[str, list[tuple[str, Interval]]], writes: dict[str, list[bytes]]
) -> None:
    manager: SubscriptionManager[str] = SubscriptionManager(WriteLog())
    read_sets = {owner: _reads(*entries) for owner, entries in reads.items()}
    for owner, read_set in read_sets.items():
        manager.subscribe(owner, read_set, 0)

    fired = manager.advance(1, writes)

    expected = {owner for owner, read_set in read_sets.items() if read_set.overlaps(writes)}
    assert sorted(fired) == sorted(expected)
    assert len(manager) == len(read_sets) - len(expected)
