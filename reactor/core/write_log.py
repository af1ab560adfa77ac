"""The bounded, in-memory log of recent commits: timestamp -> written index keys.

Owns answering "did any commit after ts write a key this read set covers?" for the committer
(OCC) and for subscriptions born from a query that ran at an older snapshot. It forgets commits
older than its retention; asking about them answers "unknown", which callers treat as conflict.

Most read intervals are a point (``db.get``) or one eq-prefix of an index (``with_index`` eq
chains): for those, a map from each written key and each of its element-boundary prefixes to
the latest commit that wrote it answers in one lookup. Other intervals are checked against the
commits in the window one by one.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reactor.core.reads import ReadSet, WriteKeys

__all__ = ["Conflict", "WriteLog"]


@dataclass(frozen=True, slots=True)
class Conflict:
    ts: int
    index_id: str | None  # None: the window is out of retention
    key: bytes | None
    table: str | None


class WriteLog:
    def __init__(self, *, max_entries: int = 50_000, retention_ns: int = 120_000_000_000) -> None:
        self._ts: list[int] = []
        self._writes: list[WriteKeys] = []
        self._prefixes: list[Mapping[str, Sequence[bytes]]] = []
        self._tables: list[str | None] = []
        # (index id, key or element-boundary prefix) -> ts of the latest commit writing it
        self._latest: dict[tuple[str, bytes], int] = {}
        self._max_entries = max_entries
        self._retention_ns = retention_ns
        self.purged_through = 0  # commits at or below this ts are forgotten

    def append(
        self,
        ts: int,
        writes: WriteKeys,
        table: str | None = None,
        prefixes: Mapping[str, Sequence[bytes]] | None = None,
    ) -> None:
        """Record a commit: its written keys (old and new) and their element-boundary prefixes."""
        assert not self._ts or ts > self._ts[-1], "write log timestamps must increase"
        prefixes = prefixes or {}
        self._ts.append(ts)
        self._writes.append(writes)
        self._prefixes.append(prefixes)
        self._tables.append(table)
        latest = self._latest
        for mapping in (writes, prefixes):
            for index_id, keys in mapping.items():
                for key in keys:
                    latest[index_id, key] = ts
        if len(self._ts) > self._max_entries * 1.25:
            self._purge(len(self._ts) - self._max_entries)

    def remove_after(self, ts: int) -> None:
        """Drop entries newer than ``ts`` (commits that failed to persist)."""
        cut = bisect.bisect_right(self._ts, ts)
        del self._ts[cut:], self._writes[cut:], self._prefixes[cut:], self._tables[cut:]
        # Rare (a failed write): rebuild, so keys also written earlier keep their older ts.
        self._latest = {}
        for i, commit_ts in enumerate(self._ts):
            for mapping in (self._writes[i], self._prefixes[i]):
                for index_id, keys in mapping.items():
                    for key in keys:
                        self._latest[index_id, key] = commit_ts

    def trim(self, now_ns: int) -> None:
        cut = bisect.bisect_right(self._ts, now_ns - self._retention_ns)
        if cut:
            self._purge(cut)

    def _forget(self, i: int) -> None:
        latest = self._latest
        ts = self._ts[i]
        for mapping in (self._writes[i], self._prefixes[i]):
            for index_id, keys in mapping.items():
                for key in keys:
                    stored = latest.get((index_id, key))
                    if stored == ts:
                        del latest[index_id, key]

    def release_through(self, ts: int) -> None:
        """Drop the commits at or below ``ts`` because another log now answers for them (an
        engine's log of commits not yet durable, as they are published): unlike retention,
        asking about older snapshots afterwards is not "unknown"."""
        count = bisect.bisect_right(self._ts, ts)
        if count:
            self._drop(count)

    def _purge(self, count: int) -> None:
        self.purged_through = self._ts[count - 1]
        self._drop(count)

    def _drop(self, count: int) -> None:
        for i in range(count):
            self._forget(i)
        del self._ts[:count], self._writes[:count], self._prefixes[:count], self._tables[:count]

    def find_conflict(
        self, read_set: ReadSet, after_ts: int, upto_ts: int | None = None
    ) -> Conflict | None:
        """The first commit in ``(after_ts, upto_ts]`` writing a key inside ``read_set``."""
        if read_set.is_empty():
            return None  # nothing read: nothing can conflict, however old the snapshot
        if after_ts < self.purged_through:
            return Conflict(self.purged_through, None, None, None)
        if not self._ts or self._ts[-1] <= after_ts:
            return None
        if upto_ts is not None and upto_ts < self._ts[-1]:
            return self._scan(read_set, after_ts, upto_ts)
        rest: ReadSet | None = None
        latest = self._latest
        for index_id, interval in read_set.items():
            start, end = interval
            if (
                end is not None
                and len(end) == len(start) + 1
                and end.startswith(start)
                and (end[-1] == 0x00 or (end[-1] == 0xFF and start))
            ):
                # A point [k, k+00) or an eq-prefix range [P, P+FF): one lookup.
                ts = latest.get((index_id, start))
                if ts is not None and ts > after_ts:
                    return Conflict(ts, index_id, start, index_id.partition(".")[0])
                continue
            if rest is None:
                rest = ReadSet()
            rest.add(index_id, interval)
        return None if rest is None else self._scan(rest, after_ts, upto_ts)

    def _scan(self, read_set: ReadSet, after_ts: int, upto_ts: int | None) -> Conflict | None:
        start = bisect.bisect_right(self._ts, after_ts)
        stop = len(self._ts) if upto_ts is None else bisect.bisect_right(self._ts, upto_ts)
        for i in range(start, stop):
            hit = read_set.overlaps(self._writes[i])
            if hit is not None:
                return Conflict(self._ts[i], hit[0], hit[1], self._tables[i])
        return None

    def __len__(self) -> int:
        return len(self._ts)
