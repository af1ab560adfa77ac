"""A transaction's read set: per index, the key intervals it depends on.

Owns recording reads and testing written keys against them. Conflict detection over a window of
commits is ``reactor.core.write_log``; live subscriptions are ``reactor.engine.subscriptions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from reactor.core.intervals import Interval, IntervalSet

__all__ = ["ReadSet", "WriteKeys"]

# index id -> the keys (old and new) a commit wrote in that index
WriteKeys = Mapping[str, Sequence[bytes]]


class ReadSet:
    __slots__ = ("_by_index",)

    def __init__(self) -> None:
        self._by_index: dict[str, IntervalSet] = {}

    def add(self, index_id: str, interval: Interval) -> None:
        start, end = interval
        if end is not None and end <= start:
            return
        intervals = self._by_index.get(index_id)
        if intervals is None:
            intervals = self._by_index[index_id] = IntervalSet()
        intervals.add(interval)

    def add_point(self, index_id: str, key: bytes) -> None:
        # Never empty: ``key + 0x00`` is the key's immediate successor.
        intervals = self._by_index.get(index_id)
        if intervals is None:
            intervals = self._by_index[index_id] = IntervalSet()
        intervals.add(Interval(key, key + b"\x00"))

    def contains(self, index_id: str, key: bytes) -> bool:
        intervals = self._by_index.get(index_id)
        return intervals is not None and intervals.contains(key)

    def overlaps(self, writes: WriteKeys) -> tuple[str, bytes] | None:
        """The first written (index, key) that falls inside this read set, if any."""
        by_index = self._by_index
        for index_id, keys in writes.items():
            intervals = by_index.get(index_id)
            if intervals is None:
                continue
            for key in keys:
                if intervals.contains(key):
                    return index_id, key
        return None

    def items(self) -> Iterator[tuple[str, Interval]]:
        for index_id, intervals in self._by_index.items():
            for interval in intervals.intervals:
                yield index_id, interval

    def is_empty(self) -> bool:
        return not self._by_index

    def interval_count(self) -> int:
        return sum(len(s) for s in self._by_index.values())

    def merge(self, others: Iterable[ReadSet]) -> None:
        for other in others:
            for index_id, interval in other.items():
                self.add(index_id, interval)

    def __repr__(self) -> str:
        return f"ReadSet({dict((k, v.intervals) for k, v in self._by_index.items())})"
