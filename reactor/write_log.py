"""The bounded, in-memory log of recent commits: timestamp -> written index keys.

Owns answering "did any commit after ts write a key this read set covers?" for the committer
(OCC) and for subscriptions born from a query that ran at an older snapshot. It forgets commits
older than its retention; asking about them answers "unknown", which callers treat as conflict.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from reactor.reads import ReadSet, WriteKeys

__all__ = ["Conflict", "WriteLog"]


@dataclass(frozen=True, slots=True)
class Conflict:
    ts: int
    index_id: str | None  # None: the window is out of retention
    key: bytes | None
    table: str | None


class WriteLog:
    def __init__(self, *, max_entries: int = 100_000, retention_ns: int = 300_000_000_000) -> None:
        self._ts: list[int] = []
        self._writes: list[WriteKeys] = []
        self._tables: list[str | None] = []
        self._max_entries = max_entries
        self._retention_ns = retention_ns
        self.purged_through = 0  # commits at or below this ts are forgotten

    def append(self, ts: int, writes: WriteKeys, table: str | None = None) -> None:
        assert not self._ts or ts > self._ts[-1], "write log timestamps must increase"
        self._ts.append(ts)
        self._writes.append(writes)
        self._tables.append(table)
        if len(self._ts) > self._max_entries * 1.25:
            self._purge(len(self._ts) - self._max_entries)

    def remove_after(self, ts: int) -> None:
        """Drop entries newer than ``ts`` (commits that failed to persist)."""
        cut = bisect.bisect_right(self._ts, ts)
        del self._ts[cut:], self._writes[cut:], self._tables[cut:]

    def trim(self, now_ns: int) -> None:
        cut = bisect.bisect_right(self._ts, now_ns - self._retention_ns)
        if cut:
            self._purge(cut)

    def _purge(self, count: int) -> None:
        self.purged_through = self._ts[count - 1]
        del self._ts[:count], self._writes[:count], self._tables[:count]

    def find_conflict(self, read_set: ReadSet, after_ts: int, upto_ts: int | None = None) -> Conflict | None:
        """The first commit in ``(after_ts, upto_ts]`` writing a key inside ``read_set``."""
        if after_ts < self.purged_through:
            return Conflict(self.purged_through, None, None, None)
        start = bisect.bisect_right(self._ts, after_ts)
        stop = len(self._ts) if upto_ts is None else bisect.bisect_right(self._ts, upto_ts)
        for i in range(start, stop):
            hit = read_set.overlaps(self._writes[i])
            if hit is not None:
                return Conflict(self._ts[i], hit[0], hit[1], self._tables[i])
        return None

    def __len__(self) -> int:
        return len(self._ts)
