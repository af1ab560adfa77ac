"""Live read sets: which owners (query-cache entries) depend on which index intervals.

Owns the per-index ``IntervalMap``s and turning a commit's written keys into the set of owners
it invalidates, by one interval lookup per written key (never a scan of subscriptions).
A subscription fires at most once: ``advance`` removes what it returns. Re-running is the
caller's job (``reactor.engine.query_cache``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, TypeVar

from reactor.core.intervals import Interval, IntervalMap
from reactor.core.reads import ReadSet
from reactor.core.write_log import WriteLog

__all__ = ["Subscription", "SubscriptionManager"]

T = TypeVar("T", bound=Hashable)


class Subscription(Generic[T]):
    __slots__ = ("active", "intervals", "owner", "ts")

    def __init__(self, owner: T, intervals: list[tuple[str, Interval]], ts: int = 0) -> None:
        self.owner = owner
        self.intervals = intervals
        self.ts = ts  # the snapshot the read set was read at: it holds every commit up to it
        self.active = True  # until unsubscribed or fired


class SubscriptionManager(Generic[T]):
    def __init__(self, write_log: WriteLog, *, processed_ts: int = 0) -> None:
        self.write_log = write_log
        self._maps: dict[str, IntervalMap[Subscription[T]]] = {}
        self.processed_ts = processed_ts  # every commit at or below it has been advanced
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def subscribe(self, owner: T, read_set: ReadSet, ts: int) -> Subscription[T] | None:
        """Subscribe ``owner`` to ``read_set`` as read at ``ts``.

        Returns None when a commit in ``(ts, processed_ts]`` already wrote inside the read set:
        the result is stale and must be recomputed (CONVEX_SEMANTICS §2.1, "born invalid").
        """
        if ts < self.processed_ts and self.write_log.find_conflict(read_set, ts, self.processed_ts):
            return None
        intervals = list(read_set.items())
        subscription = Subscription(owner, intervals, ts)
        for index_id, interval in intervals:
            index_map = self._maps.get(index_id)
            if index_map is None:
                index_map = self._maps[index_id] = IntervalMap()
            index_map.add(interval, subscription)
        self._count += 1
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        if not subscription.active:
            return  # already unsubscribed (or fired)
        subscription.active = False
        for index_id, interval in subscription.intervals:
            index_map = self._maps.get(index_id)
            if index_map is not None:
                index_map.remove(interval, subscription)
                if not len(index_map):
                    del self._maps[index_id]
        subscription.intervals = []
        self._count -= 1

    def advance(self, ts: int, writes: Mapping[str, Sequence[bytes]]) -> list[T]:
        """Process one commit; returns the owners it invalidated (now unsubscribed). A read
        set read at ``ts`` or later (a run at a commit written before it was published) holds
        the commit already: it stays."""
        self.processed_ts = max(self.processed_ts, ts)
        owners = []
        for subscription in self.touched(writes):
            if subscription.ts < ts:
                owners.append(subscription.owner)
                self.unsubscribe(subscription)
        return owners

    def touched(self, writes: Mapping[str, Sequence[bytes]]) -> set[Subscription[T]]:
        """The subscriptions whose read sets hold one of ``writes``' keys, left subscribed."""
        hit: set[Subscription[T]] = set()
        maps = self._maps
        for index_id, keys in writes.items():
            index_map = maps.get(index_id)
            if index_map is None:
                continue
            for key in keys:
                hit |= index_map.stab(key)
        return hit
